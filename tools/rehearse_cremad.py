"""Rehearse CREMA-D at full size (issue 23): every stage on a synthetic set with the real names.

    python tools/rehearse_cremad.py --fraction 0.1 --out /tmp/rehearsal-0.1
    python tools/rehearse_cremad.py --compare /tmp/rehearsal-0.1/rehearsal.json \
        /tmp/rehearsal-1.0/rehearsal.json [--markdown]

The synthetic set has CREMA-D's real clip names (a `fraction` of each actor's clips, every
actor kept, so every fold is there) and each clip's real duration, read from the size of its
official WAV in `emotf/data/checksums.csv` (16 kHz mono int16 after a 44-byte header). Then, each
stage in its own process: build the records, verify them, train the default (paper) model for
one epoch on fold 0, evaluate the fold-0 run and export it, and train the small demo model
through `--fold all` for one epoch (last: the longest stage, and the others need only fold 0).
For every stage it writes wall time, CPU time (the process and its children), peak RSS (the
largest of the process and any one child) and per-clip figures to `OUT/rehearsal.json`, and
prints them as a table. `--compare A B` prints B's per-clip wall and
CPU time and peak RSS over A's: the issue's bound is 1.2x from 0.1 to 1.0. CPU time per clip
is what to compare when the runs saw different loads (wall time is in the table with the load
average at each stage's start and end).

A long run resumes: rerunning the same command with the same `--out` keeps the stages that
`OUT/rehearsal.partial.json` records as done (same fraction and clips) and the sample clips
already written (each clip is written under a temporary name and renamed), and goes on from the
first stage not done; `--restart` starts over. Run it at low priority beside other work with
`nice -n 19`: CPU time stays comparable, wall time is then the machine's business.
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

PARTIAL = "rehearsal.partial.json"

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


def clip_files(folder: Path, name: str) -> tuple[Path, Path]:
    """(video, audio) of one synthetic clip, in CREMA-D's layout."""
    return folder / "VideoFlash" / f"{name}.flv", folder / "AudioWAV" / f"{name}.wav"


def _write_clip(job: tuple[str, str, float, SampleConfig]) -> None:
    folder, name, seconds, base = job
    config = dataclasses.replace(
        base, min_duration=seconds, max_duration=seconds, median_duration=seconds
    )
    plan = clip_plan(name, config)
    pcm = render_audio(plan, config)
    video, audio = clip_files(Path(folder), name)
    # Temporary names, renamed when whole: a killed run leaves no half-written clip behind.
    # The temporaries keep their suffix, so the muxer still knows the format.
    video_tmp, audio_tmp = (
        video.with_name(f".tmp-{video.name}"),
        audio.with_name(f".tmp-{audio.name}"),
    )
    write_wav(audio_tmp, pcm, config.sample_rate)
    write_flv(video_tmp, render_frames(plan, config), pcm, config)
    os.replace(audio_tmp, audio)
    os.replace(video_tmp, video)


def write_sample(out: Path, clips: list[tuple[str, float]], workers: int) -> None:
    """The synthetic set: `VideoFlash/<name>.flv` + `AudioWAV/<name>.wav` per clip; clips
    already there (a resumed run) are kept."""
    (out / "VideoFlash").mkdir(parents=True, exist_ok=True)
    (out / "AudioWAV").mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(out), name, seconds, SampleConfig())
        for name, seconds in clips
        if not all(p.exists() for p in clip_files(out, name))
    ]
    if not jobs:
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(tqdm(pool.map(_write_clip, jobs, chunksize=8), total=len(jobs), desc="sample"))


def git_commit() -> str | None:
    """The commit this tool's tree is at (None outside a git checkout)."""
    done = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return done.stdout.strip() or None


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
    load_start, clock = os.getloadavg()[0], time.strftime("%Y-%m-%d %H:%M:%S %Z")
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
        "started": clock,
        "load_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "commit": git_commit(),  # a resumed run may go on at a later commit
    }


