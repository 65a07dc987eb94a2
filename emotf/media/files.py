"""Decode video frames and audio from media files, with checks that name the file and problem.

Nothing here depends on the video codec: real CREMA-D is On2 VP6 in FLV at 29.97 fps,
the synthetic sample is FLV1 at 30 fps, the tests also use other rates. PyAV (its own FFmpeg)
decodes whatever FFmpeg can; the frame rate is always read from the stream.

Problems a caller may handle (skip the clip, fall back to another source) raise `MediaError`;
conversions that keep the data usable (truncated video, stereo or 44.1 kHz audio) are returned
as human-readable `notes`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import soundfile
import soxr

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"


class MediaError(Exception):
    """A media file that cannot be used; `str(error)` is "<path>: <problem>"."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.path, self.problem))


def pcm_to_float(data: np.ndarray) -> np.ndarray:
    """Decoded audio samples as float32 in [-1, 1): integer PCM of any width scaled by its
    full range (u8 centred first), float passed through."""
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float32)


def is_lfs_pointer(path: str | Path) -> bool:
    """True when the file is a Git LFS pointer (a small text file) instead of the media."""
    try:
        with open(path, "rb") as f:
            return f.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


def check_media_file(path: str | Path) -> Path:
    """Raise `MediaError` for a missing, empty or LFS-pointer file; return the path."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    if is_lfs_pointer(path):
        raise MediaError(path, "Git LFS pointer file, not media (run `git lfs pull`)")
    return path


# ---------------------------------------------------------------------------------------------
# Display orientation
#
# Phones store video as the sensor reads it (landscape) and say how to show it in the stream's
# display matrix (FFmpeg's AV_PKT_DATA_DISPLAYMATRIX, MP4/MOV `tkhd`; e.g. a -90 degree rotation
# for a portrait video). FFmpeg's decoders attach it to every frame as DISPLAYMATRIX side data;
# `frame_to_rgb` turns each frame the way a player shows it, so the face is upright for MTCNN.


def display_matrix(frame) -> np.ndarray | None:
    """A decoded PyAV frame's display matrix: int32 [9] in FFmpeg's layout (16.16 fixed point,
    row-vector convention), None when the stream declares none."""
    try:
        data = frame.side_data.get("DISPLAYMATRIX")
    except (AttributeError, KeyError, ValueError):
        return None
    if data is None:
        return None
    raw = bytes(data)
    return np.frombuffer(raw, np.int32, count=9).copy() if len(raw) >= 36 else None


def orientation(matrix) -> tuple[bool, bool, bool]:
    """(transpose, flip rows, flip columns) that show a frame as the display matrix says, the
    nearest quarter turn and mirroring (FFmpeg's `-autorotate` for multiples of 90 degrees).

    The matrix maps a stored pixel (x, y) to (x * a + y * c, x * b + y * d) + translation, with
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4] and y pointing down: a -90 degree
    rotation (b = 1, c = -1) turns the frame a quarter clockwise (`np.rot90(rgb, -1)`).
    """
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    if abs(a) + abs(d) >= abs(b) + abs(c):
        return False, d < 0, a < 0
    return True, b < 0, c < 0


def apply_orientation(rgb: np.ndarray, transform: tuple[bool, bool, bool]) -> np.ndarray:
    """`rgb` [H, W, C] turned by an `orientation` result (C-contiguous when changed)."""
    transpose, flip_rows, flip_cols = transform
    if not (transpose or flip_rows or flip_cols):
        return rgb
    out = rgb.transpose(1, 0, 2) if transpose else rgb
    if flip_rows:
        out = out[::-1]
    if flip_cols:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def orientation_note(frame) -> str | None:
    """A note when the frame's display matrix turns it (None when it does not): what it does,
    from the stored size to the size shown."""
    matrix = display_matrix(frame)
    transform = orientation(matrix) if matrix is not None else (False, False, False)
    if not any(transform):
        return None
    what = {
        (False, True, True): "rotated 180 degrees",
        (True, False, True): "rotated 90 degrees clockwise",
        (True, True, False): "rotated 90 degrees counter-clockwise",
        (False, False, True): "mirrored left-right",
        (False, True, False): "mirrored top-bottom",
        (True, False, False): "rotated 90 degrees counter-clockwise and mirrored",
        (True, True, True): "rotated 90 degrees clockwise and mirrored",
    }[transform]
    width, height = (frame.height, frame.width) if transform[0] else (frame.width, frame.height)
    return (
        f"{what} by its display matrix: frames turned as players show them "
        f"({frame.width}x{frame.height} stored, {width}x{height} shown)"
    )


def frame_to_rgb(frame) -> np.ndarray:
    """A decoded PyAV video frame as uint8 [H, W, 3] RGB, upright: turned as its display matrix
    says (see `orientation`), so H x W is the size a player shows."""
    rgb = frame.to_ndarray(format="rgb24")
    matrix = display_matrix(frame)
    return rgb if matrix is None else apply_orientation(rgb, orientation(matrix))


@dataclass
class DecodedVideo:
    """Decoded frames of one video.

    Attributes:
        frames: uint8 [T, H, W, 3] RGB.
        fps: frames per second read from the stream (e.g. 29.97 for real CREMA-D).
        notes: conversions or tolerated problems (e.g. truncated file), one line each.
    """

    frames: np.ndarray
    fps: float
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds covered by the frames: T / fps."""
        return len(self.frames) / self.fps


