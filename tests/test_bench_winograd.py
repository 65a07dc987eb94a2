"""tools/bench_winograd.py: its Winograd block is the served conv block, on the model's shapes."""

import keras
import numpy as np
import pytest

from tests.helpers_tools import load_tool


@pytest.fixture(scope="module")
def bench():
    return load_tool("bench_winograd")


@pytest.mark.parametrize("shape", [(8, 6, 3, 5), (7, 9, 4, 2), (5, 5, 1, 3), (2, 3, 2, 2)])
def test_winograd_equals_the_direct_block(bench, shape):
    """Even and odd sizes (max-pool 'VALID' drops the last odd row/column, as the tiles do)."""
    height, width, c_in, c_out = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, height, width, c_in)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, c_in, c_out)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    direct = bench.direct_block(x, kernel, bias).numpy()
    winograd = bench.winograd_block(x, bench.winograd_kernel(kernel), bias).numpy()
    assert winograd.shape == direct.shape == (2, height // 2, width // 2, c_out)
    np.testing.assert_allclose(winograd, direct, rtol=1e-5, atol=1e-5)


def test_a_wrong_transform_would_show(bench):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
    bias = np.zeros(3, np.float32)
    flipped = bench.winograd_kernel(kernel[::-1])  # convolution instead of correlation
    direct = bench.direct_block(x, kernel, bias).numpy()
    assert np.abs(bench.winograd_block(x, flipped, bias).numpy() - direct).max() > 1e-2


def test_the_benchmarked_blocks_are_the_default_models(bench):
    """Every 3x3 conv of the default core with more than one input channel, at its input
    size and widths."""
    from emotf.configs import ModelConfig
    from emotf.model import build_core

    core = build_core(ModelConfig())
    convs = {
        layer.name.removesuffix("_conv"): layer
        for layer in core.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3)
    }
    expected = {}
    for name, conv in convs.items():
        _, height, width, c_in = conv.input.shape
        if c_in > 1:
            expected[name] = (height, width, c_in, conv.filters)
    assert bench.blocks_of_default_model() == expected
    assert set(expected) == {
        "video_block1",
        "video_block2",
        "video_block3",
        "audio_block2",
        "audio_block3",
        "audio_block4",
    }
