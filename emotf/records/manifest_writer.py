"""Writing the manifest of a finished build: every shard's sidecar aggregated into it.

`emotf.records.build` writes the shards and their sidecars, then, last, the manifest with
`write_manifest` (layout: docs/build_records.md; reading and checking it:
`emotf.records.manifest`; its file name: `emotf.records.folder.RecordsFolder`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from emotf import __version__, keys
from emotf.corpora.info import CORPUS_KEY
from emotf.records.config import BuildConfig, clip_settings, record_settings
from emotf.records.folder import RecordsFolder
from emotf.records.manifest import MANIFEST_VERSION, settings_hash
from emotf.records.media_checks import summarize
from emotf.records.plan import BuildPlan
from emotf.storage import as_path, read_json, write_json


def write_manifest(config: BuildConfig, plan: BuildPlan, seconds: float) -> dict:
    """Write the manifest of a finished build into its folder; return it.

    Args: as `make_manifest`.
    """
    manifest = make_manifest(config, plan, seconds)
    write_json(RecordsFolder(as_path(config.out_dir).resolve()).manifest_path, manifest)
    return manifest


def make_manifest(config: BuildConfig, plan: BuildPlan, seconds: float) -> dict:
    """Aggregate the shards' sidecars into the manifest (layout: docs/build_records.md).

    Args:
        config: the build's `BuildConfig` (written as `arguments`; its `record_settings` and
            `clip_settings` as `settings` and `clip_settings`).
        plan: the whole plan (`emotf.records.plan.make_plan`), every shard complete with its
            sidecar; its skipped files, its corpus (`corpus`: `CorpusInfo.to_dict()`) and its
            speakers' folds (`speakers`) go into the manifest.
        seconds: how long this run took.
    """
    settings = record_settings(config)
    folder = RecordsFolder(as_path(config.out_dir).resolve())
    out = folder.path
    codes = plan.info.class_codes
    per_fold: dict[str, dict] = {}
    skipped = [dict(item, clip_id=None) for item in plan.skipped]
    notes: list[str] = []
    detector: Counter[str] = Counter()
    entries: list[dict] = []
    media: dict[str, dict] = {}
    seen: dict[str, str] = {}
    written_clips: dict[str, list[dict]] = {}
    for shard in plan.shards:
        side = read_json(folder.sidecar_path(shard["name"]))
        entries.append(side["entry"])
        fold = per_fold.setdefault(
            str(shard["fold"]),
            {"clips": 0, "frames": 0, "shards": [], "classes": {e: 0 for e in codes}},
        )
        fold["shards"].append(side["shard"])
        written_clips.setdefault(side["shard"], []).extend(side["written"])
        for clip in side["written"]:
            if clip["clip_id"] in seen:  # the plan has one task per clip id: never expected
                raise RuntimeError(
                    f"{out}: clip {clip['clip_id']} written twice (in "
                    f"{seen[clip['clip_id']]} and {side['shard']})"
                )
            seen[clip["clip_id"]] = side["shard"]
            fold["clips"] += 1
            fold["frames"] += clip["frames"]
            fold["classes"][codes[clip["label"]]] += 1
        skipped += side["skipped"]
        notes += side["notes"]
        detector.update(side["detector"])
        media.update(side.get("media_checks", {}))
    # Audio seconds of the written clips: the median is emotf-predict's default window.
    durations = sorted(
        c["samples"] / config.sample_rate for fold in written_clips.values() for c in fold
    )
    clip_seconds = (
        {
            "count": len(durations),
            "min": round(durations[0], 4),
            "median": round(float(np.median(durations)), 4),
            "max": round(durations[-1], 4),
        }
        if durations
        else None
    )
    frames = detector.get("frames", 0)
    detector_stats: dict[str, float] = dict(detector)
    detector_stats["detection_rate"] = (
        detector.get("detector_images", 0) / frames if frames else 0.0
    )
    detector_stats["frames_detected_fraction"] = (
        detector.get("frames_detected", 0) / frames if frames else 0.0
    )
    classes: Counter[str] = Counter()
    for fold in per_fold.values():
        classes.update(fold["classes"])
    args = dataclasses.asdict(config)
    return {
        "tool": "emotf-build-records",
        "version": __version__,
        "manifest_version": MANIFEST_VERSION,
        "schema_version": keys.SCHEMA_VERSION,
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "clip_settings": clip_settings(config).to_dict(),
        "clip_seconds": clip_seconds,
        "arguments": args,
        "clips_written": sum(f["clips"] for f in per_fold.values()),
        "frames_written": sum(f["frames"] for f in per_fold.values()),
        "clips_skipped": len(skipped),
        "folds": per_fold,
        "classes": {e: classes.get(e, 0) for e in codes},
        CORPUS_KEY: plan.info.to_dict(),
        "speakers": dict(plan.speakers),
        "detector": detector_stats,
        "skipped": skipped,
        "notes": notes,
        "shards": entries,
        "media_checks": media,
        "media_summary": summarize(media) if config.checks_media else None,
        "seconds_last_run": round(seconds, 2),
    }
