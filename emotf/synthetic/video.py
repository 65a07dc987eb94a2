"""Synthetic user-style videos of any length, size and container, written as a stream.

For emotf-predict's tests and `tools/bench_predict.py`: the astronaut's head (the face MTCNN
finds in `emotf.synthetic.sample`) drifting over a green background, optionally a second, smaller
head, optionally stretches without any face, optionally a variable frame rate; speech-like
audio (a few harmonics switched on and off) in the container's own track. Frames are rendered
and encoded one at a time, so a ten-minute 1080p video needs no more memory than one frame.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from emotf.synthetic.media import _head

# container suffix -> (video codec, audio codec)
CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".avi": ("mpeg4", "mp3"),
    ".flv": ("flv", "mp3"),
}


def _paste(frame: np.ndarray, head: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    h, w = head.shape[:2]
    patch = frame[y : y + h, x : x + w].astype(np.float32)
    frame[y : y + h, x : x + w] = (alpha * head + (1 - alpha) * patch).astype(np.uint8)


def face_position(
    t: float, width: int, height: int, head_w: int, head_h: int, phase: float = 0.0
) -> tuple[int, int]:
    """Top-left corner of a head drifting on a slow ellipse (a few px per frame)."""
    x = (width - head_w) * (0.5 + 0.3 * np.sin(2 * np.pi * t / 7.0 + phase))
    y = (height - head_h) * (0.5 + 0.25 * np.sin(2 * np.pi * t / 5.0 + phase))
    return int(np.clip(x, 0, width - head_w)), int(np.clip(y, 0, height - head_h))


def write_face_video(
    path: str | Path,
    seconds: float,
    *,
    fps: float = 30.0,
    width: int = 640,
    height: int = 480,
    head_height: int | None = None,
    no_face: tuple[tuple[float, float], ...] = (),
    second_face: bool = False,
    audio: bool = True,
    vfr: bool = False,
    sample_rate: int = 16000,
    video_codec: str | None = None,
    bit_rate: int = 800_000,
    display_rotation: int = 0,
) -> Path:
    """Write a video; the container follows the suffix (see `CODECS`).

    Args:
        seconds, fps, width, height: the video.
        head_height: the main head's height in px (default: 0.45 x the frame height).
        no_face: (start, end) seconds with no face in the frame.
        second_face: a second head at 0.55 x the size, on another path.
        audio: add an audio track (mono, `sample_rate`, the container's audio codec).
        vfr: variable frame rate: every 7th frame is left out (its timestamp skipped) and
            every 11th frame comes 1/3 of a frame early.
        display_rotation: a display matrix rotating the video by this many degrees
            counter-clockwise (a multiple of 90; as PyAV's `VideoFrame.rotation` reads it back;
            MP4/MOV/MKV): the frames are stored turned the other way, so the video plays upright
            at width x height. -90 is a phone's portrait video, stored landscape.
    """
    if display_rotation % 90:
        raise ValueError(f"display_rotation must be a multiple of 90. Received: {display_rotation}")
    turns = -(display_rotation // 90)  # np.rot90 turns (counter-clockwise) from shown to stored
    path = Path(path)
    vcodec, acodec = CODECS[path.suffix.lower()]
    vcodec = video_codec or vcodec
    head_h = head_height or int(height * 0.45)
    head, alpha, _ = _head(head_h)
    small, small_alpha, _ = _head(int(head_h * 0.55))
    bg = np.empty((height, width, 3), np.uint8)
    bg[:] = (50, 150, 70)
    bg[:, :, 0] = np.linspace(30, 90, width, dtype=np.uint8)[None, :]
    num = int(round(seconds * fps))
    rate = Fraction(fps).limit_denominator(1001)
    # Time base: a frame, or a third of one for the variable-rate case (MP4/MKV/MOV/WebM).
    sub = 3 if vfr else 1
    tick = rate * sub
    with av.open(str(path), "w", format="flv" if path.suffix.lower() == ".flv" else None) as out:
        video = out.add_stream(vcodec, rate=rate)
        if not isinstance(video, av.VideoStream):
            raise ValueError(f"video_codec must name a video codec. Received: {vcodec!r}")
        stored_w, stored_h = (height, width) if turns % 2 else (width, height)
        video.width, video.height, video.pix_fmt = stored_w, stored_h, "yuv420p"
        if display_rotation % 360:
            video.set_display_rotation(display_rotation)
        if vfr:
            video.codec_context.time_base = 1 / tick
            video.time_base = 1 / tick
        video.bit_rate = bit_rate
        if vcodec == "libx264":
            video.options = {"preset": "ultrafast"}
        if vcodec == "mpeg4":
            video.codec_context.max_b_frames = 0  # AVI keeps no timestamps for B-frames
        if vcodec == "libvpx-vp9":
            video.options = {"deadline": "realtime", "cpu-used": "8"}
        sound: av.AudioStream | None = None
        if audio:
            # Opus runs at 48 kHz, MP3 in FLV at 44.1 kHz (as real CREMA-D's FLVs).
            arate = {"libopus": 48000}.get(acodec, 44100 if vcodec == "flv" else sample_rate)
            stream = out.add_stream(acodec, rate=arate)
            if not isinstance(stream, av.AudioStream):
                raise ValueError(f"{acodec!r} is not an audio codec")
            stream.layout = "mono"
            sound = stream
        rng = np.random.default_rng(0)
        for i in range(num):
            t = i / fps
            if vfr and i % 7 == 3:
                continue
            frame = bg.copy()
            frame[::8, ::8] += rng.integers(0, 6, frame[::8, ::8].shape, dtype=np.uint8)
            if not any(a <= t < b for a, b in no_face):
                if second_face:
                    x, y = face_position(t, width, height, small.shape[1], small.shape[0], 2.5)
                    _paste(frame, small, small_alpha, x, y)
                x, y = face_position(t, width, height, head.shape[1], head.shape[0])
                _paste(frame, head, alpha, x, y)
            vf = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(np.rot90(frame, turns)), format="rgb24"
            )
            vf.pts = sub * i - (1 if vfr and i % 11 == 5 else 0)
            vf.time_base = 1 / tick
            out.mux(video.encode(vf))
        out.mux(video.encode())
        if sound is not None:
            srate = int(sound.rate)
            chunk = srate // 10
            for start in range(0, int(seconds * srate), chunk):
                ts = (start + np.arange(chunk)) / srate
                on = (np.sin(2 * np.pi * 3.0 * ts) > -0.3).astype(np.float32)
                tones = sum(
                    np.sin(2 * np.pi * f * ts) / k for k, f in enumerate((180, 360, 540), 1)
                )
                wave = 0.2 * on * tones + 0.01 * rng.standard_normal(chunk)
                pcm = np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16)[None]
                aframe = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
                aframe.sample_rate, aframe.pts = srate, start
                aframe.time_base = Fraction(1, srate)
                for packet in sound.encode(aframe):
                    out.mux(packet)
            out.mux(sound.encode())
    return path
