"""The inference twin of a trained model for export: each BatchNormalization folded into the
convolution before it (`fold_batch_norm`).

In evaluation a BatchNormalization is an affine map per channel, y = x * inv + (beta - mean *
inv) with inv = gamma / sqrt(moving_variance + epsilon) (`tf.nn.batch_normalization`). After a
Conv2D whose output feeds only that BatchNormalization, it folds into the convolution: kernel *
inv and bias (bias * inv +) beta - mean * inv. The folded Conv2D -> bias -> ReLU then runs as one
fused kernel (grappler's remapper: `_FusedConv2D`), where the unfolded graph spends a Mul and an
AddV2 over every conv output plus a separate ReLU (docs/serving.md, "Where the time goes").
Inference only: the twin has no BatchNormalization statistics to train. Results equal the
model's in evaluation up to float32 rounding (tests/test_serving_folding.py: 1e-6 on the
probabilities with non-trivial statistics).

Only float32 convolutions fold (a mixed-precision model's float16 kernel would round the folded
scale); anything else is cloned as it is, with its weights.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["FoldedBatchNorm", "fold_batch_norm", "foldable_pairs"]


class FoldedBatchNorm(keras.layers.Layer):
    """What remains of a BatchNormalization whose scale was folded into the Conv2D before it:
    `tf.nn.bias_add` of the shift (same name; one `shift` weight [C]). The Conv2D -> BiasAdd
    -> ReLU that results is what grappler fuses (and no new op enters the graph)."""

    def build(self, input_shape):
        self.shift = self.add_weight(
            name="shift", shape=(input_shape[-1],), initializer="zeros", trainable=False
        )

    def call(self, inputs, training=None, mask=None):
        del training, mask  # the BatchNormalization's call arguments, recorded in the graph
        return tf.nn.bias_add(inputs, self.shift)

    def compute_output_shape(self, input_shape):
        return input_shape


def _layers(model: keras.Model):
    """Every layer of `model`, nested models' layers included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def _producer(layer: keras.layers.Layer):
    """The layer whose output is `layer`'s only input, or None."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
        return None
    history = getattr(nodes[0].input_tensors[0], "_keras_history", None)
    return history.operation if history is not None else None


def foldable_pairs(model: keras.Model) -> list[tuple[keras.layers.Conv2D, keras.layers.Layer]]:
    """(Conv2D, the BatchNormalization folded into it) pairs: each BatchNormalization on the
    last (channel) axis whose input is a channels-last float32 Conv2D called once, whose output
    goes nowhere else. Independent branches repeat layer names: pairs are layer objects."""
    pairs = []
    for layer in _layers(model):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        conv = _producer(layer)
        if (
            isinstance(conv, keras.layers.Conv2D)
            and conv.data_format == "channels_last"
            and len(conv._inbound_nodes) == 1
            and len(conv._outbound_nodes) == 1
            and layer.axis in (-1, 3)
            and conv.compute_dtype == "float32"
            and layer.compute_dtype == "float32"
        ):
            pairs.append((conv, layer))
    return pairs


def _folded_weights(conv: keras.layers.Conv2D, norm: keras.layers.BatchNormalization):
    """(kernel * inv, bias * inv + beta - mean * inv) in float32, with inv as
    `tf.nn.batch_normalization` computes it (rsqrt(variance + epsilon) * gamma)."""
    inv = tf.math.rsqrt(norm.moving_variance + norm.epsilon)
    if norm.scale:
        inv = inv * norm.gamma
    shift = -norm.moving_mean * inv
    if norm.center:
        shift = norm.beta + shift
    if conv.use_bias:
        shift = conv.bias * inv + shift
    return (conv.kernel * inv).numpy(), shift.numpy()


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """A clone of `model` for inference with every `foldable_pairs` BatchNormalization folded
    into its Conv2D (the Conv2D's kernel takes the scale, a bias-free Conv2D; the
    BatchNormalization becomes a `FoldedBatchNorm` adding the shift). Every other layer is
    cloned with its weights. `model` itself is not changed. A model with nothing to fold is
    returned as it is."""
    found = foldable_pairs(model)
    if not found:
        return model
    pairs = {id(conv): norm for conv, norm in found}
    folded = {id(norm) for _, norm in found}

    def clone_layer(layer):
        if id(layer) in folded:
            return FoldedBatchNorm(name=layer.name)
        config = layer.get_config()
        if id(layer) in pairs:
            config["use_bias"] = False  # a bias of its own moves into the shift
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    shifts: dict = {}
    _copy_weights(model, clone, pairs, shifts)
    return clone


def _copy_weights(source: keras.Model, target: keras.Model, pairs: dict, shifts: dict) -> None:
    """Copy weights layer by layer (the clone keeps the order and names); a folded Conv2D's
    shift waits in `shifts` for its FoldedBatchNorm, which comes later in the order."""
    for old, new in zip(source.layers, target.layers, strict=True):
        if old.name != new.name:
            raise RuntimeError(f"clone order differs: {old.name} vs {new.name}")
        if isinstance(old, keras.Model):
            _copy_weights(old, new, pairs, shifts)
        elif id(old) in pairs:
            kernel, shifts[id(pairs[id(old)])] = _folded_weights(old, pairs[id(old)])
            new.set_weights([kernel])
        elif isinstance(new, FoldedBatchNorm):
            new.set_weights([shifts.pop(id(old))])
        else:
            new.set_weights(old.get_weights())
