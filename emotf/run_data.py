"""The data side of a training run: dataset factories, the run's split, sizes for Keras.

A dataset factory is called as `dataset_fn(folds, training, config[, epoch=...][, clips=...])`
and returns a `tf.data.Dataset` of (inputs dict, label int32 [B]); `records_dataset` is the
default, over the record shards of `config.records`. `emotf.train` and `emotf.tune` build their
datasets through `fit_datasets` and `call_factory`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import tensorflow as tf

from emotf import keys
from emotf.splits import RunSplit, Selection, run_split

if TYPE_CHECKING:
    from emotf.configs import TrainConfig

# A dataset factory: (folds, training, config[, epoch=0][, clips=None]) -> tf.data.Dataset of
# (inputs dict, label int32 [B]). `epoch` (the epochs already completed, > 0 after a resume) is
# passed only to factories whose signature accepts it, so that a resumed run does not replay
# epoch 0's draws; `clips` (the clip names of a clip-level split) only when the split has them.
DatasetFn = Callable[..., tf.data.Dataset]


def as_selection(part) -> Selection:
    """A `Selection` as is; a fold or an iterable of folds as the selection of those folds."""
    if isinstance(part, Selection):
        return part
    if isinstance(part, (int, np.integer)):
        return Selection((int(part),))
    return Selection(tuple(int(k) for k in part))


def call_factory(dataset_fn, part, training, config, epoch=0) -> tf.data.Dataset:
    """`dataset_fn(folds, training, config[, epoch=epoch][, clips=clips])` for `part` (folds or a
    `Selection`): `epoch` only if it is accepted; `clips` only for a clip-level selection, and
    a factory that cannot take them is refused (it would serve every clip of the folds)."""
    import inspect

    selection = as_selection(part)
    try:
        params = inspect.signature(dataset_fn).parameters
    except (TypeError, ValueError):
        params = {}
    any_keyword = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kwargs = {"epoch": epoch} if "epoch" in params or any_keyword else {}
    if selection.clips is not None:
        if not ("clips" in params or any_keyword):
            raise TypeError(f"a clip-level split needs a dataset factory that takes `clips`; "
                            f"{getattr(dataset_fn, '__name__', dataset_fn)!r} does not")
        kwargs["clips"] = selection.clips
    return dataset_fn(list(selection.folds), training, config, **kwargs)


def config_split(config: TrainConfig) -> RunSplit:
    """The training, validation and test selections of a run's config."""
    return run_split(config.split, config.fold, config.validation_folds,
                     config.validation_fraction, config.seed)


def records_dataset(folds, training: bool, config: TrainConfig, epoch: int = 0,
                    clips=None) -> tf.data.Dataset:
    """The default dataset factory: `emotf.pipeline.make_dataset` on the shards in `config.records`
    (only the clips named in `clips`, when given).

    `epoch` is the first epoch the dataset serves (non-zero when a run resumes), so a resumed
    run draws fresh samples instead of replaying epoch 0's.
    With `config.labels` = "perceived" the labels are the raters' majority (`emotf.labels`).
    """
    from emotf.pipeline import make_dataset

    labels = getattr(config, "labels", "intended")
    dataset = make_dataset(
        config.records,
        list(folds),
        training=training,
        config=config.sampling,
        batch_size=config.batch_size,
        seed=config.seed,
        epoch=epoch,
        cache=config.cache_records,
        clip_ids=clips,
        with_metadata=labels != "intended",
    )
    if labels == "intended":
        return dataset
    from emotf.labels import relabel

    return relabel(dataset, labels).map(lambda inputs, label, meta: (inputs, label))


def check_run_records(config: TrainConfig, split: RunSplit) -> dict:
    """Before the first epoch: check every shard the run will read (training, validation and
    test folds) against the records' manifest (`emotf.records.manifest.check_records`).

    Returns the entries for metrics.json ({} when `config.records` is not a folder, i.e. a
    custom dataset factory). Raises `emotf.records.manifest.RecordsError` naming every problem unless
    `config.allow_incomplete`.
    """
    if not config.records or not Path(config.records).is_dir():
        return {}
    from emotf.records.manifest import check_records

    folds = sorted({*split.train.folds, *split.validation.folds, *split.test.folds})
    return check_records(config.records, folds, getattr(config, "allow_incomplete", False))


