"""Twin-branch audio-visual Keras model: one core network per temporal segment, summed softmaxes.

The audio input is raw windows (float32 [B, N, L]); the model's first audio layer,
`LogMelSpectrogram`, computes their log-mel spectrograms with `emotf.sampling.spectrogram` (the
one implementation, in float32 also under mixed precision), and `SpecAugment` masks them in
training when `ModelConfig.spec_augment` is on.

A *core* network sees one segment: a face frame (uint8 [S, S, 3]) and a spectrogram
(float32 [T, F, 1]). Per modality it stacks Conv -> BatchNorm -> ReLU -> MaxPool blocks, pools
globally, concatenates the two feature vectors, applies dropout, one fully connected layer and a
softmax over the classes. The clip model applies N cores, one per segment (twin branches), and
sums their softmax vectors.

Shared weights (the default, as in Temporal Segment Networks) fold the N segments into the
batch axis and call the one core once on B*N segments: the same computation as N twin branches
with tied weights, in one large call (BatchNorm statistics are taken over the B*N segments).
Independent weights build N cores `core_00`, `core_01`, ... each called on its own segment.

Outputs (all float32, also under mixed precision):
    `probabilities`          [B, C]    mean of the N segment softmaxes: train on this with sparse
                                       cross-entropy (the raw sum exceeds 1, and Keras clips
                                       probabilities to [eps, 1 - eps] before the log, which
                                       kills the gradient); same argmax as the sum.
    `scores`                 [B, C]    the sum of the N segment softmaxes (the paper's clip score).
    `segment_probabilities`  [B, N, C] the per-segment softmaxes.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from emotf.configs import ModelConfig, SamplingConfig, model_sampling
from emotf.sampling import spectrogram, spectrogram_masks

# === Segment layers (serialisable, so saved models reload without custom code paths) ===


@keras.saving.register_keras_serializable(package="emotf")
class MergeSegments(keras.layers.Layer):
    """[B, N, *S] -> [B*N, *S]: fold the segment axis into the batch axis."""

    def call(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (-1,) + tuple(shape[2:]))

    def compute_output_shape(self, input_shape):
        batch = (
            None
            if input_shape[0] is None or input_shape[1] is None
            else input_shape[0] * input_shape[1]
        )
        return (batch,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="emotf")
class SplitSegments(keras.layers.Layer):
    """[B*N, C] -> [B, N, C]."""

    def __init__(self, num_segments: int, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = num_segments

    def call(self, x):
        return ops.reshape(x, (-1, self.num_segments, ops.shape(x)[-1]))

    def compute_output_shape(self, input_shape):
        return (None, self.num_segments, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments}


@keras.saving.register_keras_serializable(package="emotf")
class SelectSegment(keras.layers.Layer):
    """[B, N, *S] -> [B, *S]: segment `index` (the input of branch `index`)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="emotf")
class SegmentConsensus(keras.layers.Layer):
    """[B, N, C] -> [B, C]: `sum` (the paper's clip score) or `mean` (what the loss sees)."""

    def __init__(self, reduction: str = "sum", **kwargs):
        super().__init__(**kwargs)
        if reduction not in ("sum", "mean"):
            raise ValueError(
                f"reduction must be 'sum' or 'mean'. Received: reduction={reduction!r}"
            )
        self.reduction = reduction

    def call(self, x):
        return ops.sum(x, axis=1) if self.reduction == "sum" else ops.mean(x, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}


