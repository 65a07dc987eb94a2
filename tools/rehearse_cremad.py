"""Rehearse CREMA-D at full size (issue 23): every stage on a synthetic set with the real names.

    python tools/rehearse_cremad.py --fraction 0.1 --out /tmp/rehearsal-0.1
    python tools/rehearse_cremad.py --compare /tmp/rehearsal-0.1/rehearsal.json \
        /tmp/rehearsal-1.0/rehearsal.json

The synthetic set has CREMA-D's real clip names (a `fraction` of each actor's clips, every
actor kept, so every fold is there) and each clip's real duration, read from the size of its
official WAV in `emotf/data/checksums.csv` (16 kHz mono int16 after a 44-byte header). Then, each
stage in its own process: build the records, verify them, train the default (paper) model for
one epoch on fold 0, train the small demo model through `--fold all` for one epoch, evaluate
the fold-0 run and export it. For every stage it writes wall time, CPU time (the process and
its children), peak RSS (the largest of the process and any one child) and per-clip figures to
`OUT/rehearsal.json`, and prints them as a table. `--compare A B` prints B's per-clip time and
peak RSS over A's: the issue's bound is 1.2x from 0.1 to 1.0.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from emotf.configs import ModelConfig
from emotf.corpora.cremad import data_path, parse_clip_name
from emotf.demo import DEMO_MODEL
from emotf.synthetic.config import SampleConfig
from emotf.synthetic.media import render_audio, render_frames, write_flv, write_wav
from emotf.synthetic.sample import clip_plan

WAV_HEADER_BYTES = 44
BYTES_PER_SECOND = 16000 * 2  # 16 kHz mono int16
STAGE_RUNNER = r"""
import importlib, json, resource, sys
module, argv, report = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
rc = importlib.import_module(module).main(argv)
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
with open(report, "w") as f:
    json.dump({"rc": rc, "cpu_s": cpu, "peak_rss_mb": max(me.ru_maxrss, kids.ru_maxrss) / 1024}, f)
sys.exit(rc or 0)
"""


def real_durations() -> dict[str, float]:
    """Every CREMA-D clip's duration in seconds, from its official WAV's size."""
    durations = {}
    with open(data_path("checksums.csv"), newline="") as f:
        for row in csv.DictReader(f):
            folder, _, file = row["path"].partition("/")
            if folder == "AudioWAV" and file.endswith(".wav"):
                samples = (int(row["size"]) - WAV_HEADER_BYTES) / BYTES_PER_SECOND
                durations[file[: -len(".wav")]] = round(samples, 3)
    return durations


def chosen_clips(fraction: float) -> list[tuple[str, float]]:
    """A `fraction` of each actor's clips (at least one; the first by name), with durations."""
    by_actor: dict[int, list[str]] = defaultdict(list)
    durations = real_durations()
    for name in sorted(durations):
        by_actor[parse_clip_name(name).actor_id].append(name)
    chosen = []
    for names in by_actor.values():
        chosen += names[: max(1, math.ceil(fraction * len(names)))]
    return [(name, durations[name]) for name in sorted(chosen)]


def _write_clip(job: tuple[str, str, float, SampleConfig]) -> None:
    folder, name, seconds, base = job
    config = dataclasses.replace(
        base, min_duration=seconds, max_duration=seconds, median_duration=seconds
    )
    plan = clip_plan(name, config)
    pcm = render_audio(plan, config)
    write_wav(Path(folder) / "AudioWAV" / f"{name}.wav", pcm, config.sample_rate)
    write_flv(Path(folder) / "VideoFlash" / f"{name}.flv", render_frames(plan, config), pcm, config)


def write_sample(out: Path, clips: list[tuple[str, float]], workers: int) -> None:
    """The synthetic set: `VideoFlash/<name>.flv` + `AudioWAV/<name>.wav` per clip."""
    (out / "VideoFlash").mkdir(parents=True, exist_ok=True)
    (out / "AudioWAV").mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), name, seconds, SampleConfig()) for name, seconds in clips]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(tqdm(pool.map(_write_clip, jobs, chunksize=8), total=len(jobs), desc="sample"))


def model_flags(model: ModelConfig) -> list[str]:
    """`--model.<field> value` for every field where `model` differs from the default."""
    flags = []
    default = ModelConfig()
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if value != getattr(default, field.name):
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            flags += [f"--model.{field.name}", text]
    return flags


def run_stage(name: str, module: str, argv: list[str], out: Path) -> dict:
    """Run one console script's `main(argv)` in a fresh process; its wall, CPU and peak RSS."""
    report = out / f".{name}.rusage.json"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STAGE_RUNNER, module, json.dumps(argv), str(report)], check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rehearsal: stage {name} failed (exit {done.returncode}): {argv}")
    usage = json.loads(report.read_text())
    report.unlink()
    return {
        "stage": name,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage["cpu_s"], 1),
        "peak_rss_mb": round(usage["peak_rss_mb"]),
    }