def resumed(out: Path, fraction: float, clips: int) -> dict | None:
    """The partial result of an earlier run of the same rehearsal in `out`, if any."""
    path = out / PARTIAL
    if not path.exists():
        return None
    try:
        partial = json.loads(path.read_text())
    except ValueError:
        return None
    if partial.get("fraction") != fraction or partial.get("clips") != clips:
        return None
    return partial


def rehearse(fraction: float, out: Path, workers: int, restart: bool = False, run=None) -> dict:
    """Run (or resume) the rehearsal; returns the result written to `OUT/rehearsal.json`.
    `run(name, module, argv, out) -> stage dict` runs one stage (default `run_stage`)."""
    run = run or run_stage
    out.mkdir(parents=True, exist_ok=True)
    clips = chosen_clips(fraction)
    sample, records, runs = out / "sample", out / "records", out / "runs"
    earlier = None if restart else resumed(out, fraction, len(clips))
    result: dict = earlier or {
        "fraction": fraction,
        "clips": len(clips),
        "audio_seconds": round(sum(s for _, s in clips), 1),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "nice": os.nice(0),
        "commit": git_commit(),
        "stages": [],
    }
    done = {stage["stage"] for stage in result["stages"]}
    if earlier:
        print(f"rehearsal: resuming {out} (done: {', '.join(sorted(done)) or 'nothing'})")

    def keep(stage: dict) -> None:
        result["stages"].append(stage)
        # What is done so far, should a long run be stopped.
        (out / PARTIAL).write_text(json.dumps(result, indent=1))

    if "sample" not in done:
        print("rehearsal: sample ...", flush=True)
        load_start, clock = os.getloadavg()[0], time.strftime("%Y-%m-%d %H:%M:%S %Z")
        started = time.perf_counter()
        before = os.times()
        write_sample(sample, clips, workers)
        after = os.times()
        keep(
            {
                "stage": "sample",
                "wall_s": round(time.perf_counter() - started, 1),
                "cpu_s": round(sum(after[:4]) - sum(before[:4]), 1),
                "peak_rss_mb": None,
                "started": clock,
                "load_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
                "commit": git_commit(),
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
        ("evaluate", "emotf.cli.evaluate", ["--run", str(runs / "default-f0")]),
        ("export", "emotf.cli.export", [str(runs / "default-f0"), "--out", str(out / "export")]),
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
    ]
    for name, module, argv in stages:
        if name in done:
            continue
        print(f"rehearsal: {name} ...", flush=True)
        keep(run(name, module, argv, out))
    shards = list(records.glob("*.tfrecord"))
    result["records_bytes"] = sum(p.stat().st_size for p in shards)
    result["records_bytes_per_clip"] = round(result["records_bytes"] / len(clips))
    for stage in result["stages"]:
        stage["per_clip_s"] = round(stage["wall_s"] / len(clips), 4)
        stage["per_clip_cpu_s"] = round(stage["cpu_s"] / len(clips), 4)
        stage["clips_per_s"] = round(len(clips) / stage["wall_s"], 2) if stage["wall_s"] else None
    (out / "rehearsal.json").write_text(json.dumps(result, indent=1))
    return result


def table(result: dict) -> str:
    lines = [
        f"fraction {result['fraction']}: {result['clips']} clips, "
        f"{result['audio_seconds']} s of audio, load {result['load_average_at_start']}",
        f"{'stage':<30}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}{'s/clip':>9}"
        f"{'CPU s/clip':>11}{'load':>12}",
    ]
    clips = result["clips"]
    for s in result["stages"]:
        rss = "-" if s["peak_rss_mb"] is None else str(s["peak_rss_mb"])
        load = "-".join(str(x) for x in s.get("load_1min", [])) or "-"
        lines.append(
            f"{s['stage']:<30}{s['wall_s']:>9}{s['cpu_s']:>9}{rss:>13}"
            f"{s['wall_s'] / clips:>9.4f}{s['cpu_s'] / clips:>11.4f}{load:>12}"
        )
    if "records_bytes" in result:  # a finished run
        lines.append(
            f"records: {result['records_bytes'] / 2**20:.1f} MiB, "
            f"{result['records_bytes_per_clip'] / 1024:.1f} KiB per clip"
        )
    return "\n".join(lines)


def compare(small: dict, large: dict) -> str:
    """Per stage in both: large's per-clip wall and CPU time and peak RSS over small's (the
    bound is 1.2x)."""

    def ratio(b, a) -> float:
        return b / a if a and b is not None else math.nan

    lines = [f"{'stage':<30}{'wall/clip x':>13}{'CPU/clip x':>12}{'peak RSS x':>12}"]
    larger = {stage["stage"]: stage for stage in large["stages"]}
    for a in small["stages"]:
        b = larger.get(a["stage"])
        if b is None:
            lines.append(f"{a['stage']:<30}{'(not run)':>13}")
            continue
        cpu_a, cpu_b = a["cpu_s"] / small["clips"], b["cpu_s"] / large["clips"]
        wall_a, wall_b = a["wall_s"] / small["clips"], b["wall_s"] / large["clips"]
        lines.append(
            f"{a['stage']:<30}{ratio(wall_b, wall_a):>13.2f}"
            f"{ratio(cpu_b, cpu_a):>12.2f}{ratio(b['peak_rss_mb'], a['peak_rss_mb']):>12.2f}"
        )
    return "\n".join(lines)


def markdown(small: dict, large: dict) -> str:
    """The two runs side by side as a Markdown table (the README's): per stage, each run's wall
    and CPU seconds, peak RSS and CPU per clip, then large over small per clip and in RSS."""

    def cells(run: dict, stage: dict | None) -> list[str]:
        if stage is None:
            return ["(not run)", "", "", ""]
        rss = "-" if stage["peak_rss_mb"] is None else f"{stage['peak_rss_mb']:,}"
        per_clip_ms = 1000 * stage["cpu_s"] / run["clips"]
        return [f"{stage['wall_s']:,.0f}", f"{stage['cpu_s']:,.0f}", rss, f"{per_clip_ms:,.1f}"]

    def ratio(b, a) -> str:
        return f"{b / a:.2f}x" if a and b is not None else "-"

    f_a, f_b = small["fraction"], large["fraction"]
    head = ["stage"]
    for f, run in ((f_a, small), (f_b, large)):
        head += [f"{f}: wall s", "CPU s", "peak RSS MB", f"CPU ms/clip ({run['clips']:,} clips)"]
    head += ["CPU/clip ratio", "peak RSS ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    larger = {stage["stage"]: stage for stage in large["stages"]}
    for a in small["stages"]:
        b = larger.get(a["stage"])
        row = [a["stage"], *cells(small, a), *cells(large, b)]
        if b is None:
            row += ["-", "-"]
        else:
            row += [
                ratio(b["cpu_s"] / large["clips"], a["cpu_s"] / small["clips"]),
                ratio(b["peak_rss_mb"], a["peak_rss_mb"]),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fraction", type=float, default=0.1, help="of each actor's clips")
    parser.add_argument("--out", type=Path, default=Path("rehearsal"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("SMALL", "LARGE"))
    parser.add_argument("--restart", action="store_true", help="discard an earlier partial run")
    parser.add_argument(
        "--markdown", action="store_true", help="with --compare: one Markdown table of both runs"
    )
    args = parser.parse_args()
    if args.compare:
        # A partial run compares too: the stages it has done.
        small, large = (json.loads(p.read_text()) for p in args.compare)
        if args.markdown:
            print(markdown(small, large))
            return
        print(table(small), table(large), compare(small, large), sep="\n\n")
        return
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1]. Received: {args.fraction}")
    print(table(rehearse(args.fraction, args.out, args.workers, restart=args.restart)))


if __name__ == "__main__":
    main()
