"""Rematerialisation of the training step: recompute a core's conv blocks in the backward pass.

Training the default model at batch 16 holds the activations of B*N = 160 segments: the video
stem's 112x112x32 and the audio branch's first 192x120x32 feature maps alone take ~0.25 and
~0.47 GB per tensor, and a block (Conv -> BatchNorm -> ReLU -> MaxPool) keeps three of them for
its gradient. With remat on, each chosen block keeps only its input (a quarter of the size, or
less) and recomputes the rest when its gradient is taken (`tf.recompute_grad`): the same
gradients, one more forward pass of those blocks (docs/training.md, "Memory").

`TrainerConfig.remat` chooses the blocks (`REMAT_CHOICES`): `none`; `large` (the first two
blocks of each branch: the video stem and first block, the audio branch's first two blocks,
where most of the activation memory is); `all` (every conv block); `auto`, the default:
`large` on a CPU whose available memory is under `REMAT_BELOW_BYTES` (8 GiB: host memory holds
the activations, and the default model at batch 16 peaks ~5.9 GB without remat), else `none`
(a GPU, or a CPU with room: remat only costs time).

`TrainerConfig.remat_chunks` (default 16): a chosen block that is `chunkable` (float32, trainable,
the plain Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D) runs as
`emotf.training.chunked_block`, whose backward pass recomputes the block over that many slices
of the batch, one after another: without it the recomputation of the audio branch's first
block still holds ~4 of its 0.47 GB maps at once. With `large` and 16 slices, `emotf-train` of
the default model at batch 16 peaks at ~3.2 GB instead of ~5.0 GB (1 slice) or ~5.9 GB (no
remat), for a ~1.2x slower step; the gradients are those of `none` up to float32 rounding
(docs/training.md, "Memory"). Other blocks (mixed precision, frozen) are recomputed whole.

Nothing of the model changes: `apply_remat` gives the training view's cores a training-only
way to run (`training=True` calls); inference calls, saving, the weights' file layout, export
and LiteRT conversion are those of a model without remat. In the recomputation the BatchNorm
layers run in a `keras.StatelessScope` (or, chunked, do not run as layers at all), so their
moving statistics are updated once per step, as without remat.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import tree

from emotf.configs import REMAT_CHOICES
from emotf.model import CONV_BLOCK_PARTS
from emotf.system import available_memory
from emotf.training.chunked_block import chunkable, chunked_block, needs_input_gradient

# `auto` on a CPU: remat where the activations would crowd host memory.
REMAT_BELOW_BYTES = 8 * 2**30
# Blocks of each branch that `large` recomputes (in build order: `video_stem`,
# `video_block1`; `audio_block1`, `audio_block2`).
LARGE_BLOCKS = 2


def resolve_remat(remat: str = "auto", memory: int | None = None) -> str:
    """`auto` -> `none` on a GPU; on a CPU `large` when `memory` (default: the host's available
    memory, `emotf.system.available_memory`; unknown counts as short) is under
    `REMAT_BELOW_BYTES`, else `none`. Other choices pass through."""
    if remat not in REMAT_CHOICES:
        raise ValueError(f"remat must be one of {REMAT_CHOICES}. Received: remat={remat!r}")
    if remat != "auto":
        return remat
    if tf.config.list_physical_devices("GPU"):
        return "none"
    memory = available_memory() if memory is None else memory
    return "large" if memory is None or memory < REMAT_BELOW_BYTES else "none"


def conv_blocks(core: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """{block name: its layers in order (`CONV_BLOCK_PARTS`)} of a core, in build order."""
    blocks: dict[str, list[keras.layers.Layer]] = {}
    names = {layer.name: layer for layer in core.layers}
    for layer in core.layers:
        block, _, part = layer.name.rpartition("_")
        if part == CONV_BLOCK_PARTS[0] and all(f"{block}_{p}" in names for p in CONV_BLOCK_PARTS):
            blocks[block] = [names[f"{block}_{p}"] for p in CONV_BLOCK_PARTS]
    return blocks


def chosen_blocks(core: keras.Model, remat: str) -> dict[str, list[keras.layers.Layer]]:
    """The blocks of `core` that `remat` (resolved: none, large or all) recomputes."""
    blocks = conv_blocks(core)
    if remat == "all":
        return blocks
    if remat == "large":
        chosen = {}
        for prefix in ("video_", "audio_"):
            names = [name for name in blocks if name.startswith(prefix)]
            chosen.update({name: blocks[name] for name in names[:LARGE_BLOCKS]})
        return chosen
    return {}


def _cores(model: keras.Model) -> list[keras.Model]:
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def apply_remat(
    model: keras.Model, remat: str = "auto", chunks: int = 1, jit_compile: bool = False
) -> list[str]:
    """Recompute the chosen conv blocks of every core of `model` (the clip model or its
    training view) in the backward pass of training calls; with `chunks` > 1 each block that
    is `chunkable` is recomputed that many slices of the batch at a time
    (`emotf.training.chunked_block`), unless the step is XLA-compiled (`jit_compile`: XLA
    cannot compile the loop over slices of a dynamic size; the blocks are then recomputed
    whole). Returns the blocks' paths (`core/video_stem`, ...; [] for `none`). Calls with
    `training` false are unchanged."""
    remat = resolve_remat(remat)
    if chunks < 1:
        raise ValueError(f"remat chunks must be >= 1. Received: chunks={chunks}")
    if jit_compile:
        chunks = 1
    paths = []
    for core in _cores(model):
        blocks = chosen_blocks(core, remat)
        if blocks:
            _install(core, blocks, chunks)
            paths += [f"{core.name}/{name}" for name in blocks]
    return paths


def _install(core: keras.Model, blocks: dict[str, list[keras.layers.Layer]], chunks: int) -> None:
    original = getattr(core, "_emotf_original_call", core.call)
    functions = {name: _block_function(layers, chunks) for name, layers in blocks.items()}

    def call(inputs, training=None, mask=None, **kwargs):
        masked = any(m is not None for m in tree.flatten(mask)) if mask is not None else False
        if not training or masked or kwargs:
            return original(inputs, training=training, mask=mask, **kwargs)
        return _run_with_remat(core, inputs, blocks, functions)

    # An instance attribute (not tracked by Keras, not saved): `Layer.__call__` calls it.
    object.__setattr__(core, "_emotf_original_call", original)
    object.__setattr__(core, "call", call)


def _block_function(layers: list[keras.layers.Layer], chunks: int = 1):
    """A factory of the block as one function of its input: `chunked_block` when `chunks` > 1
    and the block is `chunkable`, else `_recomputed`."""
    if chunks > 1 and chunkable(layers):
        return lambda: chunked_block(layers, chunks, needs_input_gradient(layers[0]))
    return lambda: _recomputed(layers)


def _recomputed(layers: list[keras.layers.Layer]):
    """The block as one function of its input, for `tf.recompute_grad`: its first call is the
    forward pass; later calls (the recomputation in the backward pass) update no variable."""
    calls = [0]

    def run(x):
        calls[0] += 1
        if calls[0] == 1:
            return _chain(layers, x)
        with keras.StatelessScope():  # the BatchNorm statistics were updated in the forward
            return _chain(layers, x)

    return tf.recompute_grad(run)


def _chain(layers: list[keras.layers.Layer], x):
    for layer in layers:
        # The backward pass runs outside the core's call context: training is passed on.
        x = layer(x, training=True) if layer._call_has_training_arg else layer(x)
    return x


def _run_with_remat(
    core: keras.Model, inputs, blocks: dict[str, list[keras.layers.Layer]], functions: dict
):
    """`core`'s graph in training, each block of `blocks` as one recomputed function (made
    anew by its factory in `functions` for each call) (`keras.src.ops.function.Function.
    _run_through_graph`, with blocks)."""
    first = {id(layers[0]): (name, layers) for name, layers in blocks.items()}
    inside = {id(layer) for layers in blocks.values() for layer in layers[1:]}
    values = {
        id(x): y
        for x, y in zip(core.inputs, tree.flatten(core._standardize_inputs(inputs)), strict=True)
    }
    for depth in sorted(core._nodes_by_depth, reverse=True):
        for node in core._nodes_by_depth[depth]:
            op = node.operation
            if not op or node.is_input or id(op) in inside:
                continue
            if any(id(x) not in values for x in node.input_tensors):
                continue
            args, kwargs = node.arguments.fill_in(values)
            if id(op) in first:
                name, layers = first[id(op)]
                outputs = functions[name]()(args[0])
                out_tensors = layers[-1]._inbound_nodes[0].output_tensors
            else:
                if getattr(op, "_call_has_training_arg", False):
                    kwargs["training"] = True
                outputs = op(*args, **kwargs)
                out_tensors = node.outputs
            for x, y in zip(out_tensors, tree.flatten(outputs), strict=True):
                values[id(x)] = y
    outputs = [values[id(x)] for x in core.outputs]
    return outputs[0] if len(outputs) == 1 else tree.pack_sequence_as(core._outputs_struct, outputs)
