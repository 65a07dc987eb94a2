"""Peak memory and real-time factor of `emotf-predict` on long and large videos.

    python tools/bench_predict.py [--sizes 60x640x480,600x640x480,30x1920x1080] [--out DIR]

Exports the full-size default model (`ModelConfig()`, random weights: speed and memory do not
depend on them), writes each video on the fly (`emotf.synthetic.video`: the astronaut's face
drifting over a background, H.264 MP4 with AAC audio, written frame by frame), then runs
`emotf-predict` on each in its own subprocess, so that each peak RSS (`ru_maxrss` of that
child, `resource.getrusage(RUSAGE_SELF)` read in it at the end) belongs to one video only.
Real-time factor = the child's prediction wall time (model and MTCNN load excluded, measured
inside it) / the video's duration. Prints one JSON line with the targets checked:
600 s peak <= 1.25 x the 60 s peak, 1080p peak <= 1.5 x, RTF < 0.5 for 640x480.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as emotf-predict runs (emotf.cli)
from emotf.serving.predict import Predictor, predict_files
predictor = Predictor(sys.argv[1])
_ = predictor.tracker.detector  # MTCNN loaded before the clock starts
start = time.perf_counter()
[result] = predict_files(None, [sys.argv[2]], predictor=predictor)
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "error": result.get("error"),
                  "duration_s": result.get("duration_s"),
                  "windows": len(result.get("timeline") or []), "held": predictor.last_stats,
                  "timings_s": result.get("timings_s"),
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        default="60x640x480,600x640x480,30x1920x1080",
        help="comma-separated SECONDSxWIDTHxHEIGHT",
    )
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--out", default=None, help="keep videos and model here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from emotf.configs import ModelConfig, SamplingConfig
    from emotf.model import build_model
    from emotf.serving.export import export_saved_model
    from emotf.synthetic.video import write_face_video

    root = Path(args.out or tempfile.mkdtemp(prefix="bench_predict-"))
    root.mkdir(parents=True, exist_ok=True)
    config = ModelConfig()
    keras.utils.set_random_seed(0)
    model_dir = root / "model"
    if not model_dir.exists():
        export_saved_model(
            build_model(config), SamplingConfig(num_segments=config.num_segments), model_dir
        )
    report = {
        "cpu_count": os.cpu_count(),
        "fps": args.fps,
        "model": {"num_segments": config.num_segments, "weights": "random (speed and memory only)"},
        "videos": {},
    }
    for size in args.sizes.split(","):
        seconds, width, height = (float(v) for v in size.lower().split("x"))
        name = f"{int(seconds)}s_{int(width)}x{int(height)}"
        video = root / f"{name}.mp4"
        if not video.exists():
            start = time.perf_counter()
            write_face_video(
                video,
                seconds,
                fps=args.fps,
                width=int(width),
                height=int(height),
                bit_rate=int(2_000_000 * width * height / (640 * 480)),
            )
            print(
                f"wrote {video} in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True
            )
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(model_dir), str(video)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        peak = child["peak_rss_kb"]  # KiB: that child's own peak (ru_maxrss of RUSAGE_SELF)
        row = {
            "seconds": seconds,
            "width": int(width),
            "height": int(height),
            "peak_rss_mb": round(peak / 1024, 1),
            "wall_s": round(child["wall_s"], 1),
            "rtf": round(child["wall_s"] / seconds, 3),
            "windows": child["windows"],
            "held": child["held"],
            "timings_s": child["timings_s"],
            "error": child["error"],
        }
        report["videos"][name] = row
        print(
            f"{name}: peak {row['peak_rss_mb']} MB, RTF {row['rtf']}", file=sys.stderr, flush=True
        )
    rows = report["videos"]
    small = [r for r in rows.values() if (r["width"], r["height"]) == (640, 480)]
    if len(small) >= 2:
        low, high = min(small, key=lambda r: r["seconds"]), max(small, key=lambda r: r["seconds"])
        report["long_over_short_peak"] = round(high["peak_rss_mb"] / low["peak_rss_mb"], 3)
        report["long_within_1.25x"] = report["long_over_short_peak"] <= 1.25
        big = [r for r in rows.values() if r["width"] >= 1920]
        if big:
            report["1080p_over_short_peak"] = round(big[0]["peak_rss_mb"] / low["peak_rss_mb"], 3)
            report["1080p_within_1.5x"] = report["1080p_over_short_peak"] <= 1.5
    if small:
        report["max_rtf_640x480"] = max(r["rtf"] for r in small)
        report["rtf_below_0.5"] = report["max_rtf_640x480"] < 0.5
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
