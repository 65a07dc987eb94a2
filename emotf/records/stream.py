"""Streaming media: video frames on a constant-rate grid, an online face tracker, audio chunks.

Nothing here holds a whole video. `open_video` decodes one frame at a time; `StreamTracker`
holds only the frames whose face box is not final yet (bounded: see its docstring);
`AudioStream` reads mono int16 audio at the model's rate chunk by chunk into a buffer the
caller trims. `emotf.records.preprocess` puts them together for `emotf-build-records` and
`emotf-predict` alike.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotf.records.faces import FaceTracker, pick_face
from emotf.records.media import MediaError, check_media_file, wav_header_shortfall

# --------------------------------------------------------------------------------------------
# Video


@dataclass
class VideoInfo:
    """What the stream declares, plus what decoding found (filled in as frames arrive).

    Attributes:
        fps: frame rate of the grid (the stream's average rate: 29.97 for real CREMA-D).
        width, height: frame size in pixels.
        declared_seconds: the container's duration (None when it declares none).
        frames: grid frames yielded so far.
        duplicated, dropped: frames repeated / left out to put a variable-rate stream on the
            constant grid (by timestamps).
        notes: tolerated problems (a stream that breaks off).
    """

    fps: float
    width: int
    height: int
    declared_seconds: float | None = None
    frames: int = 0
    duplicated: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


def open_video(path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """(VideoInfo, generator of uint8 [H, W, 3] RGB frames on a constant `fps` grid).

    Frame i of the grid is the decoded frame whose timestamp rounds to i / fps (relative to
    the first frame): a constant-rate stream passes through unchanged; a variable-rate one
    (phone videos) gets frames repeated or dropped so that frame i is at i / fps seconds, and
    `info.duplicated` / `info.dropped` count them. A stream that breaks off after some frames
    ends there with a note.

    Raises:
        MediaError: missing/empty/LFS-pointer file, not a video, no video stream, no frame
            rate, no decodable frame (the last one from the generator).
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
    info = VideoInfo(fps, stream.codec_context.width, stream.codec_context.height, declared)

    def frames():
        with container:
            start, last, previous = None, -1, None
            try:
                for frame in container.decode(stream):
                    rgb = frame.to_ndarray(format="rgb24")
                    time = frame.time
                    if time is None:
                        slot = last + 1
                    else:
                        start = time if start is None else start
                        slot = round((time - start) * fps)
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
            except (av.error.FFmpegError, EOFError, ValueError) as error:
                if not info.frames:
                    raise MediaError(path, f"no decodable video frame ({error})") from None
                info.notes.append(f"video breaks off after {info.frames} frames ({error}); kept those")
            if not info.frames:
                raise MediaError(path, "no video frames (empty or truncated video)")

    return info, frames()


# --------------------------------------------------------------------------------------------
# Faces

# Keyframes detected per MTCNN call (one call per keyframe costs ~2x more per frame), as long as
# the frames this holds back (batch x keyframe_interval) stay under DETECT_BATCH_BYTES: 4 at
# 640x480, 2 at 1280x720, 1 at 1920x1080 (where detection runs on a downscaled copy anyway).
DETECT_BATCH = 4
DETECT_BATCH_BYTES = 64 * 2**20


def detect_batch(height: int, width: int, keyframe_interval: int) -> int:
    """Keyframes per detector call for frames of this size (see DETECT_BATCH_BYTES)."""
    per_interval = max(1, height * width * 3 * keyframe_interval)
    return int(max(1, min(DETECT_BATCH, DETECT_BATCH_BYTES // per_interval)))


@dataclass
class TrackedFrame:
    """One frame with its final face box.

    Attributes:
        index: grid frame index.
        frame: uint8 [H, W, 3] RGB.
        box: float32 [4] square pixel box (x0, y0, x1, y1), margin included.
        detected: 1 where the detector found the face on this frame, else 0.
        face: False when the frame is farther than `max_gap_seconds` from any detection (its
            box is carried or the frame centre, not a face).
    """

    index: int
    frame: np.ndarray
    box: np.ndarray
    detected: int
    face: bool


class StreamTracker:
    """`FaceTracker`'s keyframe detection + tracking, online: `push` frames, get them back with
    their final box, in order.

    Per frame index s, with a = the last detection at or before s, b = the first at or after:
    the box centre and side are interpolated linearly between a and b when b - a <= 2 * gap
    (gap = `max_gap_seconds` in frames); otherwise the nearer of a, b within `gap` is carried;
    a frame with neither within reach gets `face=False` (box: a's, else the frame's centre
    square). Then the Gaussian smoothing over `smoothing` frames (edge-padded at both ends of
    the clip) and the square margin, as `emotf.records.faces.boxes_from_detections`. Keyframes every
    `keyframe_interval` frames and the last frame, `batch` of them per detector call (at the
    scales of `FaceTracker.scales`); a missed keyframe is re-detected at full resolution on
    itself and the next `redetect_frames` frames (not past the next keyframe), one at a time
    until one hits. The face followed: the largest at first, then the one overlapping the
    previous box most (`emotf.records.faces.pick_face`). The boxes do not depend on `batch`.

    A batch is detected once its last keyframe and the frames it may re-detect on have
    arrived; detections are then settled up to the newest frame (`known`). A frame's box is
    final once a settled detection at or after s + radius exists, or 2 * gap settled frames
    have passed without one; so at most batch x keyframe_interval + min(redetect_frames,
    keyframe_interval - 1) + radius + 1 frames are held while a face is found, and about
    2 * gap more while none is (`max_held` records the most).
    """

    def __init__(self, tracker: FaceTracker, fps: float, height: int, width: int,
                 batch: int | None = None):
        cfg = tracker.config
        self.tracker, self.cfg = tracker, cfg
        self.batch = detect_batch(height, width, cfg.keyframe_interval) if batch is None else int(batch)
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1. Received: batch={batch}")
        self.scale, self.redetect_scale = tracker.scales(height, width)
        self.pending: list[int] = []  # keyframes waiting for one batched detector call
        self.known = -1  # detections are settled for frames <= known
        self.gap = max(1, round(cfg.max_gap_seconds * fps))
        self.radius = math.ceil(3 * cfg.smoothing) if cfg.smoothing > 0 else 0
        if self.radius:
            t = np.arange(-self.radius, self.radius + 1)
            kernel = np.exp(-0.5 * (t / cfg.smoothing) ** 2)
            self.kernel = kernel / kernel.sum()
        side = float(min(height, width))
        self.centre_value = np.array([width / 2, height / 2, side / (1 + cfg.margin)])
        self.buffer: deque = deque()  # (index, frame) not yet emitted
        self.det_index: list[int] = []  # detections, sorted by index
        self.det_value: list[np.ndarray] = []  # (centre x, centre y, side)
        self.previous = None  # last box found (what pick_face follows)
        self.count = 0  # frames pushed
        self.next_out = 0
        self.ended = False
        self.max_held = 0
        self.stats = {k: 0 for k in ("detector_images", "keyframes", "keyframe_misses",
                                     "redetections", "multi_face_frames", "frames",
                                     "frames_detected", "frames_without_face")}

    # -- detection ---------------------------------------------------------------------------

    def _found(self, index: int, candidates: list) -> bool:
        if len(candidates) > 1:
            self.stats["multi_face_frames"] += 1
        box = pick_face(candidates, self.previous)
        if box is None:
            return False
        self.previous = box
        value = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2,
                          max(box[2] - box[0], box[3] - box[1])])
        self.det_index.append(index)
        self.det_value.append(value)
        return True

    def _frame(self, index: int) -> np.ndarray:
        return self.buffer[index - self.buffer[0][0]][1]

    def _detect_pending(self) -> None:
        """One detector call for the pending keyframes, then, in frame order, the face picked
        on each and the re-detections after a miss (the frames are all held)."""
        keys, self.pending = self.pending, []
        k_int = self.cfg.keyframe_interval
        found = self.tracker.detect([self._frame(k) for k in keys], self.scale)
        for key, candidates in zip(keys, found):
            self.stats["keyframes"] += 1
            self.stats["detector_images"] += 1
            if self._found(key, candidates):
                continue
            self.stats["keyframe_misses"] += 1
            stop = min(key + 1 + self.cfg.redetect_frames, (key // k_int + 1) * k_int, self.count)
            for j in range(key, stop):  # face lost: full resolution, frame by frame
                self.stats["redetections"] += 1
                self.stats["detector_images"] += 1
                if self._found(j, self.tracker.detect([self._frame(j)], self.redetect_scale)[0]):
                    break
        self.known = self.count - 1

    # -- boxes -------------------------------------------------------------------------------

    def _value(self, s: int) -> tuple[np.ndarray, bool]:
        """(centre x, centre y, side) at frame s before smoothing, and whether it is a face."""
        idx, gap = self.det_index, self.gap
        j = bisect.bisect_right(idx, s)
        a = j - 1 if j > 0 else None
        b = j - 1 if a is not None and idx[a] == s else (j if j < len(idx) else None)
        if a is not None and b is not None:
            ia, ib = idx[a], idx[b]
            if ia == ib:
                return self.det_value[a], True
            if ib - ia <= 2 * gap:
                w = (s - ia) / (ib - ia)
                return (1 - w) * self.det_value[a] + w * self.det_value[b], True
        near = [(abs(s - idx[k]), k) for k in (a, b) if k is not None]
        near.sort()
        if near and near[0][0] <= gap:
            return self.det_value[near[0][1]], True
        return (self.det_value[a] if a is not None else self.centre_value), False

    def _final(self, s: int) -> bool:
        """The unsmoothed value at s will not change any more."""
        if self.ended:
            return True
        # Detections are only ever added after `known`, so one at or after s settles s.
        j = bisect.bisect_left(self.det_index, s)
        return j < len(self.det_index) or self.known >= s + 2 * self.gap

    def _emit(self) -> Iterator[TrackedFrame]:
        while self.buffer:
            t = self.next_out
            if not self.ended and (t + self.radius > self.known or not self._final(t + self.radius)):
                return
            last = self.count - 1
            if self.radius:
                values = [self._value(min(max(s, 0), last)) for s in range(t - self.radius, t + self.radius + 1)]
                centre = np.tensordot(self.kernel, np.stack([v for v, _ in values]), axes=1)
            else:
                values = [self._value(t)]
                centre = values[0][0]
            face = self._value(t)[1]
            half = centre[2] * (1 + self.cfg.margin) / 2
            box = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half],
                           np.float32)
            index, frame = self.buffer.popleft()
            detected = int(self._detected(t))
            self.stats["frames"] += 1
            self.stats["frames_detected"] += detected
            self.stats["frames_without_face"] += not face
            self.next_out += 1
            self._prune()
            yield TrackedFrame(index, frame, box, detected, face)

    def _detected(self, s: int) -> bool:
        j = bisect.bisect_left(self.det_index, s)
        return j < len(self.det_index) and self.det_index[j] == s

    def _prune(self) -> None:
        """Forget detections no frame still to come can reach (keeps memory bounded)."""
        keep_from = self.next_out - self.radius - 2 * self.gap - 1
        j = bisect.bisect_left(self.det_index, keep_from)
        if j > 1:  # keep one before, for carrying
            del self.det_index[: j - 1]
            del self.det_value[: j - 1]

    # -- public ------------------------------------------------------------------------------

    def push(self, frame: np.ndarray) -> Iterator[TrackedFrame]:
        """Add the next grid frame; yields the frames whose box became final."""
        index = self.count
        self.buffer.append((index, frame))
        self.count += 1
        self.max_held = max(self.max_held, len(self.buffer))
        k_int = self.cfg.keyframe_interval
        if index % k_int == 0:
            self.pending.append(index)
        if not self.pending:
            self.known = index
        elif (len(self.pending) >= self.batch
              and index >= self.pending[-1] + min(self.cfg.redetect_frames, k_int - 1)):
            self._detect_pending()
        yield from self._emit()

    def finish(self) -> Iterator[TrackedFrame]:
        """End of the video: the last frame is a keyframe too; yields the remaining frames."""
        if self.pending:
            self._detect_pending()
        last = self.count - 1
        if self.count and last % self.cfg.keyframe_interval != 0 and not self._detected(last):
            self.pending = [last]
            self._detect_pending()
        self.ended = True
        yield from self._emit()

    @property
    def found_any(self) -> bool:
        return self.stats["frames"] - self.stats["frames_without_face"] > 0 or bool(self.det_index)


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
        self.rate = int(rate)
        self.notes: list[str] = []
        self.buffer = np.zeros(0, np.int16)
        self.offset = 0  # sample index of buffer[0]
        self.total = 0
        self.ended = False
        self.max_held = 0
        self._chunks = self._open()
        self._resampler = None

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
                        data = frame.to_ndarray()
                        if data.dtype == np.int16:
                            data = data.astype(np.float32) / 32768.0
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