def _stream_fps(stream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    return None


def container_duration(path: str | Path) -> float | None:
    """The duration the container declares, in seconds (None when it declares none)."""
    try:
        with av.open(str(path)) as container:
            if container.duration is not None and container.duration > 0:
                return container.duration / 1_000_000
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    return None


def decode_video(path: str | Path, max_frames: int | None = None) -> DecodedVideo:
    """Decode every frame of the first video stream to RGB, upright (its display matrix applied:
    `frame_to_rgb`).

    Args:
        path: any container/codec FFmpeg reads (FLV with VP6 or FLV1, MP4, ...).
        max_frames: raise `MediaError` past this many frames (bounds memory on odd files).

    Returns:
        `DecodedVideo` with frames uint8 [T, H, W, 3]. A file that breaks off after some frames
        returns those frames with a note.

    Raises:
        MediaError: missing, empty or LFS-pointer file, no video stream, no decodable frame,
            too many frames.
    """
    path = check_media_file(path)
    notes: list[str] = []
    frames: list[np.ndarray] = []
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(path, f"cannot open as video ({error})") from None
    with container:
        if not container.streams.video:
            raise MediaError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _stream_fps(stream)
        try:
            for frame in container.decode(stream):
                note = orientation_note(frame) if not frames else None
                if note:
                    notes.append(note)
                frames.append(frame_to_rgb(frame))
                if max_frames is not None and len(frames) > max_frames:
                    raise MediaError(path, f"more than {max_frames} frames (too long)")
        except (av.error.FFmpegError, EOFError, ValueError) as error:
            if not frames:
                raise MediaError(path, f"no decodable video frame ({error})") from None
            notes.append(f"video breaks off after {len(frames)} frames ({error}); kept those")
    if not frames:
        raise MediaError(path, "no video frames (empty or truncated video)")
    if fps is None:
        raise MediaError(path, "the video stream declares no frame rate")
    return DecodedVideo(np.stack(frames), fps, notes)


def _to_mono_int16(
    path, samples: np.ndarray, rate: int, target_rate: int, notes: list[str]
) -> np.ndarray:
    """float [S, C] in [-1, 1] -> int16 [S'] mono at target_rate, noting each conversion."""
    if samples.ndim == 1:
        samples = samples[:, None]
    channels = samples.shape[1]
    if channels > 1:
        samples = samples.mean(axis=1, keepdims=True)
        notes.append(f"{channels} channels downmixed to mono")
    mono = samples[:, 0]
    if rate != target_rate:
        mono = soxr.resample(mono.astype(np.float32), rate, target_rate)
        notes.append(f"resampled {rate} Hz -> {target_rate} Hz")
    if mono.size == 0:
        raise MediaError(path, "no audio samples")
    return np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)


