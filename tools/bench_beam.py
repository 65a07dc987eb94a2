"""Benchmark the Beam records builder against the local one on the same clips (one machine).

    python tools/bench_beam.py --clips 24 --workers 2 [--repeats 2]

Makes synthetic clips (480x360, 30 fps, ~2.5 s; emotf.synthetic.sample), then in one run builds
them with `emotf.records.build.build_records` twice per repeat, into fresh folders, in
alternating order: `runner="local"` (a pool of `--workers` processes) and `runner="beam"` (the
DirectRunner, multi_processing, `--workers` processes). Both times are end to end (worker
start-up, decode, faces, JPEG, shards, manifest). Checks that both wrote the same shards byte for
byte. Prints a table and a final JSON line: the median seconds of each and their ratio
(Beam / local): Beam's overhead on one machine.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _build(data: Path, out: Path, runner: str, workers: int, clips_per_shard: int) -> tuple:
    from emotf.records.build import build_records
    from emotf.records.config import BuildConfig

    start = time.perf_counter()
    manifest = build_records(
        BuildConfig(
            data_dir=str(data),
            out_dir=str(out),
            workers=workers,
            clips_per_shard=clips_per_shard,
            progress=False,
            runner=runner,
        )
    )
    return time.perf_counter() - start, manifest


def _same_shards(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("fold-*"))
    return names == sorted(p.name for p in b.glob("fold-*")) and all(
        filecmp.cmp(a / n, b / n, shallow=False) for n in names
    )


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=24, help="synthetic clips to build")
    p.add_argument("--workers", type=int, default=2, help="processes, for both builders")
    p.add_argument(
        "--clips-per-shard",
        type=int,
        default=64,
        help="shard size (Beam's unit of work is a shard)",
    )
    p.add_argument("--repeats", type=int, default=1, help="builds per runner (median reported)")
    p.add_argument(
        "--work-dir",
        default=None,
        help="keep data and builds here (default: a temporary folder, removed after)",
    )
    args = p.parse_args(argv)

    if args.work_dir:  # kept
        return _bench(args, Path(args.work_dir))
    with tempfile.TemporaryDirectory(prefix="emotf-bench-beam-") as work:  # removed after
        return _bench(args, Path(work))


def _bench(args: argparse.Namespace, work: Path) -> dict:
    from emotf.synthetic.config import SampleConfig
    from emotf.synthetic.sample import make_sample

    sample = SampleConfig(
        num_actors=min(args.clips, 91),
        clips_per_actor=-(-args.clips // 91),
        min_duration=2.3,
        max_duration=2.7,
        median_duration=2.5,
        seed=1,
    )
    make_sample(work / "data", sample)
    seconds: dict[str, list[float]] = {"local": [], "beam": []}
    manifests = {}
    for repeat in range(args.repeats):
        order = ("local", "beam") if repeat % 2 == 0 else ("beam", "local")
        for runner in order:
            out = work / f"{runner}-{repeat}"
            took, manifests[runner] = _build(
                work / "data", out, runner, args.workers, args.clips_per_shard
            )
            seconds[runner].append(took)
            print(f"{runner:>5} build {repeat + 1}: {took:7.1f} s", flush=True)
    same = _same_shards(work / "local-0", work / "beam-0")
    local_s, beam_s = (statistics.median(seconds[r]) for r in ("local", "beam"))
    frames = manifests["local"]["frames_written"]
    shards = len(manifests["local"]["shards"])
    print()
    print(
        f"{manifests['local']['clips_written']} clips, {frames} frames, {shards} shards, "
        f"{args.workers} workers, cpus {os.cpu_count()}"
    )
    print(f"| runner | seconds (median of {args.repeats}) | frames/s |")
    print("|---|---|---|")
    for runner, took in (("local", local_s), ("beam (DirectRunner)", beam_s)):
        print(f"| {runner} | {took:.1f} | {frames / took:.1f} |")
    print(f"ratio Beam / local: {beam_s / local_s:.2f}; shards byte-identical: {same}")
    result = {
        "clips": manifests["local"]["clips_written"],
        "frames": frames,
        "shards": shards,
        "workers": args.workers,
        "repeats": args.repeats,
        "local_s": round(local_s, 2),
        "beam_s": round(beam_s, 2),
        "ratio_beam_over_local": round(beam_s / local_s, 3),
        "same_shards": same,
        "all_seconds": {k: [round(v, 2) for v in vs] for k, vs in seconds.items()},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
