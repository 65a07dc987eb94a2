"""Face boxes for every frame of a clip, from MTCNN run on a few keyframes, and square crops.

MTCNN costs ~80-110 ms per 480x360 frame on one CPU core (eager Keras; ~40 ms as a graph, see
`FaceTracker.detector`), so `FaceTracker` does not run it on every frame:

1. keyframes every `keyframe_interval` frames (plus the last frame) are detected in batched
   calls, on frames downscaled by `detect_scale`, or more on large frames so that the smallest
   face searched for (`min_face_fraction` of the shorter side) is MTCNN's 20 px minimum
   (`FaceTracker.scales`; the CREMA-D face is ~90x130 px, far above it);
2. a keyframe without a confident face (face lost) is re-detected at full resolution (at most
   twice the keyframes' scale on large frames), then on the next frames until one hits (at
   most `redetect_frames` frames);
3. when no keyframe found a face at all, every frame is searched before giving up
   (`NoFaceError`), so "no face" really means none in any frame;
4. between detected frames the box centre and size are interpolated linearly (carried before
   the first and after the last), smoothed with a Gaussian over time (`smoothing` frames), and
   made square with a `margin`.

`crop_faces` cuts the boxes out as size x size RGB crops (padding with black outside the
frame). `emotf-build-records` and `emotf-predict` share this code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from emotf.bounds import bounded, check_bounds
from emotf.configs import Config

MTCNN_STAGES = ("face_and_landmarks_detection", "face_detection_only")


class NoFaceError(ValueError):
    """No face was found in any frame of a clip."""


@dataclass(frozen=True)
class FaceTrackerConfig(Config):
    """How faces are found and cropped.

    Attributes:
        keyframe_interval: detect on every k-th frame (1 = every frame, no tracking).
        margin: context around the face: the square crop's side is
            `max(face w, face h) * (1 + margin)`.
        smoothing: standard deviation, in frames, of the Gaussian that smooths the box track
            over time (0 = none).
        detect_scale: keyframes are downscaled by at least this factor before detection (1 =
            full size unless `min_face_fraction` asks for less).
        min_confidence: MTCNN confidence below which a candidate is ignored.
        redetect_frames: frames after a missed keyframe tried one by one (full resolution).
        stages: MTCNN stages: "face_and_landmarks_detection" (P+R+O nets: tighter boxes) or
            "face_detection_only" (P+R nets).
        crop_size: side of the square face crops in pixels.
        jpeg_quality: JPEG quality of the stored crops.
        max_gap_seconds: `StreamTracker` interpolates the box between two detections at most
            2x this far apart and carries a detection at most this far; frames farther from
            any detection are marked as without a face (their crop is not of a face).
        min_face_fraction: smallest face searched for on keyframes, as a fraction of the
            frame's shorter side: frames are downscaled (beyond `detect_scale`) until such a
            face is MTCNN's 20 px minimum, so detection costs about the same at any resolution
            (1/12: 40 px at 480 lines, where `detect_scale` 0.5 already gives that; 90 px at
            1080). Re-detection looks for faces down to half of it. 0 = `detect_scale` only.
    """

    keyframe_interval: int = bounded(
        10, ge=1, le=1000, help="detect on every k-th frame (1 = every frame, no tracking)"
    )
    margin: float = bounded(
        0.3,
        ge=0.0,
        le=3.0,
        help="context around the face: the crop's side is max(face w, face h) x (1 + margin)",
    )
    smoothing: float = bounded(
        1.5, ge=0.0, le=100.0, help="Gaussian smoothing of the box track, sd in frames (0 = none)"
    )
    detect_scale: float = bounded(
        0.5, gt=0.0, le=1.0, help="keyframes are downscaled by at least this before detection"
    )
    min_confidence: float = bounded(
        0.9, ge=0.0, le=1.0, help="MTCNN confidence below which a candidate is ignored"
    )
    redetect_frames: int = bounded(
        3, ge=0, le=1000, help="frames after a missed keyframe tried one by one (full size)"
    )
    stages: str = bounded(
        "face_and_landmarks_detection",
        choices=MTCNN_STAGES,
        help="MTCNN stages: P+R+O nets (tighter boxes) or P+R nets",
    )
    crop_size: int = bounded(224, ge=8, le=1024, help="side of the square face crops (px)")
    jpeg_quality: int = bounded(90, ge=1, le=100, help="JPEG quality of the stored crops")
    max_gap_seconds: float = bounded(
        0.5,
        gt=0.0,
        le=60.0,
        help="farthest a detection is interpolated (x2) or carried; "
        "frames farther from any are without a face",
    )
    min_face_fraction: float = bounded(
        1 / 12,
        ge=0.0,
        lt=1.0,
        help="smallest face searched for, as a fraction of the frame's "
        "shorter side (0 = detect_scale only)",
    )

    def __post_init__(self):
        check_bounds(self)


@dataclass
class FaceTrack:
    """Face boxes of one clip.

    Attributes:
        boxes: float32 [T, 4] pixel (x0, y0, x1, y1) square crop boxes (margin included; may
            extend past the frame).
        detected: int8 [T], 1 where the detector found the face on that frame, 0 where the box
            was interpolated or carried.
        stats: detector counters: `detector_images` (images passed to MTCNN), `keyframes`,
            `keyframe_misses`, `redetections` (extra single-frame detections after a miss),
            `full_scans` (clips where every frame was searched).
    """

    boxes: np.ndarray
    detected: np.ndarray
    stats: dict = field(default_factory=dict)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [..., 4] and b [..., 4] in (x0, y0, x1, y1): float [...]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def _gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth x [T, C] along time with edge padding."""
    if sigma <= 0 or len(x) < 2:
        return x
    radius = int(np.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(x, ((radius, radius), (0, 0)), mode="edge")
    return np.stack(
        [np.convolve(padded[:, c], kernel, mode="valid") for c in range(x.shape[1])], axis=1
    )


def boxes_from_detections(
    raw: np.ndarray, margin: float = 0.3, smoothing: float = 0.0
) -> np.ndarray:
    """Per-frame square crop boxes from sparse detections.

    Args:
        raw: float [T, 4] detected (x0, y0, x1, y1) per frame, NaN rows where not detected
            (at least one row must be finite).
        margin: the square's side is `max(w, h) * (1 + margin)`.
        smoothing: Gaussian sigma in frames applied to centre and side (0 = none).

    Returns:
        float32 [T, 4] (x0, y0, x1, y1), square, centred on the (interpolated) face.
    """
    raw = np.asarray(raw, np.float64)
    hit = np.flatnonzero(np.isfinite(raw).all(axis=1))
    if hit.size == 0:
        raise NoFaceError("no detection to interpolate from")
    centre_x = (raw[hit, 0] + raw[hit, 2]) / 2
    centre_y = (raw[hit, 1] + raw[hit, 3]) / 2
    side = np.maximum(raw[hit, 2] - raw[hit, 0], raw[hit, 3] - raw[hit, 1])
    t = np.arange(len(raw))
    track = np.stack([np.interp(t, hit, v) for v in (centre_x, centre_y, side)], axis=1)
    track = _gaussian_smooth(track, smoothing)
    half = track[:, 2] * (1 + margin) / 2
    return np.stack(
        [track[:, 0] - half, track[:, 1] - half, track[:, 0] + half, track[:, 1] + half], axis=1
    ).astype(np.float32)


def pick_face(candidates: list[tuple[np.ndarray, float]], previous: np.ndarray | None):
    """The face to follow among (box xyxy, confidence) candidates: the one overlapping the
    previous box most, else the largest (the speaker in most user videos: the first face picked
    is the largest, and it is followed by overlap until it is lost). None when there is no
    candidate."""
    if not candidates:
        return None
    boxes = np.stack([c[0] for c in candidates])
    if previous is not None:
        ious = box_iou(boxes, previous[None, :])
        if ious.max() > 0:
            return boxes[int(np.argmax(ious))]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[int(np.argmax(areas))]


# A candidate covering at least this fraction of the smaller of its box and the followed face's
# box is that face seen twice, not another face: MTCNN sometimes adds a second box on the
# forehead and hair of the one face (confidence 0.90-0.95, IoU 0.1 only, so its non-maximum
# suppression keeps both; the synthetic sample: about 1 clip in 20, 25-31% of the smaller box).
# Two faces side by side do not overlap at all.
SAME_FACE_OVERLAP = 0.1


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of boxes a [..., 4] and b [..., 4] (x0, y0, x1, y1) over the smaller box's
    area: float [...] in [0, 1] (1 when one box holds the other)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return iw * ih / np.maximum(np.minimum(area_a, area_b), 1e-9)


def other_faces(candidates: list[tuple[np.ndarray, float]], followed: np.ndarray) -> int:
    """How many of the (box xyxy, confidence) candidates are faces other than the `followed`
    box: those overlapping it by less than `SAME_FACE_OVERLAP` of the smaller box."""
    if len(candidates) < 2:
        return 0
    boxes = np.stack([c[0] for c in candidates])
    return int(np.sum(box_overlap(boxes, np.asarray(followed)[None, :]) < SAME_FACE_OVERLAP))


# MTCNN's default smallest face, in pixels of the image it is given.
MTCNN_MIN_FACE = 20


# The mtcnn stage `GraphPNet` replaces (by class name: mtcnn imports TensorFlow).
PNET_STAGE = "StagePNet"


class GraphPNet:
    """mtcnn 1.0's P-net stage (`mtcnn.stages.StagePNet`) with its image pyramid in one graph.

    mtcnn resizes the batch to every pyramid level eagerly (`tf.image.resize`, AREA) and calls
    the net once per level: ~15 eager ops and 7 function calls per detector call on a 240x180
    keyframe. Here one `tf.function` (traced once per image size; the levels follow from the
    size alone) does the same resizes and net calls, with the same kernels, so its outputs
    are the same numbers (tests/test_faces.py compares both on real frames); the
    post-processing (proposals, the two NMS rounds, squaring) is mtcnn's own, unchanged.
    """

    def __init__(self, stage):
        import tensorflow as tf  # lazy: the media modules never import TensorFlow at import

        self.stage = stage
        self._name, self._id = stage.name, stage.id
        self._model = stage.model
        model = stage.model

        def pyramid(images, scales: tuple[float, ...]):
            from mtcnn.utils.images import scale_images  # lazy: mtcnn imports TensorFlow

            return [model(scale_images(images, scale)) for scale in scales]

        self._pyramid = tf.function(pyramid)

    @property
    def name(self):
        return self._name

    @property
    def id(self):
        return self._id

    @property
    def model(self):
        return self._model

    def __call__(
        self,
        images_normalized,
        images_oshapes,
        min_face_size=20,
        min_size=12,
        scale_factor=0.709,
        threshold_pnet=0.6,
        nms_pnet1=0.5,
        nms_pnet2=0.7,
        **kwargs,
    ):
        # Lazy: mtcnn imports TensorFlow; this runs only once a detector exists.
        from mtcnn.utils.bboxes import (
            generate_bounding_box,
            resize_to_square,
            smart_nms_from_bboxes,
            upscale_bboxes,
        )
        from mtcnn.utils.images import build_scale_pyramid

        # StagePNet.__call__, steps 1-7, with steps 2-3 in one graph.
        scales_groups = [
            build_scale_pyramid(
                shape[1], shape[0], min_face_size=min_face_size, scale_factor=scale_factor
            )
            for shape in images_oshapes
        ]
        scales_index = scales_groups[int(np.argmax([x.shape[0] for x in scales_groups]))]
        batch_size = images_normalized.shape[0]
        pnet_result = self._pyramid(images_normalized, tuple(float(x) for x in scales_index))
        bboxes_nms = [
            smart_nms_from_bboxes(
                upscale_bboxes(
                    generate_bounding_box(result[0], result[1], threshold_pnet),
                    np.asarray([scale] * batch_size),
                ),
                threshold=nms_pnet1,
                method="union",
                initial_sort=False,
            )
            for result, scale in zip(pnet_result, scales_index, strict=True)
        ]
        bboxes_batch = np.concatenate(bboxes_nms, axis=0) if bboxes_nms else np.empty((0, 6))
        bboxes_batch = smart_nms_from_bboxes(
            bboxes_batch, threshold=nms_pnet2, method="union", initial_sort=True
        )
        return resize_to_square(bboxes_batch)


class FaceTracker:
    """Find one face per frame with MTCNN on keyframes plus tracking (see the module docstring).

    Args:
        config: `FaceTrackerConfig`.
        detector: anything with MTCNN's `detect_faces(image_or_list)`; by default an
            `mtcnn.MTCNN(stages=config.stages)` created on first use (reuse the tracker: it
            loads once).
    """

    def __init__(self, config: FaceTrackerConfig = FaceTrackerConfig(), detector=None):
        self.config = config
        self._detector = detector

    @property
    def detector(self):
        if self._detector is None:
            # mtcnn imports TensorFlow (~4 s): the media modules load it only when a detector
            # is needed (records-build workers and `--help` start without it).
            import mtcnn
            import tensorflow as tf

            detector = mtcnn.MTCNN(stages=self.config.stages)
            # mtcnn 1.0 calls its P/R/O-nets eagerly, layer by layer: as graphs they run ~2x
            # faster with the same outputs. reduce_retracing: after the first shapes the trace
            # takes any size (candidate counts), so traces stay few. The P-net's whole image
            # pyramid (resize + net at every level) is one graph (`GraphPNet`).
            stages = getattr(detector, "_stages", None)
            if stages and type(stages[0]).__name__ == PNET_STAGE:
                stages[0] = GraphPNet(stages[0])
            for stage in stages or []:
                model = getattr(stage, "_model", None)
                if model is not None and not isinstance(stage, GraphPNet):
                    stage._model = tf.function(model, reduce_retracing=True)
            self._detector = detector
        return self._detector

    def scales(self, height: int, width: int) -> tuple[float, float]:
        """(keyframe scale, re-detection scale) for frames of height x width: `detect_scale`,
        or less where a face of `min_face_fraction` x the shorter side would still be above
        MTCNN's 20 px minimum; re-detection: full size, or down to where half that face is."""
        smallest = self.config.min_face_fraction * min(height, width)
        if smallest <= 0:
            return self.config.detect_scale, 1.0
        return (
            min(self.config.detect_scale, MTCNN_MIN_FACE / smallest),
            min(1.0, 2 * MTCNN_MIN_FACE / smallest),
        )

    def detect(self, frames: list[np.ndarray], scale: float = 1.0) -> list[list[tuple]]:
        """Run MTCNN on frames uint8 [H, W, 3] (one batched call) after resizing by `scale`.

        Returns, per frame, the confident candidates as (box float [4] xyxy in the original
        frame's pixels, confidence).
        """
        if not frames:
            return []
        if scale != 1.0:
            images = [
                cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                for f in frames
            ]
        else:
            images = [np.ascontiguousarray(f) for f in frames]
        result = self.detector.detect_faces(images, box_format="xyxy")
        out = []
        for i in range(len(images)):
            faces = result[i] if i < len(result) else []
            out.append(
                [
                    (np.asarray(face["box"], np.float64) / scale, float(face["confidence"]))
                    for face in faces
                    if face["confidence"] >= self.config.min_confidence
                ]
            )
        return out

    def track(self, frames: np.ndarray) -> FaceTrack:
        """Face boxes for every frame.

        Args:
            frames: uint8 [T, H, W, 3] RGB.

        Returns:
            `FaceTrack` (boxes float32 [T, 4] square pixel boxes with margin, detected int8 [T]).

        Raises:
            NoFaceError: no face in any frame.
        """
        cfg = self.config
        num = len(frames)
        if num == 0:
            raise ValueError("track() needs at least one frame")
        keys = list(range(0, num, cfg.keyframe_interval))
        if keys[-1] != num - 1:
            keys.append(num - 1)
        stats = dict(
            detector_images=len(keys),
            keyframes=len(keys),
            keyframe_misses=0,
            redetections=0,
            full_scans=0,
        )
        raw = np.full((num, 4), np.nan)
        scale, rescale = self.scales(*frames.shape[1:3])
        found = self.detect([frames[k] for k in keys], scale)
        previous = None
        for i, k in enumerate(keys):
            box = pick_face(found[i], previous)
            if box is None:  # face lost: full resolution, then the next frames
                stats["keyframe_misses"] += 1
                stop = min(num, k + 1 + cfg.redetect_frames)
                if i + 1 < len(keys):
                    stop = min(stop, keys[i + 1])
                for j in range(k, stop):
                    stats["redetections"] += 1
                    stats["detector_images"] += 1
                    box = pick_face(self.detect([frames[j]], rescale)[0], previous)
                    if box is not None:
                        raw[j] = box
                        break
            else:
                raw[k] = box
            if box is not None:
                previous = box
        if not np.isfinite(raw).all(axis=1).any():
            stats["full_scans"] = 1
            rest = [j for j in range(num) if not np.isfinite(raw[j]).all()]
            for start in range(0, len(rest), 16):
                chunk = rest[start : start + 16]
                stats["detector_images"] += len(chunk)
                for j, candidates in zip(
                    chunk, self.detect([frames[j] for j in chunk], rescale), strict=True
                ):
                    box = pick_face(candidates, None)
                    if box is not None:
                        raw[j] = box
            if not np.isfinite(raw).all(axis=1).any():
                raise NoFaceError(f"no face in any of the {num} frames")
        detected = np.isfinite(raw).all(axis=1).astype(np.int8)
        boxes = boxes_from_detections(raw, cfg.margin, cfg.smoothing)
        return FaceTrack(boxes, detected, stats)


def crop_faces(frames: np.ndarray, boxes: np.ndarray, size: int = 224) -> np.ndarray:
    """Cut square boxes out of frames and resize them.

    Args:
        frames: uint8 [T, H, W, 3].
        boxes: float [T, 4] pixel (x0, y0, x1, y1); parts outside the frame are black.
        size: output side in pixels.

    Returns:
        uint8 [T, size, size, 3].
    """
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, (frame, (x0, y0, x1, y1)) in enumerate(
        zip(frames, np.asarray(boxes, np.float64), strict=True)
    ):
        sx = size / max(x1 - x0, 1e-6)
        sy = size / max(y1 - y0, 1e-6)
        matrix = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float64)
        out[i] = cv2.warpAffine(
            frame,
            matrix,
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
    return out


def normalized_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel (x0, y0, x1, y1) -> normalised (ymin, xmin, ymax, xmax) as stored in records."""
    boxes = np.asarray(boxes, np.float64)
    return np.stack(
        [boxes[:, 1] / height, boxes[:, 0] / width, boxes[:, 3] / height, boxes[:, 2] / width],
        axis=1,
    ).astype(np.float32)