def wav_header_shortfall(path: str | Path) -> str | None:
    """A note when a RIFF/WAVE file's `data` chunk header promises more bytes than the file
    holds (a cut download or copy), else None. Reads the chunk headers only."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = Path(path).stat().st_size
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"fmt ":
                    fmt = f.read(min(chunk_size, 16))
                    if len(fmt) >= 14:
                        block_align = struct.unpack_from("<H", fmt, 12)[0]
                    f.seek(chunk_size - len(fmt) + (chunk_size & 1), 1)
                    continue
                if chunk_id == b"data":
                    held = size - f.tell()
                    if chunk_size in (0, 0xFFFFFFFF) or chunk_size <= held:
                        return None
                    if block_align:
                        return (
                            f"WAV header promises {chunk_size // block_align} samples, the "
                            f"file holds {held // block_align} (truncated): kept those"
                        )
                    return (
                        f"WAV header promises {chunk_size} data bytes, the file holds "
                        f"{held} (truncated): kept those"
                    )
                f.seek(chunk_size + (chunk_size & 1), 1)
    except OSError:
        return None


def _read_wav(path: Path, target_rate: int) -> tuple[np.ndarray, list[str]]:
    try:
        info = soundfile.info(str(path))
        if info.frames == 0:
            raise MediaError(path, "empty audio (0 samples)")
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except MediaError:
        raise
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as error:
        raise MediaError(path, f"cannot read audio ({error})") from None
    if data.shape[0] == 0:
        raise MediaError(path, "empty audio (0 samples)")
    notes: list[str] = []
    shortfall = wav_header_shortfall(path)
    if shortfall:
        notes.append(shortfall)
    if info.subtype != "PCM_16":
        notes.append(f"{info.subtype} samples converted to int16")
    return _to_mono_int16(path, data, rate, target_rate, notes), notes


def _read_av_audio(path: Path, target_rate: int) -> tuple[np.ndarray, list[str]]:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(path, f"cannot open ({error})") from None
    chunks: list[np.ndarray] = []
    notes: list[str] = []
    with container:
        if not container.streams.audio:
            raise MediaError(path, "no audio track")
        stream = container.streams.audio[0]
        rate, channels = stream.rate, stream.channels
        try:
            for frame in container.decode(stream):
                # fltp/flt/s16... -> float32 [S, C]
                data = pcm_to_float(frame.to_ndarray())
                if frame.format.is_planar:
                    data = data.T
                else:
                    data = data.reshape(-1, len(frame.layout.channels))
                chunks.append(data.astype(np.float32))
        except (av.error.FFmpegError, EOFError, ValueError) as error:
            if not chunks:
                raise MediaError(path, f"no decodable audio ({error})") from None
            notes.append(f"audio breaks off ({error}); kept what decoded")
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise MediaError(path, "empty audio track (0 samples)")
    data = np.concatenate(chunks)
    notes.insert(0, f"audio from the {stream.codec_context.name} track ({rate} Hz, {channels} ch)")
    return _to_mono_int16(path, data, rate, target_rate, notes), notes


def load_audio(path: str | Path, target_rate: int = 16000) -> tuple[np.ndarray, list[str]]:
    """Read audio as 16-bit mono PCM at `target_rate`.

    WAV (and other files libsndfile reads: FLAC, ...) go through soundfile; anything else
    (a video's own track: MP3/AAC in FLV) through PyAV. Stereo is averaged to mono and other
    rates are resampled with soxr; each conversion adds a note.

    Returns:
        (pcm int16 [S], notes list[str]).

    Raises:
        MediaError: missing, empty or LFS-pointer file, no audio track, no samples.
    """
    path = check_media_file(path)
    if path.suffix.lower() in (".wav", ".flac", ".ogg", ".aiff", ".aif"):
        return _read_wav(path, target_rate)
    return _read_av_audio(path, target_rate)


def encode_jpegs(images: np.ndarray, quality: int = 90) -> list[bytes]:
    """JPEG-encode RGB images uint8 [T, H, W, 3] (OpenCV's libjpeg-turbo: ~0.3 ms at 224x224).

    The BGR copy OpenCV wants is made by `cv2.cvtColor` (the same bytes as
    `np.ascontiguousarray(image[..., ::-1])`, several times faster than that strided copy)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    out = []
    for image in images:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise ValueError("JPEG encoding failed")
        out.append(buf.tobytes())
    return out
