"""Rematerialisation (`emotf.training.remat`): the same training, nothing of the model changed."""

import json

import keras
import numpy as np
import pytest

from emotf.configs import REMAT_CHOICES, TrainConfig, TrainerConfig
from emotf.model import training_model
from emotf.training import remat
from emotf.training.remat import apply_remat, resolve_remat
from tests.test_model import tiny_config, tiny_inputs, tiny_model


def _train(config, mode: str, steps: int = 3, chunks: int = 1):
    """(losses, every weight of the model after `steps` steps, the trainer, the model)."""
    keras.utils.set_random_seed(0)
    model = tiny_model(config)
    trainer = training_model(model)
    paths = apply_remat(trainer, mode, chunks)
    trainer.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    x = tiny_inputs(config, batch=4, seed=1)
    y = np.array([0, 1, 2, 3], dtype="int32")
    losses = [float(trainer.train_on_batch(x, y)) for _ in range(steps)]
    return losses, [v.numpy() for v in model.weights], trainer, model, paths


# Each mode once, each branch layout once (the four pairs cost ~1 min of the suite).
@pytest.mark.parametrize(("mode", "branch_weights"), [("large", "shared"), ("all", "independent")])
def test_remat_trains_exactly_as_without(branch_weights, mode):
    # Independent branches: two cores are enough (each core is a copy).
    segments = 3 if branch_weights == "shared" else 2
    config = tiny_config(branch_weights=branch_weights, dropout=0.5, num_segments=segments)
    base_losses, base_weights, _, _, none_paths = _train(config, "none")
    losses, weights, _, _, paths = _train(config, mode)
    assert none_paths == []
    cores = 1 if branch_weights == "shared" else config.num_segments
    # The tiny model has one video block after the stem and two audio blocks: large = all here.
    assert len(paths) == cores * 4
    np.testing.assert_allclose(losses, base_losses, rtol=1e-6, atol=1e-7)
    # Every weight, the BatchNorm moving statistics included (updated once per step).
    for got, want in zip(weights, base_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# 3 slices of a batch of 4 x N segments (shared) or of 4 (independent): uneven slices.
@pytest.mark.parametrize(("mode", "branch_weights"), [("large", "shared"), ("all", "independent")])
def test_chunked_remat_trains_as_without(branch_weights, mode):
    segments = 3 if branch_weights == "shared" else 2
    config = tiny_config(branch_weights=branch_weights, dropout=0.5, num_segments=segments)
    base_losses, base_weights, _, _, _ = _train(config, "none")
    losses, weights, _, _, paths = _train(config, mode, chunks=3)
    assert len(paths) == (1 if branch_weights == "shared" else config.num_segments) * 4
    np.testing.assert_allclose(losses, base_losses, rtol=1e-5, atol=1e-6)
    for got, want in zip(weights, base_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_chunked_blocks_are_the_large_ones_and_a_frozen_block_is_not(monkeypatch):
    made = []
    chunked = remat.chunked_block
    monkeypatch.setattr(
        remat,
        "chunked_block",
        lambda layers, chunks, grad: (
            made.append((layers[0].name, grad)) or chunked(layers, chunks, grad)
        ),
    )
    config = tiny_config()
    model = tiny_model(config)
    model.get_layer("core").get_layer("audio_block2_bn").trainable = False
    trainer = training_model(model)
    apply_remat(trainer, "large", chunks=2)
    trainer.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy())
    trainer.train_on_batch(tiny_inputs(config, batch=2, seed=1), np.array([0, 1], "int32"))
    # The first block of each branch needs no input gradient; the frozen one runs unchunked.
    assert sorted(set(made)) == [
        ("audio_block1_conv", False),
        ("video_block1_conv", True),
        ("video_stem_conv", False),
    ]


def test_an_xla_step_recomputes_whole_blocks(monkeypatch):
    """XLA cannot compile the loop over slices: a jit-compiled step falls back, and trains."""
    made = []
    monkeypatch.setattr(remat, "chunked_block", lambda *a: made.append(a))
    config = tiny_config()
    model = tiny_model(config)
    trainer = training_model(model)
    assert len(apply_remat(trainer, "large", chunks=3, jit_compile=True)) == 4
    trainer.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(), jit_compile=True
    )
    loss = trainer.train_on_batch(tiny_inputs(config, batch=2, seed=1), np.array([0, 1], "int32"))
    assert np.isfinite(float(loss)) and made == []


def test_blocks_are_recomputed_in_the_backward_pass(monkeypatch):
    calls = []
    chain = remat._chain
    monkeypatch.setattr(
        remat, "_chain", lambda layers, x: calls.append(layers[0].name) or chain(layers, x)
    )
    _train(tiny_config(), "large", steps=1)
    # Each traced training step runs every block twice: forward, then recomputed for its gradient.
    assert calls and all(calls.count(name) % 2 == 0 for name in set(calls))
    assert set(calls) == {
        "video_stem_conv",
        "video_block1_conv",
        "audio_block1_conv",
        "audio_block2_conv",
    }


def test_large_keeps_the_first_two_blocks_of_each_branch():
    config = tiny_config(video_widths=(8, 8, 8), audio_widths=(4, 4, 4))
    core = tiny_model(config).get_layer("core")
    assert list(remat.chosen_blocks(core, "large")) == [
        "video_stem",
        "video_block1",
        "audio_block1",
        "audio_block2",
    ]
    assert len(remat.chosen_blocks(core, "all")) == 7
    assert remat.chosen_blocks(core, "none") == {}


def test_model_trained_with_remat_saves_loads_and_predicts_as_without(tmp_path):
    config = tiny_config()
    _, _, trainer, model, _ = _train(config, "all", steps=1)
    x = tiny_inputs(config, batch=2, seed=3)
    want = model(x, training=False)["scores"].numpy()
    # The saved model holds no trace of remat: it loads and predicts as a plain one.
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(x, training=False)["scores"].numpy(), want)
    assert "remat" not in json.dumps(loaded.get_config())
    assert type(loaded.get_layer("core")) is type(tiny_model(config).get_layer("core"))
    # The training view's weights file loads into a view built without remat.
    trainer.save_weights(tmp_path / "t.weights.h5")
    fresh = tiny_model(config)
    training_model(fresh).load_weights(tmp_path / "t.weights.h5")
    np.testing.assert_array_equal(fresh(x, training=False)["scores"].numpy(), want)


def test_auto_is_large_on_a_cpu_short_of_memory_and_choices_are_bounded():
    assert resolve_remat("auto", memory=4 * 2**30) == "large"
    assert resolve_remat("auto", memory=64 * 2**30) == "none"
    assert resolve_remat("auto") in ("large", "none")  # this machine's available memory
    assert resolve_remat("none", memory=1) == "none"
    assert resolve_remat("all", memory=64 * 2**30) == "all"
    assert TrainConfig().remat == TrainerConfig().remat == "auto"
    assert REMAT_CHOICES == ("auto", "none", "large", "all")
    with pytest.raises(ValueError, match="remat"):
        TrainerConfig(remat="some")
    with pytest.raises(ValueError, match="remat"):
        resolve_remat("some")
