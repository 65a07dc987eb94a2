"""Streamed decoding: video frames on a constant-rate grid, audio chunks at the model's rate.

Nothing here holds a whole video. `open_video` decodes one frame at a time onto a constant
frame-rate grid (variable frame rate handled by timestamps), turned upright by the stream's
display matrix; `AudioStream` reads mono int16 audio chunk by chunk into a buffer the caller
trims. `emotf.media.stream` tracks faces on the frames; `emotf.media.preprocess` puts them
together for the build and for prediction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile
import soxr

from emotf.media.files import (
    MediaError,
    check_media_file,
    frame_to_rgb,
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


def open_video(path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """(VideoInfo, generator of uint8 [H, W, 3] RGB frames on a constant `fps` grid), upright.

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

    def frames():
        with container:
            try:
                yield from on_grid(
                    itertools.chain(
                        [(first.time, first_rgb)], ((f.time, frame_to_rgb(f)) for f in decoded)
                    ),
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
