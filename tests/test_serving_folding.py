"""BatchNorm folding at export (`emotf.serving.folding`): the inference twin equals the Keras
model in evaluation, also with trained-looking BatchNorm statistics, for every branch layout."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from emotf.configs import ModelConfig, SamplingConfig
from emotf.model import build_model
from emotf.serving.export import export_saved_model, read_metadata
from emotf.serving.folding import FoldedBatchNorm, fold_batch_norm, foldable_pairs

N = 3
SAMPLING = SamplingConfig(num_segments=N)


def _tiny(**fields) -> ModelConfig:
    base = dict(num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8))
    return ModelConfig(**{**base, "fc_units": 8, **fields})


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def _with_statistics(model: keras.Model, seed: int = 0) -> keras.Model:
    """Give every BatchNormalization trained-looking statistics: scales of both signs,
    shifts, means and variances far from the initial 1, 0, 0, 1."""
    rng = np.random.default_rng(seed)
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            gamma = rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c)
            layer.set_weights(
                [
                    gamma,
                    rng.normal(0, 0.3, c),
                    rng.normal(0, 0.5, c),
                    rng.uniform(0.05, 3.0, c),
                ]
            )
    return model


def _segments(seed: int = 0, batch: int = 2) -> dict:
    """Random segments whose brightness and loudness differ from segment to segment."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.1, 1.0, [batch, N, 1, 1, 1])
    frames = rng.integers(0, 256, [batch, N, 224, 224, 3]) * level
    audio = rng.normal(0, 0.1, [batch, N, SAMPLING.window_length]) * level[..., 0, 0] * 3
    return {
        "frames": tf.constant(frames.astype(np.uint8)),
        "audio": tf.constant(audio, tf.float32),
    }


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"branch_weights": "independent", "spec_augment": True},
        {"modalities": "video"},
        {"modalities": "audio", "fc_units": 0},
    ],
    ids=["shared", "independent", "video", "audio-no-fc"],
)
def test_folded_twin_equals_the_model_in_evaluation(fields):
    keras.utils.set_random_seed(3)
    model = _with_statistics(build_model(_tiny(**fields)))
    before = [w.copy() for w in model.get_weights()]
    norms = [x for x in _layers(model) if isinstance(x, keras.layers.BatchNormalization)]
    folded = fold_batch_norm(model)
    # Every BatchNormalization folded (each follows a conv), none left in the twin.
    assert len(foldable_pairs(model)) == len(norms) > 0
    assert not [x for x in _layers(folded) if isinstance(x, keras.layers.BatchNormalization)]
    assert sum(isinstance(x, FoldedBatchNorm) for x in _layers(folded)) == len(norms)
    inputs = _segments()
    expected = model(inputs, training=False)
    got = folded(inputs, training=False)
    # The segments differ visibly, so a wrong sign or channel would show.
    assert np.ptp(expected["segment_probabilities"].numpy().reshape(-1, 6), axis=0).max() > 1e-3
    for key in ("probabilities", "segment_probabilities"):
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["scores"], expected["scores"], rtol=0, atol=1e-5)
    # The model itself is untouched.
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_a_mixed_precision_model_is_not_folded():
    keras.utils.set_random_seed(0)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model(_tiny())
    finally:
        keras.config.set_dtype_policy(previous)
    assert foldable_pairs(model) == []
    assert fold_batch_norm(model) is model


def test_export_folds_and_serves_the_models_results(tmp_path):
    keras.utils.set_random_seed(5)
    config = _tiny()
    model = _with_statistics(build_model(config), seed=1)
    saved = export_saved_model(model, SAMPLING, tmp_path / "folded", model_config=config.to_dict())
    plain = export_saved_model(
        model, SAMPLING, tmp_path / "plain", model_config=config.to_dict(), fold_batchnorm=False
    )
    assert read_metadata(saved)["batch_norm_folded"] == 4  # stem, block1, audio 1 and 2
    assert read_metadata(plain)["batch_norm_folded"] == 0
    inputs = _segments(seed=1, batch=3)
    expected = model(inputs, training=False)
    for folder in (saved, plain):
        served = tf.saved_model.load(str(folder)).signatures["predict_segments"](**inputs)
        np.testing.assert_allclose(
            served["probabilities"], expected["probabilities"], rtol=0, atol=1e-6
        )
        np.testing.assert_allclose(
            served["segment_probabilities"], expected["segment_probabilities"], rtol=0, atol=1e-6
        )
    # The folded graph holds no BatchNorm arithmetic, the unfolded one does.
    graph = (saved / "saved_model.pb").read_bytes()
    assert b"_bn_1/batchnorm/mul" not in graph
    assert b"_bn_1/batchnorm/mul" in (plain / "saved_model.pb").read_bytes()
    metadata = tf.saved_model.load(str(saved)).signatures["metadata"]()
    assert json.loads(metadata["model_config"].numpy()) == config.to_dict()
