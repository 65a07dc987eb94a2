"""Build versioned TFRecord shards from a CREMA-D folder: parallel, resumable, never silent.

Layout read: `DATA/VideoFlash/<clip>.flv` and `DATA/AudioWAV/<clip>.wav`. Layout written::

    OUT/fold-K-of-10-SSSSS.tfrecord   one Example per clip (emotf.records.example), clips of fold K only
    OUT/fold-K-of-10-SSSSS.json       sidecar: the shard's planned clips, clips written,
                                      skipped clips with reasons, notes, detector statistics
    OUT/manifest.json                 written last: everything aggregated, the settings
                                      fingerprint, every shard's clips/bytes/SHA-256, media checks
    OUT/build.lock                    while a build runs: its pid (one build per folder;
                                      local folders only: object stores have no lock)

The plan (clips sorted by fold then name, cut into shards of `clips_per_shard`) is a pure
function of the clip names, the fold seed and the shard size. A shard is written to a temporary
name and renamed into place; its sidecar is written (also atomically) after that, so a shard is
complete iff its sidecar exists and the file still has the size and SHA-256 the sidecar
recorded. A rerun skips complete shards and rebuilds the others (missing, truncated, corrupted):
no clip is lost or written twice. A rerun with settings that change record content is refused,
naming each change (`--overwrite` starts the folder afresh). The bad-input policy is documented in docs/build_records.md.
The per-clip work (decode, track faces, encode one Example) and the worker pool that runs it
live in `emotf.records.clip_worker`, the shard writer in `emotf.records.shards`; this module
plans, runs the clips (the local worker pool, or an Apache Beam pipeline with `runner="beam"`:
`emotf.records.beam_build`, the same per-clip function and shard writer) and writes the
manifest (the sidecars aggregated by `emotf.records.summary`). DATA and OUT may be local folders or URLs (`gs://...`, `emotf.storage`).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from emotf import keys
from emotf.bounds import bounded, check_bounds
from emotf.configs import (
    MAX_SAMPLE_RATE,
    MAX_SEED,
    MAX_TIMEOUT_SECONDS,
    MIN_SAMPLE_RATE,
    Config,
)
from emotf.corpora.cremad import NUM_FOLDS, ClipNameError, canonical_folds, parse_clip_name
from emotf.records import manifest as records_manifest
from emotf.records.clip_worker import ClipResult, ClipRunner, ClipTask
from emotf.records.faces import FaceTrackerConfig
from emotf.records.lock import hold as hold_lock
from emotf.records.preprocess import MAX_CLIP_SECONDS, ClipSettings
from emotf.records.resume import check_out_dir, clear_outputs, clear_temporary, shard_state
from emotf.records.shards import sidecar_path, sidecar_warnings, write_shard
from emotf.records.summary import make_manifest
from emotf.storage import StoragePath, as_path, read_json, write_json
from emotf.system import available_cpus

VIDEO_DIR, AUDIO_DIR = "VideoFlash", "AudioWAV"
VIDEO_EXT, AUDIO_EXT = ".flv", ".wav"
MANIFEST = records_manifest.MANIFEST
RUNNERS = ("local", "beam")
MAX_WORKERS = 1024
BEAM_MISSING = '--runner beam needs Apache Beam: pip install "emotf[beam]"'
PROG = "emotf-build-records"  # the console script: the start of every line printed to stderr


@dataclass(frozen=True)
class BuildConfig(Config):
    """Arguments of one build (flags of `emotf-build-records` map onto these fields; each
    field's description is its `help`).

    `workers` defaults to the CPUs this process may run on (`os.sched_getaffinity`, else
    `os.cpu_count()`); 1 runs the clips in this process; with `runner="beam"` it is the
    DirectRunner's worker processes. `max_duration_s` skips e.g. 1064_IEO_DIS_MD, one minute of
    every emotion under one label. `verify_media` costs ~0.1 % of build time
    (docs/build_records.md). Either runner finishes the other's folder: `runner` is not a
    record setting. `beam_options` are shell words (e.g. "--runner=DataflowRunner --project=P
    --region=R --temp_location=gs://B/tmp") that override the local default (DirectRunner,
    multi_processing, `workers` processes).
    """

    data_dir: str = bounded(
        nonempty=True,
        help="folder with `VideoFlash/` and `AudioWAV/` (local, or a URL such as gs://...)",
    )
    out_dir: str = bounded(
        nonempty=True,
        help="output folder (created; reruns resume in it; local, or a URL such as gs://...)",
    )
    workers: int = bounded(
        default_factory=available_cpus,
        ge=1,
        le=MAX_WORKERS,
        help="clip-processing processes (default: the CPUs this process may use; 1 = in this "
        "process)",
    )
    clips_per_shard: int = bounded(
        64, ge=1, le=100_000, help="clips per shard (each shard holds one fold)"
    )
    strict: bool = bounded(False, help="exit non-zero when anything was skipped")
    fold_seed: int = bounded(
        0,
        ge=0,
        le=MAX_SEED,
        help="seed of the actors' fold assignment (emotf.corpora.cremad.canonical_folds)",
    )
    stratify_by_sex: bool = bounded(
        False,
        help="balance the actors' sexes over the folds (emotf.corpora.cremad.canonical_folds)",
    )
    limit: int | None = bounded(
        None, ge=1, le=10_000_000, help="only the first `limit` clips by name (smoke runs)"
    )
    tracker: FaceTrackerConfig = bounded(
        FaceTrackerConfig(), help="face detection, tracking and crop settings"
    )
    min_duration_s: float = bounded(
        0.5,
        ge=0.0,
        le=MAX_CLIP_SECONDS,
        help="clips shorter than this (audio or video, seconds) are skipped",
    )
    max_duration_s: float = bounded(
        10.0,
        gt=0.0,
        le=MAX_CLIP_SECONDS,
        help="clips longer than this (audio or video, seconds) are skipped",
    )
    sample_rate: int = bounded(
        keys.AUDIO_SAMPLE_RATE_HZ,
        ge=MIN_SAMPLE_RATE,
        le=MAX_SAMPLE_RATE,
        help="audio rate stored (Hz)",
    )
    progress: bool = bounded(True, help="show a tqdm progress bar")
    overwrite: bool = bounded(
        False,
        help="delete the folder's shards, sidecars and manifest first (a rebuild with "
        "other settings); otherwise such a rerun is refused",
    )
    verify_media: bool = bounded(
        True, help="check each clip's FLV and WAV against the official CREMA-D checksums"
    )
    runner: str = bounded(
        "local",
        choices=RUNNERS,
        help="local (a pool of worker processes) or beam (an Apache Beam pipeline, one element "
        'per shard; needs pip install "emotf[beam]")',
    )
    beam_options: str = bounded(
        "", help='Beam pipeline options for runner beam, as shell words ("--runner=... ...")'
    )
    worker_timeout_seconds: float = bounded(
        1800.0,
        gt=0.0,
        le=MAX_TIMEOUT_SECONDS,
        help="deadline for one clip (local workers) or one shard bundle (Beam) before it is "
        "reported and skipped/failed",
    )

    def __post_init__(self):
        check_bounds(self)
        if isinstance(self.tracker, Mapping):
            object.__setattr__(self, "tracker", FaceTrackerConfig.from_dict(self.tracker))
        if not isinstance(self.tracker, FaceTrackerConfig):
            raise ValueError(
                "BuildConfig.tracker must be a FaceTrackerConfig or a JSON object of "
                f"its fields. Received: tracker={self.tracker!r}"
            )
        if not self.min_duration_s <= self.max_duration_s:
            raise ValueError(
                "BuildConfig.min_duration_s must be at most max_duration_s. Received: "
                f"min_duration_s={self.min_duration_s}, "
                f"max_duration_s={self.max_duration_s}"
            )


def clip_settings(config: BuildConfig) -> ClipSettings:
    """The clip-preprocessing settings of a build (`emotf.records.preprocess`, shared with
    emotf-predict): written into the manifest as `clip_settings` and copied into the model."""
    return ClipSettings(
        tracker=config.tracker,
        sample_rate=config.sample_rate,
        min_duration_s=config.min_duration_s,
        max_duration_s=config.max_duration_s,
    )


def record_settings(config: BuildConfig) -> dict:
    """The settings that change what a record holds (its bytes, its fold, which clips pass):
    recorded with their hash in every sidecar and the manifest; a rerun must match them.
    The preprocessing part is exactly `clip_settings(config).to_dict()`."""
    return {
        "schema_version": keys.SCHEMA_VERSION,
        **clip_settings(config).to_dict(),
        "fold_seed": config.fold_seed,
        "stratify_by_sex": config.stratify_by_sex,
    }


# --------------------------------------------------------------------------------------------
# The plan


def shard_name(fold: int, index: int) -> str:
    return f"fold-{fold}-of-{NUM_FOLDS}-{index:05d}"


def _clip_files(folder: StoragePath, ext: str, skipped: list[dict]) -> dict[str, StoragePath]:
    """{clip id: path} of the files named exactly `<CREMA-D clip id><ext>`; everything else in
    the folder (backups, `name (1).flv`, other extensions) goes to `skipped` with the reason.
    (In a URL folder, entries are not asked whether they are files: one request each.)"""
    found: dict[str, StoragePath] = {}
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        name = path.name
        if path.is_local and not path.local_path().is_file():
            reason = "not a regular file"
        elif not name.endswith(ext):
            suffixes = "".join(PurePosixPath(name).suffixes)
            reason = f"not a {ext} file (extension {suffixes or 'none'!s})"
        else:
            stem = name[: -len(ext)]
            try:
                clip_id = parse_clip_name(stem).clip_id
            except ClipNameError as error:
                reason = str(error)
            else:
                if clip_id == stem and clip_id not in found:
                    found[clip_id] = path
                    continue
                reason = (
                    f"file name is not exactly {clip_id}{ext} (a copy or backup?); only "
                    f"{folder / (clip_id + ext)} is read for clip {clip_id}"
                )
        skipped.append({"path": str(path), "reason": reason})
    return found


def plan_build(config: BuildConfig) -> tuple[list[dict], list[dict]]:
    """(shards, skipped): shards in write order, each {name, fold, clips: [ClipTask...]}; skipped
    holds files that are not `<clip id>.flv` / `<clip id>.wav` exactly, and WAVs without video.
    One task per clip id, whatever else lies in the folders. Deterministic for a given folder
    and config."""
    data = as_path(config.data_dir)
    skipped: list[dict] = []
    videos = _clip_files(data / VIDEO_DIR, VIDEO_EXT, skipped)
    audios = _clip_files(data / AUDIO_DIR, AUDIO_EXT, skipped)
    folds = canonical_folds(config.fold_seed, config.stratify_by_sex)
    clips = []
    for clip_id in sorted(set(videos) | set(audios)):
        if clip_id not in videos:
            skipped.append(
                {
                    "path": str(data / VIDEO_DIR / f"{clip_id}{VIDEO_EXT}"),
                    "reason": "video file missing (audio only)",
                }
            )
            continue
        paths = {"video": videos[clip_id]}
        if clip_id in audios:
            paths["audio"] = audios[clip_id]
        clips.append((folds[parse_clip_name(clip_id).actor_id], clip_id, paths))
    if config.limit is not None:
        clips = sorted(clips, key=lambda c: c[1])[: config.limit]
    clips.sort(key=lambda c: (c[0], c[1]))
    shards: list[dict] = []
    for fold in range(NUM_FOLDS):
        in_fold = [c for c in clips if c[0] == fold]
        for index, start in enumerate(range(0, len(in_fold), config.clips_per_shard)):
            tasks = [
                ClipTask(
                    clip_id=clip_id,
                    fold=fold,
                    video=str(paths["video"]),
                    audio=str(paths.get("audio", data / AUDIO_DIR / f"{clip_id}{AUDIO_EXT}")),
                    sample_rate=config.sample_rate,
                    min_duration_s=config.min_duration_s,
                    max_duration_s=config.max_duration_s,
                    tracker=config.tracker,
                    verify_media=config.verify_media,
                )
                for _, clip_id, paths in in_fold[start : start + config.clips_per_shard]
            ]
            shards.append({"name": shard_name(fold, index), "fold": fold, "clips": tasks})
    return shards, skipped


# --------------------------------------------------------------------------------------------
# Writing


def build_records(
    config: BuildConfig, stop_after_shards: int | None = None, prog: str = PROG
) -> dict:
    """Build (or finish) the shards and write `manifest.json`; return the manifest.

    Holds `OUT/build.lock` throughout when OUT is local (a second build into the same folder is
    refused; object stores have no lock: one build per folder is the user's job). The old
    manifest is removed before anything is written and the new one is written last, so a
    folder with a manifest is always complete. `config.runner` picks who runs the clips: the
    local worker pool or Apache Beam (`emotf.records.beam_build`); the plan, the checks, the
    shards and the manifest are the same.

    Args:
        config: `BuildConfig`.
        stop_after_shards: testing hook (local runner): raise `KeyboardInterrupt` before the
            last clip of the next shard once this many shards were completed in this run
            (simulates a kill).
        prog: the console script whose name starts every line printed to stderr
            (`PROG: warning: ...`, `PROG: note: ...`).

    Returns:
        the manifest dict (see docs/build_records.md), also written to OUT/manifest.json.

    Raises:
        FileExistsError: OUT holds another plan's shards, shards of other settings or record
            schema (without `overwrite`), or another live build holds its lock.
        RuntimeError: `runner="beam"` without Apache Beam installed (one line: what to
            install), or a shard's sidecar missing after the Beam pipeline finished.
        ValueError: `beam_options` unknown to Beam, or naming a remote runner while DATA or
            OUT is local (`emotf.records.beam_build.check_options`).
        emotf.records.staging.StagingError: a storage error (not a missing file) while
            copying a URL clip: the shard is not written, a rerun resumes.
    """
    beam = beam_builder() if config.runner == "beam" else None
    if beam is not None:
        beam.check_options(config)  # typos, local folders for remote workers: before anything
    out = as_path(config.out_dir).resolve()
    out.mkdir()
    if not out.is_local:
        return _build_locked(config, out, stop_after_shards, beam, prog)
    with hold_lock(out.local_path()):
        return _build_locked(config, out, stop_after_shards, beam, prog)


def beam_builder():
    """`emotf.records.beam_build` (imports Apache Beam).

    Raises:
        RuntimeError: Apache Beam is not installed (one line: `pip install "emotf[beam]"`).
    """
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        raise RuntimeError(BEAM_MISSING) from None
    from emotf.records import beam_build

    return beam_build


def console_line(line: str, prog: str = PROG) -> str:
    """`line` ("WARNING X", "NOTE X", as the shard writers word them) as a console line of
    `prog`: "PROG: warning: X", "PROG: note: X" (every line a console script prints to stderr
    starts with its name)."""
    for tag, word in (("WARNING ", "warning"), ("NOTE ", "note"), ("ERROR ", "error")):
        if line.startswith(tag):
            return f"{prog}: {word}: {line[len(tag) :]}"
    return line if line.startswith(f"{prog}: ") else f"{prog}: {line}"


def _warn(line: str, bar, prog: str = PROG) -> None:
    (bar.write if bar is not None else print)(console_line(line, prog), file=sys.stderr)


def _build_locked(
    config: BuildConfig, out: StoragePath, stop_after_shards: int | None, beam, prog: str = PROG
) -> dict:
    started = time.time()
    shards, plan_skipped = plan_build(config)
    settings = record_settings(config)
    digest = records_manifest.settings_hash(settings)
    if config.overwrite:
        removed = clear_outputs(out)
        if removed:
            _warn(
                f"NOTE --overwrite: removed {removed} shard, sidecar and manifest files from {out}",
                None,
                prog,
            )
    check_out_dir(out, shards, settings)
    for item in plan_skipped:
        _warn(f"WARNING {item['path']}: {item['reason']} -> skipped", None, prog)
    todo = []
    for shard in shards:
        state = shard_state(out, shard, digest)
        if state is None:
            continue
        if state:
            _warn(f"WARNING {out / (shard['name'] + '.tfrecord')}: {state} -> rebuilt", None, prog)
        todo.append(shard)
    (out / MANIFEST).unlink(missing_ok=True)  # written last, once every shard is in place
    clear_temporary(out)  # what an interrupted build left (we hold the folder)
    if beam is not None:
        beam.run_pipeline(config, str(out), todo, settings, digest)
        clear_temporary(out)  # what failed or retried bundles left (their shards are redone)
        for shard in todo:
            path = sidecar_path(out, shard["name"])
            if not path.is_file():
                raise RuntimeError(
                    f"{path}: missing after the Beam pipeline finished: shard {shard['name']} "
                    f"was not written (a worker failed?); rerun the same command to write the "
                    f"missing shards"
                )
            for line in sidecar_warnings(read_json(path)):
                _warn(line, None, prog)
    else:
        _write_local(config, out, todo, settings, digest, stop_after_shards, prog)
    manifest = make_manifest(
        config, shards, plan_skipped, time.time() - started, settings, clip_settings(config)
    )
    write_json(out / MANIFEST, manifest)
    return manifest


def _write_local(
    config: BuildConfig,
    out: StoragePath,
    todo: list[dict],
    settings: dict,
    digest: str,
    stop_after_shards: int | None,
    prog: str = PROG,
) -> None:
    """The local runner: every clip of `todo` through the worker pool, in plan order, into
    `write_shard` shard by shard (while the pool runs ahead on the next clips)."""
    from tqdm.auto import tqdm

    total = sum(len(s["clips"]) for s in todo)
    bar = tqdm(
        total=total,
        desc="emotf-build-records",
        unit="clip",
        disable=not config.progress,
        file=sys.stderr,
    )
    workers = min(config.workers, max(1, total))
    results = ClipRunner(
        config.tracker, workers, deadline_seconds=config.worker_timeout_seconds
    ).run(t for s in todo for t in s["clips"])
    try:
        for done, shard in enumerate(todo):
            stop = stop_after_shards is not None and done >= stop_after_shards
            write_shard(
                out,
                shard,
                _take(results, len(shard["clips"]), stop),
                settings,
                digest,
                verify_media=config.verify_media,
                warn=lambda line: _warn(line, bar, prog),
                progress=lambda: bar.update(1),
            )
    finally:
        bar.close()
        results.close()  # stops the worker pool


def _take(results: Iterator[ClipResult], count: int, stop: bool) -> Iterator[ClipResult]:
    """The next `count` results; with `stop` (the testing hook), a KeyboardInterrupt before the
    last one."""
    for i, result in enumerate(itertools.islice(results, count)):
        if stop and i == count - 1:
            raise KeyboardInterrupt("stop_after_shards (testing hook)")
        yield result
