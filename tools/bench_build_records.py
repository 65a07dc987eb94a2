"""Benchmark emotf-build-records against a naive baseline on the same synthetic clips.

    python tools/bench_build_records.py --clips 200 --workers 2 [--work-dir W]

Makes synthetic clips (480x360, 30 fps, ~2.5 s; emotf.synthetic.sample), then in one run:
  * tool:  `emotf.records.build.build_records` (keyframe MTCNN + tracking, `--workers` processes),
           end to end: decode, detect, crop, JPEG, audio, shards, manifest;
  * naive: on the first `--naive-clips` of them, one process, MTCNN (default `mtcnn.MTCNN()`)
           on every full-resolution frame, plus the same decode, crop and JPEG encode.
Prints a final JSON line: both throughputs (frames/s, the tool's end to end, i.e. including
its worker start-up), their ratio, and the mean IoU of the tool's boxes (read back from its
records) against the naive per-frame boxes made square with the same margin; also the tool's
steady-state frames/s (from the time its `--workers`-th clip came back to its last: start-up
excluded), the fixed cost that leaves (end-to-end time minus frames / steady rate), the
projected time for all of CREMA-D (567k frames: fixed cost + frames / steady rate), the CPU
seconds of the main process and of the workers, and the load average before and after.
`--work-dir` keeps the clips (a rerun reuses them: making 200 clips takes a while).
`--naive-clips 0` runs the tool alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

# All of CREMA-D: 7,442 clips of 30 fps video, ~567k frames (docs/build_records.md).
CREMAD_FRAMES = 567_000


def timed_runner(times: list):
    """`emotf.records.build`'s ClipRunner, noting (time, frames) as each result comes back."""
    from emotf.records import build

    class TimedRunner(build.ClipRunner):
        def run(self, tasks):
            for result in super().run(tasks):
                times.append((time.perf_counter(), result.num_frames))
                yield result

    build.ClipRunner = TimedRunner  # type: ignore[misc]


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=200, help="synthetic clips the tool builds")
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
    data = work / "data"
    videos = sorted((data / "VideoFlash").glob("*.flv"))
    if len(videos) != args.clips:  # a kept --work-dir of the same size is reused
        videos = make_sample(data, sample)
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
    load_before = os.getloadavg()
    times: list = []
    timed_runner(times)
    cpu_self = resource.getrusage(resource.RUSAGE_SELF)
    cpu_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    manifest = build_records(
        BuildConfig(
            data_dir=str(work / "data"),
            out_dir=str(work / "records"),
            workers=args.workers,
            tracker=tracker_config,
            progress=False,
            overwrite=True,
        )
    )
    tool_s = time.perf_counter() - start
    main_cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(cpu_self)
    workers_cpu = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(cpu_children)
    tool_frames = manifest["frames_written"]
    # steady state: from the workers-th result (every worker up and done with a clip) on
    first = min(args.workers, len(times)) - 1
    steady_frames = sum(n for _, n in times[first + 1 :])
    steady_s = times[-1][0] - times[first][0]
    steady = steady_frames / steady_s if steady_s > 0 else float("nan")
    fixed_s = tool_s - tool_frames / steady
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
    ious = np.concatenate(ious) if ious else np.full(1, np.nan)
    naive_fps = naive_frames / naive_s if naive_frames else float("nan")
    result = {
        "clips": len(videos),
        "frames": tool_frames,
        "naive_clips": args.naive_clips,
        "naive_frames": naive_frames,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "tracker": dict(vars(tracker_config)),
        "tool_frames_per_s": round(tool_frames / tool_s, 1),
        "tool_steady_frames_per_s": round(steady, 1),
        "tool_fixed_s": round(fixed_s, 2),
        "projected_cremad_min": round((fixed_s + CREMAD_FRAMES / steady) / 60, 1),
        "main_cpu_s": round(main_cpu, 2),
        "workers_cpu_s": round(workers_cpu, 2),
        "naive_frames_per_s": round(naive_fps, 1),
        "ratio": round((tool_frames / tool_s) / naive_fps, 2),
        "ratio_steady": round(steady / naive_fps, 2),
        "mean_iou": round(float(ious.mean()), 4),
        "min_iou": round(float(ious.min()), 4),
        "tool_detection_rate": round(manifest["detector"]["detection_rate"], 4),
        "tool_s": round(tool_s, 2),
        "naive_s": round(naive_s, 2),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    return result


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
