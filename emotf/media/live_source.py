"""Live sources for `emotf-predict --live`: `-` (a container stream on standard input), a
capture device `/dev/videoN` or a stream URL, demuxed in one pass (video and audio) on a
thread, every wait with a deadline. `ClipReader` (`emotf.media.preprocess`) opens them with
`open_live`, so a stream goes through the same frame grid, face tracker and windows as a file.
A capture device is read through the system `ffmpeg` (camera and microphone muxed to MPEG-TS
in a child process: `emotf.media.capture`), whose output is demuxed like standard input.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from emotf.media.capture import (
    DEFAULT_MICROPHONE,
    Capture,
    check_device,
    find_ffmpeg,
    microphone_problem,
)
from emotf.media.decode import AudioStream, VideoInfo, on_grid
from emotf.media.files import MediaError, frame_to_rgb, pcm_to_float

# Live sources
#
# A pipe can be read once, so a live source is demuxed in ONE pass: a thread opens the
# container, decodes video and audio packets as they come and hands them over (bounded queue);
# the main thread routes them to the frame grid and to an `AudioStream`. The thread is the only
# one that touches the container (FFmpeg is not thread-safe on one context), and the main
# thread only ever waits on the queue, in short slices: a signal ends any wait at once and
# every wait has a deadline (`LiveSource.timeout_s`), however the source stalls.

# URL schemes read as live streams (FFmpeg's protocols; `pipe:N` is file descriptor N).
LIVE_SCHEMES = (
    "rtsp",
    "rtsps",
    "rtmp",
    "rtmps",
    "rtp",
    "srt",
    "udp",
    "tcp",
    "http",
    "https",
    "pipe",
)
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
        timeout_s: the longest wait for data (opening included; a capture device's first
            packet) before the stream ends with an error naming the source.
        format: the container format to expect (`mpegts`, `matroska`, ...); None: probed.
            None for a capture device (ffmpeg sends MPEG-TS).
        microphone: the ALSA device a capture device is read with (`default`; "none" is
            refused: the model needs the speech); only for a capture device.
    """

    spec: str
    timeout_s: float = 10.0
    format: str | None = None
    microphone: str = DEFAULT_MICROPHONE

    def __post_init__(self):
        if not isinstance(self.spec, str) or not self.spec:
            raise ValueError(f"a live source is '-', /dev/videoN or a URL. Received: {self.spec!r}")
        if self.kind is None:
            raise ValueError(
                f"a live source is '-' (standard input), /dev/videoN or a stream "
                f"URL ({', '.join(s + '://' for s in LIVE_SCHEMES[:-1])}). "
                f"Received: {self.spec!r}"
            )
        if not 0.1 <= float(self.timeout_s) <= 3600:
            raise ValueError(
                f"the live timeout must be 0.1 to 3600 seconds. Received: timeout={self.timeout_s}"
            )
        if self.kind == "device":
            problem = microphone_problem(self.microphone)
            if problem:
                raise ValueError(problem)
            if self.format is not None:
                raise ValueError(
                    "a capture device is read through ffmpeg as MPEG-TS: give it no container "
                    f"format. Received: format={self.format!r}"
                )
        elif self.microphone != DEFAULT_MICROPHONE:
            raise ValueError(
                "a microphone is for a capture device (/dev/videoN) only: '-' and URLs bring "
                f"their own audio track. Received: microphone={self.microphone!r}"
            )

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

    def check(self) -> None:
        """Refuse now, before anything starts, a capture device that cannot be read: not a
        capture device, or no `ffmpeg` to read it (MediaError naming the source). Other
        sources are checked when opened."""
        if self.kind == "device":
            check_device(self.spec)
            find_ffmpeg(self.spec)


_PIPE_RECIPE = (
    "ffmpeg -re -i talk.mp4 -c:v libx264 -preset ultrafast -tune zerolatency -c:a aac "
    "-f mpegts - | emotf-predict --model M --live -"
)


