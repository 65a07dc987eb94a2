"""Index math, windows and spectrograms of emotf.sampling (pure TF functions)."""

import math
from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from emotf.configs import SamplingConfig, window_length_for
from emotf.sampling import (
    audio_window_starts,
    augment_clip,
    extract_audio_windows,
    sample_clip,
    segment_bounds,
    segment_frame_indices,
    spectrogram,
)
from tests.helpers_sampling import flat_frames, tiny_config

SMALL = tiny_config()

clip_params = st.fixed_dictionaries(
    {
        "num_frames": st.integers(1, 400),
        "fps": st.floats(5.0, 60.0),
        "sample_rate": st.sampled_from([8000, 16000, 22050, 44100]),
        "num_segments": st.integers(1, 16),
        "window_seconds": st.floats(0.05, 2.0),
        "max_offset": st.floats(0.0, 0.1),
        "seed": st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)),
        "training": st.booleans(),
        # S, the clip's valid sample count, as a fraction of the video's duration (0: no audio,
        # > 1: audio longer than the video), and extra nonzero samples stored past S.
        "audio_fraction": st.floats(0.0, 1.5),
        "tail": st.integers(0, 64),
    }
)


@settings(max_examples=40, deadline=None)
@given(clip_params)
def test_index_math_properties(p):
    config = SamplingConfig(
        num_segments=p["num_segments"],
        window_seconds=p["window_seconds"],
        max_offset_seconds=p["max_offset"],
        sample_rate=p["sample_rate"],
        frame_length=16,
        fft_length=16,
    )
    t, n = p["num_frames"], p["num_segments"]
    seed = tf.constant(p["seed"], tf.int64)
    j = segment_frame_indices(t, config, p["training"], seed).numpy()
    lo, hi = (x.numpy() for x in segment_bounds(t, n))
    k = np.arange(n)
    np.testing.assert_array_equal(lo, (k * t) // n)
    assert j.dtype == np.int32 and j.shape == (n,)
    assert np.all((lo <= j) & (j < hi)) and np.all((0 <= j) & (j < t))
    assert np.all(np.diff(j) >= 0)  # segments are ordered in time
    if t >= n:  # segments partition the frames
        assert lo[0] == 0 and hi[-1] == t and np.all(hi[:-1] == lo[1:])
    if not p["training"]:
        np.testing.assert_array_equal(j, (lo + hi - 1) // 2)

    centres, starts = audio_window_starts(
        j, p["fps"], p["sample_rate"], config, p["training"], seed
    )
    centres, starts = centres.numpy(), starts.numpy()
    frame_time = j / p["fps"]
    assert np.all(np.abs(centres - frame_time) <= p["max_offset"] + 1e-12)
    if not p["training"]:
        np.testing.assert_allclose(centres, frame_time, rtol=0, atol=1e-12)
    ra, d = p["sample_rate"], p["window_seconds"]
    # starts = ceil(ra (c - d/2)), up to float rounding (the exact case: test below).
    exact_start = ra * (centres - d / 2)
    assert np.all((starts >= exact_start - 1e-5) & (starts < exact_start + 1 + 1e-5))
    if not p["training"]:
        # Against rational arithmetic on the same float inputs: equal unless ra (c - d/2) lies
        # within the 1e-6-sample rounding tolerance of an integer.
        fr, fd = Fraction(p["fps"]), Fraction(d)
        for k, start in zip(j, starts, strict=True):
            exact = int(k) * ra / fr - ra * fd / 2
            if abs(exact - round(exact)) > Fraction(1, 10**5):
                assert start == math.ceil(exact), (k, start, exact)
    length = window_length_for(ra, d)
    last = starts + length - 1
    # The fixed length L = round(ra d) ends within one sample of floor(ra (c + d/2)).
    assert np.all(np.abs(last - np.floor(ra * (centres + d / 2))) <= 1)

    # Zero padding: window samples at positions < 0 or >= S read exactly 0, the rest equal
    # the waveform (which holds `tail` nonzero samples past S that must not leak in).
    num_samples = int(p["audio_fraction"] * ra * t / p["fps"])
    wave = np.arange(1, num_samples + p["tail"] + 1, dtype=np.float32)
    windows = extract_audio_windows(wave, starts, length, num_samples=num_samples).numpy()
    assert windows.shape == (n, length) and windows.dtype == np.float32
    pos = starts[:, None].astype(np.int64) + np.arange(length)[None, :]
    inside = (pos >= 0) & (pos < num_samples)
    expected = np.where(inside, wave[np.clip(pos, 0, max(len(wave) - 1, 0))] if len(wave) else 0, 0)
    np.testing.assert_array_equal(windows, expected.astype(np.float32))
    assert np.all(windows[~inside] == 0) and np.all(windows[inside] != 0)


@pytest.mark.parametrize("num_frames,num_segments", [(1, 10), (3, 10), (10, 10), (7, 1)])
def test_short_clips_and_single_segment(num_frames, num_segments):
    config = SamplingConfig(num_segments=num_segments)
    for training in (False, True):
        j = segment_frame_indices(num_frames, config, training, [1, 2]).numpy()
        assert j.shape == (num_segments,) and j.min() >= 0 and j.max() < num_frames
    if num_frames < num_segments:
        np.testing.assert_array_equal(j, np.arange(num_segments) * num_frames // num_segments)


def test_exact_indices_with_fixed_seed_and_eval_middle():
    config = SamplingConfig(num_segments=4)
    np.testing.assert_array_equal(segment_frame_indices(20, config, False).numpy(), [2, 7, 12, 17])
    a = segment_frame_indices(20, config, True, [3, 4]).numpy()
    b = segment_frame_indices(20, config, True, [3, 4]).numpy()
    c = segment_frame_indices(20, config, True, [3, 5]).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) or not np.array_equal(
        segment_frame_indices(20, config, True, [9, 9]).numpy(), a
    )


def test_extract_audio_windows_zero_pads_both_ends():
    wave = np.arange(1, 11, dtype=np.float32)  # 10 samples, all nonzero
    out = extract_audio_windows(wave, [-3, 4, 8], 5, num_samples=9).numpy()
    np.testing.assert_array_equal(out[0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(out[1], [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(out[2], [9, 0, 0, 0, 0])  # sample 9 is past num_samples
    empty = extract_audio_windows(np.zeros([0], np.float32), [0], 4).numpy()
    np.testing.assert_array_equal(empty, np.zeros([1, 4]))


def test_spectrogram_default_shape_and_normalisation():
    config = SamplingConfig()
    assert config.window_length == 20480 and config.stft_frames == 192
    t = np.arange(config.window_length) / config.sample_rate
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    spec = spectrogram(np.stack([tone, np.zeros_like(tone)]), config).numpy()
    assert spec.shape == (2, 192, 120, 1) and spec.dtype == np.float32
    assert abs(spec[0].mean()) < 1e-3 and abs(spec[0].std() - 1) < 1e-2
    np.testing.assert_allclose(spec[1], 0, atol=1e-2)  # silence (e.g. all padding) maps to zeros
    # Frequency axis runs low to high: a 1 kHz tone peaks in a low-to-middle mel band.
    peak = spec[0, 96, :, 0].argmax()
    mel_1k = 2595 * math.log10(1 + 1000 / 700) / (2595 * math.log10(1 + 8000 / 700))
    assert abs(peak / 120 - mel_1k) < 0.08


def test_spectrogram_resizes_when_stft_shape_differs():
    spec = spectrogram(tf.zeros([2, SMALL.window_length]), SMALL)
    assert SMALL.stft_frames != SMALL.time_bins
    assert spec.shape == (2, 12, 8, 1)
    other = SamplingConfig(window_seconds=1.0, num_mel_bins=64)
    assert spectrogram(tf.random.normal([1, other.window_length]), other).shape == (1, 192, 120, 1)


@pytest.fixture
def decoded_clip():
    """9 flat uint8 frames of value 10k (16 px) and 2000 nonzero audio samples (fresh per test)."""
    frames = flat_frames(9, size=16, step=10)
    wave = (np.arange(2000, dtype=np.float32) + 1) / 4000.0
    return frames, wave


def test_sample_clip_uint8_and_jpeg_agree_and_eager_equals_tf_function(decoded_clip):
    frames, wave = decoded_clip
    jpegs = tf.stack([tf.io.encode_jpeg(f, quality=100) for f in frames])
    args = dict(num_frames=9, fps=5.0, waveform=wave, num_samples=2000, sample_rate=1000)
    eager = sample_clip(frames, config=SMALL, training=True, seed=[5, 6], **args)
    from_jpeg = sample_clip(jpegs, config=SMALL, training=True, seed=[5, 6], **args)
    graph = tf.function(lambda f, s: sample_clip(f, config=SMALL, training=True, seed=s, **args))(
        frames, tf.constant([5, 6])
    )
    for key in ("frame_indices", "audio_starts", "audio", "frames"):
        np.testing.assert_allclose(eager[key].numpy(), graph[key].numpy(), atol=1e-5)
    np.testing.assert_array_equal(eager["frame_indices"], from_jpeg["frame_indices"])
    assert np.abs(eager["frames"].numpy().astype(int) - from_jpeg["frames"].numpy()).max() <= 2
    assert eager["frames"].dtype == tf.uint8 and eager["frames"].shape == (3, 16, 16, 3)


def test_sample_clip_rejects_other_sample_rate(decoded_clip):
    frames, wave = decoded_clip
    with pytest.raises(tf.errors.InvalidArgumentError, match="sample rate"):
        sample_clip(frames, 9, 5.0, wave, 2000, 8000, SMALL, False)


def test_sample_clip_yields_windows_and_spectrograms_on_request(decoded_clip):
    frames, wave = decoded_clip
    out = sample_clip(frames, 9, 5.0, wave, 2000, 1000, SMALL, False)
    assert "spectrograms" not in out  # the model computes them (emotf.model.LogMelSpectrogram)
    assert out["audio"].dtype == tf.float32 and out["audio"].shape == (3, SMALL.window_length)
    both = sample_clip(frames, 9, 5.0, wave, 2000, 1000, SMALL, False, with_spectrograms=True)
    np.testing.assert_array_equal(both["spectrograms"], spectrogram(out["audio"], SMALL))


def test_dense_and_sparse_mel_agree_and_dense_compiles_with_xla():
    config = SamplingConfig()
    windows = np.random.default_rng(2).normal(0, 0.3, [2, config.window_length]).astype(np.float32)
    sparse = spectrogram(windows, config).numpy()
    dense = spectrogram(windows, config, mel="dense").numpy()
    np.testing.assert_allclose(dense, sparse, atol=1e-5)
    xla = tf.function(lambda w: spectrogram(w, config, mel="dense"), jit_compile=True)(windows)
    np.testing.assert_allclose(xla.numpy(), sparse, atol=1e-4)
    with pytest.raises(ValueError, match="mel='bogus'"):
        spectrogram(windows, config, mel="bogus")


def test_augment_is_seeded_and_keeps_shapes(decoded_clip):
    frames, wave = decoded_clip
    frames[:, :, :8] = 0  # left half dark so a flip is visible
    out = sample_clip(frames, 9, 5.0, wave, 2000, 1000, SMALL, True, [1, 1], with_spectrograms=True)
    a = [augment_clip(out, [s, 0]) for s in range(8)]
    b = augment_clip(out, [3, 0])
    np.testing.assert_array_equal(a[3]["spectrograms"], b["spectrograms"])
    flipped = [bool(x["frames"].numpy()[:, :, -1].max() == 0) for x in a]
    assert any(flipped) and not all(flipped)
    assert all(x["spectrograms"].shape == out["spectrograms"].shape for x in a)


def test_config_round_trip_and_validation():
    config = SamplingConfig(num_segments=8, upper_edge_hertz=7600.0)
    assert SamplingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="num_segments=0"):
        SamplingConfig(num_segments=0)
    with pytest.raises(ValueError, match="unknown"):
        SamplingConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize("config", [SamplingConfig(), SMALL], ids=["default", "small"])
def test_spectrogram_sparse_mel_matches_dense_reference(config):
    """The sparse mel product equals the documented dense formula (numpy reference)."""
    windows = np.random.default_rng(1).normal(0, 0.3, [3, config.window_length]).astype(np.float32)
    stft = tf.signal.stft(
        windows,
        config.frame_length,
        config.frame_step,
        config.fft_length,
        window_fn=tf.signal.hann_window,
        pad_end=False,
    ).numpy()
    mel = tf.signal.linear_to_mel_weight_matrix(
        config.num_mel_bins,
        config.fft_length // 2 + 1,
        config.sample_rate,
        config.lower_edge_hertz,
        config.upper_edge_hertz or config.sample_rate / 2,
    ).numpy()
    logmel = np.log(np.abs(stft).astype(np.float64) @ mel + config.log_offset)[..., None]
    got = spectrogram(windows, config).numpy()
    if logmel.shape[1:3] != (config.time_bins, config.freq_bins):
        logmel = tf.image.resize(logmel, [config.time_bins, config.freq_bins]).numpy()
    mean = logmel.mean(axis=(1, 2, 3), keepdims=True)
    expected = (logmel - mean) / np.sqrt(logmel.var(axis=(1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(got, expected, atol=2e-4)
    graph = tf.function(lambda w: spectrogram(w, config))(windows).numpy()
    np.testing.assert_allclose(graph, got, atol=1e-6)


@pytest.mark.parametrize("fps", [25.0, 30.0, 30000 / 1001])
@pytest.mark.parametrize("sample_rate", [16000, 44100, 8000])
@pytest.mark.parametrize("window", ["1.28", "0.5"])
def test_eval_window_starts_are_exact(fps, sample_rate, window):
    """Evaluation starts equal ceil(ra (j / rv - d / 2)) in exact rational arithmetic."""
    config = SamplingConfig(window_seconds=float(window), sample_rate=sample_rate)
    j = np.arange(0, 3000)
    _, starts = audio_window_starts(j, fps, sample_rate, config, training=False)
    rv = Fraction(30000, 1001) if fps == 30000 / 1001 else Fraction(fps)
    d = Fraction(window)
    expected = [-((-(Fraction(int(k)) * sample_rate / rv - sample_rate * d / 2)) // 1) for k in j]
    np.testing.assert_array_equal(starts.numpy(), np.array(expected, dtype=np.int64))


def test_eval_window_starts_regression_frames_not_one_sample_late():
    """rv = 30, ra = 16 kHz, d = 1.28 s: ra (c - d/2) is an integer for frames 24, 33, 48, 54;
    computing c - d/2 in seconds first rounded up past it (e.g. 2561 instead of 2560)."""
    config = SamplingConfig()
    j = np.array([24, 33, 48, 54])
    _, starts = audio_window_starts(j, 30.0, 16000, config, training=False)
    np.testing.assert_array_equal(starts.numpy(), j * 16000 // 30 - 10240)
    np.testing.assert_array_equal(starts.numpy(), [2560, 7360, 15360, 18560])
    # Same in a graph, with the float32 fps / int64 rate that records carry.
    graph = tf.function(
        lambda jj, fps, ra: audio_window_starts(jj, fps, ra, config, training=False)[1]
    )(tf.constant(j, tf.int32), tf.constant(30.0, tf.float32), tf.constant(16000, tf.int64))
    np.testing.assert_array_equal(graph.numpy(), [2560, 7360, 15360, 18560])
