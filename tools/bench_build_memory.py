"""Memory of one records-build worker over many clips: flat, or growing with the clips it did.

    python tools/bench_build_memory.py --data DIR [--clips 300] [--every 50] [--eager-pnet]

Sets a process up as a build worker (`emotf.records.clip_worker.init_worker`, one thread) and
runs `process_clip` on the first `--clips` clips of a CREMA-D-layout folder (`VideoFlash/*.flv`
+ `AudioWAV/*.wav`, e.g. the sample of `tools/rehearse_cremad.py`), printing the resident set
size after every `--every` clips. A worker of the full-size build does ~3,700 clips, so a few
hundred kilobytes per clip is a gigabyte there. `--eager-pnet` runs MTCNN's own eager P-net
stage instead of `emotf.media.faces.GraphPNet` (the build before issue 23). The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def resident_mb() -> float:
    """This process's resident set size now, in MB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a CREMA-D-layout folder")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--eager-pnet", action="store_true", help="mtcnn's own P-net stage")
    args = parser.parse_args(argv)

    from emotf.media import faces
    from emotf.media.faces import FaceTrackerConfig
    from emotf.records import clip_worker

    if args.eager_pnet:
        # FaceTracker swaps the P-net stage only where it is mtcnn's StagePNet: renaming the
        # class it checks for keeps mtcnn's own.
        faces.PNET_STAGE = "no such stage"
    clip_worker.init_worker(FaceTrackerConfig(), True)
    videos = sorted((args.data / "VideoFlash").glob("*.flv"))[: args.clips]
    if not videos:
        parser.error(f"--data {args.data}: no VideoFlash/*.flv")
    points, started = [], time.perf_counter()
    for i, video in enumerate(videos, 1):
        audio = args.data / "AudioWAV" / f"{video.stem}.wav"
        result = clip_worker.process_clip(
            clip_worker.ClipTask(video.stem, 0, str(video), str(audio))
        )
        if not result.ok:
            print(f"{video}: skipped ({result.reason})", flush=True)
        if i == 1 or i % args.every == 0 or i == len(videos):
            points.append({"clips": i, "rss_mb": round(resident_mb())})
            print(f"{i:5d} clips: {points[-1]['rss_mb']} MB", flush=True)
    after_first = [p for p in points if p["clips"] >= args.every]
    growth = (
        (after_first[-1]["rss_mb"] - after_first[0]["rss_mb"])
        / max(1, after_first[-1]["clips"] - after_first[0]["clips"])
        if len(after_first) > 1
        else None
    )
    report = {
        "clips": len(videos),
        "eager_pnet": args.eager_pnet,
        "points": points,
        "mb_per_clip_after_warmup": None if growth is None else round(growth, 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
