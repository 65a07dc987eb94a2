"""The online face tracker of streamed video (frames from `emotf.media.decode`).

`StreamTracker` holds only the frames whose face box is not final yet (bounded: see its
docstring). `emotf.media.preprocess` puts decoding and tracking together for
`emotf-build-records` and `emotf-predict` alike.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from emotf.media.face_tracks import FaceAssigner, FaceTracksConfig
from emotf.media.faces import FaceTracker, FaceTrackerConfig, other_faces, pick_face

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


class BoxPath:
    """One face's detections as (centre x, centre y, side), sorted by frame index, and the
    value at any frame (see `StreamTracker`: interpolated between two detections at most
    2 x gap frames apart, else the nearer within gap carried, else not a face)."""

    def __init__(self, gap: int):
        self.gap = gap
        self.index: list[int] = []
        self.value: list[np.ndarray] = []

    def add(self, index: int, value: np.ndarray) -> None:
        self.index.append(index)
        self.value.append(value)

    def value_at(self, s: int, default: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
        """(centre x, centre y, side) at frame s before smoothing, and whether it is a face;
        out of reach: the last detection before s, else `default` (None: the first after)."""
        idx, gap = self.index, self.gap
        j = bisect.bisect_right(idx, s)
        a = j - 1 if j > 0 else None
        b = j - 1 if a is not None and idx[a] == s else (j if j < len(idx) else None)
        if a is not None and b is not None:
            ia, ib = idx[a], idx[b]
            if ia == ib:
                return self.value[a], True
            if ib - ia <= 2 * gap:
                w = (s - ia) / (ib - ia)
                return (1 - w) * self.value[a] + w * self.value[b], True
        near = [(abs(s - idx[k]), k) for k in (a, b) if k is not None]
        near.sort()
        if near and near[0][0] <= gap:
            return self.value[near[0][1]], True
        if a is not None:
            return self.value[a], False
        fallback = default if default is not None or b is None else self.value[b]
        if fallback is None:
            raise ValueError("a box path without detections needs a default value")
        return fallback, False

    def detected(self, s: int) -> bool:
        j = bisect.bisect_left(self.index, s)
        return j < len(self.index) and self.index[j] == s

    def settled(self, s: int) -> bool:
        """A detection at or after s exists (detections only come after the settled frames)."""
        return bisect.bisect_left(self.index, s) < len(self.index)

    def prune(self, keep_from: int) -> None:
        """Forget detections before `keep_from` but the last of them (kept for carrying)."""
        j = bisect.bisect_left(self.index, keep_from)
        if j > 1:
            del self.index[: j - 1]
            del self.value[: j - 1]


class BoxSmoother:
    """The Gaussian smoothing over `smoothing` frames (edge-padded at both ends of the clip)
    and the square margin, as `emotf.media.faces.boxes_from_detections`."""

    def __init__(self, smoothing: float, margin: float):
        self.margin = margin
        self.radius = math.ceil(3 * smoothing) if smoothing > 0 else 0
        if self.radius:
            t = np.arange(-self.radius, self.radius + 1)
            kernel = np.exp(-0.5 * (t / smoothing) ** 2)
            self.kernel = kernel / kernel.sum()

    def box(self, path: BoxPath, t: int, last: int, default=None) -> np.ndarray:
        """float32 [4] square box (x0, y0, x1, y1) of frame t (frames 0..last exist)."""
        if self.radius:
            values = [
                path.value_at(min(max(s, 0), last), default)[0]
                for s in range(t - self.radius, t + self.radius + 1)
            ]
            centre = np.tensordot(self.kernel, np.stack(values), axes=1)
        else:
            centre = path.value_at(t, default)[0]
        half = centre[2] * (1 + self.margin) / 2
        return np.array(
            [centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half], np.float32
        )


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


class KeyframeQueue:
    """What both trackers share: grid frames held in order (`buffer`, `max_held`), keyframes
    every `keyframe_interval` frames queued (`pending`) and detected `batch` at a time once
    the frames a miss may re-detect on have arrived. Each tracker has its own
    `_detect_pending` (what a keyframe's boxes mean) and `_emit` (when a frame is final)."""

    cfg: FaceTrackerConfig
    batch: int  # keyframes per detector call
    buffer: deque  # (index, frame) not yet emitted
    pending: list[int]  # keyframes waiting for one batched detector call
    known: int  # detections are settled for frames <= known
    count: int  # frames pushed
    max_held: int  # most frames held in `buffer`

    def _detect_pending(self) -> None:
        raise NotImplementedError

    def _emit(self) -> Iterator:
        raise NotImplementedError

    def _frame(self, index: int) -> np.ndarray:
        return self.buffer[index - self.buffer[0][0]][1]

    def push(self, frame: np.ndarray) -> Iterator:
        """Add the next grid frame; yields the frames whose boxes became final."""
        index = self.count
        self.buffer.append((index, frame))
        self.count += 1
        self.max_held = max(self.max_held, len(self.buffer))
        k_int = self.cfg.keyframe_interval
        if index % k_int == 0:
            self.pending.append(index)
        if not self.pending:
            self.known = index
        elif len(self.pending) >= self.batch and index >= self.pending[-1] + min(
            self.cfg.redetect_frames, k_int - 1
        ):
            self._detect_pending()
        yield from self._emit()


class StreamTracker(KeyframeQueue):
    """`FaceTracker`'s keyframe detection + tracking, online: `push` frames, get them back with
    their final box, in order.

    Per frame index s, with a = the last detection at or before s, b = the first at or after:
    the box centre and side are interpolated linearly between a and b when b - a <= 2 * gap
    (gap = `max_gap_seconds` in frames); otherwise the nearer of a, b within `gap` is carried;
    a frame with neither within reach gets `face=False` (box: a's, else the frame's centre
    square). Then the Gaussian smoothing over `smoothing` frames (edge-padded at both ends of
    the clip) and the square margin, as `emotf.media.faces.boxes_from_detections`. Keyframes every
    `keyframe_interval` frames and the last frame, `batch` of them per detector call (at the
    scales of `FaceTracker.scales`); a missed keyframe is re-detected at full resolution on
    itself and the next `redetect_frames` frames (not past the next keyframe), one at a time
    until one hits. The face followed: the largest at first, then the one overlapping the
    previous box most (`emotf.media.faces.pick_face`); `stats["multi_face_frames"]` counts the
    detections that saw another face besides it (`emotf.media.faces.other_faces`: a second
    box on the same face does not count). The boxes do not depend on `batch`.

    A batch is detected once its last keyframe and the frames it may re-detect on have
    arrived; detections are then settled up to the newest frame (`known`). A frame's box is
    final once a settled detection at or after s + radius exists, or 2 * gap settled frames
    have passed without one; so at most batch x keyframe_interval + min(redetect_frames,
    keyframe_interval - 1) + radius + 1 frames are held while a face is found, and about
    2 * gap more while none is (`max_held` records the most).
    """

    def __init__(
        self, tracker: FaceTracker, fps: float, height: int, width: int, batch: int | None = None
    ):
        cfg = tracker.config
        self.tracker, self.cfg = tracker, cfg
        self.batch = (
            detect_batch(height, width, cfg.keyframe_interval) if batch is None else int(batch)
        )
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1. Received: batch={batch}")
        self.scale, self.redetect_scale = tracker.scales(height, width)
        self.pending: list[int] = []  # keyframes waiting for one batched detector call
        self.known = -1  # detections are settled for frames <= known
        self.gap = max(1, round(cfg.max_gap_seconds * fps))
        self.smoother = BoxSmoother(cfg.smoothing, cfg.margin)
        self.radius = self.smoother.radius
        self.path = BoxPath(self.gap)  # the followed face's detections
        side = float(min(height, width))
        self.centre_value = np.array([width / 2, height / 2, side / (1 + cfg.margin)])
        self.buffer: deque = deque()  # (index, frame) not yet emitted
        self.previous = None  # last box found (what pick_face follows)
        self.count = 0  # frames pushed
        self.next_out = 0
        self.ended = False
        self.max_held = 0
        self.stats = {
            k: 0
            for k in (
                "detector_images",
                "keyframes",
                "keyframe_misses",
                "redetections",
                "multi_face_frames",
                "frames",
                "frames_detected",
                "frames_without_face",
            )
        }

    # -- detection ---------------------------------------------------------------------------

    def _found(self, index: int, candidates: list) -> bool:
        box = pick_face(candidates, self.previous)
        if box is None:
            return False
        if other_faces(candidates, box):  # not a second box on the same face
            self.stats["multi_face_frames"] += 1
        self.previous = box
        self.path.add(
            index,
            np.array(
                [
                    (box[0] + box[2]) / 2,
                    (box[1] + box[3]) / 2,
                    max(box[2] - box[0], box[3] - box[1]),
                ]
            ),
        )
        return True

    @property
    def det_index(self) -> list[int]:
        """Frame indices of the detections still held (sorted)."""
        return self.path.index

    def _detect_pending(self, last: int | None = None) -> None:
        """One detector call for the pending keyframes, then, in frame order, the face picked
        on each and the re-detections after a miss (the frames are all held).

        `last` (the clip's last frame, from `finish`): detected in the same call, and used as
        a keyframe after the others unless a re-detection already found the face on it (as
        if it had been detected on its own after them: a call alone costs ~2x a keyframe in
        a batch)."""
        keys, self.pending = self.pending, []
        k_int = self.cfg.keyframe_interval
        images = keys if last is None else [*keys, last]
        found = self.tracker.detect([self._frame(k) for k in images], self.scale)
        for key, candidates in zip(images, found, strict=True):
            if key == last and self.path.detected(last):
                continue  # found by a re-detection: its keyframe result is not used
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

    def _final(self, s: int) -> bool:
        """The unsmoothed value at s will not change any more."""
        if self.ended:
            return True
        # Detections are only ever added after `known`, so one at or after s settles s.
        return self.path.settled(s) or self.known >= s + 2 * self.gap

    def _emit(self) -> Iterator[TrackedFrame]:
        while self.buffer:
            t = self.next_out
            if not self.ended and (
                t + self.radius > self.known or not self._final(t + self.radius)
            ):
                return
            box = self.smoother.box(self.path, t, self.count - 1, self.centre_value)
            face = self.path.value_at(t, self.centre_value)[1]
            index, frame = self.buffer.popleft()
            detected = int(self.path.detected(t))
            self.stats["frames"] += 1
            self.stats["frames_detected"] += detected
            self.stats["frames_without_face"] += not face
            self.next_out += 1
            # Forget detections no frame still to come can reach (keeps memory bounded).
            self.path.prune(self.next_out - self.radius - 2 * self.gap - 1)
            yield TrackedFrame(index, frame, box, detected, face)

    # -- public ------------------------------------------------------------------------------

    def finish(self) -> Iterator[TrackedFrame]:
        """End of the video: the last frame is a keyframe too (detected in one call with the
        keyframes still pending); yields the remaining frames."""
        last = self.count - 1
        if (
            self.count
            and last % self.cfg.keyframe_interval != 0
            and (self.pending or not self.path.detected(last))
        ):
            self._detect_pending(last)
        elif self.pending:
            self._detect_pending()
        self.ended = True
        yield from self._emit()

    @property
    def found_any(self) -> bool:
        return self.stats["frames"] - self.stats["frames_without_face"] > 0 or bool(self.path.index)


# --------------------------------------------------------------------------------------------
# Every face


@dataclass
class FaceBox:
    """One face on one frame: its id (`emotf.media.face_tracks`), its final box float32 [4]
    (square, margin included) and whether the detector found it on this frame (0/1)."""

    face_id: int
    box: np.ndarray
    detected: int


@dataclass
class TrackedFaces:
    """One frame with every face seen on it (within reach of a detection of that face), sorted
    by id; `faces` is empty on a frame without any."""

    index: int
    frame: np.ndarray
    faces: list[FaceBox]


class MultiStreamTracker(KeyframeQueue):
    """`StreamTracker` for every face: `push` frames, get them back in order with the final box
    of each face on them.

    Detection is the single-face tracker's (keyframes every `keyframe_interval` frames and the
    last frame, `batch` per MTCNN call, at the same scales; the same detector): each keyframe's
    boxes go to `emotf.media.face_tracks.FaceAssigner`, which says which face each box is.
    A keyframe where a face seen on the keyframe before is missing, or where there is no face
    at all, is re-detected at full resolution on itself and the next `redetect_frames` frames
    (not past the next keyframe) until every such face is found again. Each face's boxes per
    frame then follow `StreamTracker`'s rule, per face: interpolated between its detections at
    most 2 x gap frames apart, carried at most gap frames (gap = the tracker's
    `max_gap_seconds`), smoothed and made square with the margin; a face is on a frame only
    within that reach (so a face that leaves the frame is gone gap frames after its last
    detection and, re-identified, is back from gap frames before its first detection again).

    A frame is given out once the detections up to 2 x gap + radius frames after it are known
    and no new face whose first detection is that near still waits for its confirmation (the
    next keyframe): at most about batch x keyframe_interval + redetect_frames + 2 x gap +
    radius + keyframe_interval frames are held (`max_held`). Detections no frame still to come
    can reach are forgotten, and so are faces finished (`FaceTracksConfig.max_gap_seconds`
    without a detection).

    Attributes:
        stats: `StreamTracker`'s counters (`frames_detected`: frames where some face was
            detected; `frames_without_face`: frames with no face on them; `multi_face_frames`
            stays 0: no face is left out), plus the assigner's `faces`, `reidentified` and
            `dropped`, and `most_faces` (the most faces on one frame).
    """

    def __init__(
        self,
        tracker: FaceTracker,
        fps: float,
        height: int,
        width: int,
        config: FaceTracksConfig | None = None,
        batch: int | None = None,
    ):
        cfg = tracker.config
        self.tracker, self.cfg = tracker, cfg
        self.batch = (
            detect_batch(height, width, cfg.keyframe_interval) if batch is None else int(batch)
        )
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1. Received: batch={batch}")
        self.scale, self.redetect_scale = tracker.scales(height, width)
        self.assigner = FaceAssigner(config or FaceTracksConfig(), fps, cfg.keyframe_interval)
        self.gap = max(1, round(cfg.max_gap_seconds * fps))
        self.smoother = BoxSmoother(cfg.smoothing, cfg.margin)
        self.radius = self.smoother.radius
        self.paths: dict = {}  # track key -> (Track, BoxPath)
        self.pending: list[int] = []
        self.known = -1
        self.buffer: deque = deque()
        self.count = 0
        self.next_out = 0
        self.ended = False
        self.max_held = 0
        self.counts = {
            k: 0
            for k in (
                "detector_images",
                "keyframes",
                "keyframe_misses",
                "redetections",
                "multi_face_frames",
                "frames",
                "frames_detected",
                "frames_without_face",
                "most_faces",
            )
        }

    # -- detection ---------------------------------------------------------------------------

    def _assign(self, index: int, candidates: list) -> bool:
        """Give the boxes found on frame `index` to their faces; True when there was any."""
        tracks = self.assigner.assign(index, [box for box, _ in candidates])
        for (box, _), track in zip(candidates, tracks, strict=True):
            if track is None:
                continue
            if track.key not in self.paths:
                self.paths[track.key] = (track, BoxPath(self.gap))
            self.paths[track.key][1].add(
                index,
                np.array(
                    [
                        (box[0] + box[2]) / 2,
                        (box[1] + box[3]) / 2,
                        max(box[2] - box[0], box[3] - box[1]),
                    ]
                ),
            )
        return bool(candidates)

    def _detect_pending(self) -> None:
        keys, self.pending = self.pending, []
        k_int = self.cfg.keyframe_interval
        found = self.tracker.detect([self._frame(k) for k in keys], self.scale)
        for key, candidates in zip(keys, found, strict=True):
            self.counts["keyframes"] += 1
            self.counts["detector_images"] += 1
            expected = [t for t in self.assigner.tracks if t.face_id is not None and not t.missed]
            any_face = self._assign(key, candidates)
            if any_face and all(t.last >= key for t in expected):
                self._end_keyframe(key)
                continue
            self.counts["keyframe_misses"] += 1
            stop = min(key + 1 + self.cfg.redetect_frames, (key // k_int + 1) * k_int, self.count)
            for j in range(key, stop):  # a face lost: full resolution, frame by frame
                self.counts["redetections"] += 1
                self.counts["detector_images"] += 1
                any_face |= self._assign(
                    j, self.tracker.detect([self._frame(j)], self.redetect_scale)[0]
                )
                if any_face and all(t.last >= key for t in expected):
                    break
            self._end_keyframe(key)
        self.known = self.count - 1

    def _end_keyframe(self, key: int) -> None:
        for track in self.assigner.end_keyframe(key):  # tentative faces not seen again
            self.paths.pop(track.key, None)

    # -- frames ------------------------------------------------------------------------------

    def _ready(self, t: int) -> bool:
        if self.ended:
            return True
        horizon = t + self.radius + 2 * self.gap
        return self.known >= horizon and all(
            track.first > horizon for track in self.assigner.tentative()
        )

    def _emit(self) -> Iterator[TrackedFaces]:
        while self.buffer and self._ready(self.next_out):
            t = self.next_out
            faces = []
            for track, path in self.paths.values():
                if track.face_id is None or not path.value_at(t)[1]:
                    continue
                faces.append(
                    FaceBox(
                        track.face_id,
                        self.smoother.box(path, t, self.count - 1),
                        int(path.detected(t)),
                    )
                )
            faces.sort(key=lambda f: f.face_id)
            index, frame = self.buffer.popleft()
            self.counts["frames"] += 1
            self.counts["frames_detected"] += any(f.detected for f in faces)
            self.counts["frames_without_face"] += not faces
            self.counts["most_faces"] = max(self.counts["most_faces"], len(faces))
            self.next_out += 1
            self._prune()
            yield TrackedFaces(index, frame, faces)

    def _prune(self) -> None:
        keep_from = self.next_out - self.radius - 2 * self.gap - 1
        live = {track.key for track in self.assigner.tracks}
        for key, (_track, path) in list(self.paths.items()):
            path.prune(keep_from)
            if key not in live and path.index[-1] + self.gap + self.radius < self.next_out:
                del self.paths[key]  # finished, and out of reach of every frame to come

    # -- public ------------------------------------------------------------------------------

    def finish(self) -> Iterator[TrackedFaces]:
        """End of the video: the last frame is a keyframe too; yields the remaining frames."""
        if self.pending:
            self._detect_pending()
        last = self.count - 1
        if (
            self.count
            and last % self.cfg.keyframe_interval != 0
            and not any(path.detected(last) for _, path in self.paths.values())
        ):
            self.pending = [last]
            self._detect_pending()
        for track in self.assigner.tentative():  # never confirmed: not a face
            self.paths.pop(track.key, None)
        self.ended = True
        yield from self._emit()

    @property
    def stats(self) -> dict:
        """The counters (see the class docstring), the assigner's included."""
        return {**self.counts, **self.assigner.stats}
