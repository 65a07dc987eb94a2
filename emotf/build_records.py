"""Build versioned TFRecord shards from a CREMA-D folder: parallel, resumable, never silent.

Layout read: `DATA/VideoFlash/<clip>.flv` and `DATA/AudioWAV/<clip>.wav`. Layout written::

    OUT/fold-K-of-10-SSSSS.tfrecord   one Example per clip (emotf.records), clips of fold K only
    OUT/fold-K-of-10-SSSSS.json       sidecar: the shard's planned clips, clips written,
                                      skipped clips with reasons, notes, detector statistics
    OUT/manifest.json                 everything aggregated + tool version and arguments

The plan (clips sorted by fold then name, cut into shards of `clips_per_shard`) is a pure
function of the clip names, the fold seed and the shard size. A shard is written to a temporary
name and renamed into place; its sidecar is written (also atomically) after that, so a shard is
complete iff its sidecar exists. A rerun skips complete shards and rebuilds the others: no clip
is lost or written twice. The bad-input policy is documented in docs/build_records.md.
The per-clip work (decode, track faces, encode one Example) and the worker pool that runs it
live in `emotf.clip_worker`; this module plans, writes shards, sidecars and the manifest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from emotf import __version__, keys

# process_clip and CRASH_ENV are re-exported: callers and tests import them from here.
from emotf.clip_worker import CRASH_ENV, ClipRunner, process_clip  # noqa: F401
from emotf.cremad import NUM_FOLDS, ClipNameError, canonical_folds, parse_clip_name
from emotf.faces import FaceTrackerConfig
from emotf.system import available_cpus

VIDEO_DIR, AUDIO_DIR = "VideoFlash", "AudioWAV"
VIDEO_EXT, AUDIO_EXT = ".flv", ".wav"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BuildConfig:
    """Arguments of one build (flags of `emotf-build-records` map onto these fields).

    Attributes:
        data_dir: folder with `VideoFlash/` and `AudioWAV/`.
        out_dir: output folder (created; reruns resume in it).
        workers: clip-processing processes (default: the CPUs this process may run on,
            `os.sched_getaffinity`, else `os.cpu_count()`; 1 = in this process).
        clips_per_shard: clips per shard (each shard holds one fold).
        strict: `emotf-build-records` exits non-zero when anything was skipped.
        fold_seed, stratify_by_sex: `emotf.cremad.canonical_folds` arguments.
        limit: only the first `limit` clips by name (smoke runs).
        tracker: face detection/tracking/crop settings.
        min_duration_s: clips shorter than this (audio or video) are skipped.
        max_duration_s: clips longer than this are skipped (e.g. 1064_IEO_DIS_MD, one minute of
            every emotion under one label).
        sample_rate: audio rate stored (Hz).
        progress: show a tqdm progress bar.
    """

    data_dir: str
    out_dir: str
    workers: int = field(default_factory=available_cpus)
    clips_per_shard: int = 64
    strict: bool = False
    fold_seed: int = 0
    stratify_by_sex: bool = False
    limit: int | None = None
    tracker: FaceTrackerConfig = FaceTrackerConfig()
    min_duration_s: float = 0.5
    max_duration_s: float = 10.0
    sample_rate: int = keys.AUDIO_SAMPLE_RATE_HZ
    progress: bool = True

    def __post_init__(self):
        if self.workers < 1 or self.clips_per_shard < 1:
            raise ValueError(
                f"workers and clips_per_shard must be >= 1. Received: workers={self.workers}, "
                f"clips_per_shard={self.clips_per_shard}"
            )


# --------------------------------------------------------------------------------------------
# The plan


def shard_name(fold: int, index: int) -> str:
    return f"fold-{fold}-of-{NUM_FOLDS}-{index:05d}"


def plan_build(config: BuildConfig) -> tuple[list[dict], list[dict]]:
    """(shards, skipped): shards in write order, each {name, fold, clips: [task...]}; skipped
    holds files whose names do not parse. Deterministic for a given folder and config."""
    data = Path(config.data_dir)
    stems: dict[str, dict] = {}
    for sub, ext, kind in ((VIDEO_DIR, VIDEO_EXT, "video"), (AUDIO_DIR, AUDIO_EXT, "audio")):
        folder = data / sub
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() == ext and path.is_file():
                    stems.setdefault(path.stem, {})[kind] = path
    folds = canonical_folds(config.fold_seed, config.stratify_by_sex)
    skipped, clips = [], []
    for stem in sorted(stems):
        paths = stems[stem]
        shown = paths.get("video", paths.get("audio"))
        try:
            name = parse_clip_name(stem)
        except ClipNameError as error:
            skipped.append({"path": str(shown), "reason": str(error)})
            continue
        if "video" not in paths:
            skipped.append({"path": str(data / VIDEO_DIR / f"{stem}{VIDEO_EXT}"),
                            "reason": "video file missing (audio only)"})
            continue
        clips.append((folds[name.actor_id], name.clip_id, paths))
    if config.limit is not None:
        clips = sorted(clips, key=lambda c: c[1])[: config.limit]
    clips.sort(key=lambda c: (c[0], c[1]))
    shards: list[dict] = []
    for fold in range(NUM_FOLDS):
        in_fold = [c for c in clips if c[0] == fold]
        for index, start in enumerate(range(0, len(in_fold), config.clips_per_shard)):
            tasks = [
                dict(clip_id=clip_id, fold=fold, video=str(paths["video"]),
                     audio=str(paths.get("audio", data / AUDIO_DIR / f"{clip_id}{AUDIO_EXT}")),
                     sample_rate=config.sample_rate, min_duration_s=config.min_duration_s,
                     max_duration_s=config.max_duration_s, tracker=config.tracker)
                for _, clip_id, paths in in_fold[start:start + config.clips_per_shard]
            ]
            shards.append({"name": shard_name(fold, index), "fold": fold, "clips": tasks})
    return shards, skipped


# --------------------------------------------------------------------------------------------
# Writing


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=False))
    os.replace(tmp, path)


def _sidecar_complete(out: Path, shard: dict) -> bool:
    sidecar = out / f"{shard['name']}.json"
    if not sidecar.is_file() or not (out / f"{shard['name']}.tfrecord").is_file():
        return False
    try:
        planned = json.loads(sidecar.read_text())["planned"]
    except (ValueError, KeyError):
        return False
    return planned == [t["clip_id"] for t in shard["clips"]]


def _check_out_dir(out: Path, shards: list[dict]) -> None:
    """Refuse to mix shards of another plan (different clips, seed or shard size) into OUT."""
    names = {s["name"] for s in shards}
    for path in out.glob("fold-*-of-*"):
        stem = path.name.split(".")[0]
        if path.suffix in (".tfrecord", ".json") and stem not in names:
            raise FileExistsError(
                f"{out} holds {path.name}, which this build's plan does not contain (another "
                f"clip set, --fold-seed or --clips-per-shard?). Use an empty --out."
            )
    for shard in shards:
        sidecar = out / f"{shard['name']}.json"
        if sidecar.is_file() and not _sidecar_complete(out, shard):
            raise FileExistsError(
                f"{sidecar} plans other clips than this build. Use an empty --out."
            )


def _warn(line: str, bar) -> None:
    (bar.write if bar is not None else print)(line, file=sys.stderr)


def build_records(config: BuildConfig, stop_after_shards: int | None = None) -> dict:
    """Build (or finish) the shards and write `manifest.json`; return the manifest.

    Args:
        config: `BuildConfig`.
        stop_after_shards: testing hook: raise `KeyboardInterrupt` before the last clip of the
            next shard once this many shards were completed in this run (simulates a kill).

    Returns:
        the manifest dict (see docs/build_records.md), also written to OUT/manifest.json.
    """
    from tqdm.auto import tqdm

    started = time.time()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards, plan_skipped = plan_build(config)
    _check_out_dir(out, shards)
    for item in plan_skipped:
        print(f"WARNING {item['path']}: {item['reason']} -> skipped", file=sys.stderr)
    todo = [s for s in shards if not _sidecar_complete(out, s)]
    total = sum(len(s["clips"]) for s in todo)
    bar = tqdm(total=total, desc="emotf-build-records", unit="clip", disable=not config.progress,
               file=sys.stderr)
    workers = min(config.workers, max(1, total))
    tasks = [t for s in todo for t in s["clips"]]
    results = ClipRunner(config.tracker, workers).run(tasks)
    import tensorflow as tf

    try:
        for done, shard in enumerate(todo):
            final = out / f"{shard['name']}.tfrecord"
            tmp = out / f"{shard['name']}.tfrecord.tmp"
            written, skipped, notes, stats = [], [], [], Counter()
            with tf.io.TFRecordWriter(str(tmp)) as writer:
                for i, task in enumerate(shard["clips"]):
                    if (stop_after_shards is not None and done >= stop_after_shards
                            and i == len(shard["clips"]) - 1):
                        raise KeyboardInterrupt("stop_after_shards (testing hook)")
                    result = next(results)
                    for note in result["notes"]:
                        _warn(f"WARNING {note}", bar)
                    notes += result["notes"]
                    if result["status"] == "ok":
                        writer.write(result["example"])
                        written.append({"clip_id": task["clip_id"], "label": parse_clip_name(
                            task["clip_id"]).label, "frames": result["num_frames"],
                            "samples": result["num_samples"]})
                        stats.update(result["stats"])
                    else:
                        _warn(f"WARNING {result['path']}: {result['reason']} -> skipped", bar)
                        skipped.append({"clip_id": task["clip_id"], "path": result["path"],
                                        "reason": result["reason"]})
                    bar.update(1)
            os.replace(tmp, final)
            _write_json(out / f"{shard['name']}.json", {
                "shard": final.name, "fold": shard["fold"],
                "planned": [t["clip_id"] for t in shard["clips"]],
                "written": written, "skipped": skipped, "notes": notes,
                "detector": dict(stats), "schema_version": keys.SCHEMA_VERSION,
            })
    finally:
        bar.close()
        results.close()  # stops the worker pool
    manifest = make_manifest(config, shards, plan_skipped, time.time() - started)
    _write_json(out / MANIFEST, manifest)
    return manifest


def make_manifest(config: BuildConfig, shards: list[dict], plan_skipped: list[dict],
                  seconds: float) -> dict:
    """Aggregate the shards' sidecars into the manifest."""
    from emotf.cremad import EMOTIONS

    out = Path(config.out_dir)
    per_fold: dict[str, dict] = {}
    skipped = [dict(item, clip_id=None) for item in plan_skipped]
    notes: list[str] = []
    detector = Counter()
    files = []
    for shard in shards:
        side = json.loads((out / f"{shard['name']}.json").read_text())
        files.append(side["shard"])
        fold = per_fold.setdefault(str(shard["fold"]), {
            "clips": 0, "frames": 0, "shards": [], "classes": {e: 0 for e in EMOTIONS}})
        fold["shards"].append(side["shard"])
        for clip in side["written"]:
            fold["clips"] += 1
            fold["frames"] += clip["frames"]
            fold["classes"][EMOTIONS[clip["label"]]] += 1
        skipped += side["skipped"]
        notes += side["notes"]
        detector.update(side["detector"])
    frames = detector.get("frames", 0)
    detector_stats = dict(detector)
    detector_stats["detection_rate"] = detector.get("detector_images", 0) / frames if frames else 0.0
    detector_stats["frames_detected_fraction"] = (
        detector.get("frames_detected", 0) / frames if frames else 0.0)
    classes = Counter()
    for fold in per_fold.values():
        classes.update(fold["classes"])
    args = dataclasses.asdict(config)
    return {
        "tool": "emotf-build-records",
        "version": __version__,
        "schema_version": keys.SCHEMA_VERSION,
        "arguments": args,
        "clips_written": sum(f["clips"] for f in per_fold.values()),
        "frames_written": sum(f["frames"] for f in per_fold.values()),
        "clips_skipped": len(skipped),
        "folds": per_fold,
        "classes": {e: classes.get(e, 0) for e in EMOTIONS},
        "detector": detector_stats,
        "skipped": skipped,
        "notes": notes,
        "shards": files,
        "seconds_last_run": round(seconds, 2),
    }
