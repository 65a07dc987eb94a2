"""The tf.data input pipeline: record shards -> batches of sampled segments.

Order of operations (random sampling after any cache, so a cached dataset still draws fresh
frames and audio offsets every epoch):

    shard files -> (training: shuffle files) -> interleave TFRecordDataset -> [cache]
    -> (training: shuffle) -> zip with per-element seeds -> one parallel map: parse_example
    (only the sampler's fields) + sample_clip [+ frame flips] -> drop records of other folds
    -> batch -> prefetch

The pipeline yields raw audio windows; the model computes their log-mel spectrograms
(`emotf.model.LogMelSpectrogram`, on the accelerator when there is one) and, in training,
masks them (`emotf.model.SpecAugment`).

Seeds: each element's seed [2] comes from `tf.data.Dataset.random(seed=f(seed, epoch),
rerandomize_each_iteration=True)`. The same `seed` and `epoch` give the same samples in every
run; iterating the same dataset again (Keras `fit` over several epochs) draws new ones; a loop
that rebuilds the dataset each epoch passes `epoch=e` instead.
"""

from __future__ import annotations

import os
import warnings

import tensorflow as tf

from emotf import keys
from emotf.configs import SamplingConfig
from emotf.records.example import parse_example
from emotf.records.folder import RecordsFolder
from emotf.records.schema import FEATURE_SPEC
from emotf.sampling import augment_clip, sample_clip
from emotf.storage import StoragePath, as_path
from emotf.system import available_cpus

_KEEP = (
    keys.VIDEO_FRAMES,
    keys.PARSED_NUM_FRAMES,
    keys.VIDEO_FPS,
    keys.PARSED_WAVEFORM,
    keys.PARSED_NUM_SAMPLES,
    keys.AUDIO_SAMPLE_RATE,
    keys.LABEL,
    keys.FOLD,
)
_METADATA = (keys.CLIP_ID, keys.ACTOR_ID)


def record_files(records_dir, folds) -> list[StoragePath]:
    """Shards (`emotf.records.folder.RecordsFolder.shards`) of the given folds in `records_dir`
    (a local folder, `gs://...`, `ram://...`: `emotf.storage`), sorted.

    Raises:
        FileNotFoundError: no shard of these folds in the folder.
    """
    folds = {int(f) for f in folds}
    found = RecordsFolder(records_dir).shards(folds)
    if not found:
        raise FileNotFoundError(
            f"no record shards of folds {sorted(folds)} in {records_dir}. "
            f"Received: records_dir={str(records_dir)!r}, folds={sorted(folds)}"
        )
    return found


def _resolve(files_or_dir, folds) -> tuple[list[str], str]:
    given: list
    if isinstance(files_or_dir, (str, os.PathLike)) and as_path(files_or_dir).is_dir():
        given = record_files(files_or_dir, folds)
    elif isinstance(files_or_dir, (str, os.PathLike)):
        given = [files_or_dir]
    else:
        given = list(files_or_dir)
    if not given:
        raise ValueError(f"no record files given. Received: files_or_dir={files_or_dir!r}")
    files = [str(f) for f in given]
    gz = {f.endswith(".gz") for f in files}
    if len(gz) > 1:
        raise ValueError(f"mix of gzip and plain record files. Received: {files}")
    return files, "GZIP" if gz.pop() else ""


def clip_filter(clip_ids):
    """A predicate on serialised records: is the record's clip_id one of `clip_ids`?"""
    names = sorted({str(name) for name in clip_ids})
    if not names:
        raise ValueError("clip_ids is empty: no clip would be kept")
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(names), tf.ones([len(names)], tf.int32)),
        default_value=0,
    )
    spec = {keys.CLIP_ID: FEATURE_SPEC[keys.CLIP_ID]}

    @tf.autograph.experimental.do_not_convert
    def keep(serialized):
        return table.lookup(tf.io.parse_single_example(serialized, spec)[keys.CLIP_ID]) > 0

    return keep


