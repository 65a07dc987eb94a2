"""Rendering and writing one synthetic clip's media (the sample itself: `emotf.synthetic.sample`).

Video: the astronaut's head from `skimage.data.astronaut()` (about 112x140 px, face box about
81x81 px, which MTCNN finds) drifts smoothly (a sinusoid plus a slow drift, at most a few px per
frame) over a textured green-screen background with per-frame pixel noise; the face carries the
clip's colour tint. Audio: a speech-like harmonic series with the clip's pitch, spectral tilt
and syllable rate. Files: 16-bit mono WAV; FLV with FLV1 video and MP3 (or AAC) audio.

Renderers take a clip's `ClipPlan` and the `SampleConfig` (both from `emotf.synthetic.config`)
and draw only from generators seeded by the plan, so output is a function of the plan and config.
"""

from __future__ import annotations

import wave
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

from emotf.synthetic.config import FACE_IN_SOURCE, HEAD_COLS, HEAD_ROWS, ClipPlan, SampleConfig

# ---------------------------------------------------------------------------------------------
# Video


@lru_cache(maxsize=4)
def _head(head_height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(head RGB float32 [h,w,3], soft elliptical alpha [h,w,1], face box in head coords)."""
    src = data.astronaut()[HEAD_ROWS, HEAD_COLS]
    scale = head_height / src.shape[0]
    w = int(round(src.shape[1] * scale))
    head = cv2.resize(src, (w, head_height), interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[0:head_height, 0:w]
    r = np.hypot((xx - (w - 1) / 2) / (w / 2), (yy - (head_height - 1) / 2) / (head_height / 2))
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0)[..., None].astype(np.float32)
    offset = np.array([HEAD_COLS.start, HEAD_ROWS.start] * 2, dtype=np.float64)
    return head, alpha, (FACE_IN_SOURCE - offset) * scale


def _head_positions(plan: ClipPlan, config: SampleConfig) -> np.ndarray:
    """Integer top-left corner (x, y) of the pasted head per frame: int64 [T, 2]."""
    head, _, _ = _head(config.head_height)
    h, w = head.shape[:2]
    cx, cy, ax, ay, px, py, phx, phy, vx, vy = plan.motion
    t = np.arange(plan.num_frames) / config.fps
    x = cx + ax * np.sin(2 * np.pi * t / px + phx) + vx * t - w / 2
    y = cy + ay * np.sin(2 * np.pi * t / py + phy) + vy * t - h / 2
    x = np.clip(np.round(x), 0, config.width - w)
    y = np.clip(np.round(y), 0, config.height - h)
    return np.stack([x, y], axis=1).astype(np.int64)


def face_boxes(plan: ClipPlan, config: SampleConfig) -> np.ndarray:
    """The pasted face's box in every frame: float32 [T, 4], pixels (x0, y0, x1, y1).

    The box MTCNN finds on the astronaut's face, moved with the head (see
    `emotf.synthetic.sample.planted_face_boxes`, which takes a clip name instead of a plan).
    """
    _, _, face = _head(config.head_height)
    pos = _head_positions(plan, config).astype(np.float64)
    return (np.tile(pos, 2) + face[None, :]).astype(np.float32)


def _background(config: SampleConfig, rng: np.random.Generator) -> np.ndarray:
    """A green-screen background with smooth blotches: uint8 [H, W, 3]."""
    coarse = rng.normal(0.0, 1.0, size=(9, 12, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (config.width, config.height), interpolation=cv2.INTER_CUBIC)
    base = np.array([45.0, 160.0, 70.0]) + rng.normal(0.0, 8.0, size=3)
    shade = np.linspace(1.05, 0.9, config.height, dtype=np.float32)[:, None, None]
    return np.clip(base * shade + 10.0 * texture, 0, 255).astype(np.uint8)


def render_frames(plan: ClipPlan, config: SampleConfig) -> np.ndarray:
    """The clip's video frames: uint8 [T, H, W, 3] RGB (before encoding)."""
    head, alpha, _ = _head(config.head_height)
    h, w = head.shape[:2]
    rng = np.random.default_rng(plan.noise_seed)
    bg = _background(config, rng)
    gain, *cast = plan.light
    tint = np.full(3, -0.5 * config.tint * plan.video_strength)
    tint[plan.video_group] = config.tint * plan.video_strength
    face = np.clip(head * gain + np.asarray(cast) + tint, 0, 255)
    # A few noise frames, cycled: per-frame sensor noise at a fraction of the cost.
    noise = rng.integers(-4, 5, size=(4, config.height, config.width, 3), dtype=np.int16)
    frames = np.empty((plan.num_frames, config.height, config.width, 3), np.uint8)
    for i, (x, y) in enumerate(_head_positions(plan, config)):
        frame = bg.astype(np.int16) + noise[i % len(noise)]
        patch = frame[y : y + h, x : x + w]
        patch[:] = alpha * face + (1.0 - alpha) * patch
        np.clip(frame, 0, 255, out=frame)
        frames[i] = frame
    return frames


