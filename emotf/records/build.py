"""Build versioned TFRecord shards from a corpus: parallel, resumable, never silent.

Layout read: the corpus's (`BuildConfig.corpus`, docs/corpora.md): CREMA-D's
`DATA/VideoFlash/<clip>.flv` and `DATA/AudioWAV/<clip>.wav`, RAVDESS's `DATA/Actor_NN/*.mp4`, or
a CSV corpus. Layout written (N: the corpus's folds, CREMA-D 10)::

    OUT/fold-K-of-N-SSSSS.tfrecord    one Example per clip (emotf.records.example), fold K only
    OUT/fold-K-of-N-SSSSS.json        sidecar: the shard's planned clips, clips written,
                                      skipped clips with reasons, notes, detector statistics
    OUT/manifest.json                 written last: everything aggregated, the settings
                                      fingerprint, every shard's clips/bytes/SHA-256, media checks
    OUT/build.lock                    while a build runs: its pid (one build per folder;
                                      local folders only: object stores have no lock)

The plan (`emotf.records.plan`: clips sorted by fold then name, cut into shards of
`clips_per_shard`) is a pure function of the corpus's clips, its options and the shard size. A
shard is written to a temporary name and renamed into place; its sidecar is written (also
atomically) after that, so a shard is complete iff its sidecar exists and the file still has the
size and SHA-256 the sidecar recorded. A rerun skips complete shards and rebuilds the others
(missing, truncated, corrupted): no clip is lost or written twice. A rerun with settings that
change record content is refused, naming each change (`--overwrite` starts the folder afresh).
The bad-input policy is documented in docs/build_records.md; the file names live in
`emotf.records.folder`, the arguments (`BuildConfig`) in `emotf.records.config`. The per-clip
work (decode, track faces, encode one Example) and the worker pool that runs it live in
`emotf.records.clip_worker`, the shard writer in `emotf.records.shards`; this module plans, runs
the clips (the local worker pool, or an Apache Beam pipeline with `runner="beam"`:
`emotf.records.beam_build`, the same per-clip function and shard writer) and has the manifest
written (the sidecars aggregated by `emotf.records.manifest_writer`). DATA and OUT may be local
folders or URLs (`gs://...`, `emotf.storage`).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator

from tqdm.auto import tqdm

from emotf.records import manifest as records_manifest
from emotf.records.clip_worker import ClipResult, ClipRunner
from emotf.records.config import BuildConfig, record_settings
from emotf.records.folder import RecordsFolder
from emotf.records.lock import hold as hold_lock
from emotf.records.manifest_writer import write_manifest
from emotf.records.plan import BuildPlan, make_plan
from emotf.records.resume import check_out_dir, clear_outputs, clear_temporary, shard_state
from emotf.records.shards import sidecar_warnings, write_shard
from emotf.storage import StoragePath, as_path, read_json

BEAM_MISSING = '--runner beam needs Apache Beam: pip install "emotf[beam]"'
PROG = "emotf-build-records"  # the console script: the start of every line printed to stderr


# --------------------------------------------------------------------------------------------
# The plan


def plan_build(config: BuildConfig) -> tuple[list[dict], list[dict]]:
    """(shards, skipped) of `emotf.records.plan.make_plan`: shards in write order, each
    {name, fold, clips: [ClipTask...]}; skipped the files the corpus passed over, with the
    reason (for CREMA-D: files not named `<clip id>.flv` / `<clip id>.wav` exactly, and WAVs
    without video). One task per clip id. Deterministic for a given folder and config.

    Raises:
        emotf.corpora.base.CorpusError: `config.data_dir` does not match the corpus's layout.
    """
    plan = make_plan(config)
    return plan.shards, plan.skipped


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
        emotf.corpora.base.CorpusError: DATA does not match the corpus's layout, or holds no
            usable clip (one line naming what was expected); nothing is written.
        FileExistsError: OUT holds another plan's shards, shards of other settings or record
            schema (without `overwrite`), or another live build holds its lock.
        RuntimeError: `runner="beam"` without Apache Beam installed (one line: what to
            install), or a shard's sidecar missing after the Beam pipeline finished.
        ValueError: `beam_options` unknown to Beam, or naming a remote runner while DATA or
            OUT is local (`emotf.records.beam_build.check_options`).
        emotf.media.staging.StagingError: a storage error (not a missing file) while
            copying a URL clip: the shard is not written, a rerun resumes.
    """
    beam = beam_builder() if config.runner == "beam" else None
    if beam is not None:
        beam.check_options(config)  # typos, local folders for remote workers: before anything
    plan = make_plan(config)  # a DATA of another layout is refused before OUT is made
    out = as_path(config.out_dir).resolve()
    out.mkdir()
    if not out.is_local:
        return _build_locked(config, plan, out, stop_after_shards, beam, prog)
    with hold_lock(out.local_path()):
        return _build_locked(config, plan, out, stop_after_shards, beam, prog)


def beam_builder():
    """`emotf.records.beam_build` (imports Apache Beam).

    Raises:
        RuntimeError: Apache Beam is not installed (one line: `pip install "emotf[beam]"`).
    """
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        raise RuntimeError(BEAM_MISSING) from None
    from emotf.records import beam_build  # imports Apache Beam, an optional extra

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
    config: BuildConfig,
    plan: BuildPlan,
    out: StoragePath,
    stop_after_shards: int | None,
    beam,
    prog: str = PROG,
) -> dict:
    started = time.time()
    folder = RecordsFolder(out)
    shards, plan_skipped = plan.shards, plan.skipped
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
        row = f" row {item['row']}" if "row" in item else ""
        _warn(f"WARNING {item['path']}{row}: {item['reason']} -> skipped", None, prog)
    todo = []
    for shard in shards:
        state = shard_state(out, shard, digest)
        if state is None:
            continue
        if state:
            path = folder.shard_path(shard["name"])
            _warn(f"WARNING {path}: {state} -> rebuilt", None, prog)
        todo.append(shard)
    folder.manifest_path.unlink(missing_ok=True)  # written last, once every shard is in place
    clear_temporary(out)  # what an interrupted build left (we hold the folder)
    if beam is not None:
        beam.run_pipeline(config, str(out), todo, settings, digest)
        clear_temporary(out)  # what failed or retried bundles left (their shards are redone)
        for shard in todo:
            path = folder.sidecar_path(shard["name"])
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
    return write_manifest(config, plan, time.time() - started)


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
        config.tracker,
        workers,
        deadline_seconds=config.worker_timeout_seconds,
        max_clips_per_worker=config.worker_max_clips,
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
                verify_media=config.checks_media,
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
