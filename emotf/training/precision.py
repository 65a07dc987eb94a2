"""Mixed-precision policy, set only inside training entry points (never at import).

`auto` means `mixed_float16` when TensorFlow sees a GPU and `float32` on the CPU (float16
compute is slow on CPUs). `mixed_bfloat16` is selectable (CPUs with AVX512-BF16, TPUs,
Ampere+ GPUs). Under a mixed policy, variables stay float32 and layers compute in the low
precision; the emotf model keeps its classifier and outputs in float32, and Keras 3 wraps the
optimizer in a `LossScaleOptimizer` for `mixed_float16` by itself.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from emotf.configs import PRECISIONS

# `jit_compile` (XLA) of the training step by default, per device kind: on only where measured
# faster (tools/bench_gpu.py; docs/training.md). CPU: measured slower on the 2-core machine.
# GPU: not measured yet, so off until tools/bench_gpu.py says otherwise.
JIT_COMPILE_DEFAULTS = {"CPU": False, "GPU": False}


def resolve_precision(precision: str = "auto") -> str:
    """`auto` -> `mixed_float16` if a GPU is visible, else `float32`; other names pass through."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS}. Received: precision={precision!r}"
        )
    if precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return precision


def resolve_jit_compile(jit_compile: bool | None = None) -> bool:
    """`None` -> the measured default of the device present (`JIT_COMPILE_DEFAULTS`)."""
    if jit_compile is None:
        kind = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
        return JIT_COMPILE_DEFAULTS[kind]
    if not isinstance(jit_compile, bool):
        raise TypeError(
            f"jit_compile must be True, False or None. Received: jit_compile={jit_compile!r}"
        )
    return jit_compile


@contextlib.contextmanager
def precision_policy(precision: str = "auto"):
    """Set the global Keras dtype policy for the duration of the block; restore it afterwards.

    Yields the resolved policy name. Build the model inside the block.
    """
    name = resolve_precision(precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield name
    finally:
        keras.mixed_precision.set_global_policy(previous)
