"""A conv block whose gradient is recomputed a few segments at a time (`chunked_block`).

`tf.recompute_grad` (emotf.training.remat) recomputes a whole block at once in the backward
pass: for the audio branch's first block at batch 16 that is 160 maps of 192x120x32 (~0.47 GB
each), and its recomputation and gradient hold four of them together: the peak of the training
step. Splitting the recomputation over the batch is not possible with autodiff, since the
BatchNormalization in training couples every segment through its batch statistics. Here the
block (Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D) is one `tf.custom_gradient`: the
forward pass is the layers' own computation on the whole batch (the same ops as Keras, so the
same outputs and moving statistics), and keeps only the block's input; the backward pass
cuts the batch into `chunks` slices and recomputes the block one slice at a time (a loop that
runs them one after another), twice: a first pass sums the BatchNormalization's two gradient
reductions (d_beta = sum(dz), d_gamma = sum(dz * x_hat)), a second turns each slice's dz into
the conv's gradient with the standard formula

    dy = gamma / sqrt(var + eps) * (dz - (d_beta + x_hat * d_gamma) / M)

and accumulates the kernel's gradient (and the input's, unless nothing upstream trains). The
gradients are Keras' up to float32 rounding (sums in another order); the memory of the block's
backward pass is divided by `chunks`, for one more forward pass of the block.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["chunkable", "chunked_block", "needs_input_gradient"]


def chunkable(layers: list[keras.layers.Layer]) -> bool:
    """Whether `layers` (Conv2D, BatchNormalization, ReLU, MaxPooling2D) are the plain float32,
    channels-last, trainable block `chunked_block` computes exactly as the layers do."""
    if len(layers) != 4:
        return False
    conv, norm, relu, pool = layers
    return (
        isinstance(conv, keras.layers.Conv2D)
        and conv.rank == 2
        and conv.data_format == "channels_last"
        and conv.groups == 1
        and not conv.use_bias
        and conv.activation is keras.activations.linear
        and conv.compute_dtype == "float32"
        and conv.trainable
        and conv.output.shape[1] is not None
        and conv.output.shape[2] is not None
        and isinstance(norm, keras.layers.BatchNormalization)
        and norm.axis in (-1, 3)
        and norm.center
        and norm.scale
        and not norm.renorm
        and not norm.synchronized
        and norm.compute_dtype == "float32"
        and norm.trainable
        and isinstance(relu, keras.layers.ReLU)
        and relu.max_value is None
        and not relu.negative_slope
        and not relu.threshold
        and isinstance(pool, keras.layers.MaxPooling2D)
        and pool.data_format == "channels_last"
    )


def needs_input_gradient(layer: keras.layers.Layer) -> bool:
    """False when `layer`'s input comes from its model's Input through layers without trainable
    weights (the video stem after `video_rescale`, the first audio block): no gradient has to
    flow into it. True otherwise, or when unsure."""
    while True:
        nodes = getattr(layer, "_inbound_nodes", [])
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
            return True
        history = getattr(nodes[0].input_tensors[0], "_keras_history", None)
        if history is None:
            return True
        layer = history.operation
        if isinstance(layer, keras.layers.InputLayer):
            return False
        if layer.trainable_weights:
            return True


def chunked_block(layers: list[keras.layers.Layer], chunks: int, input_gradient: bool = True):
    """The block `layers` (`chunkable`) as a function of its input for training calls: outputs
    and moving-statistics updates as the layers compute them, the backward pass recomputed in
    `chunks` slices of the batch (module docstring). `input_gradient` False returns no
    gradient for the input (`needs_input_gradient`)."""
    conv, norm, _, pool = layers
    if chunks < 1:
        raise ValueError(f"chunks must be >= 1. Received: chunks={chunks}")
    strides, padding = tuple(conv.strides), conv.padding.upper()
    dilations = tuple(conv.dilation_rate)
    pool_size, pool_strides = tuple(pool.pool_size), tuple(pool.strides)
    pool_padding = pool.padding.upper()
    epsilon, momentum = norm.epsilon, norm.momentum
    positions = conv.output.shape[1] * conv.output.shape[2]  # per segment and channel

    def convolve(x, kernel):  # keras.src.backend.tensorflow.nn.conv
        return tf.nn.convolution(
            x, kernel, strides=strides, padding=padding, data_format="NHWC", dilations=dilations
        )

    def pooled(a):
        return tf.nn.max_pool(a, pool_size, pool_strides, pool_padding, "NHWC")

    @tf.custom_gradient
    def block(x, kernel, gamma, beta):
        y = convolve(x, kernel)
        mean, variance = tf.nn.moments(y, axes=[0, 1, 2])  # keras.ops.moments
        out = pooled(tf.nn.relu(tf.nn.batch_normalization(y, mean, variance, beta, gamma, epsilon)))

        def grad(d_out, d_mean, d_variance):
            del d_mean, d_variance  # the statistics only feed the moving averages
            return _backward(x, kernel, gamma, beta, mean, variance, d_out)

        return (out, mean, variance), grad

    def _backward(x, kernel, gamma, beta, mean, variance, d_out):
        # As tf.nn.batch_normalization computes it, so the recomputed ReLU output is the forward's.
        rstd = tf.math.rsqrt(variance + epsilon)
        scale = rstd * gamma
        shift = beta - mean * scale
        batch = tf.shape(x)[0]
        size = (batch + chunks - 1) // chunks
        count = (batch + size - 1) // size
        total = tf.cast(batch, x.dtype) * positions  # elements per channel (no int32 overflow)

        def recompute(i, taped: bool = False):
            """(input slice, its conv tape (`taped` only, else None) and output, dz, x_hat) of
            slice i."""
            x_i = x[i * size : (i + 1) * size]
            tape = None
            if taped:
                with tf.GradientTape() as tape:
                    tape.watch([x_i, kernel])
                    y_i = convolve(x_i, kernel)
            else:
                y_i = convolve(x_i, kernel)
            a_i = tf.nn.relu(y_i * scale + shift)
            d_a = tf.raw_ops.MaxPoolGrad(
                orig_input=a_i,
                orig_output=pooled(a_i),
                grad=d_out[i * size : (i + 1) * size],
                ksize=(1, *pool_size, 1),
                strides=(1, *pool_strides, 1),
                padding=pool_padding,
                data_format="NHWC",
            )
            d_z = tf.raw_ops.ReluGrad(gradients=d_a, features=a_i)
            return x_i, tape, y_i, d_z, (y_i - mean) * rstd

        def sums(i, d_beta, d_gamma):
            _, _, _, d_z, x_hat = recompute(i)
            reduce = [0, 1, 2]
            return (
                i + 1,
                d_beta + tf.reduce_sum(d_z, reduce),
                d_gamma + tf.reduce_sum(d_z * x_hat, reduce),
            )

        zeros = tf.zeros_like(mean)
        _, d_beta, d_gamma = tf.while_loop(
            lambda i, *_: i < count, sums, (0, zeros, zeros), parallel_iterations=1
        )

        def grads(i, d_kernel, d_inputs):
            x_i, tape, y_i, d_z, x_hat = recompute(i, taped=True)
            d_y = scale * (d_z - (d_beta + x_hat * d_gamma) / total)
            d_x, d_k = tape.gradient(y_i, [x_i, kernel], output_gradients=d_y)
            if input_gradient:
                d_inputs = d_inputs.write(i, d_x)
            return i + 1, d_kernel + d_k, d_inputs

        d_inputs = tf.TensorArray(x.dtype, size=count, infer_shape=False)
        _, d_kernel, d_inputs = tf.while_loop(
            lambda i, *_: i < count,
            grads,
            (0, tf.zeros_like(kernel), d_inputs),
            parallel_iterations=1,
        )
        d_x = None
        if input_gradient:
            d_x = tf.ensure_shape(d_inputs.concat(), x.shape)
        return d_x, d_kernel, d_gamma, d_beta

    def run(x):
        read = tf.convert_to_tensor
        out, mean, variance = block(
            x, read(conv.kernel.value), read(norm.gamma.value), read(norm.beta.value)
        )
        # keras.layers.BatchNormalization.call in training, with the block's statistics.
        moving_mean = keras.ops.cast(norm.moving_mean, "float32")
        moving_variance = keras.ops.cast(norm.moving_variance, "float32")
        norm.moving_mean.assign(moving_mean * momentum + tf.stop_gradient(mean) * (1.0 - momentum))
        norm.moving_variance.assign(
            moving_variance * momentum + tf.stop_gradient(variance) * (1.0 - momentum)
        )
        return out

    return run
