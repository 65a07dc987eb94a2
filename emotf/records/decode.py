"""Streamed decoding: video frames on a constant-rate grid, audio chunks at the model's rate.

Nothing here holds a whole video. `open_video` decodes one frame at a time onto a constant
frame-rate grid (variable frame rate handled by timestamps), turned upright by the stream's
display matrix; `AudioStream` reads mono int16 audio chunk by chunk into a buffer the caller
trims. `emotf.records.stream` tracks faces on the frames; `emotf.records.preprocess` puts them
together for the build and for prediction.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotf.records.media import (
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

    Each frame is turned as its display matrix says (`emotf.records.media.frame_to_rgb`: phone
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
    import av

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
    declared = container.duration / 1_000_000 if container.duration and container.duration > 0 else None
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
    info = VideoInfo(fps, first_rgb.shape[1], first_rgb.shape[0], declared,
                     close=container.close)  # for a caller that gives up before decoding
    note = orientation_note(first)
    if note:
        info.notes.append(note)

    def frames():
        with container:
            try:
                yield from on_grid(itertools.chain([(first.time, first_rgb)],
                                                   ((f.time, frame_to_rgb(f)) for f in decoded)),
                                   info)
            except (av.error.FFmpegError, EOFError, ValueError) as error:
                info.notes.append(f"video breaks off after {info.frames} frames ({error}); kept those")

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
        self.path = check_media_file(path)
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
        self._resampler = None

    @classmethod
    def from_chunks(cls, name: str, chunks: Iterator[np.ndarray], source_rate: int,
                    channels: int, rate: int) -> AudioStream:
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
        if self.path.suffix.lower() in (".wav", ".flac", ".ogg", ".aiff", ".aif"):
            return self._open_soundfile()
        return self._open_av()

    def _open_soundfile(self):
        import soundfile

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
        import av

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise MediaError(self.path, f"cannot open ({error})") from None
        if not container.streams.audio:
            container.close()
            raise MediaError(self.path, "no audio track")
        stream = container.streams.audio[0]
        self.source_rate, self.channels = stream.rate, stream.channels
        self.notes.append(f"audio from the {stream.codec_context.name} track ({stream.rate} Hz, "
                          f"{stream.channels} ch)")

        def chunks():
            got = False
            with container:
                try:
                    for frame in container.decode(stream):
                        data = pcm_to_float(frame.to_ndarray())
                        data = data.T if frame.format.is_planar else data.reshape(-1, len(frame.layout.channels))
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
            import soxr

            if self._resampler is None:
                self._resampler = soxr.ResampleStream(self.source_rate, self.rate, 1, dtype="float32")
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
        return self.buffer[start - self.offset: max(start, end) - self.offset].copy()

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
            raise MediaError(video, f"no audio: {error.problem} (pass a WAV with --audio)") from None
        raise MediaError(audio, f"no usable audio ({first.problem}; video track: {error.problem})") from None
    if audio is not None:
        notes.append(f"{audio}: {first.problem}; audio taken from the video's own track")
    return stream, notes


# --------------------------------------------------------------------------------------------
# Live sources
#
# A pipe can be read once, so a live source is demuxed in ONE pass: a thread opens the
# container, decodes video and audio packets as they come and hands them over (bounded queue);
# the main thread routes them to the frame grid and to an `AudioStream`. The thread is the only
# one that touches the container (FFmpeg is not thread-safe on one context), and the main
# thread only ever waits on the queue, in short slices: a signal ends any wait at once and
# every wait has a deadline (`LiveSource.timeout_s`), however the source stalls.

# URL schemes read as live streams (FFmpeg's protocols; `pipe:N` is file descriptor N).
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtp", "srt", "udp", "tcp", "http", "https",
                "pipe")
# Probe at most this much before the first frame (FFmpeg's defaults, 5 MB and 5 s, are a
# start-up delay of up to 5 s on a live stream).
LIVE_PROBE = {"probesize": "1000000", "analyzeduration": "1000000"}
# Decoded items (a frame, an audio chunk) waiting between the thread and the main thread; the
# thread waits when the queue is full (a pipe's writer is then held back; a device or a network
# stream drops data as it does for any slow reader).
LIVE_QUEUE_ITEMS = 32
# Video and audio further apart in the stream than this end the stream with an error (a source
# whose audio stopped would otherwise pile up frames without end); frames held waiting for
# audio are also capped in bytes.
LIVE_MAX_SKEW_S = 5.0
LIVE_MAX_HELD_BYTES = 256 * 2**20
# The main thread's waits are cut into slices this long (signals are handled between them).
_POLL_S = 0.2


@dataclass(frozen=True)
class LiveSource:
    """A live input for `ClipReader` / `emotf-predict --live`: `-` (a container stream on
    standard input, e.g. MPEG-TS from ffmpeg), a capture device `/dev/videoN`, or a stream URL
    (`rtsp://`, `http://`, `udp://`, ...; `pipe:N` reads file descriptor N).

    Attributes:
        spec: what the user gave.
        timeout_s: the longest wait for data (opening included) before the stream ends with
            an error naming the source.
        format: the container format to expect (`mpegts`, `matroska`, ...); None: probed.
    """

    spec: str
    timeout_s: float = 10.0
    format: str | None = None

    def __post_init__(self):
        if not isinstance(self.spec, str) or not self.spec:
            raise ValueError(f"a live source is '-', /dev/videoN or a URL. Received: {self.spec!r}")
        if self.kind is None:
            raise ValueError(f"a live source is '-' (standard input), /dev/videoN or a stream "
                             f"URL ({', '.join(s + '://' for s in LIVE_SCHEMES[:-1])}). "
                             f"Received: {self.spec!r}")
        if not 0.1 <= float(self.timeout_s) <= 3600:
            raise ValueError(f"the live timeout must be 0.1 to 3600 seconds. Received: "
                             f"timeout={self.timeout_s}")

    @property
    def kind(self) -> str | None:
        """'stdin', 'device', 'url', or None (not a live source)."""
        if self.spec == "-":
            return "stdin"
        if self.spec.startswith("/dev/"):
            return "device"
        scheme = self.spec.split(":", 1)[0].lower() if ":" in self.spec else ""
        return "url" if scheme in LIVE_SCHEMES else None

    @property
    def label(self) -> str:
        """The source as errors name it."""
        return "standard input (-)" if self.spec == "-" else self.spec

    def __str__(self) -> str:
        return self.spec


_PIPE_RECIPE = ("ffmpeg -f v4l2 -i /dev/video0 -f alsa -i default -c:v libx264 -preset ultrafast "
                "-tune zerolatency -c:a aac -f mpegts - | emotf-predict --model M --live -")


def _open_live_container(source: LiveSource):
    """The opened container (in the demux thread). Raises MediaError naming the source."""
    import av

    options = dict(LIVE_PROBE)
    kind, name = source.kind, source.label
    if kind == "device":
        if not Path(source.spec).exists():
            raise MediaError(name, "no such capture device")
        if "v4l2" not in av.formats_available and "video4linux2" not in av.formats_available:
            raise MediaError(name, "this PyAV build reads no capture devices (no v4l2), and a "
                                   "webcam has no sound: pipe camera and microphone in as one "
                                   f"stream: {_PIPE_RECIPE}")
    url = "pipe:0" if kind == "stdin" else source.spec
    fmt = source.format or ("v4l2" if kind == "device" else None)
    try:
        return av.open(url, format=fmt, options=options,
                       timeout=(source.timeout_s, source.timeout_s))
    except av.error.ExitError:
        raise MediaError(name, f"no data for {source.timeout_s:g} s") from None
    except (av.error.FFmpegError, OSError, ValueError) as error:
        if isinstance(error, av.error.InvalidDataError):
            raise MediaError(name, "not a media stream (no container format recognised)") from None
        problem = getattr(error, "strerror", None) or str(error)
        raise MediaError(name, f"cannot open ({problem})") from None


class LiveFeed:
    """One pass over a live source's container: the demux thread and the main thread's side.

    `open_live` starts it. `frames()` yields (time s or None, rgb uint8 [H, W, 3]) in decoding
    order; `audio_chunks()` float32 [n, channels] chunks at `source_rate`, aligned to the first
    video frame (audio before it dropped, a late start padded with silence), so that audio
    sample 0 and grid frame 0 are the same instant, as in a file. Items of the other kind met
    on the way are held (bounded: `LIVE_MAX_SKEW_S`, `LIVE_MAX_HELD_BYTES`).

    Attributes:
        stats: "max_video_held" / "max_audio_held_s" (items held by the router),
            "packets_dropped" (undecodable packets skipped: a lossy network).
    """

    def __init__(self, source: LiveSource):
        import queue
        import threading

        self.source = source
        self.queue: queue.Queue = queue.Queue(maxsize=LIVE_QUEUE_ITEMS)
        self.stop = threading.Event()
        self.ended = False
        self.video_held: deque = deque()
        self.audio_held: deque = deque()
        self.held_bytes = 0
        self.audio_rate = 0  # set once open
        self.last_video_time = self.last_audio_time = None
        self.stats = {"max_video_held": 0, "max_audio_held_s": 0.0, "packets_dropped": 0}
        self.thread = threading.Thread(target=self._run, daemon=True, name="emotf-live-demux")

    # -- the demux thread --------------------------------------------------------------------

    def _put(self, item) -> bool:
        import queue

        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            container = _open_live_container(self.source)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self._put(("error", error))
            return
        try:
            self._demux(container)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self._put(("error", error))
        finally:
            container.close()

    def _demux(self, container) -> None:
        import av

        name = self.source.label
        if not container.streams.video:
            raise MediaError(name, "no video stream")
        if not container.streams.audio:
            raise MediaError(name, "no audio track (the model needs the speech too: send one "
                                   f"stream with both, e.g. {_PIPE_RECIPE})")
        video, audio = container.streams.video[0], container.streams.audio[0]
        video.thread_type = "SLICE"  # frame threads would hold frames back (latency)
        fps = next((float(r) for r in (video.average_rate, video.guessed_rate, video.base_rate)
                    if r is not None and 0 < float(r) <= 240), None)
        if fps is None:
            raise MediaError(name, "the video stream declares no frame rate")
        if not audio.rate or not audio.channels:
            raise MediaError(name, "the audio track declares no sample rate")
        if not self._put(("open", {"fps": fps, "audio_rate": audio.rate,
                                   "channels": audio.channels, "codecs": (
                                       video.codec_context.name, audio.codec_context.name)})):
            return
        start = None  # the first video frame's time: audio is aligned to it
        early: list = []  # audio decoded before the first video frame: (time, chunk)
        placed = False  # has an audio sample been handed over (later chunks follow on)?

        def place(t, data) -> bool:
            """Hand over an audio chunk; until the first one, placed by its time relative to
            the first video frame (earlier samples dropped, a gap filled with silence)."""
            nonlocal placed
            if not placed and t is not None:
                shift = int(round((t - start) * audio.rate))
                if shift > 0:
                    data = np.concatenate([np.zeros((shift, data.shape[1]), np.float32), data])
                else:
                    data = data[-shift:]
            if not len(data):
                return True
            placed = True
            return self._put(("audio", (t, data)))

        try:
            for packet in container.demux(video, audio):
                if self.stop.is_set():
                    return
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, ValueError):
                    self.stats["packets_dropped"] += 1  # a damaged packet (lossy network)
                    continue
                for frame in frames:
                    if packet.stream.type == "video":
                        if start is None:
                            start = frame.time if frame.time is not None else 0.0
                            if not all(place(t, d) for t, d in early):
                                return
                            early = []
                        if not self._put(("video", (frame.time, frame_to_rgb(frame)))):
                            return
                        continue
                    data = pcm_to_float(frame.to_ndarray())
                    data = data.T if frame.format.is_planar else data.reshape(
                        -1, len(frame.layout.channels))
                    data = data.astype(np.float32)
                    if start is not None:
                        if not place(frame.time, data):
                            return
                        continue
                    early.append((frame.time, data))
                    if sum(len(d) for _, d in early) > LIVE_MAX_SKEW_S * audio.rate:
                        raise MediaError(name, f"no video frame in the first "
                                               f"{LIVE_MAX_SKEW_S:g} s of audio")
        except av.error.ExitError:
            raise MediaError(name, f"no data for {self.source.timeout_s:g} s") from None
        except (av.error.FFmpegError, OSError) as error:
            raise MediaError(name, f"stream broke off ({error})") from None
        self._put(("end", None))

    # -- the main thread ---------------------------------------------------------------------

    def wait_open(self) -> dict:
        """Start the thread; the stream's parameters once it is open. Raises MediaError."""
        self.thread.start()
        kind, payload = self._take()
        if kind == "error":
            raise payload
        if kind != "open":
            raise MediaError(self.source.label, "the stream ended before it started")
        return payload

    def _take(self):
        import queue

        deadline = time.monotonic() + self.source.timeout_s
        while True:
            try:
                return self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    return ("end", None)
                if time.monotonic() > deadline:
                    raise MediaError(self.source.label,
                                     f"no data for {self.source.timeout_s:g} s") from None

    def _pump(self) -> None:
        """Take one item from the thread and hold it on its side; raise its error."""
        kind, payload = self._take()
        if kind == "error":
            self.ended = True
            raise payload
        if kind in ("end", "open"):
            self.ended = kind == "end"
            return
        t, data = payload
        if kind == "video":
            self.video_held.append(payload)
            self.held_bytes += data.nbytes
            self.last_video_time = t if t is not None else self.last_video_time
            self.stats["max_video_held"] = max(self.stats["max_video_held"], len(self.video_held))
        else:
            self.audio_held.append(data)
            self.last_audio_time = t if t is not None else self.last_audio_time
        self._check_skew()

    def _check_skew(self) -> None:
        held = sum(len(d) for d in self.audio_held) / max(self.audio_rate, 1)
        self.stats["max_audio_held_s"] = max(self.stats["max_audio_held_s"], round(held, 3))
        a, v = self.last_audio_time, self.last_video_time
        name = self.source.label
        if self.video_held and (self.held_bytes > LIVE_MAX_HELD_BYTES
                                or (a is not None and v is not None and v - a > LIVE_MAX_SKEW_S)):
            raise MediaError(name, f"the audio lags the video by more than {LIVE_MAX_SKEW_S:g} s")
        if a is not None and v is not None and a - v > LIVE_MAX_SKEW_S:
            raise MediaError(name, f"the video lags the audio by more than {LIVE_MAX_SKEW_S:g} s")

    def frames(self) -> Iterator[tuple]:
        while True:
            if self.video_held:
                item = self.video_held.popleft()
                self.held_bytes -= item[1].nbytes
                yield item
            elif self.ended:
                return
            else:
                self._pump()

    def audio_chunks(self) -> Iterator[np.ndarray]:
        while True:
            if self.audio_held:
                yield self.audio_held.popleft()
            elif self.ended:
                return
            else:
                self._pump()

    def close(self) -> None:
        """Stop the thread (it closes the container); a thread blocked in a read that never
        returns is a daemon: it ends with the process."""
        self.stop.set()
        self.ended = True


