"""Which face is which: detections on keyframes associated into tracks with stable ids.

`FaceAssigner.assign(index, boxes)` takes the face boxes MTCNN found on one frame (frames in
increasing order: keyframes and the frames re-detected after a miss) and returns the track of
each box. `emotf.media.stream.MultiStreamTracker` turns the tracks' detections into a box per
frame and face (the single-face tracker's interpolation, carrying and smoothing, per track).

Per frame t, with gap = `FaceTracksConfig.max_gap_seconds` in frames:

1. **Overlap**: each live track (last detection at most gap frames before t) has a predicted
   box: its last box moved on at its velocity between its last two detections (a face crossing
   another keeps going the way it went), the last box itself for a track seen once. Pairs of
   (box, track) with IoU >= `min_iou` with the predicted box are matched, highest IoU first
   (greedy, each box and each track at most once).
2. **Re-identification**: a box left over that overlaps a box matched in 1. by at least
   `emotf.media.faces.SAME_FACE_OVERLAP` of the smaller box is that face seen twice (MTCNN's
   forehead box) and dropped; the others are matched to tracks left over (a fast face that
   moved past IoU between keyframes; a face back after a short gap) when the box's centre is
   at most `max_shift` box sides from the track's predicted centre (or its last centre, for a
   track missed on the keyframe before) and its side within `max_size_ratio` of the last
   side; nearest first.
3. **New faces**: the boxes still left start tentative tracks (largest first, at most
   `max_faces` live tracks). A tentative track is confirmed, and only then gets the next id
   (0, 1, ... in order of confirmation), at its `min_detections`-th detection; one not detected
   again on the next keyframe (`end_keyframe`) is dropped: a single false detection never
   becomes a face.

A track not detected for more than gap frames (at least one keyframe interval) is finished:
a face that returns later gets a new id. Nothing here looks at pixels: a face that returns
elsewhere, or after a longer gap, is a new face (docs/faces.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from emotf.bounds import bounded, check_bounds
from emotf.configs import Config
from emotf.media.faces import SAME_FACE_OVERLAP, box_iou, box_overlap


@dataclass(frozen=True)
class FaceTracksConfig(Config):
    """How detections become faces with stable ids (`emotf-predict --faces all`)."""

    min_iou: float = bounded(
        0.3,
        gt=0.0,
        le=1.0,
        help="a box continues the track whose predicted box it overlaps by at least this IoU",
    )
    max_gap_seconds: float = bounded(
        2.0,
        ge=0.0,
        le=60.0,
        help="a face lost for at most this long gets its id back when it returns near where it "
        "was lost; after longer, a new id",
    )
    max_shift: float = bounded(
        1.5,
        ge=0.0,
        le=20.0,
        help="re-identification: the returning box's centre at most this many box sides from "
        "the lost face's last (or predicted) centre",
    )
    max_size_ratio: float = bounded(
        1.6,
        ge=1.0,
        le=10.0,
        help="re-identification: the returning box's side within this factor of the lost one's",
    )
    min_detections: int = bounded(
        2, ge=1, le=10, help="detections (on consecutive keyframes) before a new face gets an id"
    )
    max_faces: int = bounded(8, ge=1, le=64, help="most faces tracked at once (largest first)")

    def __post_init__(self):
        check_bounds(self)


def box_value(box) -> np.ndarray:
    """(centre x, centre y, side) of a box (x0, y0, x1, y1): side = the longer edge."""
    box = np.asarray(box, np.float64)
    return np.array(
        [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, max(box[2] - box[0], box[3] - box[1])]
    )


@dataclass
class Track:
    """One face's detections so far.

    Attributes:
        key: internal number (creation order); face_id: the public id, None while tentative.
        hits: detections; first, last: frame indices of the first and last detection.
        missed: not detected on the last keyframe processed (`FaceAssigner.end_keyframe`).
        box, velocity: the last detected box (float [4]) and its centre's motion in px per
            frame between the last two detections.
    """

    key: int
    first: int
    last: int
    box: np.ndarray
    hits: int = 1
    face_id: int | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    missed: bool = False

    def predicted(self, index: int) -> np.ndarray:
        shift = self.velocity * (index - self.last)
        return self.box + np.concatenate([shift, shift])

    def update(self, index: int, box: np.ndarray) -> None:
        if self.hits and index > self.last:
            old, new = box_value(self.box), box_value(box)
            self.velocity = (new[:2] - old[:2]) / (index - self.last)
        self.box, self.last = np.asarray(box, np.float64), index
        self.hits += 1


class FaceAssigner:
    """Online association of per-frame face boxes into tracks (see the module docstring).

    Args:
        config: `FaceTracksConfig`.
        fps: frames per second (turns `max_gap_seconds` into frames).
        keyframe_interval: frames between keyframes: a track lives at least this long after
            its last detection (a shorter `max_gap_seconds` would end every track between two
            keyframes).

    Attributes:
        stats: `faces` (ids given), `reidentified` (faces that got their id back after missing
            at least one keyframe), `dropped` (tentative tracks never confirmed).
    """

    def __init__(self, config: FaceTracksConfig, fps: float, keyframe_interval: int = 1):
        self.config = config
        # A face is looked for on the next keyframe at least, however short max_gap_seconds.
        self.gap = max(1, math.ceil(config.max_gap_seconds * fps), keyframe_interval)
        self.tracks: list[Track] = []  # live ones (finished tracks are forgotten)
        self.next_key = 0
        self.next_id = 0
        self.stats = {"faces": 0, "reidentified": 0, "dropped": 0}

    def _live(self, index: int) -> list[Track]:
        self.tracks = [t for t in self.tracks if index - t.last <= self.gap]
        return self.tracks

    def assign(self, index: int, boxes) -> list[Track | None]:
        """The track of each box found on frame `index` (None: a box dropped: a second box on
        a face, or over `max_faces`). Frames must come in increasing order."""
        cfg = self.config
        boxes = [np.asarray(b, np.float64) for b in boxes]
        out: list[Track | None] = [None] * len(boxes)
        tracks = [t for t in self._live(index) if t.last < index]
        free_tracks = set(range(len(tracks)))
        free_boxes = set(range(len(boxes)))
        # 1. overlap with the predicted boxes, highest IoU first
        if boxes and tracks:
            ious = box_iou(
                np.stack(boxes)[:, None, :],
                np.stack([t.predicted(index) for t in tracks])[None, :, :],
            )
            for b, t in sorted(
                np.argwhere(ious >= cfg.min_iou).tolist(),
                key=lambda bt: (-ious[bt[0], bt[1]], bt[0], bt[1]),
            ):
                if b in free_boxes and t in free_tracks:
                    out[b] = tracks[t]
                    free_boxes.discard(b)
                    free_tracks.discard(t)
        # 2. a second box on a matched face is dropped; the rest may be lost faces returning
        # (a frame detected twice, the keyframe again at full size after a miss: the faces
        # already boxed on it count as matched)
        already = [t.box for t in self.tracks if t.last == index]
        matched = already + [boxes[b] for b in range(len(boxes)) if out[b] is not None]
        for b in sorted(free_boxes):
            if (
                matched
                and np.max(box_overlap(np.stack(matched), boxes[b][None])) >= SAME_FACE_OVERLAP
            ):
                free_boxes.discard(b)
        pairs = []
        for b in free_boxes:
            value = box_value(boxes[b])
            for t in free_tracks:
                track = tracks[t]
                last = box_value(track.box)
                ratio = max(value[2], last[2]) / max(min(value[2], last[2]), 1e-9)
                if ratio > cfg.max_size_ratio:
                    continue
                # A face moving steadily (seen on the keyframe before) is looked for where it
                # went; one lost for a while, where it was lost too.
                distance = np.hypot(*(value[:2] - box_value(track.predicted(index))[:2]))
                if track.missed:
                    distance = min(distance, np.hypot(*(value[:2] - last[:2])))
                if distance <= cfg.max_shift * last[2]:
                    pairs.append((distance / last[2], b, t))
        for _, b, t in sorted(pairs):
            if b in free_boxes and t in free_tracks:
                out[b] = tracks[t]
                free_boxes.discard(b)
                free_tracks.discard(t)
        # 3. new (tentative) tracks, largest first, not on a face already boxed here
        for b in sorted(free_boxes, key=lambda b: -box_value(boxes[b])[2]):
            taken = already + [boxes[i] for i in range(len(boxes)) if out[i] is not None]
            if taken and np.max(box_overlap(np.stack(taken), boxes[b][None])) >= SAME_FACE_OVERLAP:
                continue
            if len(self.tracks) >= cfg.max_faces:
                break
            track = Track(self.next_key, index, index, boxes[b], hits=0)
            self.next_key += 1
            self.tracks.append(track)
            out[b] = track
        for b, found in enumerate(out):
            if found is None:
                continue
            if found.face_id is not None and found.missed:
                self.stats["reidentified"] += 1
            found.update(index, boxes[b])
            found.missed = False
            if found.face_id is None and found.hits >= cfg.min_detections:
                found.face_id = self.next_id
                self.next_id += 1
                self.stats["faces"] += 1
        return out

    def end_keyframe(self, index: int) -> list[Track]:
        """After keyframe `index` (and the frames re-detected after it): mark the tracks not
        detected there as missed and drop the tentative ones among them. Returns the
        dropped tracks."""
        dropped = []
        for track in list(self.tracks):
            if track.last < index:
                track.missed = True
                if track.face_id is None:
                    self.tracks.remove(track)
                    dropped.append(track)
            else:
                track.missed = False
        self.stats["dropped"] += len(dropped)
        return dropped

    def tentative(self) -> list[Track]:
        """Live tracks without an id yet."""
        return [t for t in self.tracks if t.face_id is None]