def clips_read(config: TrainConfig, split: RunSplit, test_clips: int, checked: dict) -> dict:
    """metrics.json entries: the clips read per split (training and validation counted in the
    records, test = the clips evaluated) and, for the fold protocol, what the manifest lists
    for the same folds (equal on an intact folder)."""
    if not config.records or not Path(config.records).is_dir():
        return {}
    read = {"train": count_clips(config.records, split.train),
            "validation": count_clips(config.records, split.validation), "test": int(test_clips)}
    out = {"clips_read": read}
    listed = checked.get("clips_in_manifest")
    if listed and not split.clip_level:
        out["clips_in_manifest"] = {
            name: sum(listed.get(str(k), 0) for k in part.folds)
            for name, part in (("train", split.train), ("validation", split.validation),
                               ("test", split.test))}
    return out


def count_clips(records, part) -> int:
    """Clips of `part` (folds or a `Selection`) in a record folder. Shards hold one fold each, so
    raw records are counted; for a clip-level selection the clip ids of the shards are read
    once per process (and shard version) and intersected with the list."""
    from emotf.pipeline import record_files

    selection = as_selection(part)
    files = [str(f) for f in record_files(records, selection.folds)]
    if selection.clips is not None:
        stamps = tuple((f, Path(f).stat().st_mtime_ns) for f in files)
        return len(_clip_ids_in(stamps) & selection.clips)
    compression = "GZIP" if files[0].endswith(".gz") else ""
    ds = tf.data.TFRecordDataset(files, compression_type=compression)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1))


@functools.lru_cache(maxsize=4)
def _clip_ids_in(stamped_files: tuple) -> frozenset[str]:
    files = [f for f, _ in stamped_files]
    compression = "GZIP" if files[0].endswith(".gz") else ""
    spec = {keys.CLIP_ID: tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(files, compression_type=compression).map(
        lambda s: tf.io.parse_single_example(s, spec)[keys.CLIP_ID],
        num_parallel_calls=tf.data.AUTOTUNE)
    return frozenset(name.decode() for name in ds.as_numpy_iterator())


def check_clip_split_records(records, split: RunSplit) -> None:
    """Refuse a clip-level split whose test, training or validation part has no clip in
    `records` (a validation hold-out of unbuilt names would leave nothing to pick epochs on)."""
    for name, part in (("test", split.test), ("training", split.train),
                       ("validation", split.validation)):
        if count_clips(records, part) == 0:
            raise ValueError(f"none of the {len(part.clips)} clips of the {name} list of split "
                             f"{split.name!r} is in the records of {records}")


def num_batches(dataset: tf.data.Dataset, config: TrainConfig, part) -> int:
    """Training batches per epoch (for the schedules), without decoding any clip if possible."""
    n = int(dataset.cardinality())
    if n >= 0:
        return n
    if n == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The training dataset is infinite: set TrainConfig.steps_per_epoch.")
    if config.records and Path(config.records).is_dir():
        clips = count_clips(config.records, part)
        if clips < config.batch_size:  # training batches drop the remainder
            raise ValueError(
                f"the training part {_describe(part)} of {config.records} holds {clips} clips, fewer "
                f"than one batch. Received: batch_size={config.batch_size}"
            )
        return clips // config.batch_size
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _describe(part) -> str:
    selection = as_selection(part)
    if selection.clips is None:
        return f"folds {list(selection.folds)}"
    return f"({len(selection.clips)} listed clips)"


def fit_datasets(dataset_fn: DatasetFn, config: TrainConfig, train_part, val_part, epoch: int = 0):
    """(training dataset, validation dataset, steps per epoch) ready for `keras.Model.fit`.

    `train_part`, `val_part`: folds or `emotf.splits.Selection`s.

    Sizes are made known to Keras (exact progress bars; the end of the data is not taken for
    an interruption, no "ran out of data" warning); with `steps_per_epoch` set the training
    data repeats.
    """
    train_ds = call_factory(dataset_fn, train_part, True, config, epoch)
    val_ds = call_factory(dataset_fn, val_part, False, config, epoch)
    if int(val_ds.cardinality()) < 0 and config.records and Path(config.records).is_dir():
        val_batches = -(-count_clips(config.records, val_part) // config.batch_size)
        val_ds = val_ds.apply(tf.data.experimental.assert_cardinality(val_batches))
    steps = config.steps_per_epoch or num_batches(train_ds, config, train_part)
    if config.steps_per_epoch:
        train_ds = train_ds.repeat()
    elif int(train_ds.cardinality()) < 0:
        train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps))
    return train_ds, val_ds, steps
