"""emotf.pipeline.make_dataset on tiny records whose frames and audio encode index and time."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emotf import keys
from emotf.pipeline import make_dataset, record_files
from emotf.records.example import parse_example
from emotf.sampling import extract_audio_windows, sample_clip
from tests.helpers_sampling import (
    TINY_RATE,
    clip_record,
    first_record,
    frame_index,
    read_records,
    sample_parsed,
    sample_serialized,
    tiny_config,
    write_records,
)

RATE = TINY_RATE
SMALL = tiny_config(max_offset_seconds=0.02, time_bins=13)


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    write_records(
        folder / "fold-0-of-10-00000.tfrecord", [clip_record(i, 20 + 3 * i) for i in range(5)]
    )
    write_records(
        folder / "fold-1-of-10-00000.tfrecord", [clip_record(9, 2, fold=1)]
    )  # fewer frames than N
    write_records(folder / "fold-2-of-10-00000.tfrecord", [clip_record(8, 30, fold=2)])
    return folder


def _collect(dataset):
    return [tf.nest.map_structure(lambda x: x.numpy(), batch) for batch in dataset]


@pytest.mark.parametrize("training", [False, True])
def test_sampled_audio_centre_within_b_of_sampled_frame(records_dir, training):
    """End to end on a record: decoded frame value gives j, window values give the start."""
    config, length = SMALL, SMALL.window_length
    for raw in read_records(records_dir, [0, 1]):
        r = parse_example(raw)
        for s in range(4):
            out = sample_parsed(r, config, training, [s, 7])
            j = frame_index(out["frames"])
            np.testing.assert_array_equal(j, out["frame_indices"])
            windows = extract_audio_windows(
                r[keys.PARSED_WAVEFORM], out["audio_starts"], length, r[keys.PARSED_NUM_SAMPLES]
            ).numpy()
            sample_index = np.round(windows * 32768).astype(int) - 1  # -1 where zero padded
            for k in range(config.num_segments):
                inside = sample_index[k] >= 0
                start = out["audio_starts"].numpy()[k]
                # Every non-padded value is its own sample index: the window is contiguous.
                np.testing.assert_array_equal(
                    sample_index[k][inside], start + np.arange(length)[inside]
                )
                centre = (start + (length - 1) / 2) / RATE
                frame_time = j[k] / float(r[keys.VIDEO_FPS])
                bound = (config.max_offset_seconds if training else 0) + 1 / RATE
                assert abs(centre - frame_time) <= bound + 1e-9


def test_default_shapes_and_dtypes(tmp_path):
    path = write_records(
        tmp_path / "fold-3-of-10-00000.tfrecord", [clip_record(0, 12, 3, size=224, rate=16000)] * 2
    )
    ds = make_dataset(path, [3], training=True, batch_size=2, seed=1)
    assert ds.element_spec[0]["frames"].shape.as_list() == [2, 10, 224, 224, 3]
    ((features, labels),) = _collect(ds)
    assert features["frames"].dtype == np.uint8 and features["frames"].shape == (2, 10, 224, 224, 3)
    # Raw audio windows: the model computes the spectrograms (emotf.model.LogMelSpectrogram).
    assert set(features) == {"frames", "audio"}
    assert features["audio"].dtype == np.float32 and features["audio"].shape == (2, 10, 20480)
    assert labels.dtype == np.int32 and labels.shape == (2,)


def test_evaluation_is_deterministic_and_filters_folds(records_dir):
    files = record_files(records_dir, [0, 1, 2])  # sorted by name
    ds = make_dataset(files, [0, 1], training=False, config=SMALL, batch_size=4, with_metadata=True)
    first, second = _collect(ds), _collect(ds)
    again = _collect(
        make_dataset(
            records_dir,
            [0, 1],
            training=False,
            config=SMALL,
            batch_size=4,
            with_metadata=True,
            seed=99,
        )
    )
    for a, b, c in zip(first, second, again, strict=True):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        tf.nest.map_structure(np.testing.assert_array_equal, a, c)
    folds = np.concatenate([m["fold"] for _, _, m in first])
    assert sorted(folds.tolist()) == [0, 0, 0, 0, 0, 1]  # fold 2 filtered out of the file list
    assert [len(b[1]) for b in first] == [4, 2]  # no drop_remainder when evaluating


def _frames_seen(dataset):
    """clip_id -> sampled frame indices (decoded from the pixel values), for one pass."""
    seen = {}
    for features, _, meta in dataset:
        j = frame_index(features["frames"])
        for clip_id, row in zip(meta["clip_id"].numpy(), j, strict=True):
            seen[clip_id] = tuple(row)
    return seen


def test_training_repeatable_by_seed_and_varies_by_epoch(records_dir):
    def build(**kwargs):
        return make_dataset(
            records_dir,
            [0],
            training=True,
            config=SMALL,
            batch_size=5,
            with_metadata=True,
            **kwargs,
        )

    ds = build(seed=3)
    epoch_a, epoch_b = _frames_seen(ds), _frames_seen(ds)  # iterating again = next epoch
    assert _frames_seen(build(seed=3)) == epoch_a  # the same seed, a fresh run: same samples
    assert epoch_a != epoch_b
    assert _frames_seen(build(seed=3, epoch=1)) != epoch_a
    assert set(epoch_a) == set(epoch_b) and len(epoch_a) == 5


def test_same_function_eager_and_in_tf_data(records_dir):
    raw = first_record(records_dir, 2)

    def run(serialized, seed):
        return sample_serialized(serialized, SMALL, True, seed)

    seed = tf.constant([4, 2], tf.int64)
    eager = run(raw, seed)
    in_data = next(iter(tf.data.Dataset.from_tensors((raw, seed)).map(run)))
    for key in eager:
        np.testing.assert_allclose(eager[key].numpy(), in_data[key].numpy(), atol=1e-5)


def test_augment_and_cache_run(records_dir, tmp_path):
    ds = make_dataset(
        records_dir,
        [0],
        training=True,
        config=SMALL,
        batch_size=2,
        augment=True,
        cache=str(tmp_path / "cache"),
    )
    batches = _collect(ds) + _collect(ds)
    assert len(batches) == 4 and batches[0][0]["audio"].shape == (2, 3, 128)


def test_parse_example_subset_of_keys(records_dir):
    raw = first_record(records_dir, 2)
    full = parse_example(raw)
    lean = parse_example(
        raw, [keys.VIDEO_FRAMES, keys.PARSED_NUM_FRAMES, keys.PARSED_WAVEFORM, keys.LABEL]
    )
    assert set(lean) == {
        keys.SCHEMA_VERSION_KEY,
        keys.VIDEO_FRAMES,
        keys.PARSED_NUM_FRAMES,
        keys.PARSED_WAVEFORM,
        keys.LABEL,
    }
    for key in lean:
        np.testing.assert_array_equal(lean[key].numpy(), full[key].numpy())
    assert full[keys.VIDEO_FRAMES].shape == (30,) and full[keys.VIDEO_FACE_BOXES].shape == (30, 4)
    with pytest.raises(ValueError, match="unknown record keys"):
        parse_example(raw, ["bogus"])


def test_record_files_and_errors(records_dir):
    assert [p.name for p in record_files(records_dir, [2, 0])] == [
        "fold-0-of-10-00000.tfrecord",
        "fold-2-of-10-00000.tfrecord",
    ]
    with pytest.raises(FileNotFoundError, match="folds \\[7\\]"):
        record_files(records_dir, [7])
    with pytest.raises(ValueError, match="no record files"):
        make_dataset([], [0], training=False)


def test_padded_uint8_batch_through_map_fn_matches_record_path(records_dir):
    """The serving shape: padded uint8 frames [B, T, ...] + counts, the same sample_clip."""
    clips = [parse_example(raw) for raw in read_records(records_dir, [0, 1])][:3]
    t_max = max(int(c[keys.PARSED_NUM_FRAMES]) for c in clips)
    s_max = max(int(c[keys.PARSED_NUM_SAMPLES]) for c in clips)
    frames = np.zeros([3, t_max, 16, 16, 3], np.uint8)
    waves = np.zeros([3, s_max], np.float32)
    for i, c in enumerate(clips):
        decoded = tf.map_fn(
            lambda j: tf.io.decode_jpeg(j, channels=3),
            c[keys.VIDEO_FRAMES],
            fn_output_signature=tf.uint8,
        ).numpy()
        frames[i, : len(decoded)] = decoded
        waves[i, : int(c[keys.PARSED_NUM_SAMPLES])] = c[keys.PARSED_WAVEFORM].numpy()
        waves[i, int(c[keys.PARSED_NUM_SAMPLES]) :] = 0.5  # padding must not leak in
    counts = tf.constant([int(c[keys.PARSED_NUM_FRAMES]) for c in clips])
    samples = tf.constant([int(c[keys.PARSED_NUM_SAMPLES]) for c in clips])

    @tf.function
    def serve(frames, counts, waves, samples):
        return tf.map_fn(
            lambda x: sample_clip(x[0], x[1], 10.0, x[2], x[3], RATE, SMALL, False)["audio"],
            (frames, counts, waves, samples),
            fn_output_signature=tf.TensorSpec([3, SMALL.window_length], tf.float32),
        )

    served = serve(frames, counts, waves, samples).numpy()
    for i, c in enumerate(clips):
        direct = sample_parsed(c, SMALL, False)
        # Leaked padding (0.5) or a shifted window would differ.
        np.testing.assert_array_equal(served[i], direct["audio"].numpy())


def test_gzip_shards(tmp_path):
    write_records(
        tmp_path / "fold-4-of-10-00000.tfrecord.gz", [clip_record(1, 6, fold=4)], options="GZIP"
    )
    ((features, labels),) = _collect(make_dataset(tmp_path, [4], training=False, config=SMALL))
    assert features["frames"].shape == (1, 3, 16, 16, 3) and labels.tolist() == [1]


def test_bench_pipeline_reports_cpu_faults_and_ratios_per_mode(capsys):
    tool = Path(__file__).resolve().parents[1] / "tools" / "bench_pipeline.py"
    spec = importlib.util.spec_from_file_location("bench_pipeline", tool)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    summary = bench.main(
        ["--clips", "8", "--epochs", "1", "--batch-size", "4", "--shuffle-buffer", "4"]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert lines[-1] == json.loads(json.dumps(summary))  # the final line is the summary
    assert [line["mode"] for line in lines[:-1]] == ["train", "eval"]
    assert summary["shuffle_buffer"] == 4 and summary["clips"] == 8
    for line in lines[:-1]:
        assert line["cpu_ms_per_clip"] > 0 and line["cpu_ms_per_clip_floor"] > 0
        assert line["over_floor"] == pytest.approx(
            line["cpu_ms_per_clip"] / line["cpu_ms_per_clip_floor"], abs=0.02
        )
        assert line["minflt_per_clip"] >= 0 and line["minflt_per_clip_floor"] >= 0
        assert 0 <= line["sys_ms_per_clip"] <= line["cpu_ms_per_clip"]
