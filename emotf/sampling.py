"""Temporal segment sampling and spectrograms, as pure TensorFlow functions.

The same functions run in the tf.data pipeline (`emotf.pipeline`) and inside the serving graph
(no train/serve skew). They use core TensorFlow ops only (no tensorflow-io, no py_function),
have static output shapes and draw randomness from stateless ops seeded by an int tensor [2].

For a clip of T frames at rate rv (fps) and S audio samples at rate ra (Hz), with N segments,
window length d seconds and maximal audio offset b seconds (see docs/sampling.md):

- segment k (0 <= k < N) holds frames lo_k = floor(k T / N) .. hi_k - 1 with
  hi_k = max(floor((k + 1) T / N), lo_k + 1), so a clip with T < N repeats frames;
- training: frame j_k = lo_k + floor(u (hi_k - lo_k)), u ~ U[0, 1); audio centre
  c_k = j_k / rv + b (2 v - 1), v ~ U[0, 1];
- evaluation: j_k = floor((lo_k + hi_k - 1) / 2) (the middle frame, the lower one of two),
  c_k = j_k / rv;
- the window holds the L = round(ra d) samples ceil(ra (c_k - d/2)) .. that + L - 1; samples
  before 0 or from the clip's sample count on are zeros.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from emotf.configs import SamplingConfig

# Constants folded into the caller's seed so that the frame draw, the audio offset draw and
# the augmentation draws are independent even though the caller passes one seed.
_FRAME_STREAM = 1
_AUDIO_STREAM = 2
_AUGMENT_STREAM = 3


def _seed(seed) -> tf.Tensor:
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        raise TypeError(f"seed must be an int32/int64 tensor [2]. Received: dtype={seed.dtype}")
    return tf.reshape(tf.cast(seed, tf.int64), [2])


def _stream(seed, stream: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(_seed(seed), stream)


def segment_bounds(num_frames, num_segments: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Frame range [lo, hi) of each of the N segments: two int64 [N] tensors.

    lo_k = floor(k T / N); hi_k = max(floor((k + 1) T / N), lo_k + 1), so every segment holds
    at least one frame (with T < N neighbouring segments share frames). Requires T >= 1.
    """
    t = tf.cast(num_frames, tf.int64)
    k = tf.range(num_segments, dtype=tf.int64)
    lo = (k * t) // num_segments
    hi = tf.maximum(((k + 1) * t) // num_segments, lo + 1)
    return lo, hi


def segment_frame_indices(num_frames, config: SamplingConfig, training: bool, seed=(0, 0)):
    """Index of the sampled frame of each segment: int32 [N], each in [0, num_frames).

    Args:
        num_frames: int scalar tensor T >= 1.
        config: `SamplingConfig` (uses `num_segments`).
        training: uniform frame inside each segment if True, else the middle frame.
        seed: int tensor [2] for the stateless draw (ignored when not training).
    """
    lo, hi = segment_bounds(num_frames, config.num_segments)
    if training:
        u = tf.random.stateless_uniform(
            [config.num_segments], _stream(seed, _FRAME_STREAM), dtype=tf.float64
        )
        j = lo + tf.cast(tf.floor(u * tf.cast(hi - lo, tf.float64)), tf.int64)
        j = tf.minimum(j, hi - 1)  # u < 1, but guard the float rounding anyway
    else:
        j = (lo + hi - 1) // 2
    return tf.cast(j, tf.int32)


_CEIL_TOLERANCE = 1e-6


def audio_window_starts(
    frame_indices, fps, sample_rate, config: SamplingConfig, training: bool, seed=(0, 0)
):
    """Audio window centres and first samples for the sampled frames.

    Args:
        frame_indices: int [N] sampled frame indices j.
        fps: frame rate rv (float scalar).
        sample_rate: audio rate ra (int or float scalar).
        config: uses `window_seconds` (d) and `max_offset_seconds` (b).
        training: centre uniform in [j/rv - b, j/rv + b] if True, else j/rv.
        seed: int tensor [2] (ignored when not training).

    Returns:
        (centres, starts): float64 [N] centres in seconds and int32 [N] first sample indices
        ceil(ra (c - d/2)), evaluated as ceil(j ra / rv - ra d / 2 + ra b v - 1e-6) in float64
        (v = 0 in evaluation; see docs/sampling.md, "Start rounding"). Starts may be negative
        or past the clip's end: the window is then zero padded by `extract_audio_windows`.
    """
    j = tf.cast(frame_indices, tf.float64)
    # dtype_hint keeps Python floats in float64; record values arrive as float32 / int64.
    rv = tf.cast(tf.convert_to_tensor(fps, dtype_hint=tf.float64), tf.float64)
    ra = tf.cast(tf.convert_to_tensor(sample_rate, dtype_hint=tf.float64), tf.float64)
    centres = j / rv
    # ra (c - d/2) is expanded into sample units term by term, so that exact cases stay exact
    # (j ra / rv and ra d / 2 are integers for rv = 30, ra = 16 kHz, d = 1.28 s): computing
    # c - d/2 in seconds first rounds, and ceil then lands one sample late.
    position = j * ra / rv - ra * config.window_seconds / 2.0
    if training and config.max_offset_seconds > 0:
        v = tf.random.stateless_uniform(
            tf.shape(j), _stream(seed, _AUDIO_STREAM), minval=-1.0, maxval=1.0, dtype=tf.float64
        )
        centres = centres + config.max_offset_seconds * v
        position = position + ra * config.max_offset_seconds * v
    # A 1e-6-sample tolerance absorbs float64 rounding of values that are integers exactly.
    starts = tf.math.ceil(position - _CEIL_TOLERANCE)
    return centres, tf.cast(starts, tf.int32)


def extract_audio_windows(waveform, starts, window_length: int, num_samples=None):
    """Cut one fixed-length window per start, zero padded outside the clip.

    Args:
        waveform: float32 [S] (possibly padded beyond `num_samples`).
        starts: int [N] first sample of each window (may be negative or >= S).
        window_length: L, a Python int (static shape).
        num_samples: valid samples in `waveform` (default: all S); later ones read as zero.

    Returns:
        float32 [N, L].
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    starts = tf.convert_to_tensor(starts)
    size = tf.shape(waveform, out_type=tf.int64)[0]
    valid_end = size if num_samples is None else tf.minimum(tf.cast(num_samples, tf.int64), size)
    length = tf.constant(window_length, tf.int64)
    # Pad L zeros on both sides of the valid samples; a window starting anywhere in
    # [-L, valid_end] is then one contiguous slice (starts further out read only zeros too).
    padded = tf.concat(
        [tf.zeros([window_length]), waveform[:valid_end], tf.zeros([window_length])], 0
    )
    offsets = tf.clip_by_value(tf.cast(starts, tf.int64) + length, 0, valid_end + length)
    if starts.shape.rank == 1 and starts.shape[0] is not None:
        # N is static: N strided slices are ~10x cheaper than gathering N*L indices.
        out = tf.stack(
            [padded[offsets[i] : offsets[i] + length] for i in range(starts.shape[0])], 0
        )
    else:
        idx = offsets[:, None] + tf.range(window_length, dtype=tf.int64)[None, :]
        out = tf.gather(padded, idx)
    return tf.ensure_shape(out, [None, window_length])


@functools.lru_cache(maxsize=16)
def _mel_matrix_values(num_mel_bins, num_bins, sample_rate, lower, upper):
    """Non-zero (mel, bin) indices and weights of the transposed mel matrix [mel, bins]."""
    with tf.init_scope():  # computed eagerly once, also when called while tracing
        dense = (
            tf.signal.linear_to_mel_weight_matrix(
                num_mel_bins=num_mel_bins,
                num_spectrogram_bins=num_bins,
                sample_rate=sample_rate,
                lower_edge_hertz=lower,
                upper_edge_hertz=upper,
            )
            .numpy()
            .T
        )
    indices = np.argwhere(dense != 0).astype(np.int64)  # row-major order, as SparseTensor needs
    return indices, dense[indices[:, 0], indices[:, 1]].astype(np.float32)


def _mel_matrix_args(config: SamplingConfig) -> tuple:
    return (
        config.num_mel_bins,
        config.fft_length // 2 + 1,
        config.sample_rate,
        float(config.lower_edge_hertz),
        float(config.upper_edge_hertz or config.sample_rate / 2.0),
    )


def _mel_matrix_sparse(config: SamplingConfig) -> tf.SparseTensor:
    indices, values = _mel_matrix_values(*_mel_matrix_args(config))
    return tf.SparseTensor(indices, values, [config.num_mel_bins, config.fft_length // 2 + 1])


def _mel_matrix_dense(config: SamplingConfig) -> tf.Tensor:
    """The same weights as `_mel_matrix_sparse`, as a float32 constant [mel, bins]."""
    indices, values = _mel_matrix_values(*_mel_matrix_args(config))
    dense = np.zeros([config.num_mel_bins, config.fft_length // 2 + 1], np.float32)
    dense[indices[:, 0], indices[:, 1]] = values
    return tf.constant(dense)


MEL_PRODUCTS = ("sparse", "dense")
# The SamplingConfig fields that `spectrogram` (and so the model's log_mel layer) depends on.
SPECTROGRAM_FIELDS = (
    "sample_rate",
    "window_seconds",
    "frame_length",
    "frame_step",
    "fft_length",
    "num_mel_bins",
    "lower_edge_hertz",
    "upper_edge_hertz",
    "log_offset",
    "time_bins",
    "freq_bins",
    "normalization",
)


def spectrogram(windows, config: SamplingConfig, mel: str = "sparse"):
    """Log-mel spectrograms of audio windows: float32 [N, time_bins, freq_bins, 1].

    STFT (Hann window `frame_length`, hop `frame_step`, `fft_length`, no end padding) ->
    magnitude -> `num_mel_bins` mel bands (`lower_edge_hertz`..`upper_edge_hertz`) ->
    log(x + log_offset) -> bilinear resize to [time_bins, freq_bins] only when the shape
    differs (not with the defaults) -> normalisation (see `SamplingConfig.normalization`).
    Axis 1 is time (earliest first), axis 2 is frequency (lowest first).

    Args:
        windows: float32 [N, L] with L = config.window_length (any leading N).
        config: `SamplingConfig`.
        mel: how the mel projection is summed, the same weights either way (results agree to
            ~1e-6): "sparse" (`sparse_dense_matmul`, ~4x cheaper on a CPU) or "dense" (a
            matmul; XLA has no sparse kernel, so `jit_compile` needs this one, and it is what
            accelerators run best). `emotf.model.LogMelSpectrogram` uses "dense".
    """
    if mel not in MEL_PRODUCTS:
        raise ValueError(f"mel must be one of {MEL_PRODUCTS}. Received: mel={mel!r}")
    windows = tf.convert_to_tensor(windows, tf.float32)
    stft = tf.signal.stft(
        windows,
        frame_length=config.frame_length,
        frame_step=config.frame_step,
        fft_length=config.fft_length,
        window_fn=tf.signal.hann_window,
        pad_end=False,
    )
    # sqrt(re^2 + im^2) is about twice as fast as tf.abs (hypot) on complex64 here.
    magnitude = tf.sqrt(tf.math.square(tf.math.real(stft)) + tf.math.square(tf.math.imag(stft)))
    frames = magnitude.shape[-2] if magnitude.shape[-2] is not None else tf.shape(magnitude)[-2]
    bins = config.fft_length // 2 + 1
    # The mel matrix is ~98 % zeros (each triangle spans a few linear bins): a sparse
    # [mel, bins] x dense [N * frames, bins]^T product does ~60x fewer multiply-adds than the
    # dense matmul (0.36 vs 1.34 ms per clip) and yields mel-major [mel, N * frames].
    if mel == "sparse":
        mel_t = tf.sparse.sparse_dense_matmul(
            _mel_matrix_sparse(config), tf.reshape(magnitude, [-1, bins]), adjoint_b=True
        )
    else:
        mel_t = tf.matmul(
            _mel_matrix_dense(config),
            tf.reshape(magnitude, [-1, bins]),
            transpose_b=True,
        )
    logmel_t = tf.math.log(mel_t + config.log_offset)
    logmel = tf.transpose(tf.reshape(logmel_t, [config.num_mel_bins, -1, frames]), [1, 2, 0])
    logmel = logmel[..., None]  # [N, frames, mel, 1]
    if (config.stft_frames, config.num_mel_bins) != (config.time_bins, config.freq_bins):
        logmel = tf.image.resize(logmel, [config.time_bins, config.freq_bins], "bilinear")
    if config.normalization == "per_window":
        mean, variance = tf.nn.moments(logmel, axes=[1, 2, 3], keepdims=True)
        logmel = (logmel - mean) * tf.math.rsqrt(variance + 1e-6)
    return tf.ensure_shape(logmel, [None, config.time_bins, config.freq_bins, 1])


def gather_frames(frames, frame_indices, config: SamplingConfig):
    """The sampled frames as uint8 [N, size, size, 3].

    `frames` is either a string tensor [T] of JPEG bytes (only the N sampled ones are decoded)
    or already decoded uint8 [T, size, size, 3] (the serving path).
    """
    frames = tf.convert_to_tensor(frames)
    picked = tf.gather(frames, frame_indices)
    size = config.frame_size
    if picked.dtype == tf.string:
        picked = tf.map_fn(
            lambda jpeg: tf.ensure_shape(
                tf.io.decode_jpeg(jpeg, channels=3, dct_method="INTEGER_ACCURATE"),
                [size, size, 3],
            ),
            picked,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
        )
    elif picked.dtype != tf.uint8:
        raise TypeError(f"frames must be JPEG strings or uint8. Received: dtype={picked.dtype}")
    return tf.ensure_shape(picked, [config.num_segments, size, size, 3])


def sample_clip(
    frames,
    num_frames,
    fps,
    waveform,
    num_samples,
    sample_rate,
    config: SamplingConfig,
    training: bool,
    seed=(0, 0),
    with_spectrograms: bool = False,
):
    """Sample N (frame, audio window) pairs of one clip.

    The log-mel spectrograms of the windows are computed by the model
    (`emotf.model.LogMelSpectrogram`, which calls `spectrogram`), not here; pass
    `with_spectrograms=True` to get them too (tests, models whose input is spectrograms).

    Args:
        frames: string [T] JPEG face crops or uint8 [T, size, size, 3] (T may include padding
            beyond `num_frames`).
        num_frames: int scalar, valid frames (>= 1).
        fps: float scalar frame rate.
        waveform: float32 [S] in [-1, 1] (may include padding beyond `num_samples`).
        num_samples: int scalar, valid samples.
        sample_rate: int scalar; must equal `config.sample_rate` (checked at run time).
        config: `SamplingConfig`.
        training: random frame and audio offset per segment if True, else deterministic.
        seed: int tensor [2]; the same seed gives the same samples.
        with_spectrograms: also return `spectrogram(audio, config)`.

    Returns:
        {"frames": uint8 [N, size, size, 3], "audio": float32 [N, L] (L = window_length),
         "frame_indices": int32 [N], "audio_starts": int32 [N]}, plus "spectrograms" float32
        [N, time, freq, 1] with `with_spectrograms`.
    """
    rate_ok = tf.debugging.assert_equal(
        tf.cast(sample_rate, tf.int64),
        tf.constant(config.sample_rate, tf.int64),
        message=f"audio sample rate differs from SamplingConfig.sample_rate={config.sample_rate}",
    )
    frames_ok = tf.debugging.assert_positive(
        tf.cast(num_frames, tf.int64), message="a clip needs at least one frame"
    )
    with tf.control_dependencies([rate_ok, frames_ok]):
        indices = segment_frame_indices(num_frames, config, training, seed)
    _, starts = audio_window_starts(indices, fps, config.sample_rate, config, training, seed)
    windows = extract_audio_windows(waveform, starts, config.window_length, num_samples)
    out = {
        "frames": gather_frames(frames, indices, config),
        "audio": windows,
        "frame_indices": indices,
        "audio_starts": starts,
    }
    if with_spectrograms:
        out["spectrograms"] = spectrogram(windows, config)
    return out


def augment_clip(sample: dict, seed, max_time_mask: int = 24, max_freq_mask: int = 16) -> dict:
    """Training augmentation with stateless core ops (reproducible from `seed`).

    Flips all N frames of the clip left-right with probability 1/2 (one face, one decision).
    A "spectrograms" entry, if present (`sample_clip(..., with_spectrograms=True)`), gets
    `spectrogram_masks`; in training the model's `emotf.model.SpecAugment` layer masks them.
    """
    seed = _stream(seed, _AUGMENT_STREAM)
    flip_seed, mask_seed = [tf.random.experimental.stateless_fold_in(seed, i) for i in (0, 1)]
    frames = sample["frames"]
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    out = {**sample, "frames": tf.cond(flip, lambda: tf.reverse(frames, axis=[2]), lambda: frames)}
    if "spectrograms" in sample:
        out["spectrograms"] = spectrogram_masks(
            sample["spectrograms"], mask_seed, max_time_mask, max_freq_mask
        )
    return out


def spectrogram_masks(spec, seed, max_time_mask: int = 24, max_freq_mask: int = 16):
    """SpecAugment-style masking with stateless ops: float32 [M, T, F, 1] -> same shape.

    Zeroes one random band of up to `max_time_mask` time bins and one of up to
    `max_freq_mask` frequency bins in each of the M spectrograms (like tensorflow-io's
    `time_mask`/`freq_mask`, but reproducible from `seed`, an int tensor [2]). Zero is the
    per-window mean after the default normalisation.
    """
    time_seed, freq_seed = [
        tf.random.experimental.stateless_fold_in(_seed(seed), i) for i in (1, 2)
    ]
    m, t_bins, f_bins = tf.shape(spec)[0], spec.shape[1], spec.shape[2]

    def band_mask(band_seed, bins, max_width):
        width_start = tf.random.stateless_uniform([m, 2], band_seed)
        width = tf.cast(width_start[:, 0] * (max_width + 1), tf.int32)
        start = tf.cast(width_start[:, 1] * tf.cast(bins - width + 1, tf.float32), tf.int32)
        pos = tf.range(bins)[None, :]
        return (pos >= start[:, None]) & (pos < (start + width)[:, None])  # [m, bins]

    time_mask = band_mask(time_seed, t_bins, min(max_time_mask, t_bins))[:, :, None, None]
    freq_mask = band_mask(freq_seed, f_bins, min(max_freq_mask, f_bins))[:, None, :, None]
    return tf.where(time_mask | freq_mask, tf.zeros_like(spec), spec)
