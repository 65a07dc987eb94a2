"""Would Winograd convolutions bring serving under 50 ms? The 3x3 blocks, direct vs Winograd.

    python tools/bench_winograd.py [--repeats 10] [--rounds 3] [--segments 10]

The default model's forward pass is 9.51 GFLOPs per clip, 8.76 of them in its 3x3 conv blocks
(Conv2D 'same' -> bias -> ReLU -> 2x2 max-pool; BatchNorm is folded into the conv at export),
and the large matmul of this CPU caps it at ~52 ms (docs/serving.md). Winograd F(2x2, 3x3)
computes each 2x2 output tile from a 4x4 input tile with 16 multiplies per channel pair
instead of 36 (2.25x fewer), exact up to float32 rounding; its 2x2 output tile is also exactly
the 2x2 max-pool window, so the pool becomes an elementwise max of the four outputs.

For every 3x3 block of `ModelConfig()` (its input size and widths, `--segments` segments: one
clip at batch 1) this times, alternated in one process, the best of `--rounds` medians of
`--repeats` calls each:

    direct     tf.nn.conv2d + bias_add + relu + max_pool2d (grappler's fused conv, as served)
    winograd   the input transform (strided slices and adds), one BatchMatMul of 16 matrices
               [tiles, C_in] x [C_in, C_out], the output transform fused with the pool, bias, ReLU
    matmul     that BatchMatMul alone: what Winograd would cost with free transforms

and checks that winograd equals direct (relative error printed). Only core TensorFlow ops, as
a SavedModel must use (no custom kernel). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as emotf-predict serves

import numpy as np
import tensorflow as tf

# F(2x2, 3x3) (Lavin and Gray, 2016): Y = A^T [(G g G^T) * (B^T d B)] A.
KERNEL_TRANSFORM = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def winograd_kernel(kernel: np.ndarray) -> np.ndarray:
    """[3, 3, C_in, C_out] -> the 16 transformed matrices [16, C_in, C_out] (G g G^T)."""
    g = KERNEL_TRANSFORM
    u = np.einsum("ai,ijck,bj->abck", g, kernel.astype(np.float64), g)
    return u.reshape(16, kernel.shape[2], kernel.shape[3]).astype(np.float32)


def direct_block(x, kernel, bias):
    """What the served graph runs: conv 'same' + bias + ReLU (fused), then a 2x2 max-pool."""
    y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))
    return tf.nn.max_pool2d(y, 2, 2, "VALID")


def _input_transform(x):
    """B^T d B on every 4x4 tile (stride 2) of x padded by one: [16, tiles, C]."""
    size = tf.shape(x)
    tiles_h, tiles_w = size[1] // 2, size[2] // 2
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    d = [padded[:, j : j + 2 * tiles_h : 2] for j in range(4)]
    rows = [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
    v = []
    for r in rows:
        e = [r[:, :, j : j + 2 * tiles_w : 2] for j in range(4)]
        v += [e[0] - e[2], e[1] + e[2], e[2] - e[1], e[1] - e[3]]
    return tf.reshape(tf.stack(v), [16, -1, x.shape[-1]]), tiles_h, tiles_w


def winograd_block(x, transformed_kernel, bias):
    """`direct_block` by Winograd F(2x2, 3x3): the max-pool is the max of each output tile
    (pool windows and output tiles coincide; an odd last row or column is dropped by both)."""
    v, tiles_h, tiles_w = _input_transform(x)
    m = tf.unstack(tf.matmul(v, transformed_kernel))
    rows = [
        [m[j] + m[4 + j] + m[8 + j] for j in range(4)],
        [m[4 + j] - m[8 + j] - m[12 + j] for j in range(4)],
    ]
    y = [o for r in rows for o in (r[0] + r[1] + r[2], r[1] - r[2] - r[3])]
    pooled = tf.maximum(tf.maximum(y[0], y[1]), tf.maximum(y[2], y[3]))
    out = tf.nn.relu(tf.nn.bias_add(pooled, bias))
    return tf.reshape(out, [tf.shape(x)[0], tiles_h, tiles_w, transformed_kernel.shape[-1]])


def blocks_of_default_model() -> dict[str, tuple[int, int, int, int]]:
    """{block: (height, width, C_in, C_out)} of every 3x3 block of `ModelConfig()` whose input
    has more than one channel (the audio branch's first block, C_in = 1, is no matmul)."""
    from emotf.configs import ModelConfig

    config = ModelConfig()
    blocks = {}
    size, channels = config.frame_size // 4, config.video_stem_width  # after the strided stem
    for i, width in enumerate(config.video_widths):
        blocks[f"video_block{i + 1}"] = (size, size, channels, width)
        size, channels = size // 2, width
    (height, width_), channels = config.spectrogram_shape, 1
    for i, width in enumerate(config.audio_widths):
        if channels > 1:
            blocks[f"audio_block{i + 1}"] = (height, width_, channels, width)
        height, width_, channels = height // 2, width_ // 2, width
    return blocks


def _median_ms(function, args, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_block(shape, segments: int, repeats: int, rounds: int, seed: int = 0) -> dict:
    height, width, c_in, c_out = shape
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.standard_normal((segments, height, width, c_in)).astype(np.float32))
    kernel = (rng.standard_normal((3, 3, c_in, c_out)) / np.sqrt(9 * c_in)).astype(np.float32)
    bias = tf.constant((rng.standard_normal(c_out) * 0.1).astype(np.float32))
    transformed = tf.constant(winograd_kernel(kernel))
    v = tf.constant(rng.standard_normal((16, segments * (height // 2) * (width // 2), c_in)))
    v = tf.cast(v, tf.float32)
    functions = {
        "direct": (tf.function(direct_block), (x, tf.constant(kernel), bias)),
        "winograd": (tf.function(winograd_block), (x, transformed, bias)),
        "matmul": (tf.function(tf.matmul), (v, transformed)),
    }
    reference = functions["direct"][0](*functions["direct"][1]).numpy()
    got = functions["winograd"][0](*functions["winograd"][1]).numpy()
    relative_error = float(np.abs(reference - got).max() / np.abs(reference).max())
    best = {name: float("inf") for name in functions}
    for _ in range(rounds):
        for name, (function, args) in functions.items():
            function(*args)  # warm-up (and tracing, the first time)
            best[name] = min(best[name], _median_ms(function, args, repeats))
    ms = {name: round(value, 2) for name, value in best.items()}
    return {
        "shape": list(shape),
        "ms": ms,
        "winograd_ratio": round(best["winograd"] / best["direct"], 2),
        "matmul_ratio": round(best["matmul"] / best["direct"], 2),
        "relative_error": float(f"{relative_error:.2g}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="calls per median")
    parser.add_argument("--rounds", type=int, default=3, help="medians per function (best kept)")
    parser.add_argument("--segments", type=int, default=10, help="segments per call (N)")
    args = parser.parse_args()
    load = [round(x, 2) for x in os.getloadavg()]
    rows = {}
    for name, shape in blocks_of_default_model().items():
        rows[name] = row = bench_block(shape, args.segments, args.repeats, args.rounds)
        h, w, c_in, c_out = shape
        print(
            f"{name:13s} {h}x{w} {c_in}->{c_out}: direct {row['ms']['direct']:6.2f} ms  "
            f"winograd {row['ms']['winograd']:6.2f} ms ({row['winograd_ratio']:.2f}x)  "
            f"its matmul alone {row['ms']['matmul']:6.2f} ms ({row['matmul_ratio']:.2f}x)  "
            f"relative error {row['relative_error']:.1e}",
            flush=True,
        )
    totals = {
        k: round(sum(r["ms"][k] for r in rows.values()), 2)
        for k in ("direct", "winograd", "matmul")
    }
    print(
        f"total: direct {totals['direct']} ms, winograd {totals['winograd']} ms, "
        f"its matmuls alone {totals['matmul']} ms"
    )
    print(
        json.dumps(
            {
                "tensorflow": tf.__version__,
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                "segments": args.segments,
                "load_before": load,
                "load_after": [round(x, 2) for x in os.getloadavg()],
                "blocks": rows,
                "totals_ms": totals,
            }
        )
    )


if __name__ == "__main__":
    main()
