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
Workers on other machines need DATA and OUT on storage they can all reach (`gs://...`).
This module imports Apache Beam; `emotf.records.build.beam_builder` imports it only when asked.
"""

from __future__ import annotations

import contextlib
import logging
import shlex

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from emotf.records.clip_worker import init_worker, process_clip
from emotf.records.faces import FaceTrackerConfig
from emotf.records.shards import write_shard


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
    defaults = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=ERROR"]
    return PipelineOptions(defaults + user)


class WriteShard(beam.DoFn):
    """Process one shard's clips and write the shard and its sidecar; yields the shard name.

    Args:
        shards: {shard name: plan_build shard} of the shards to write.
        out: the records folder (a path every worker can reach).
        settings, digest: `record_settings` and their hash (into the sidecars).
        tracker: the face tracker settings (one `FaceTracker` per worker process, set up once).
        verify_media: record each clip's media check.
    """

    def __init__(self, shards: dict[str, dict], out: str, settings: dict, digest: str,
                 tracker: FaceTrackerConfig, verify_media: bool):
        self.shards, self.out = shards, out
        self.settings, self.digest = settings, digest
        self.tracker, self.verify_media = tracker, verify_media

    def setup(self):
        init_worker(self.tracker, True)  # as a local pool worker: one TF/OpenCV thread

    def process(self, name: str):
        shard = self.shards[name]
        write_shard(self.out, shard, map(process_clip, shard["clips"]), self.settings,
                    self.digest, verify_media=self.verify_media)
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
    it. `config` is the `BuildConfig` (workers, tracker, verify_media, beam_options)."""
    if not todo:
        return
    options = pipeline_options(min(config.workers, len(todo)), config.beam_options)
    shards = {shard["name"]: shard for shard in todo}
    write = WriteShard(shards, out, settings, digest, config.tracker, config.verify_media)
    with _quiet_direct_runner(options), beam.Pipeline(options=options) as pipeline:
        _ = (pipeline
             | "Shards" >> beam.Create(sorted(shards))
             | "Spread" >> beam.Reshuffle()
             | "WriteShard" >> beam.ParDo(write))