# ---------------------------------------------------------------------------------------------
# Audio


def render_audio(plan: ClipPlan, config: SampleConfig) -> np.ndarray:
    """Speech-like audio: int16 [S] mono at `config.sample_rate`.

    A harmonic series (up to ~4 kHz, amplitudes k^-tilt with two formant bumps) on a wandering
    f0, an amplitude envelope of syllables at `plan.syllable_rate_hz`, white noise at
    `plan.snr_db`; peak-normalised to half full scale, 10 ms fades at both ends.
    """
    sr = config.sample_rate
    rng = np.random.default_rng([plan.noise_seed, 1])
    t = np.arange(plan.num_samples) / sr
    ph = rng.uniform(0, 2 * np.pi, size=4)
    f0 = plan.f0_hz * np.exp(
        0.08 * np.sin(2 * np.pi * 0.6 * t + ph[0]) + 0.04 * np.sin(2 * np.pi * 1.7 * t + ph[1])
    )
    phase = 2 * np.pi * np.cumsum(f0) / sr
    k = np.arange(1, max(2, int(4000 // (plan.f0_hz * 1.2))) + 1)
    fk = k * plan.f0_hz
    amps = k**-plan.tilt * (
        1 + 1.5 * np.exp(-(((fk - 600) / 250) ** 2)) + 0.8 * np.exp(-(((fk - 1700) / 350) ** 2))
    )
    offsets = rng.uniform(0, 2 * np.pi, size=len(k))
    voiced = (amps[:, None] * np.sin(k[:, None] * phase[None, :] + offsets[:, None])).sum(0)
    rate = plan.syllable_rate_hz * (1 + 0.15 * np.sin(2 * np.pi * 0.5 * t + ph[2]))
    syllable = np.cumsum(rate) / sr * 2 * np.pi + ph[3]
    env = 0.15 + 0.85 * ((1 - np.cos(syllable)) / 2) ** 1.5
    signal = voiced * env
    signal /= np.sqrt(np.mean(signal**2)) + 1e-12
    signal += rng.normal(0.0, 10 ** (-plan.snr_db / 20), size=signal.shape)
    fade = min(len(t) // 2, sr // 100)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        signal[:fade] *= ramp
        signal[-fade:] *= ramp[::-1]
    signal *= 0.5 / (np.abs(signal).max() + 1e-12)
    return np.round(signal * 32767).astype(np.int16)


# ---------------------------------------------------------------------------------------------
# Files


def write_wav(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    """A 16-bit mono PCM WAV of `pcm` (int16 [S]) at `sample_rate`."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.astype("<i2").tobytes())


def write_flv(path: Path, frames: np.ndarray, pcm: np.ndarray, config: SampleConfig) -> None:
    """FLV with FLV1 video at `config.fps` and MP3 (AAC if MP3 is missing) audio, resampled
    by FFmpeg from `config.sample_rate` to `config.flv_audio_rate`."""
    rate = Fraction(config.fps).limit_denominator(1001)
    with av.open(str(path), "w", format="flv") as out:
        video = out.add_stream("flv", rate=rate)
        video.width, video.height, video.pix_fmt = config.width, config.height, "yuv420p"
        video.bit_rate = config.video_bit_rate
        try:
            audio = out.add_stream("mp3", rate=config.flv_audio_rate)
        except (ValueError, av.error.FFmpegError):
            audio = out.add_stream("aac", rate=config.flv_audio_rate)
        audio.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode())
        chunk = config.sample_rate // 10
        for start in range(0, len(pcm), chunk):
            aframe = av.AudioFrame.from_ndarray(
                pcm[None, start : start + chunk], format="s16", layout="mono"
            )
            aframe.sample_rate = config.sample_rate
            aframe.pts = start
            aframe.time_base = Fraction(1, config.sample_rate)
            out.mux(audio.encode(aframe))
        out.mux(audio.encode())
