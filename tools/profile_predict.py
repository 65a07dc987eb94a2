"""Where `emotf-predict`'s time goes on one video, and the lazy frames against whole conversion.

    python tools/profile_predict.py MODEL VIDEO [--repeats 3]

Stages (exclusive wall time of `Predictor.predict_video`, functions patched in this process):

  to RGB whole   `emotf.media.files.frame_to_rgb` (every frame with `lazy=False`; with lazy
                 frames only the detector's keyframes)
  to RGB boxes   `YUVFrame.convert_region`: the neighbourhood of each face box (lazy frames)
  detection      `FaceTracker.detect` (downscale + MTCNN) on keyframes and re-detections
  crops          `emotf.media.faces.crop_faces`
  JPEG           `jpeg_round_trip` (encode at the records' quality, decode as training)
  model          `Predictor.run_model` (the SavedModel or LiteRT call, batch padding included)
  rest           decoding (PyAV, in its own threads; waited for here), tracking, windows, audio

Decoding alone is timed too (one pass over the file, no conversion). Each repeat runs the video
whole-converted (`ClipReader(lazy=False)`: the code before lazy frames) and lazily, alternately,
in this one process; the tool checks that both give the same timeline, and prints medians,
their ratio and the load average as one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time

STAGES = ("to RGB whole", "to RGB boxes", "detection", "crops", "JPEG", "model")


class Timers:
    """Exclusive wall time per stage: a stage's time excludes the stages it calls."""

    def __init__(self):
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.stack: list[list] = []  # [stage, start, time spent in callees]

    def wrap(self, stage: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.stack.append([stage, time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                name, start, inner = self.stack.pop()
                spent = time.perf_counter() - start
                self.totals[name] += spent - inner
                if self.stack:
                    self.stack[-1][2] += spent

        return timed


def install(timers: Timers) -> None:
    """Patch the stage functions where `emotf-predict` calls them (this process only)."""
    from emotf.media import decode, preprocess
    from emotf.media.faces import FaceTracker
    from emotf.serving import predict

    decode.frame_to_rgb = timers.wrap("to RGB whole", decode.frame_to_rgb)
    decode.YUVFrame.convert_region = timers.wrap(  # type: ignore[method-assign]
        "to RGB boxes", decode.YUVFrame.convert_region
    )
    FaceTracker.detect = timers.wrap("detection", FaceTracker.detect)  # type: ignore[method-assign]
    preprocess.crop_faces = timers.wrap("crops", preprocess.crop_faces)
    predict.jpeg_round_trip = timers.wrap("JPEG", predict.jpeg_round_trip)
    predict.Predictor.run_model = timers.wrap(  # type: ignore[method-assign]
        "model", predict.Predictor.run_model
    )


def decode_only(path: str) -> dict:
    """Wall and CPU seconds of decoding the whole video (PyAV, `thread_type` AUTO, as
    `emotf.media.decode.open_video`), nothing converted."""
    import av

    wall, cpu = time.perf_counter(), time.process_time()
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = sum(1 for _ in container.decode(stream))
    return {
        "frames": frames,
        "wall_s": round(time.perf_counter() - wall, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("video")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from emotf.media.preprocess import ClipReader
    from emotf.serving import predict

    timers = Timers()
    install(timers)
    predictor = predict.Predictor(args.model)
    _ = predictor.tracker.detector  # MTCNN loaded before any clock starts
    readers = {
        "whole": functools.partial(ClipReader, lazy=False),
        "lazy": functools.partial(ClipReader, lazy=True),
    }
    predict.ClipReader = readers["lazy"]  # type: ignore[misc]
    predictor.predict_video(args.video)  # warm-up: graph traces, caches
    runs: dict[str, list[dict]] = {"whole": [], "lazy": []}
    timelines: dict[str, list] = {}
    loads = [os.getloadavg()[0]]
    decoding = []
    for _ in range(args.repeats):
        decoding.append(decode_only(args.video))
        for mode, reader in readers.items():
            predict.ClipReader = reader  # type: ignore[misc]
            timers.totals = dict.fromkeys(STAGES, 0.0)
            wall, cpu = time.perf_counter(), time.process_time()
            result = predictor.predict_video(args.video)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stages = {k: round(v, 3) for k, v in timers.totals.items()}
            stages["rest"] = round(wall - sum(timers.totals.values()), 3)
            runs[mode].append({"wall_s": wall, "cpu_s": cpu, "stages": stages})
            timeline = [
                (w["start"], w["end"], None if w["probabilities"] is None else w["probabilities"])
                for w in result["timeline"]
            ]
            previous = timelines.setdefault(mode, timeline)
            timelines[mode] = timeline
            assert len(previous) == len(timeline)
        loads.append(os.getloadavg()[0])
    a, b = timelines["whole"], timelines["lazy"]
    same = len(a) == len(b) and all(
        x[:2] == y[:2]
        and (x[2] is None) == (y[2] is None)
        and (x[2] is None or np.array_equal(x[2], y[2]))
        for x, y in zip(a, b, strict=True)
    )
    seconds = result["duration_s"]
    report: dict = {"video": args.video, "duration_s": seconds, "repeats": args.repeats}
    for mode, rows in runs.items():
        report[mode] = {
            "wall_s": round(statistics.median(r["wall_s"] for r in rows), 3),
            "cpu_s": round(statistics.median(r["cpu_s"] for r in rows), 3),
            "rtf": round(statistics.median(r["wall_s"] for r in rows) / seconds, 3),
            "stages_s": {
                k: round(statistics.median(r["stages"][k] for r in rows), 3)
                for k in rows[0]["stages"]
            },
        }
    report["decode_only"] = {
        k: round(statistics.median(d[k] for d in decoding), 3) for k in ("wall_s", "cpu_s")
    }
    report["lazy_over_whole_wall"] = round(report["lazy"]["wall_s"] / report["whole"]["wall_s"], 3)
    report["lazy_over_whole_cpu"] = round(report["lazy"]["cpu_s"] / report["whole"]["cpu_s"], 3)
    report["same_timeline"] = same
    report["load_1min"] = [round(v, 2) for v in loads]
    print(json.dumps(report))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
