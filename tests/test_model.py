"""Twin-branch model: structure, parameter counts, consensus, mixed-precision dtypes."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from emotf import keys
from emotf.configs import ModelConfig, SamplingConfig, model_sampling
from emotf.model import (
    LogMelSpectrogram,
    SpecAugment,
    build_core,
    build_model,
    count_flops,
    model_sampling_config,
    training_model,
)
from emotf.records.example import parse_example
from emotf.sampling import sample_clip, spectrogram
from emotf.training.precision import precision_policy, resolve_jit_compile, resolve_precision

N = 3


def tiny_config(**overrides) -> ModelConfig:
    values = dict(
        num_segments=N,
        frame_size=32,
        spectrogram_shape=(24, 16),
        video_stem_width=4,
        video_widths=(8,),
        audio_widths=(4, 8),
        fc_units=8,
    )
    values.update(overrides)
    return ModelConfig(**values)


# Short windows keep the tests fast: 256 samples at 2 kHz, 16 STFT frames, 16 mel bands.
TINY_SAMPLING = SamplingConfig(
    sample_rate=2000,
    window_seconds=0.128,
    frame_length=32,
    frame_step=14,
    fft_length=32,
    num_mel_bins=16,
    time_bins=24,
    freq_bins=16,
)


def tiny_inputs(config: ModelConfig, batch: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    s, length = config.frame_size, TINY_SAMPLING.window_length
    return {
        "frames": rng.integers(0, 256, (batch, config.num_segments, s, s, 3)).astype("uint8"),
        "audio": rng.normal(0, 0.3, (batch, config.num_segments, length)).astype("float32"),
    }


def tiny_model(config: ModelConfig):
    return build_model(config, TINY_SAMPLING)


def test_independent_graph_has_n_named_branches():
    model = tiny_model(tiny_config(branch_weights="independent"))
    cores = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert cores == [f"core_{i:02d}" for i in range(N)]


def test_shared_core_is_one_model_applied_to_each_segment():
    config = tiny_config()
    model = tiny_model(config)
    cores = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert [c.name for c in cores] == ["core"]
    x = tiny_inputs(config)
    seg = model(x, training=False)["segment_probabilities"].numpy()
    assert seg.shape == (2, N, 6)
    for i in range(N):  # N twin branches: branch i = the core on segment i
        spec = model.get_layer("log_mel")(x["audio"])[:, i]
        branch = cores[0](
            {"frame": tf.constant(x["frames"][:, i]), "spectrogram": spec}, training=False
        )
        np.testing.assert_allclose(seg[:, i], branch.numpy(), rtol=1e-5, atol=1e-6)


def test_shared_vs_independent_parameter_counts():
    shared = tiny_model(tiny_config()).count_params()
    independent = tiny_model(tiny_config(branch_weights="independent")).count_params()
    core = build_core(tiny_config()).count_params()
    assert shared == core
    assert independent == N * core


@pytest.mark.parametrize("branch_weights", ["shared", "independent"])
def test_outputs_are_sum_and_mean_of_segment_softmaxes(branch_weights):
    config = tiny_config(branch_weights=branch_weights)
    out = tiny_model(config)(tiny_inputs(config), training=False)
    seg = out["segment_probabilities"].numpy()
    np.testing.assert_allclose(seg.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["scores"].numpy(), seg.sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["probabilities"].numpy(), seg.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        out["scores"].numpy().argmax(-1), out["probabilities"].numpy().argmax(-1)
    )


@pytest.mark.parametrize(
    "modalities, has_video, has_audio", [("audio", False, True), ("video", True, False)]
)
def test_single_modality_ignores_other_input(modalities, has_video, has_audio):
    config = tiny_config(modalities=modalities)
    model = tiny_model(config)
    names = {layer.name for layer in model.get_layer("core").layers}
    assert ("video_gap" in names) == has_video and ("audio_gap" in names) == has_audio
    x = tiny_inputs(config)
    y1 = model(x, training=False)["probabilities"].numpy()
    unused = "frames" if modalities == "audio" else "audio"
    x[unused] = np.zeros_like(x[unused])
    np.testing.assert_allclose(model(x, training=False)["probabilities"].numpy(), y1, rtol=1e-6)


@pytest.mark.parametrize(
    "policy, compute", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")]
)
def test_mixed_precision_dtypes(policy, compute):
    config = tiny_config()
    with precision_policy(policy) as name:
        assert name == policy
        model = tiny_model(config)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert all(v.dtype == "float32" for v in model.weights)
    core = model.get_layer("core")
    assert core.get_layer("video_stem_conv").compute_dtype == compute
    assert core.get_layer("audio_block1_conv").compute_dtype == compute
    assert core.get_layer("classifier").compute_dtype == "float32"
    assert model.get_layer("log_mel").compute_dtype == "float32"  # spectrograms stay float32
    out = model(tiny_inputs(config), training=False)
    assert all(str(v.dtype) == "<dtype: 'float32'>" for v in out.values())
    assert str(training_model(model)(tiny_inputs(config)).dtype) == "<dtype: 'float32'>"


def test_precision_auto_is_float32_on_cpu():
    assert resolve_precision("auto") == "float32"  # conftest hides GPUs
    with pytest.raises(ValueError, match="precision="):
        resolve_precision("float8")


def test_config_roundtrip_and_flops():
    config = tiny_config(branch_weights="independent", modalities="audio")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="branch_weights="):
        ModelConfig(branch_weights="tied")
    flops = count_flops(ModelConfig())
    assert flops["per_clip"] == 10 * flops["per_segment"]
    assert 0.3e9 < flops["per_segment"] < 2e9  # full size stays cheap: see docs/training.md


GOLDEN = Path(__file__).resolve().parents[1] / "tfrecords_spec" / "golden" / "golden.tfrecord"


def test_log_mel_layer_equals_spectrogram_on_the_golden_record_audio():
    """The model's first audio layer computes today's `spectrogram()` (sparse mel) to 1e-5."""
    (serialized,) = list(tf.data.TFRecordDataset(str(GOLDEN)))
    record = parse_example(serialized)
    config = SamplingConfig(num_segments=4)
    out = sample_clip(
        record[keys.VIDEO_FRAMES],
        record[keys.PARSED_NUM_FRAMES],
        record[keys.VIDEO_FPS],
        record[keys.PARSED_WAVEFORM],
        record[keys.PARSED_NUM_SAMPLES],
        record[keys.AUDIO_SAMPLE_RATE],
        config,
        training=False,
    )
    windows = out["audio"].numpy()
    assert np.abs(windows).max() > 0.01  # real audio, not padding
    expected = spectrogram(windows, config).numpy()
    layer = LogMelSpectrogram(config)
    got = layer(windows[None]).numpy()
    assert got.shape == (1, 4, 192, 120, 1) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-5)
    model = build_model(ModelConfig(num_segments=4), config)
    np.testing.assert_allclose(
        model.get_layer("log_mel")(windows[None]).numpy()[0], expected, rtol=0, atol=1e-5
    )
    with precision_policy("mixed_bfloat16"):
        mixed = LogMelSpectrogram(config)
    assert mixed.compute_dtype == "float32"
    np.testing.assert_allclose(mixed(windows[None]).numpy()[0], expected, rtol=0, atol=1e-5)


def test_spec_augment_masks_only_in_training_and_is_seeded():
    spec = tf.random.stateless_normal([2, 3, 40, 30, 1], [1, 2])
    first, second = SpecAugment(seed=7), SpecAugment(seed=7)
    np.testing.assert_array_equal(first(spec, training=False), spec)
    np.testing.assert_array_equal(first(spec), spec)  # inference by default
    a1, a2 = first(spec, training=True).numpy(), first(spec, training=True).numpy()
    b1 = second(spec, training=True).numpy()
    np.testing.assert_array_equal(a1, b1)  # same seed, same masks
    assert not np.array_equal(a1, a2)  # a new draw each training step
    masked = (a1 == 0) & (spec.numpy() != 0)
    assert masked.any() and masked.mean() < 0.6
    # Every mask is a full time band and/or a full frequency band of one spectrogram.
    for b in range(2):
        for n in range(3):
            m = masked[b, n, :, :, 0]
            rows, cols = m.all(axis=1), m.all(axis=0)
            assert (m == (rows[:, None] | cols[None, :])).all()


def test_model_with_spec_augment_round_trips_and_trains_with_xla(tmp_path):
    config = tiny_config(spec_augment=True)
    model = tiny_model(config)
    assert model_sampling_config(model) == model_sampling(config, TINY_SAMPLING)
    x = tiny_inputs(config)
    path = tmp_path / "m.keras"
    model.save(str(path))
    reloaded = keras.saving.load_model(str(path))
    np.testing.assert_allclose(reloaded(x)["probabilities"], model(x)["probabilities"], atol=1e-6)
    assert model_sampling_config(reloaded) == model_sampling_config(model)
    trainer = training_model(model)
    trainer.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    loss = trainer.train_on_batch(x, np.array([0, 1], np.int32))
    assert np.isfinite(loss)
    assert resolve_jit_compile(None) is False  # measured slower on the CPU (docs/training.md)
    assert resolve_jit_compile(True) is True
    with pytest.raises(TypeError, match="jit_compile='yes'"):
        resolve_jit_compile("yes")
    with pytest.raises(ValueError, match="spectrogram"):
        build_model(tiny_config(), SamplingConfig(time_bins=10, freq_bins=8))
