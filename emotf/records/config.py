"""The arguments of a records build (`BuildConfig`) and the settings they fix.

`clip_settings(config)` is the one `emotf.media.preprocess.ClipSettings` of a build: it goes
with every `emotf.records.clip_worker.ClipTask` to the workers, into the manifest
(`clip_settings`), and from there into the SavedModel metadata (`emotf.serving.metadata`).
`record_settings(config)` are the settings that change what a record holds: fingerprinted in
every sidecar and the manifest (`emotf.records.manifest.settings_hash`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emotf import keys
from emotf.bounds import bounded, check_bounds
from emotf.configs import MAX_SAMPLE_RATE, MAX_SEED, MAX_TIMEOUT_SECONDS, MIN_SAMPLE_RATE, Config
from emotf.corpora import ravdess, table
from emotf.corpora.base import MAX_FOLDS
from emotf.corpora.info import CREMAD_INFO
from emotf.corpora.registry import CORPORA
from emotf.media.faces import FaceTrackerConfig
from emotf.media.preprocess import (
    DEFAULT_MAX_CLIP_SECONDS,
    MAX_CLIP_SECONDS,
    MIN_CLIP_SECONDS,
    ClipSettings,
)
from emotf.system import available_cpus

RUNNERS = ("local", "beam")
MAX_WORKERS = 1024
CREMAD = CREMAD_INFO.name
CREMAD_FOLDS = CREMAD_INFO.num_folds
# Folds when `num_folds` is not given: CREMA-D's canonical 10 (its only choice), RAVDESS's 6
# blocks of 4 actors, a CSV's own `fold` column or else 5 balanced speaker folds.
DEFAULT_FOLDS = {CREMAD: CREMAD_FOLDS, ravdess.NAME: ravdess.DEFAULT_FOLDS, table.NAME: None}


@dataclass(frozen=True)
class BuildConfig(Config):
    """Arguments of one build (flags of `emotf-build-records` map onto these fields; each
    field's description is its `help`).

    `corpus` picks the reader of `data_dir` (`emotf.corpora.registry.open_corpus`, layouts in
    docs/corpora.md): cremad (`VideoFlash/`, `AudioWAV/`), ravdess (`Actor_NN/`), csv (a CSV
    file, or a folder with one sub-folder per class). `num_folds` None is the corpus's default
    (`DEFAULT_FOLDS`); `fold_seed` and `stratify_by_sex` are CREMA-D's, `classes` and
    `speaker_from` the csv corpus's: set for another corpus, the corpus refuses them when the
    build opens it (`corpus_options`: one line, before anything is written).

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
        help="folder with `VideoFlash/` and `AudioWAV/` (cremad), with `Actor_NN/` (ravdess), "
        "or for csv a CSV file or a folder per class (local, or a URL such as gs://...)",
    )
    out_dir: str = bounded(
        nonempty=True,
        help="output folder (created; reruns resume in it; local, or a URL such as gs://...)",
    )
    corpus: str = bounded(
        CREMAD, choices=CORPORA, help="the corpus layout of --data-dir (docs/corpora.md)"
    )
    classes: tuple[str, ...] | None = bounded(
        None,
        nonempty=True,
        help="csv: the class names in label order, comma-separated (default: the labels "
        "found, sorted)",
    )
    num_folds: int | None = bounded(
        None,
        ge=2,
        le=MAX_FOLDS,
        help=f"speaker-independent folds (default: cremad {CREMAD_FOLDS}, its only choice; "
        f"ravdess {ravdess.DEFAULT_FOLDS}; csv its fold column, else {table.DEFAULT_FOLDS})",
    )
    speaker_from: str = bounded(
        "clip",
        choices=table.SPEAKER_FROM,
        help="csv folder form: where the speaker comes from (clip, parent, stem-prefix)",
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
        help="cremad: seed of the actors' fold assignment (emotf.corpora.cremad.canonical_folds)",
    )
    stratify_by_sex: bool = bounded(
        False,
        help="cremad: balance the actors' sexes over the folds "
        "(emotf.corpora.cremad.canonical_folds)",
    )
    limit: int | None = bounded(
        None, ge=1, le=10_000_000, help="only the first `limit` clips by name (smoke runs)"
    )
    tracker: FaceTrackerConfig = bounded(
        FaceTrackerConfig(), help="face detection, tracking and crop settings"
    )
    min_duration_s: float = bounded(
        MIN_CLIP_SECONDS,
        ge=0.0,
        le=MAX_CLIP_SECONDS,
        help="clips shorter than this (audio or video, seconds) are skipped",
    )
    max_duration_s: float = bounded(
        DEFAULT_MAX_CLIP_SECONDS,
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
    worker_max_clips: int = bounded(
        500,
        ge=1,
        le=10_000_000,
        help="clips a local worker process does before a fresh one replaces it (gives back "
        "memory that grows per clip)",
    )

    def __post_init__(self):
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))
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

    @property
    def checks_media(self) -> bool:
        """Check each clip against the official CREMA-D checksums (`verify_media`, CREMA-D
        only: other corpora have no official list here)."""
        return self.verify_media and self.corpus == CREMAD

    def corpus_options(self) -> dict:
        """The options of `open_corpus(self.corpus, self.data_dir, **options)`: each option of
        the chosen corpus, and any other one set to other than its default, so that the corpus
        refuses it in one line (`emotf.corpora.base.build_options`: "ravdess: unknown options
        ['classes'] ...")."""
        options: dict = {} if self.num_folds is None else {"folds": self.num_folds}
        if self.corpus == CREMAD or self.fold_seed or self.stratify_by_sex:
            options.update(fold_seed=self.fold_seed, stratify_by_sex=self.stratify_by_sex)
        if self.corpus == table.NAME or self.classes is not None:
            options["classes"] = self.classes
        if self.corpus == table.NAME or self.speaker_from != "clip":
            options["speaker_from"] = self.speaker_from
        return options


def clip_settings(config: BuildConfig) -> ClipSettings:
    """The clip-preprocessing settings of a build (`emotf.media.preprocess`, shared with
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
    The preprocessing part is exactly `clip_settings(config).to_dict()`. Another corpus than
    CREMA-D adds its name and options (CREMA-D's settings, and so their hash, are those of
    builds before corpora existed)."""
    settings = {
        "schema_version": keys.SCHEMA_VERSION,
        **clip_settings(config).to_dict(),
        "fold_seed": config.fold_seed,
        "stratify_by_sex": config.stratify_by_sex,
    }
    if config.corpus != CREMAD:
        settings["corpus"] = config.corpus
        settings["corpus_options"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in config.corpus_options().items()
        }
    return settings