def _open_live_container(source: LiveSource, fd: int | None = None):
    """The opened container (in the demux thread): standard input, file descriptor `fd` (a
    capture child's MPEG-TS output) or the URL. Raises MediaError naming the source."""
    options = dict(LIVE_PROBE)
    name = source.label
    fmt: str | None
    if fd is not None:
        url, fmt = f"pipe:{fd}", "mpegts"
    else:
        url, fmt = ("pipe:0" if source.kind == "stdin" else source.spec), source.format
    try:
        return av.open(
            url, format=fmt, options=options, timeout=(source.timeout_s, source.timeout_s)
        )
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

    A capture device is read from its `ffmpeg` child (`emotf.media.capture.Capture`),
    started by `wait_open` and stopped by `close`; when the child fails, the error is its own
    (exit status and standard error, one line), not the stream's.

    Attributes:
        stats: "max_video_held" / "max_audio_held_s" (items held by the router),
            "packets_dropped" (undecodable packets skipped: a lossy network).
        capture: the capture child of a device (None for other sources).
    """

    def __init__(self, source: LiveSource):
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
        self.capture: Capture | None = None
        self._fd: int | None = None  # the capture child's output
        self.thread = threading.Thread(target=self._run, daemon=True, name="emotf-live-demux")

    # -- the demux thread --------------------------------------------------------------------

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            container = _open_live_container(self.source, self._fd)
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
        name = self.source.label
        if not container.streams.video:
            raise MediaError(name, "no video stream")
        if not container.streams.audio:
            raise MediaError(
                name,
                "no audio track (the model needs the speech too: send one "
                f"stream with both, e.g. {_PIPE_RECIPE})",
            )
        video, audio = container.streams.video[0], container.streams.audio[0]
        video.thread_type = "SLICE"  # frame threads would hold frames back (latency)
        fps = next(
            (
                float(r)
                for r in (video.average_rate, video.guessed_rate, video.base_rate)
                if r is not None and 0 < float(r) <= 240
            ),
            None,
        )
        if fps is None:
            raise MediaError(name, "the video stream declares no frame rate")
        if not audio.rate or not audio.channels:
            raise MediaError(name, "the audio track declares no sample rate")
        if not self._put(
            (
                "open",
                {
                    "fps": fps,
                    "audio_rate": audio.rate,
                    "channels": audio.channels,
                    "codecs": (video.codec_context.name, audio.codec_context.name),
                },
            )
        ):
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
                    data = (
                        data.T
                        if frame.format.is_planar
                        else data.reshape(-1, len(frame.layout.channels))
                    )
                    data = data.astype(np.float32)
                    if start is not None:
                        if not place(frame.time, data):
                            return
                        continue
                    early.append((frame.time, data))
                    if sum(len(d) for _, d in early) > LIVE_MAX_SKEW_S * audio.rate:
                        raise MediaError(
                            name, f"no video frame in the first {LIVE_MAX_SKEW_S:g} s of audio"
                        )
        except av.error.ExitError:
            raise MediaError(name, f"no data for {self.source.timeout_s:g} s") from None
        except (av.error.FFmpegError, OSError) as error:
            raise MediaError(name, f"stream broke off ({error})") from None
        self._put(("end", None))

    # -- the main thread ---------------------------------------------------------------------

    def wait_open(self) -> dict:
        """Start the capture child (a device) and the thread; the stream's parameters once it
        is open. Raises MediaError."""
        if self.source.kind == "device":
            self.capture = Capture(self.source.spec, self.source.microphone)
            self._fd = self.capture.start()
        self.thread.start()
        kind, payload = self._take()
        if kind == "error":
            raise self._child_failure() or payload
        if kind != "open":
            raise self._child_failure() or MediaError(
                self.source.label, "the stream ended before it started"
            )
        return payload

    def _child_failure(self) -> MediaError | None:
        """The capture child's failure, when it failed (see `Capture.failure`)."""
        return self.capture.failure() if self.capture is not None else None

    def _take(self):
        deadline = time.monotonic() + self.source.timeout_s
        while True:
            try:
                return self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    return ("end", None)
                if time.monotonic() > deadline:
                    raise MediaError(
                        self.source.label, f"no data for {self.source.timeout_s:g} s"
                    ) from None

    def _pump(self) -> None:
        """Take one item from the thread and hold it on its side; raise its error."""
        kind, payload = self._take()
        if kind == "error":
            self.ended = True
            raise self._child_failure() or payload
        if kind in ("end", "open"):
            self.ended = kind == "end"
            failure = self._child_failure() if self.ended else None
            if failure is not None:  # a device unplugged, ffmpeg killed: not a normal end
                raise failure
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
        if self.video_held and (
            self.held_bytes > LIVE_MAX_HELD_BYTES
            or (a is not None and v is not None and v - a > LIVE_MAX_SKEW_S)
        ):
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
        """Stop the thread (it closes the container) and the capture child; a thread blocked
        in a read that never returns is a daemon: it ends with the process."""
        self.stop.set()
        self.ended = True
        if self.capture is not None:
            self.capture.stop()  # its output ends: the thread's read returns
            if self.thread.is_alive():
                self.thread.join(timeout=_POLL_S * 5)
            if not self.thread.is_alive():
                self.capture.close_output()


def open_live(
    source: LiveSource, rate: int
) -> tuple[VideoInfo, Iterator[np.ndarray], AudioStream, LiveFeed]:
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
    info.notes.append(
        f"live {source.label}: {opened['codecs'][0]} video at {opened['fps']:g} "
        f"fps, {opened['codecs'][1]} audio ({opened['audio_rate']} Hz, "
        f"{opened['channels']} ch)"
    )
    audio = AudioStream.from_chunks(
        source.label, feed.audio_chunks(), opened["audio_rate"], opened["channels"], rate
    )
    return info, on_grid(itertools.chain([first], timed), info), audio, feed
