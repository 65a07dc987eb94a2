"""Training throughput of the full-size N=10 model, in float32 and mixed precision, in one run.

    python tools/bench_train.py [--precisions float32,mixed_bfloat16] [--steps 3] [--warmup 2]
                                [--jit-compile false,true]

Random inputs (uint8 frames [16, 10, 224, 224, 3], float32 audio windows [16, 10, 20480]: the
model computes the spectrograms), `--jit-compile` compiles the training step with XLA,
SGD momentum 0.9, batch 16: times `train_on_batch` after `--warmup` untimed steps (graph
tracing and first-call costs excluded). Prints the analytic FLOPs per clip and, last, one JSON
line with every figure. On a GPU, add mixed_float16 to --precisions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from emotf.configs import ModelConfig
from emotf.model import build_model, count_flops, model_sampling, training_model
from emotf.training.precision import precision_policy  # noqa: E402


def bench(
    config: ModelConfig,
    precision: str,
    batch: int,
    steps: int,
    warmup: int,
    jit_compile: bool = False,
) -> dict:
    rng = np.random.default_rng(0)
    n, s = config.num_segments, config.frame_size
    length = model_sampling(config).window_length
    x = {
        "frames": tf.constant(rng.integers(0, 256, (batch, n, s, s, 3), dtype=np.uint8)),
        "audio": tf.constant(rng.normal(0, 0.1, (batch, n, length)).astype("float32")),
    }
    y = tf.constant(rng.integers(0, config.output_classes, batch).astype("int32"))
    keras.utils.set_random_seed(0)
    with precision_policy(precision) as policy:
        model = build_model(config)
        trainer = training_model(model)
        trainer.compile(
            optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            jit_compile=jit_compile,
        )
        for _ in range(warmup):
            trainer.train_on_batch(x, y)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            trainer.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
    step_s = float(np.median(times))
    return {
        "precision": policy,
        "jit_compile": jit_compile,
        "step_s_median": round(step_s, 3),
        "step_s_all": [round(v, 3) for v in times],
        "clips_per_s": round(batch / step_s, 3),
        "segments_per_s": round(batch * n / step_s, 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--num-segments", type=int, default=10)
    parser.add_argument("--jit-compile", default="false", help="false, true or false,true")
    args = parser.parse_args(argv)

    config = ModelConfig(num_segments=args.num_segments)
    flops = count_flops(config)
    params = build_model(config).count_params()
    print(f"model: {config.to_dict()}")
    print(f"parameters: {params:,}")
    print(
        f"FLOPs per clip (N={config.num_segments}): forward {flops['per_clip'] / 1e9:.2f} G, "
        f"training step ~{flops['per_clip_train'] / 1e9:.1f} G (3x forward); "
        f"per segment forward {flops['per_segment'] / 1e9:.3f} G"
    )
    results = []
    jits = [v.strip().lower() == "true" for v in args.jit_compile.split(",")]
    for precision, jit in [(p, j) for p in args.precisions.split(",") for j in jits]:
        r = bench(config, precision, args.batch_size, args.steps, args.warmup, jit)
        achieved = flops["per_clip_train"] * r["clips_per_s"] / 1e9
        r["achieved_gflops_per_s"] = round(achieved, 1)
        print(
            f"{r['precision']:>15} jit={jit!s:5}: {r['clips_per_s']:.2f} clips/s "
            f"({r['step_s_median']:.2f} s per batch of {args.batch_size}; ~{achieved:.0f} GFLOP/s)"
        )
        results.append(r)
    print(
        json.dumps(
            {
                "batch_size": args.batch_size,
                "num_segments": config.num_segments,
                "parameters": params,
                "flops_per_clip_forward": flops["per_clip"],
                "flops_per_clip_train": flops["per_clip_train"],
                "results": results,
                "cpu_count": os.cpu_count(),
                "machine": platform.machine(),
                "devices": [d.name for d in tf.config.list_logical_devices()],
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
