"""Benchmark emotf-build-records against a naive baseline on the same synthetic clips.

    python tools/bench_build_records.py --clips 8 --workers 2

Makes synthetic clips (480x360, 30 fps, ~2.5 s; emotf.synthetic.sample), then in one run:
  * tool:  `emotf.records.build.build_records` (keyframe MTCNN + tracking, `--workers` processes),
           end to end: decode, detect, crop, JPEG, audio, shards, manifest;
  * naive: on the first `--naive-clips` of them, one process, MTCNN (default `mtcnn.MTCNN()`)
           on every full-resolution frame, plus the same decode, crop and JPEG encode.
Prints a final JSON line: both throughputs (frames/s, the tool's including its worker
start-up), their ratio, and the mean IoU of the tool's boxes (read back from its records)
against the naive per-frame boxes made square with the same margin.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=24, help="synthetic clips the tool builds")
    p.add_argument(
        "--naive-clips",
        type=int,
        default=6,
        help="of those, clips the naive baseline processes (it is ~20x slower)",
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--keyframe-interval", type=int, default=None)
    p.add_argument("--detect-scale", type=float, default=None)
    p.add_argument("--work-dir", default=None, help="keep data here (default: a temp dir)")
    args = p.parse_args(argv)

    import numpy as np

    from emotf import keys
    from emotf.media.faces import (
        FaceTracker,
        FaceTrackerConfig,
        box_iou,
        boxes_from_detections,
        crop_faces,
        pick_face,
    )
    from emotf.media.files import decode_video, encode_jpegs
    from emotf.records.build import build_records
    from emotf.records.config import BuildConfig
    from emotf.records.example import read_records
    from emotf.synthetic.config import SampleConfig
    from emotf.synthetic.sample import make_sample

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="emotf-bench-"))
    sample = SampleConfig(
        num_actors=min(args.clips, 91),
        clips_per_actor=-(-args.clips // 91),
        min_duration=2.3,
        max_duration=2.7,
        median_duration=2.5,
        seed=1,
    )
    videos = make_sample(work / "data", sample)
    overrides = {
        k: v
        for k, v in (
            ("keyframe_interval", args.keyframe_interval),
            ("detect_scale", args.detect_scale),
        )
        if v is not None
    }
    tracker_config = FaceTrackerConfig(**overrides)

    # --- the tool, end to end ---
    start = time.perf_counter()
    manifest = build_records(
        BuildConfig(
            data_dir=str(work / "data"),
            out_dir=str(work / "records"),
            workers=args.workers,
            tracker=tracker_config,
            progress=False,
        )
    )
    tool_s = time.perf_counter() - start
    tool_frames = manifest["frames_written"]
    tool_boxes = {}
    for rec in read_records(sorted((work / "records").glob("*.tfrecord"))):
        h, w = rec[keys.VIDEO_SOURCE_SIZE].numpy()
        b = rec[keys.VIDEO_FACE_BOXES].numpy().astype(np.float64)  # ymin xmin ymax xmax
        tool_boxes[rec[keys.CLIP_ID].numpy().decode()] = np.stack(
            [b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], axis=1
        )

    # --- naive: MTCNN on every full-resolution frame, one process ---
    import mtcnn

    naive = FaceTracker(
        FaceTrackerConfig(min_confidence=tracker_config.min_confidence), detector=mtcnn.MTCNN()
    )
    naive.detect([np.zeros((360, 480, 3), np.uint8)])  # load weights outside the timing
    start = time.perf_counter()
    naive_frames, ious = 0, []
    for path in videos[: args.naive_clips]:
        video = decode_video(path)
        raw = np.full((len(video.frames), 4), np.nan)
        previous = None
        for i, frame in enumerate(video.frames):
            box = pick_face(naive.detect([frame])[0], previous)
            if box is not None:
                raw[i] = previous = box
        boxes = boxes_from_detections(raw, tracker_config.margin, 0.0)
        encode_jpegs(crop_faces(video.frames, boxes), tracker_config.jpeg_quality)
        naive_frames += len(video.frames)
        ious.append(box_iou(tool_boxes[path.stem], boxes))
    naive_s = time.perf_counter() - start
    ious = np.concatenate(ious)
    result = {
        "clips": len(videos),
        "frames": tool_frames,
        "naive_clips": args.naive_clips,
        "naive_frames": naive_frames,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "tracker": dict(vars(tracker_config)),
        "tool_frames_per_s": round(tool_frames / tool_s, 1),
        "naive_frames_per_s": round(naive_frames / naive_s, 1),
        "ratio": round((tool_frames / tool_s) / (naive_frames / naive_s), 2),
        "mean_iou": round(float(ious.mean()), 4),
        "min_iou": round(float(ious.min()), 4),
        "tool_detection_rate": round(manifest["detector"]["detection_rate"], 4),
        "tool_s": round(tool_s, 2),
        "naive_s": round(naive_s, 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