@keras.saving.register_keras_serializable(package="emotf")
class LogMelSpectrogram(keras.layers.Layer):
    """[B, N, L] float32 audio windows -> [B, N, T, F, 1] float32 log-mel spectrograms.

    Calls `emotf.sampling.spectrogram(windows, sampling, mel="dense")` (the documented STFT,
    mel, log and per-window normalisation; the dense mel product compiles under XLA). Always
    float32, also under a mixed-precision policy. No weights.
    """

    def __init__(self, sampling, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.sampling = (
            SamplingConfig.from_dict(sampling) if isinstance(sampling, dict) else sampling
        )

    def call(self, audio):
        c = self.sampling
        audio = tf.cast(audio, tf.float32)
        spec = spectrogram(tf.reshape(audio, [-1, c.window_length]), c, mel="dense")
        return tf.reshape(spec, [-1, tf.shape(audio)[1], c.time_bins, c.freq_bins, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.sampling.time_bins, self.sampling.freq_bins, 1)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {**config, "sampling": self.sampling.to_dict()}


@keras.saving.register_keras_serializable(package="emotf")
class SpecAugment(keras.layers.Layer):
    """Training-only masks on [B, N, T, F, 1] spectrograms (`emotf.sampling.spectrogram_masks`).

    Each call in training draws a seed [2] from a `keras.random.SeedGenerator` (seeded by
    `seed`, or by `keras.utils.set_random_seed`) and masks with stateless ops; the identity
    otherwise. Float32, like its input.
    """

    def __init__(self, max_time_mask: int = 24, max_freq_mask: int = 16, seed=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.max_time_mask, self.max_freq_mask, self.seed = max_time_mask, max_freq_mask, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, spec, training=None):
        if not training:
            return spec
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        shape = tf.shape(spec)
        flat = tf.reshape(spec, tf.concat([[-1], shape[2:]], 0))
        masked = spectrogram_masks(flat, seed, self.max_time_mask, self.max_freq_mask)
        return tf.reshape(masked, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {
            **config,
            "max_time_mask": self.max_time_mask,
            "max_freq_mask": self.max_freq_mask,
            "seed": self.seed,
        }


# === Core network (one segment) ===

# The layer groups of a core (`build_core` names every layer of a branch with its prefix):
# the video branch (`video_rescale`, `video_stem_*`, `video_block<i>_*`, `video_gap`), the audio
# branch (`audio_block<i>_*`, `audio_gap`); then the fusion (`fusion`, `dropout`, `fc`) and the
# classifier (`classifier`, `softmax`).
BRANCH_PREFIXES = {"video": "video_", "audio": "audio_"}
CLASSIFIER = "classifier"
# The layers of one conv block `<name>`, in order: `<name>_conv`, `<name>_bn`, ...
CONV_BLOCK_PARTS = ("conv", "bn", "relu", "pool")


def _conv_block(x, width: int, name: str, *, kernel: int = 3, strides: int = 1):
    x = keras.layers.Conv2D(
        width, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def build_core(config: ModelConfig, name: str = "core") -> keras.Model:
    """The core audio-visual network for one segment.

    Inputs (dict, only the modalities in use): `frame` uint8 [S, S, 3] with S = frame_size
    (rescaled to [0, 1] inside), `spectrogram` float32 [T, F, 1].
    Output: float32 [C] softmax (the classifier runs in float32 under mixed precision).
    """
    inputs, features = {}, []
    if config.uses_video:
        frame = keras.Input((config.frame_size, config.frame_size, 3), dtype="uint8", name="frame")
        inputs["frame"] = frame
        x = keras.layers.Rescaling(1.0 / 255.0, name="video_rescale")(frame)
        # Strided stem: most FLOPs at 224x224 would be spent in the first layers otherwise.
        x = _conv_block(x, config.video_stem_width, "video_stem", kernel=5, strides=2)
        for i, width in enumerate(config.video_widths):
            x = _conv_block(x, width, f"video_block{i + 1}")
        features.append(keras.layers.GlobalAveragePooling2D(name="video_gap")(x))
    if config.uses_audio:
        spec = keras.Input(
            tuple(config.spectrogram_shape) + (1,), dtype="float32", name="spectrogram"
        )
        inputs["spectrogram"] = spec
        x = spec
        for i, width in enumerate(config.audio_widths):
            x = _conv_block(x, width, f"audio_block{i + 1}")
        features.append(keras.layers.GlobalAveragePooling2D(name="audio_gap")(x))
    x = features[0] if len(features) == 1 else keras.layers.Concatenate(name="fusion")(features)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    if config.fc_units > 0:
        x = keras.layers.Dense(config.fc_units, activation="relu", name="fc")(x)
    logits = keras.layers.Dense(config.output_classes, dtype="float32", name=CLASSIFIER)(x)
    probs = keras.layers.Activation("softmax", dtype="float32", name="softmax")(logits)
    return keras.Model(inputs, probs, name=name)


# === Clip model (N twin branches) ===


def build_model(
    config: ModelConfig = ModelConfig(), sampling: SamplingConfig | None = None
) -> keras.Model:
    """The clip model: N twin cores, one per segment, and the consensus of their softmaxes.

    Inputs (dict; both keys are always accepted so one pipeline feeds every ablation, the
    unused modality is ignored): `frames` uint8 [B, N, S, S, 3], `audio` float32 [B, N, L]
    (L = `sampling.window_length`, 20480 by default), turned into [B, N, T, F, 1] log-mel
    spectrograms by the `log_mel` layer (STFT/mel settings from `sampling`, default
    `SamplingConfig()`; its shape fields follow `config`: `emotf.configs.model_sampling`).
    Outputs (dict, float32): `probabilities` [B, C] (mean of segment softmaxes, train on this),
    `scores` [B, C] (their sum), `segment_probabilities` [B, N, C].
    """
    n = config.num_segments
    frames = keras.Input((n, config.frame_size, config.frame_size, 3), dtype="uint8", name="frames")
    if sampling is not None and (sampling.time_bins, sampling.freq_bins) != tuple(
        config.spectrogram_shape
    ):
        raise ValueError(
            f"the sampling config's spectrogram shape differs from the model's. Received: "
            f"time_bins x freq_bins = {sampling.time_bins} x {sampling.freq_bins}, "
            f"spectrogram_shape={config.spectrogram_shape}"
        )
    audio_config = model_sampling(config, sampling)
    audio = keras.Input((n, audio_config.window_length), dtype="float32", name="audio")
    inputs = {"frames": frames, "audio": audio}
    spectrograms = None
    if config.uses_audio:
        spectrograms = LogMelSpectrogram(audio_config, name="log_mel")(audio)
        if config.spec_augment:
            spectrograms = SpecAugment(name="spec_augment")(spectrograms)

    def core_inputs(select):
        out = {}
        if config.uses_video:
            out["frame"] = select(frames, "frames")
        if config.uses_audio:
            out["spectrogram"] = select(spectrograms, "spectrograms")
        return out

    if config.branch_weights == "shared":
        core = build_core(config, name="core")
        merged = core_inputs(lambda t, key: MergeSegments(name=f"merge_{key}")(t))
        segment_probs = SplitSegments(n, name="split_segments", dtype="float32")(core(merged))
    else:
        branch_outputs = []
        for i in range(n):
            core = build_core(config, name=f"core_{i:02d}")
            branch_in = core_inputs(
                lambda t, key, i=i: SelectSegment(i, name=f"select_{key}_{i:02d}")(t)
            )
            out = core(branch_in)
            branch_outputs.append(
                keras.layers.Reshape(
                    (1, config.output_classes), name=f"branch_{i:02d}", dtype="float32"
                )(out)
            )
        segment_probs = (
            branch_outputs[0]
            if n == 1
            else keras.layers.Concatenate(axis=1, name="stack_segments", dtype="float32")(
                branch_outputs
            )
        )
    outputs = {
        "probabilities": SegmentConsensus("mean", name="probabilities", dtype="float32")(
            segment_probs
        ),
        "scores": SegmentConsensus("sum", name="scores", dtype="float32")(segment_probs),
        "segment_probabilities": keras.layers.Identity(
            name="segment_probabilities", dtype="float32"
        )(segment_probs),
    }
    return keras.Model(
        inputs, outputs, name=f"twin_av_{config.branch_weights}_{config.modalities}_n{n}"
    )


def named_layers(model: keras.Model, prefix: str = "") -> dict[str, keras.layers.Layer]:
    """Every layer of `model` by its path (`core/video_stem_conv`; the layers of nested models
    such as the cores too, under the nested model's name), in build order."""
    found: dict[str, keras.layers.Layer] = {}
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            found.update(named_layers(layer, f"{path}/"))
        else:
            found[path] = layer
    return found


def branch_layers(model: keras.Model, branch: str) -> list[keras.layers.Layer]:
    """The layers of the `branch` ("video" or "audio": `BRANCH_PREFIXES`) in every core of
    `model` (one shared core, or the N independent ones)."""
    prefix = BRANCH_PREFIXES[branch]
    return [
        layer
        for path, layer in named_layers(model).items()
        if path.rpartition("/")[2].startswith(prefix)
    ]


def model_sampling_config(model: keras.Model) -> SamplingConfig | None:
    """The `SamplingConfig` of a built model's `log_mel` layer (None without one)."""
    names = {layer.name for layer in model.layers}
    return model.get_layer("log_mel").sampling if "log_mel" in names else None


def training_model(model: keras.Model) -> keras.Model:
    """A view of `model` whose single output is `probabilities` (shares every layer and weight).

    Fitting this view trains `model`; checkpoints of either hold the same weights.
    """
    return keras.Model(model.inputs, model.output["probabilities"], name=f"{model.name}_train")


def count_flops(config: ModelConfig) -> dict:
    """Analytic forward FLOPs (multiply-add = 2 FLOPs) of convolutions and dense layers.

    Returns {"per_segment": int, "per_clip": int (N segments), "per_clip_train": int (about 3x
    forward: forward + two backward products)}. BatchNorm, pooling and ReLU are ignored (< 2%).
    """
    core = build_core(config)
    total = 0
    for layer in core.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            _, h, w, cout = layer.output.shape
            total += 2 * h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    per_clip = total * config.num_segments
    return {
        "per_segment": int(total),
        "per_clip": int(per_clip),
        "per_clip_train": int(3 * per_clip),
    }