@tf.autograph.experimental.do_not_convert
def _first(keep, element):
    return keep


@tf.autograph.experimental.do_not_convert
def _second(keep, element):
    return element


def _element_seed_dataset(seed: int, epoch: int) -> tf.data.Dataset:
    # Mix seed and epoch into one 63-bit int; each iteration of the dataset rerandomizes.
    mixed = (int(seed) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63 - 1)
    return tf.data.Dataset.random(seed=mixed, rerandomize_each_iteration=True).batch(2)


def make_dataset(
    files_or_dir,
    folds,
    *,
    training: bool,
    config: SamplingConfig = SamplingConfig(),
    batch_size: int = 16,
    seed: int = 0,
    epoch: int = 0,
    shuffle_buffer: int = 512,
    cache: bool | str = False,
    augment: bool = False,
    drop_remainder: bool | None = None,
    num_parallel_calls: int | None = None,
    deterministic: bool = True,
    with_metadata: bool = False,
    clip_ids=None,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of sampled segments from record shards.

    Args:
        files_or_dir: a folder of `fold-K-of-N-*.tfrecord[.gz]` shards (globbed by fold), one
            file, or a list of files (all gzip or all plain); local or any `tf.io.gfile` URL.
        folds: folds to keep; records of other folds are filtered out even if their files
            are given.
        training: random frame and audio offset per segment, shuffling, optional augmentation;
            else the deterministic middle frame and centred window, file order kept.
        config: `SamplingConfig`.
        batch_size: clips per batch.
        seed: the same seed (and epoch) gives the same batches.
        epoch: folded into the seed, for loops that rebuild the dataset every epoch.
        shuffle_buffer: clips in the shuffle buffer (training only). Each epoch starts by
            filling it with freshly allocated records (~180 page faults per ~0.7 MB record:
            glibc hands the previous epoch's buffer back to the kernel as it drains), so
            min(shuffle_buffer, clips per epoch) records per epoch cost 0.4-0.8 ms more CPU
            each (measured with 0.7 MB records); between epoch boundaries the memory is reused
            (docs/sampling.md, "Training mode and the shuffle buffer").
        cache: False, True (memory) or a file path prefix; caches the serialised records
            (before any random sampling). Later epochs skip reading and, in training, the
            shuffle buffer holds references into the cache, so its refill costs no page
            faults; they read records in the first epoch's file order (the shuffle buffer
            still reshuffles them).
        augment: stateless left-right flips of each clip's frames (training only); the
            spectrogram masks are the model's `SpecAugment` layer (`ModelConfig.spec_augment`).
        drop_remainder: default: `training`.
        num_parallel_calls: for interleave, parsing and the sampling map. Default: the CPUs
            this process may use, with tf.data autotuning off; `tf.data.AUTOTUNE` turns
            autotuning on (measured ~1.5x slower here: on short epochs it kept ~1 core busy
            of 2, see docs/sampling.md).
        deterministic: fixed element order (default True). Seeds are paired with elements by
            position, so False trades run-to-run repeatability of training samples for
            some throughput.
        with_metadata: add a third element {"clip_id": string [B], "actor_id": int32 [B],
            "fold": int32 [B]}.
        clip_ids: optional names of the only clips to keep (a clip-level split,
            `emotf.corpora.splits`); the others are dropped after reading only their
            `clip_id`, before caching, shuffling and sampling.
        shard: (num_shards, index): read only the files `files[index::num_shards]` (one
            worker's share in a multi-worker run, `emotf.training.distribute`); tf.distribute's own
            auto-sharding is then turned off for the dataset (it cannot rewrite this pipeline:
            the zipped per-element seeds are not a file source).

    Returns:
        A dataset of `({"frames": uint8 [B, N, S, S, 3], "audio": float32 [B, N, L]},
        label int32 [B])` (+ metadata), S = frame_size, L = config.window_length (audio
        windows in [-1, 1], zero padded outside the clip).
    """
    files, compression = _resolve(files_or_dir, folds)
    if shard is not None:
        num_shards, index = (int(v) for v in shard)
        if not 0 <= index < num_shards <= len(files):
            raise ValueError(
                f"cannot give share {index} of {num_shards} of {len(files)} record "
                f"files. Received: shard={shard}"
            )
        files = files[index::num_shards]
    autotune = num_parallel_calls == tf.data.AUTOTUNE
    if num_parallel_calls is None:
        num_parallel_calls = available_cpus()
    fold_list = tf.constant(sorted({int(f) for f in folds}), tf.int64)
    if drop_remainder is None:
        drop_remainder = training

    ds = tf.data.Dataset.from_tensor_slices(files)
    if training and len(files) > 1:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if len(files) > 1:
        ds = ds.interleave(
            lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
            cycle_length=min(len(files), 4),
            num_parallel_calls=num_parallel_calls,
            deterministic=deterministic,
        )
    else:
        ds = tf.data.TFRecordDataset(files, compression_type=compression)
    if clip_ids is not None:
        ds = ds.filter(clip_filter(clip_ids))
    wanted = _KEEP + (_METADATA if with_metadata else ())
    # Raw serialised records are cached and shuffled (int16 audio: smaller than parsed clips),
    # then ONE parallel map parses and samples each clip: a separate parse map cost ~0.5 ms
    # of CPU per clip more (docs/sampling.md, "Speed").
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, _element_seed_dataset(seed, epoch)))

    def parse_and_sample(serialized, element_seed):
        # Only what sampling (and the metadata) needs: no face boxes, no unused strings.
        record = parse_example(serialized, wanted)
        out = sample_clip(
            record[keys.VIDEO_FRAMES],
            record[keys.PARSED_NUM_FRAMES],
            record[keys.VIDEO_FPS],
            record[keys.PARSED_WAVEFORM],
            record[keys.PARSED_NUM_SAMPLES],
            record[keys.AUDIO_SAMPLE_RATE],
            config,
            training,
            element_seed,
        )
        if training and augment:
            out = augment_clip(out, element_seed)
        features = {"frames": out["frames"], "audio": out["audio"]}
        label = tf.cast(record[keys.LABEL], tf.int32)
        keep = tf.reduce_any(tf.equal(record[keys.FOLD], fold_list))
        if with_metadata:
            meta = {
                "clip_id": record[keys.CLIP_ID],
                "actor_id": tf.cast(record[keys.ACTOR_ID], tf.int32),
                "fold": tf.cast(record[keys.FOLD], tf.int32),
            }
            return keep, (features, label, meta)
        return keep, (features, label)

    ds = ds.map(
        parse_and_sample, num_parallel_calls=num_parallel_calls, deterministic=deterministic
    )
    # Records of other folds are dropped here (their files may have been passed explicitly).
    ds = ds.filter(_first).map(_second)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    # Parallelism comes from the parallel map over clips; letting every op of the sampling
    # function also fan out over the intra-op pool (the default) cost ~2x CPU per clip here.
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = autotune
    if shard is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.prefetch(tf.data.AUTOTUNE if autotune else 2).with_options(options)


def shard_by_data(
    dataset: tf.data.Dataset, num_files: int | None, workers: int, name: str = "training"
) -> tf.data.Dataset:
    """`dataset` with tf.distribute's DATA auto-shard policy: every worker reads every file and
    keeps its share of each global batch. Used when a dataset cannot be sharded by file: fewer
    record shards than workers (`num_files`: a one-line warning says so) or data that does not
    come from record files (`num_files` None: no warning). (Sharding by file:
    `make_dataset(shard=...)`.)"""
    if num_files is not None:
        warnings.warn(
            f"the {name} data has {num_files} record shard(s) for {workers} workers: "
            "every worker reads all of them and keeps its share of each batch (data "
            "sharding); build the records with at least as many shards as workers",
            stacklevel=2,
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
