"""Twin-branch model: structure, parameter counts, consensus, mixed-precision dtypes."""

import keras
import numpy as np
import pytest

from emotf.model import ModelConfig, build_core, build_model, count_flops, training_model
from emotf.precision import precision_policy, resolve_precision

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


def tiny_inputs(config: ModelConfig, batch: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    s, (t, f) = config.frame_size, config.spectrogram_shape
    return {
        "frames": rng.integers(0, 256, (batch, config.num_segments, s, s, 3)).astype("uint8"),
        "spectrograms": rng.normal(size=(batch, config.num_segments, t, f, 1)).astype("float32"),
    }


def test_independent_graph_has_n_named_branches():
    model = build_model(tiny_config(branch_weights="independent"))
    cores = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert cores == [f"core_{i:02d}" for i in range(N)]


def test_shared_core_is_one_model_applied_to_each_segment():
    config = tiny_config()
    model = build_model(config)
    cores = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert [c.name for c in cores] == ["core"]
    x = tiny_inputs(config)
    seg = model(x, training=False)["segment_probabilities"].numpy()
    assert seg.shape == (2, N, 6)
    for i in range(N):  # N twin branches: branch i = the core on segment i
        branch = cores[0]({"frame": x["frames"][:, i], "spectrogram": x["spectrograms"][:, i]}, training=False)
        np.testing.assert_allclose(seg[:, i], branch.numpy(), rtol=1e-5, atol=1e-6)


def test_shared_vs_independent_parameter_counts():
    shared = build_model(tiny_config()).count_params()
    independent = build_model(tiny_config(branch_weights="independent")).count_params()
    core = build_core(tiny_config()).count_params()
    assert shared == core
    assert independent == N * core


@pytest.mark.parametrize("branch_weights", ["shared", "independent"])
def test_outputs_are_sum_and_mean_of_segment_softmaxes(branch_weights):
    config = tiny_config(branch_weights=branch_weights)
    out = build_model(config)(tiny_inputs(config), training=False)
    seg = out["segment_probabilities"].numpy()
    np.testing.assert_allclose(seg.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["scores"].numpy(), seg.sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["probabilities"].numpy(), seg.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["scores"].numpy().argmax(-1), out["probabilities"].numpy().argmax(-1))


@pytest.mark.parametrize("modalities, has_video, has_audio", [("audio", False, True), ("video", True, False)])
def test_single_modality_ignores_other_input(modalities, has_video, has_audio):
    config = tiny_config(modalities=modalities)
    model = build_model(config)
    names = {layer.name for layer in model.get_layer("core").layers}
    assert ("video_gap" in names) == has_video and ("audio_gap" in names) == has_audio
    x = tiny_inputs(config)
    y1 = model(x, training=False)["probabilities"].numpy()
    unused = "frames" if modalities == "audio" else "spectrograms"
    x[unused] = np.zeros_like(x[unused])
    np.testing.assert_allclose(model(x, training=False)["probabilities"].numpy(), y1, rtol=1e-6)


@pytest.mark.parametrize("policy, compute", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")])
def test_mixed_precision_dtypes(policy, compute):
    config = tiny_config()
    with precision_policy(policy) as name:
        assert name == policy
        model = build_model(config)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert all(v.dtype == "float32" for v in model.weights)
    core = model.get_layer("core")
    assert core.get_layer("video_stem_conv").compute_dtype == compute
    assert core.get_layer("audio_block1_conv").compute_dtype == compute
    assert core.get_layer("classifier").compute_dtype == "float32"
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