def open_live(source: LiveSource, rate: int) -> tuple[VideoInfo, Iterator[np.ndarray],
                                                     AudioStream, LiveFeed]:
    """(VideoInfo, grid frames, AudioStream at `rate`, the LiveFeed) of a live source, read in
    one pass (see `LiveFeed`). The first frame is waited for here, as `open_video` does, so
    `info.width` / `info.height` are known.

    Raises:
        MediaError: naming the source: missing device, unreachable URL, not a media stream,
            no video or no audio, no data within `source.timeout_s`.
    """
    feed = LiveFeed(source)
    try:
        opened = feed.wait_open()
        feed.audio_rate = opened["audio_rate"]
        timed = feed.frames()
        first = next(timed, None)
        if first is None:
            raise MediaError(source.label, "the stream ended before its first video frame")
    except BaseException:
        feed.close()
        raise
    rgb = first[1]
    info = VideoInfo(opened["fps"], rgb.shape[1], rgb.shape[0], None, close=feed.close)
    info.notes.append(f"live {source.label}: {opened['codecs'][0]} video at {opened['fps']:g} "
                      f"fps, {opened['codecs'][1]} audio ({opened['audio_rate']} Hz, "
                      f"{opened['channels']} ch)")
    audio = AudioStream.from_chunks(source.label, feed.audio_chunks(), opened["audio_rate"],
                                    opened["channels"], rate)
    return info, on_grid(itertools.chain([first], timed), info), audio, feed
