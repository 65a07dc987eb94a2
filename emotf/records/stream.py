"""The online face tracker of streamed video (frames from `emotf.records.decode`).

`StreamTracker` holds only the frames whose face box is not final yet (bounded: see its
docstring). `emotf.records.preprocess` puts decoding and tracking together for
`emotf-build-records` and `emotf-predict` alike.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from emotf.records.faces import FaceTracker, other_faces, pick_face

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
    previous box most (`emotf.records.faces.pick_face`); `stats["multi_face_frames"]` counts the
    detections that saw another face besides it (`emotf.records.faces.other_faces`: a second
    box on the same face does not count). The boxes do not depend on `batch`.

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
        box = pick_face(candidates, self.previous)
        if box is None:
            return False
        if other_faces(candidates, box):  # not a second box on the same face
            self.stats["multi_face_frames"] += 1
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
