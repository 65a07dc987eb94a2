"""Streamed decoding: video frames on a constant-rate grid, audio chunks at the model's rate.

Nothing here holds a whole video. `open_video` decodes one frame at a time onto a constant
frame-rate grid (variable frame rate handled by timestamps), turned upright by the stream's
display matrix; `AudioStream` reads mono int16 audio chunk by chunk into a buffer the caller
trims. `emotf.media.stream` tracks faces on the frames; `emotf.media.preprocess` puts them
together for the build and for prediction.

`open_video(path, lazy=True)` yields upright 4:2:0 frames as `YUVFrame`s: converted to RGB
whole only where the detector looks at them, and only around the face box for a crop (at
1080p a whole conversion costs about as much as decoding the frame, the crop's neighbourhood a
tenth of it); the pixels are those of the whole conversion (checked on each video's first
frame, `region_conversion_matches`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile
import soxr
from av.video.reformatter import VideoReformatter

from emotf.media.files import (
    MediaError,
    check_media_file,
    display_matrix,
    frame_to_rgb,
    orientation,
    orientation_note,
    pcm_to_float,
    wav_header_shortfall,
)

# --------------------------------------------------------------------------------------------
# Video


@dataclass
class VideoInfo:
    """What the stream declares, plus what decoding found (filled in as frames arrive).

    Attributes:
        fps: frame rate of the grid (the stream's average rate: 29.97 for real CREMA-D).
        width, height: frame size in pixels, as shown (the stream's display matrix applied:
            a portrait phone video stored landscape is taller than wide here).
        declared_seconds: the container's duration (None when it declares none).
        frames: grid frames yielded so far.
        duplicated, dropped: frames repeated / left out to put a variable-rate stream on the
            constant grid (by timestamps).
        notes: tolerated problems (a stream that breaks off) and the display matrix's turn.
    """

    fps: float
    width: int
    height: int
    declared_seconds: float | None = None
    frames: int = 0
    duplicated: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)


def open_video(path, *, lazy: bool = False) -> tuple[VideoInfo, Iterator]:
    """(VideoInfo, generator of uint8 [H, W, 3] RGB frames on a constant `fps` grid), upright.

    lazy: yield `YUVFrame`s (RGB on demand, whole or around a box: the same pixels) where the
    video allows it (`lazy_frames`), uint8 arrays otherwise.

    Each frame is turned as its display matrix says (`emotf.media.files.frame_to_rgb`: phone
    videos stored landscape and shown portrait), for the build and prediction alike; the first
    frame is decoded here, so `info.width` / `info.height` are the size shown.

    Frame i of the grid is the decoded frame whose timestamp rounds to i / fps (relative to
    the first frame): a constant-rate stream passes through unchanged; a variable-rate one
    (phone videos) gets frames repeated or dropped so that frame i is at i / fps seconds, and
    `info.duplicated` / `info.dropped` count them. A stream that breaks off after some frames
    ends there with a note.

    Raises:
        MediaError: missing/empty/LFS-pointer file, not a video, no video stream, no frame
            rate, no decodable frame.
    """
    path = check_media_file(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(path, f"cannot open as video ({error})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(path, "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    fps = None
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            fps = float(rate)
            break
    if fps is None:
        container.close()
        raise MediaError(path, "the video stream declares no frame rate")
    declared = (
        container.duration / 1_000_000 if container.duration and container.duration > 0 else None
    )
    # The first frame now: its display matrix gives the size the frames are shown at (a phone's
    # portrait video is stored landscape), which the face tracker is set up with.
    decoded = container.decode(stream)
    try:
        first = next(decoded, None)
    except (av.error.FFmpegError, EOFError, ValueError) as error:
        container.close()
        raise MediaError(path, f"no decodable video frame ({error})") from None
    if first is None:
        container.close()
        raise MediaError(path, "no video frames (empty or truncated video)")
    first_rgb = frame_to_rgb(first)
    info = VideoInfo(
        fps, first_rgb.shape[1], first_rgb.shape[0], declared, close=container.close
    )  # for a caller that gives up before decoding
    note = orientation_note(first)
    if note:
        info.notes.append(note)

    head: np.ndarray | YUVFrame = first_rgb
    convert: Callable[[av.VideoFrame], np.ndarray | YUVFrame] = frame_to_rgb
    if lazy and lazy_frames(first, first_rgb):
        reformatter = VideoReformatter()  # one swscale context for every region of the video

        def lazily(frame) -> np.ndarray | YUVFrame:
            return YUVFrame(frame, reformatter) if _plain(frame, first) else frame_to_rgb(frame)

        convert, head = lazily, YUVFrame(first, reformatter, first_rgb)

    def frames():
        with container:
            try:
                yield from on_grid(
                    itertools.chain([(first.time, head)], ((f.time, convert(f)) for f in decoded)),
                    info,
                )
            except (av.error.FFmpegError, EOFError, ValueError) as error:
                info.notes.append(
                    f"video breaks off after {info.frames} frames ({error}); kept those"
                )

    return info, frames()


def on_grid(timed_frames, info: VideoInfo) -> Iterator[np.ndarray]:
    """(time in seconds or None, rgb) pairs in decoding order -> frames on the constant
    `info.fps` grid (see `open_video`), counting `info.frames`, `duplicated`, `dropped`."""
    fps = info.fps
    start, last, previous = None, -1, None
    for t, rgb in timed_frames:
        if t is None:
            slot = last + 1
        else:
            start = t if start is None else start
            slot = round((t - start) * fps)
        if slot <= last:  # two frames on one grid slot: keep the first
            info.dropped += 1
            continue
        while previous is not None and last + 1 < slot:  # a gap: repeat
            last += 1
            info.duplicated += 1
            info.frames += 1
            yield previous
        last = slot
        previous = rgb
        info.frames += 1
        yield rgb


# 4:2:0 formats swscale converts to RGB pixel by pixel (each 2 x 2 block of pixels from its own
# chroma sample), so any even-aligned region converts to the pixels of the whole frame there.
LAZY_FORMATS = ("yuv420p", "yuvj420p")
# Pixels converted beyond a box on each side for a crop: bilinear resampling reads the pixel
# before and after each sample position, and positions stay within the box.
CROP_MARGIN = 2
# Regions converted are whole multiples of this (or the frame's side): swscale sets itself up
# anew for every new size (~1 ms, more than converting a face's region), boxes change size
# from frame to frame.
REGION_STEP = 64


def _plain(frame, first) -> bool:
    """`frame` has `first`'s 4:2:0 format, size and colours, and no display-matrix turn."""
    matrix = display_matrix(frame)
    return (
        frame.format.name == first.format.name
        and (frame.width, frame.height) == (first.width, first.height)
        and (frame.colorspace, frame.color_range) == (first.colorspace, first.color_range)
        and (matrix is None or not any(orientation(matrix)))
    )


def lazy_frames(first, first_rgb: np.ndarray) -> bool:
    """Whether a video whose first frame is `first` (converted whole: `first_rgb`) may be read
    as `YUVFrame`s: 4:2:0 at an even size, not turned, and the regions checked here (corners,
    centre, odd sizes of even offsets) converting to exactly the whole frame's pixels."""
    if first.format.name not in LAZY_FORMATS or first.width % 2 or first.height % 2:
        return False
    if not _plain(first, first) or first_rgb.shape[:2] != (first.height, first.width):
        return False
    return region_conversion_matches(first, first_rgb)


def region_conversion_matches(frame, rgb: np.ndarray) -> bool:
    """Regions of `frame` (4:2:0) converted alone equal `rgb` (the whole frame converted) there."""
    height, width = rgb.shape[:2]
    probe = YUVFrame(frame, VideoReformatter())
    rects = [(0, 0, width, height), (0, 0, 2, 2), (width - 2, height - 2, width, height)]
    for k in range(1, 6):  # sizes and offsets that are not multiples of a SIMD block
        x0, y0 = (k * 2 * 37) % (width // 2) & ~1, (k * 2 * 29) % (height // 2) & ~1
        rects.append((x0, y0, min(width, x0 + 2 * (23 * k + 1)), min(height, y0 + 2 * (19 * k))))
    for x0, y0, x1, y1 in rects:
        if not np.array_equal(probe.convert_region(x0, y0, x1, y1), rgb[y0:y1, x0:x1]):
            return False
    return True


class YUVFrame:
    """A decoded 4:2:0 frame, converted to RGB where it is used: `np.asarray(frame)` converts it
    whole (`emotf.media.files.frame_to_rgb`; kept while the frame is: the detector's keyframes),
    `paint(canvas, box)` only the box's neighbourhood, in place on a frame-sized canvas (what a
    crop reads: `emotf.media.preprocess.crop_box`).

    Attributes:
        shape: (height, width, 3), as the RGB array's.
    """

    __slots__ = ("_frame", "_reformatter", "_rgb", "shape")

    def __init__(self, frame, reformatter: VideoReformatter, rgb: np.ndarray | None = None):
        self._frame, self._reformatter, self._rgb = frame, reformatter, rgb
        self.shape = (frame.height, frame.width, 3)

    def rgb(self) -> np.ndarray:
        """The whole frame, uint8 [H, W, 3] RGB (converted once)."""
        if self._rgb is None:
            self._rgb = frame_to_rgb(self._frame)
        return self._rgb

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rgb = self.rgb()
        return rgb if dtype is None else rgb.astype(dtype)

    def convert_region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """uint8 [y1 - y0, x1 - x0, 3] RGB of the region (even x0, y0, x1, y1 or the frame's
        edge), converted alone: 4:2:0 planes cut out and converted by swscale."""
        frame = self._frame
        part = av.VideoFrame(x1 - x0, y1 - y0, frame.format.name)
        part.colorspace, part.color_range = frame.colorspace, frame.color_range
        for k, (source, target) in enumerate(zip(frame.planes, part.planes, strict=True)):
            shift = 1 if k else 0  # chroma planes: half size
            rows = np.frombuffer(memoryview(source), np.uint8).reshape(
                source.height, source.line_size
            )
            out = np.frombuffer(memoryview(target), np.uint8).reshape(
                target.height, target.line_size
            )
            out[:, : target.width] = rows[
                y0 >> shift : (y0 >> shift) + target.height,
                x0 >> shift : (x0 >> shift) + target.width,
            ]
        # one thread: a thread pool per set-up costs more than a region's conversion
        return self._reformatter.reformat(part, format="rgb24", threads=1).to_ndarray()

    def paint(self, canvas: np.ndarray, box) -> np.ndarray:
        """The RGB pixels a crop of `box` (x0, y0, x1, y1) reads, written into `canvas` (uint8
        [H, W, 3]) where they are in the frame; returns the canvas (the whole frame instead
        when it is converted already). Elsewhere the canvas keeps what it held."""
        if self._rgb is not None:
            return self._rgb
        height, width = self.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        columns = _span(math.floor(x0) - CROP_MARGIN, math.ceil(x1) + CROP_MARGIN + 1, width)
        rows = _span(math.floor(y0) - CROP_MARGIN, math.ceil(y1) + CROP_MARGIN + 1, height)
        if columns and rows:  # else no pixel of the frame is near the box
            (left, right), (top, bottom) = columns, rows
            canvas[top:bottom, left:right] = self.convert_region(left, top, right, bottom)
        return canvas


def _span(low: int, high: int, limit: int) -> tuple[int, int] | None:
    """[low, high) clipped to [0, limit) (limit even), widened to a whole number of REGION_STEP
    (or to [0, limit)) with even ends, still inside [0, limit); None when nothing is left."""
    low, high = max(0, low) & ~1, min(limit, high)
    if high <= low:
        return None
    size = min(limit, -(-(high - low) // REGION_STEP) * REGION_STEP)
    low = min(low, limit - size)  # moved back (not past 0) where the step passes the edge
    return low, low + size


# --------------------------------------------------------------------------------------------
# Audio


class AudioStream:
    """Mono int16 audio at `rate`, read chunk by chunk from a WAV (libsndfile) or a media
    file's first audio track (PyAV), downmixed and resampled (soxr, streaming) on the way.

    `read_until(n)` reads until `n` samples (from the start) are available or the audio ends;
    `samples(a, b)` returns [a, b) clipped to what exists; `drop_before(n)` frees samples
    before n. `total` counts samples read so far; `ended` says the file is exhausted.
    """

    BLOCK = 16384

    def __init__(self, path, rate: int):
        self.path: Path | str = check_media_file(path)  # str: a live source's name
        self._start(rate)
        self._chunks = self._open()

    def _start(self, rate: int) -> None:
        self.rate = int(rate)
        self.notes: list[str] = []
        self.buffer = np.zeros(0, np.int16)
        self.offset = 0  # sample index of buffer[0]
        self.total = 0
        self.ended = False
        self.max_held = 0
        self._resampler: soxr.ResampleStream | None = None  # made on the first chunk

    @classmethod
    def from_chunks(
        cls, name: str, chunks: Iterator[np.ndarray], source_rate: int, channels: int, rate: int
    ) -> AudioStream:
        """An AudioStream over float32 [n, channels] chunks at `source_rate` (a live source's
        track, `LiveFeed.audio_chunks`); `name` is what its errors name."""
        stream = cls.__new__(cls)
        stream.path = name
        stream._start(rate)
        stream.source_rate, stream.channels = int(source_rate), int(channels)
        stream._chunks = chunks
        return stream

    def _open(self) -> Iterator[np.ndarray]:
        """Generator of float32 [n, channels] chunks; sets self.source_rate, channels."""
        if Path(self.path).suffix.lower() in (".wav", ".flac", ".ogg", ".aiff", ".aif"):
            return self._open_soundfile()
        return self._open_av()

    def _open_soundfile(self):
        try:
            handle = soundfile.SoundFile(str(self.path))
        except (RuntimeError, soundfile.LibsndfileError, ValueError) as error:
            raise MediaError(self.path, f"cannot read audio ({error})") from None
        if handle.frames == 0:
            handle.close()
            raise MediaError(self.path, "empty audio (0 samples)")
        self.source_rate, self.channels = handle.samplerate, handle.channels
        shortfall = wav_header_shortfall(self.path)
        if shortfall:
            self.notes.append(shortfall)
        if handle.subtype != "PCM_16":
            self.notes.append(f"{handle.subtype} samples converted to int16")

        def chunks():
            with handle:
                while True:
                    data = handle.read(self.BLOCK, dtype="float32", always_2d=True)
                    if not len(data):
                        return
                    yield data

        return chunks()

    def _open_av(self):
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise MediaError(self.path, f"cannot open ({error})") from None
        if not container.streams.audio:
            container.close()
            raise MediaError(self.path, "no audio track")
        stream = container.streams.audio[0]
        self.source_rate, self.channels = stream.rate, stream.channels
        self.notes.append(
            f"audio from the {stream.codec_context.name} track ({stream.rate} Hz, "
            f"{stream.channels} ch)"
        )

        def chunks():
            got = False
            with container:
                try:
                    for frame in container.decode(stream):
                        data = pcm_to_float(frame.to_ndarray())
                        data = (
                            data.T
                            if frame.format.is_planar
                            else data.reshape(-1, len(frame.layout.channels))
                        )
                        got = got or len(data) > 0
                        yield data.astype(np.float32)
                except (av.error.FFmpegError, EOFError, ValueError) as error:
                    if not got:
                        raise MediaError(self.path, f"no decodable audio ({error})") from None
                    self.notes.append(f"audio breaks off ({error}); kept what decoded")

        return chunks()

    def _convert(self, data: np.ndarray | None, last: bool) -> np.ndarray:
        if data is None:
            data = np.zeros((0, max(self.channels, 1)), np.float32)
        mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if self.source_rate != self.rate:
            if self._resampler is None:
                self._resampler = soxr.ResampleStream(
                    self.source_rate, self.rate, 1, dtype="float32"
                )
            mono = self._resampler.resample_chunk(mono.astype(np.float32), last=last)
        return np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)

    def _conversion_notes(self) -> None:
        if self.channels > 1:
            self.notes.append(f"{self.channels} channels downmixed to mono")
        if self.source_rate != self.rate:
            self.notes.append(f"resampled {self.source_rate} Hz -> {self.rate} Hz")

    def read_until(self, n: int | None = None) -> None:
        """Read until `n` samples exist (None: to the end)."""
        while not self.ended and (n is None or self.total < n):
            data = next(self._chunks, None)
            last = data is None
            pcm = self._convert(data, last)
            if last:
                self.ended = True
                self._conversion_notes()
                if self.total + len(pcm) == 0:
                    raise MediaError(self.path, "empty audio track (0 samples)")
            if len(pcm):
                self.buffer = np.concatenate([self.buffer, pcm])
                self.total += len(pcm)
                self.max_held = max(self.max_held, len(self.buffer))

    def samples(self, start: int, end: int) -> np.ndarray:
        """int16 samples [start, end) (fewer at the end of the audio)."""
        self.read_until(end)
        start, end = max(start, self.offset), min(end, self.total)
        return self.buffer[start - self.offset : max(start, end) - self.offset].copy()

    def drop_before(self, n: int) -> None:
        if n > self.offset:
            cut = min(n - self.offset, len(self.buffer))
            self.buffer = self.buffer[cut:]
            self.offset += cut


def audio_source(video: Path, audio: Path | None, rate: int) -> tuple[AudioStream, list[str]]:
    """The audio of a clip: the given file, else (or when it cannot be read) the video's own
    track, with a note saying so. Raises MediaError naming both problems when neither works."""
    notes: list[str] = []
    if audio is not None:
        try:
            stream = AudioStream(audio, rate)
            stream.read_until(1)  # fail now on an unreadable file, not mid-stream
            return stream, notes
        except MediaError as error:
            first = error
    try:
        stream = AudioStream(video, rate)
        stream.read_until(1)
    except MediaError as error:
        if audio is None:
            raise MediaError(
                video, f"no audio: {error.problem} (pass a WAV with --audio)"
            ) from None
        raise MediaError(
            audio, f"no usable audio ({first.problem}; video track: {error.problem})"
        ) from None
    if audio is not None:
        notes.append(f"{audio}: {first.problem}; audio taken from the video's own track")
    return stream, notes
