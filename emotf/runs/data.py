"""The data side of a training run: the dataset factory seam, the run's split, sizes for Keras.

Every dataset comes from a `DatasetFactory`, called with one fixed signature:
`dataset_fn(part, training, config, epoch)` (`part` an `emotf.corpora.splits.Selection`: its
folds, and for a clip-level split the clip names to serve). `records_dataset` is the default,
over the record shards of `config.records`. `emotf.training.train` and `emotf.tuning.search`
build their datasets through `fit_datasets`; `emotf.evaluation.evaluate` calls its factories
the same way.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol

import numpy as np
import tensorflow as tf

from emotf import keys, pipeline
from emotf.corpora.labels import relabel
from emotf.corpora.splits import RunSplit, Selection, run_split
from emotf.pipeline import shard_by_data
from emotf.records import manifest as records_manifest
from emotf.records.folder import RecordsFolder
from emotf.records.manifest import RecordsError
from emotf.storage import as_path

if TYPE_CHECKING:
    from emotf.configs import TrainConfig


class DatasetFactory(Protocol):
    """Where a run's data comes from.

    Args:
        part: the clips to serve: `part.folds` (fold indices), and `part.clips` (a frozenset of
            clip names) for a clip-level split, None for whole folds. A factory must serve only
            these clips.
        training: training order and random sampling (True), or the deterministic evaluation
            sampling (False).
        config: the run's `TrainConfig` (`batch_size`, `sampling`, `seed`, `labels`, ...).
        epoch: the first epoch the dataset serves (> 0 after a resume, so that a resumed run
            does not replay epoch 0's draws); 0 for evaluation data.

    Returns:
        A `tf.data.Dataset` of (inputs dict, labels int32 [B]) batches; evaluation factories
        add a third item, {"clip_id": string [B]} (`emotf.evaluation.metrics.predict_clips`).
    """

    def __call__(
        self, part: Selection, training: bool, config: TrainConfig, epoch: int
    ) -> tf.data.Dataset: ...


def as_selection(part) -> Selection:
    """A `Selection` as is; a fold or an iterable of folds as the selection of those folds."""
    if isinstance(part, Selection):
        return part
    if isinstance(part, (int, np.integer)):
        return Selection((int(part),))
    return Selection(tuple(int(k) for k in part))


def is_records_folder(records) -> bool:
    """Is `records` a folder of record shards (local or a `tf.io.gfile` URL)? False for ''
    (a run whose datasets come from a custom factory)."""
    return bool(records) and as_path(records).is_dir()


def _stamp(file: str) -> tuple[str, int]:
    """(file, modification time in ns): a cache key that changes when the shard is rewritten."""
    return file, int(tf.io.gfile.stat(file).mtime_nsec)


def config_split(config: TrainConfig) -> RunSplit:
    """The training, validation and test selections of a run's config."""
    return run_split(
        config.split, config.fold, config.validation_folds, config.validation_fraction, config.seed
    )


def records_dataset(
    part: Selection,
    training: bool,
    config: TrainConfig,
    epoch: int,
    *,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """The default `DatasetFactory`: `emotf.pipeline.make_dataset` on the shards of `part`'s
    folds in `config.records` (only the clips of `part.clips`, when given).

    `epoch` is the first epoch the dataset serves (non-zero when a run resumes), so a resumed
    run draws fresh samples instead of replaying epoch 0's.
    With `config.labels` = "perceived" the labels are the raters' majority (`emotf.corpora.labels`).
    `shard` (num_shards, index): only that share of the shard files (`make_dataset`).
    """
    labels = config.labels
    dataset = pipeline.make_dataset(  # (tests patch emotf.pipeline.make_dataset)
        config.records,
        list(part.folds),
        training=training,
        config=config.sampling,
        batch_size=config.batch_size,
        seed=config.seed,
        epoch=epoch,
        cache=config.cache_records,
        clip_ids=part.clips,
        with_metadata=labels != "intended",
        shard=shard,
    )
    if labels == "intended":
        return dataset
    return relabel(dataset, labels).map(lambda inputs, label, meta: (inputs, label))


def check_records_folder(records) -> None:
    """Refuse, in one line naming the path, a `--records` that cannot be a records folder:
    unset, missing, a file, or a folder with neither a manifest.json nor a record shard.

    Called before anything is written to the run folder, so that a corrected rerun into the
    same `--out` starts afresh (nothing of the failed start is there to conflict with).

    Raises:
        ValueError: naming `records` and the problem.
    """
    if not records:
        raise ValueError(
            "no records folder given: pass --records, the folder emotf-build-records wrote"
        )
    path = as_path(records)
    if not path.exists():
        raise ValueError(
            f"{path}: no such records folder (--records names the folder emotf-build-records wrote)"
        )
    if not path.is_dir():
        raise ValueError(
            f"{path}: a file, not a records folder (--records names the folder "
            f"emotf-build-records wrote)"
        )
    folder = RecordsFolder(path)
    if not folder.manifest_path.exists() and not folder.shards():
        raise ValueError(
            f"{path}: neither a {folder.MANIFEST} nor a record shard ({folder.SHARD_FORM}): "
            f"not a records folder written by emotf-build-records"
        )


def check_records_settings(config: TrainConfig, records=None) -> None:
    """Refuse, in one line naming the records' value, a config the records cannot feed: an
    audio rate (`sampling.sample_rate`) or a face crop side (`model.frame_size`, when the model
    uses video) other than the one the records were built with (their manifest's settings;
    nothing is resampled or resized on the way). `records`: the folder (default
    `config.records`). A folder without a readable manifest is left to
    `emotf.records.manifest.check_records`.

    Raises:
        ValueError: naming the field, the records' value and the config's.
    """

    records = records or config.records
    if not is_records_folder(records) or not RecordsFolder(records).manifest_path.exists():
        return
    try:
        settings = records_manifest.read_manifest(records).get("settings") or {}
    except (RecordsError, OSError, ValueError):
        return  # named by check_records
    if not isinstance(settings, dict):
        return
    rate = settings.get("sample_rate")
    if isinstance(rate, int) and rate != config.sampling.sample_rate:
        raise ValueError(
            f"{records}: records built at sample_rate={rate} Hz; the config asks for "
            f"sampling.sample_rate={config.sampling.sample_rate}: pass --sampling.sample_rate "
            f"{rate}, or rebuild the records with --sample_rate {config.sampling.sample_rate}"
        )
    tracker = settings.get("tracker")
    crop = tracker.get("crop_size") if isinstance(tracker, dict) else None
    if isinstance(crop, int) and config.model.uses_video and crop != config.model.frame_size:
        raise ValueError(
            f"{records}: records hold {crop}x{crop} face crops; the config asks for "
            f"model.frame_size={config.model.frame_size}: pass --model.frame_size {crop}, or "
            f"rebuild the records with --tracker.crop_size {config.model.frame_size}"
        )


def check_run_records(config: TrainConfig, split: RunSplit, dataset_fn=None) -> dict:
    """Before the first epoch: check every shard the run will read (training, validation and
    test folds) against the records' manifest (`emotf.records.manifest.check_records`).

    With `dataset_fn` the default factory (`records_dataset`), `config.records` must be a
    records folder (`check_records_folder`); else (a custom factory, or None: not known) only
    a folder is checked.

    Returns the entries for metrics.json ({} when `config.records` is not a folder, i.e. a
    custom dataset factory). Raises `emotf.records.manifest.RecordsError` naming every problem
    unless `config.allow_incomplete`.
    """
    if dataset_fn is records_dataset:
        check_records_folder(config.records)
    if not is_records_folder(config.records):
        return {}
    check_records_settings(config)

    folds = sorted({*split.train.folds, *split.validation.folds, *split.test.folds})
    return records_manifest.check_records(config.records, folds, config.allow_incomplete)


def clips_read(config: TrainConfig, split: RunSplit, test_clips: int, checked: dict) -> dict:
    """metrics.json entries: the clips read per split (training and validation counted in the
    records, test = the clips evaluated) and, for the fold protocol, what the manifest lists
    for the same folds (equal on an intact folder)."""
    if not is_records_folder(config.records):
        return {}
    read = {
        "train": count_clips(config.records, split.train),
        "validation": count_clips(config.records, split.validation),
        "test": int(test_clips),
    }
    out = {"clips_read": read}
    listed = checked.get("clips_in_manifest")
    if listed and not split.clip_level:
        out["clips_in_manifest"] = {
            name: sum(listed.get(str(k), 0) for k in part.folds)
            for name, part in (
                ("train", split.train),
                ("validation", split.validation),
                ("test", split.test),
            )
        }
    return out


def count_clips(records, part) -> int:
    """Clips of `part` (folds or a `Selection`) in a record folder. Shards hold one fold each, so
    raw records are counted; for a clip-level selection the clip ids of the shards are read
    once per process (and shard version) and intersected with the list."""
    selection = as_selection(part)
    files = [str(f) for f in pipeline.record_files(records, selection.folds)]
    if selection.clips is not None:
        stamps = tuple(_stamp(f) for f in files)
        return len(_clip_ids_in(stamps) & selection.clips)
    compression = "GZIP" if files[0].endswith(".gz") else ""
    ds = tf.data.TFRecordDataset(files, compression_type=compression)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1))