def rehearse(fraction: float, out: Path, workers: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    clips = chosen_clips(fraction)
    sample, records, runs = out / "sample", out / "records", out / "runs"
    result: dict = {
        "fraction": fraction,
        "clips": len(clips),
        "audio_seconds": round(sum(s for _, s in clips), 1),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "stages": [],
    }
    started = time.perf_counter()
    before = os.times()
    write_sample(sample, clips, workers)
    after = os.times()
    cpu = sum(after[:4]) - sum(before[:4])
    result["stages"].append(
        {
            "stage": "sample",
            "wall_s": round(time.perf_counter() - started, 1),
            "cpu_s": round(cpu, 1),
            "peak_rss_mb": None,
        }
    )
    common_train = ["--records", str(records), "--epochs", "1", "--verbose", "2"]
    stages = [
        (
            "build",
            "emotf.cli.build_records",
            [
                "--data-dir",
                str(sample),
                "--out",
                str(records),
                "--workers",
                str(workers),
                "--no-progress",
            ],
        ),
        ("verify", "emotf.cli.verify_records", [str(records)]),
        (
            "train default, fold 0",
            "emotf.cli.train",
            [*common_train, "--fold", "0", "--out", str(runs / "default-f0"), "--batch-size", "16"],
        ),
        (
            "train demo model, all folds",
            "emotf.cli.train",
            [
                *common_train,
                "--fold",
                "all",
                "--out",
                str(runs / "demo-cv"),
                "--batch-size",
                "16",
                *model_flags(DEMO_MODEL),
            ],
        ),
        ("evaluate", "emotf.cli.evaluate", ["--run", str(runs / "default-f0")]),
        ("export", "emotf.cli.export", [str(runs / "default-f0"), "--out", str(out / "export")]),
    ]
    for name, module, argv in stages:
        print(f"rehearsal: {name} ...", flush=True)
        result["stages"].append(run_stage(name, module, argv, out))
        # What is done so far, should a long run be stopped.
        (out / "rehearsal.partial.json").write_text(json.dumps(result, indent=1))
    shards = list(records.glob("*.tfrecord"))
    result["records_bytes"] = sum(p.stat().st_size for p in shards)
    result["records_bytes_per_clip"] = round(result["records_bytes"] / len(clips))
    for stage in result["stages"]:
        stage["per_clip_s"] = round(stage["wall_s"] / len(clips), 4)
        stage["clips_per_s"] = round(len(clips) / stage["wall_s"], 2) if stage["wall_s"] else None
    (out / "rehearsal.json").write_text(json.dumps(result, indent=1))
    return result


def table(result: dict) -> str:
    lines = [
        f"fraction {result['fraction']}: {result['clips']} clips, "
        f"{result['audio_seconds']} s of audio, load {result['load_average_at_start']}",
        f"{'stage':<30}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}{'s/clip':>9}",
    ]
    for s in result["stages"]:
        rss = "-" if s["peak_rss_mb"] is None else str(s["peak_rss_mb"])
        lines.append(
            f"{s['stage']:<30}{s['wall_s']:>9}{s['cpu_s']:>9}{rss:>13}{s['per_clip_s']:>9}"
        )
    lines.append(
        f"records: {result['records_bytes'] / 2**20:.1f} MiB, "
        f"{result['records_bytes_per_clip'] / 1024:.1f} KiB per clip"
    )
    return "\n".join(lines)


def compare(small: dict, large: dict) -> str:
    """Per stage: large's per-clip time and peak RSS over small's (the bound is 1.2x)."""
    lines = [f"{'stage':<30}{'per-clip time x':>17}{'peak RSS x':>12}"]
    for a, b in zip(small["stages"], large["stages"], strict=True):
        time_ratio = b["per_clip_s"] / a["per_clip_s"] if a["per_clip_s"] else math.nan
        rss = (b["peak_rss_mb"] / a["peak_rss_mb"]) if a["peak_rss_mb"] else math.nan
        lines.append(f"{a['stage']:<30}{time_ratio:>17.2f}{rss:>12.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fraction", type=float, default=0.1, help="of each actor's clips")
    parser.add_argument("--out", type=Path, default=Path("rehearsal"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("SMALL", "LARGE"))
    args = parser.parse_args()
    if args.compare:
        small, large = (json.loads(p.read_text()) for p in args.compare)
        print(compare(small, large))
        return
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1]. Received: {args.fraction}")
    print(table(rehearse(args.fraction, args.out, args.workers)))


if __name__ == "__main__":
    main()
