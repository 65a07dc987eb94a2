"""The records build as an Apache Beam pipeline (`emotf-build-records --runner beam`).

    Create(shard names to write) -> Reshuffle -> ParDo(WriteShard)

One element per shard left to write (`emotf.records.build` plans, checks the folder and picks
them, exactly as for the local runner, and writes the manifest after the pipeline). `WriteShard`
runs `emotf.records.clip_worker.process_clip` (the per-clip function of the local builder: a
clip's failure is a skip with its reason, never a failed bundle) over the shard's clips in plan
order and hands the results to `emotf.records.shards.write_shard`, the local builder's own shard
writer, so the shards, sidecars and skip reasons are the same, byte for byte. The unit of
parallelism is the shard (`--clips-per-shard`); Reshuffle spreads them over the workers.

Locally the pipeline runs on the DirectRunner in multi_processing mode with `workers` processes;
`BuildConfig.beam_options` (shell words, e.g. "--runner=DataflowRunner --project=P
--region=R --temp_location=gs://B/tmp --setup_file=./setup.py") override that (docs/scaling.md).
Workers on other machines need DATA and OUT on storage they can all reach (`gs://...`):
`check_options` refuses a local DATA or OUT with any runner but the DirectRunner or
PrismRunner, and unknown (mistyped) Beam options, before anything is planned or written.
Each bundle (one shard) must be written within `BuildConfig.worker_timeout_seconds`
(`--worker_timeout_seconds`, default 1800 s): past it the bundle fails with one line naming the
shard and the deadline (the runner retries it or fails the job; rerun to resume).
This module imports Apache Beam; `emotf.records.build.beam_builder` imports it only when asked.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shlex
import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from emotf.media.faces import FaceTrackerConfig
from emotf.records.clip_worker import init_worker, process_clip
from emotf.records.shards import write_shard
from emotf.storage import as_path

# `BuildConfig.worker_timeout_seconds`'s default: the most one bundle (one shard) may take.
DEFAULT_BUNDLE_DEADLINE_S = 1800.0
# Runners whose workers run on this machine (and so read its folders): Beam's short names,
# lower case, less "Runner".
LOCAL_RUNNERS = frozenset({"direct", "bundlebaseddirect", "switchingdirect", "prism"})


def pipeline_options(workers: int, beam_options: str = "") -> PipelineOptions:
    """The pipeline options: the local default (DirectRunner, multi_processing, `workers`
    processes, worker logs from ERROR up), then `beam_options` (shell words; later flags win).

    Raises:
        ValueError: `beam_options` is not valid shell syntax (unbalanced quotes).
    """
    try:
        user = shlex.split(beam_options or "")
    except ValueError as error:
        raise ValueError(f"--beam-options: {error}. Received: {beam_options!r}") from None
    defaults = [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={workers}",
        "--default_sdk_harness_log_level=ERROR",
    ]
    return PipelineOptions(defaults + user)


def unknown_options(options: PipelineOptions) -> list[str]:
    """The options among `options`' words that no Beam options class knows ("--runer"), sorted.

    Raises:
        ValueError: an option's value is not of its type (`--direct_num_workers=abc`): one
            line naming the option (Beam's argparse would print its 140-line usage and exit).
    """
    logger = logging.getLogger("apache_beam")
    level = logger.level
    logger.setLevel(logging.ERROR)  # Beam logs "Discarding unparseable args": said below
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            known = options.get_all_options()
            every = options.get_all_options(retain_unknown_options=True)
    except SystemExit:  # argparse's error(): the usage, then "PROG: error: MESSAGE"
        lines = usage.getvalue().strip().splitlines() or ["an option Beam cannot parse"]
        raise ValueError(lines[-1].partition("error: ")[2] or lines[-1]) from None
    finally:
        logger.setLevel(level)
    return sorted(f"--{name}" for name in set(every) - set(known))


def runner_name(options: PipelineOptions) -> str:
    """The runner the options name ("DataflowRunner"; a dotted class path: its last part)."""
    return (options.view_as(StandardOptions).runner or "DirectRunner").rsplit(".", 1)[-1]


def check_options(config) -> PipelineOptions:
    """The pipeline options of `config` (a `BuildConfig`), checked before anything is planned.

    Raises:
        ValueError (one line): `config.beam_options` is not valid shell syntax, names an
            option Beam does not know (a typo), or names a runner whose workers run elsewhere
            (not the DirectRunner or PrismRunner) while DATA or OUT is a local folder, or
            gives an option a value of the wrong type (`--direct_num_workers=abc`).
    """
    options = pipeline_options(config.workers, config.beam_options)
    try:
        unknown = unknown_options(options)
    except ValueError as error:
        raise ValueError(f"--beam-options: {error}. Received: {config.beam_options!r}") from None
    if unknown:
        raise ValueError(
            f"--beam-options: unknown Beam option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (a typo?). Received: {config.beam_options!r}"
        )
    runner = runner_name(options)
    if runner.lower().removesuffix("runner") not in LOCAL_RUNNERS:
        for flag, folder in (("--data-dir", config.data_dir), ("--out", config.out_dir)):
            if as_path(folder).is_local:
                raise ValueError(
                    f"{flag} {folder}: workers of {runner} (--beam-options) cannot "
                    f"read the local folder {folder}: put it on gs:// (storage "
                    f"every worker reaches)"
                )
    return options


class WriteShard(beam.DoFn):
    """Process one shard's clips and write the shard and its sidecar; yields the shard name.

    Args:
        shards: {shard name: plan_build shard} of the shards to write.
        out: the records folder (a path every worker can reach).
        settings, digest: `record_settings` and their hash (into the sidecars).
        tracker: the face tracker settings (one `FaceTracker` per worker process, set up once).
        verify_media: record each clip's media check.
        deadline_seconds: the most one shard may take (`BuildConfig.worker_timeout_seconds`).
    """

    def __init__(
        self,
        shards: dict[str, dict],
        out: str,
        settings: dict,
        digest: str,
        tracker: FaceTrackerConfig,
        verify_media: bool,
        deadline_seconds: float = DEFAULT_BUNDLE_DEADLINE_S,
    ):
        self.shards, self.out = shards, out
        self.settings, self.digest = settings, digest
        self.tracker, self.verify_media = tracker, verify_media
        self.deadline = deadline_seconds

    def setup(self):
        init_worker(self.tracker, True)  # as a local pool worker: one TF/OpenCV thread

    def process(self, name: str):
        shard = self.shards[name]
        failed: list[BaseException] = []

        def write():
            try:
                write_shard(
                    self.out,
                    shard,
                    map(process_clip, shard["clips"]),
                    self.settings,
                    self.digest,
                    verify_media=self.verify_media,
                )
            except BaseException as error:  # noqa: BLE001 (re-raised in the bundle's thread)
                failed.append(error)

        # In a thread, so that a clip stuck in its decoder cannot hold the bundle past its
        # deadline (the thread is left behind; the worker process ends with the pipeline).
        writer = threading.Thread(target=write, daemon=True, name=f"emotf-shard-{name}")
        writer.start()
        writer.join(self.deadline)
        if writer.is_alive():
            raise TimeoutError(
                f"shard {name}: its {len(shard['clips'])} clips were not written "
                f"within {self.deadline:g} s (--worker_timeout_seconds)"
            )
        if failed:
            raise failed[0]
        yield name


@contextlib.contextmanager
def _quiet_direct_runner(options: PipelineOptions):
    """On the DirectRunner, Beam's own log lines (forwarded worker warnings about unparsed
    options and the like) below ERROR are left off the console; other runners keep theirs."""
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    logger = logging.getLogger("apache_beam")
    level = logger.level
    if runner in ("DirectRunner", "direct"):
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_pipeline(config, out: str, todo: list[dict], settings: dict, digest: str) -> None:
    """Write the shards `todo` (plan_build shards) into `out` with a Beam pipeline and wait for
    it. `config` is the `BuildConfig` (workers, tracker, checks_media, beam_options)."""
    if not todo:
        return
    options = pipeline_options(min(config.workers, len(todo)), config.beam_options)
    shards = {shard["name"]: shard for shard in todo}
    write = WriteShard(
        shards,
        out,
        settings,
        digest,
        config.tracker,
        config.checks_media,
        getattr(config, "worker_timeout_seconds", DEFAULT_BUNDLE_DEADLINE_S),
    )
    with _quiet_direct_runner(options), beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | "Shards" >> beam.Create(sorted(shards))
            | "Spread" >> beam.Reshuffle()
            | "WriteShard" >> beam.ParDo(write)
        )