def clip_ids(records, part) -> frozenset[str]:
    """The clip names of `part` (folds or a `Selection`) in a record folder: every clip of
    the folds' shards, intersected with `part.clips` for a clip-level selection."""
    selection = as_selection(part)
    files = [str(f) for f in pipeline.record_files(records, selection.folds)]
    found = _clip_ids_in(tuple(_stamp(f) for f in files))
    return found if selection.clips is None else found & selection.clips


@functools.lru_cache(maxsize=4)
def _clip_ids_in(stamped_files: tuple) -> frozenset[str]:
    files = [f for f, _ in stamped_files]
    compression = "GZIP" if files[0].endswith(".gz") else ""
    spec = {keys.CLIP_ID: tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(files, compression_type=compression).map(
        lambda s: tf.io.parse_single_example(s, spec)[keys.CLIP_ID],
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return frozenset(name.decode() for name in ds.as_numpy_iterator())


def check_clip_split_records(records, split: RunSplit) -> None:
    """Refuse a clip-level split whose test, training or validation part has no clip in
    `records` (a validation hold-out of unbuilt names would leave nothing to pick epochs on)."""
    for name, part in (
        ("test", split.test),
        ("training", split.train),
        ("validation", split.validation),
    ):
        if count_clips(records, part) == 0:
            raise ValueError(
                f"none of the {len(part.clips or ())} clips of the {name} list of split "
                f"{split.name!r} is in the records of {records}"
            )


def num_batches(dataset: tf.data.Dataset, config: TrainConfig, part) -> int:
    """Training batches per epoch (for the schedules), without decoding any clip if possible."""
    n = int(dataset.cardinality())
    if n >= 0:
        return n
    if n == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The training dataset is infinite: set TrainConfig.steps_per_epoch.")
    if is_records_folder(config.records):
        clips = count_clips(config.records, part)
        if clips < config.batch_size:  # training batches drop the remainder
            raise ValueError(
                f"the training part {_describe(part)} of {config.records} holds {clips} clips, "
                f"fewer than one batch. Received: batch_size={config.batch_size}"
            )
        return clips // config.batch_size
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _describe(part) -> str:
    selection = as_selection(part)
    if selection.clips is None:
        return f"folds {list(selection.folds)}"
    return f"({len(selection.clips)} listed clips)"


def fit_datasets(
    dataset_fn: DatasetFactory,
    config: TrainConfig,
    train_part: Selection,
    val_part: Selection,
    epoch: int = 0,
    *,
    workers: int = 1,
    worker: int = 0,
):
    """(training dataset, validation dataset, steps per epoch) ready for `keras.Model.fit`.

    Batches hold `config.batch_size` clips: a distributed run passes the global batch
    (`emotf.training.distribute.global_batch_size`). Sizes are made known to Keras (exact
    progress bars; the end of the data is not taken for an interruption, no "ran out of data"
    warning); with `steps_per_epoch` set the training data repeats.

    Multi-worker (`workers` > 1, this process being worker number `worker`): each dataset is
    sharded by record file when it reads at least as many shard files as there are workers
    (worker i reads files i, i + workers, ...), else by data (every worker reads every file
    and keeps its share of each global batch; a one-line warning); a custom factory's data is
    sharded by data. The training data repeats (a worker's share of the files need not hold
    exactly 1/workers of the clips): Keras runs `steps` steps per epoch.
    """
    if workers > 1:
        train_ds, val_ds = (
            _worker_dataset(dataset_fn, part, training, config, epoch, workers, worker, name)
            for part, training, name in (
                (train_part, True, "training"),
                (val_part, False, "validation"),
            )
        )
    else:
        train_ds = dataset_fn(train_part, True, config, epoch)
        val_ds = dataset_fn(val_part, False, config, epoch)
    if int(val_ds.cardinality()) < 0 and is_records_folder(config.records) and workers <= 1:
        val_batches = -(-count_clips(config.records, val_part) // config.batch_size)
        val_ds = val_ds.apply(tf.data.experimental.assert_cardinality(val_batches))
    # (A worker's share of the records has an unknown size: steps come from the clip count.)
    steps = config.steps_per_epoch or num_batches(train_ds, config, train_part)
    if config.steps_per_epoch or workers > 1:
        train_ds = train_ds.repeat()
    elif int(train_ds.cardinality()) < 0:
        train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps))
    return train_ds, val_ds, steps


def _worker_dataset(dataset_fn, part, training, config, epoch, workers, worker, name):
    """One worker's dataset of `part` (`fit_datasets`)."""
    files = _num_shards(config, part) if dataset_fn is records_dataset else None
    if files is not None and files >= workers:
        return records_dataset(part, training, config, epoch, shard=(workers, worker))
    return shard_by_data(dataset_fn(part, training, config, epoch), files, workers, name)


def _num_shards(config: TrainConfig, part) -> int | None:
    """Record shards `part` reads (None: data from a custom factory, not from record files)."""
    if not is_records_folder(config.records):
        return None
    return len(pipeline.record_files(config.records, as_selection(part).folds))
