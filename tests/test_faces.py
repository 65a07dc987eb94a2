"""emotf.media.faces: keyframe detection + tracking, square boxes, crops."""

import numpy as np
import pytest

from emotf.media.faces import (
    FaceTracker,
    FaceTrackerConfig,
    NoFaceError,
    box_iou,
    boxes_from_detections,
    crop_faces,
    normalized_boxes,
)


class FakeDetector:
    """MTCNN stand-in: returns a known box per image, None on frames listed in `miss`."""

    def __init__(self, boxes, miss=()):
        self.boxes, self.miss, self.calls = boxes, set(miss), []

    def detect_faces(self, images, box_format="xyxy"):
        out = []
        for image in images:
            i = int(image[0, 0, 0])  # frame index painted into the pixel
            self.calls.append(i)
            scale = image.shape[1] / 480
            box = (self.boxes[i] * scale).tolist()
            out.append([] if i in self.miss else [{"box": box, "confidence": 0.99}])
        return out


def frames_and_boxes(num=25):
    frames = np.zeros((num, 360, 480, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(num)
    x = 100 + 2.0 * np.arange(num)
    boxes = np.stack([x, np.full(num, 80.0), x + 80, np.full(num, 160.0)], 1)
    return frames, boxes


def test_keyframes_only_and_linear_motion_is_tracked_exactly():
    frames, boxes = frames_and_boxes()
    det = FakeDetector(boxes)
    cfg = FaceTrackerConfig(
        keyframe_interval=10, smoothing=0, margin=0.0, detect_scale=1.0, min_face_fraction=0
    )
    track = FaceTracker(cfg, det).track(frames)
    assert det.calls == [0, 10, 20, 24]
    assert track.detected.tolist() == [int(i in (0, 10, 20, 24)) for i in range(25)]
    np.testing.assert_allclose(track.boxes, boxes, atol=1e-3)
    assert track.stats["detector_images"] == 4


def test_lost_keyframe_is_redetected_on_the_next_frames():
    frames, boxes = frames_and_boxes()
    det = FakeDetector(boxes, miss={10})
    track = FaceTracker(
        FaceTrackerConfig(smoothing=0, margin=0.0, detect_scale=1.0, min_face_fraction=0), det
    ).track(frames)
    assert track.detected[10] == 0 and track.detected[11] == 1
    assert track.stats["keyframe_misses"] == 1 and track.stats["redetections"] == 2
    assert box_iou(track.boxes, boxes).min() > 0.97


def test_no_face_anywhere_raises_after_searching_every_frame():
    frames, boxes = frames_and_boxes(12)
    det = FakeDetector(boxes, miss=set(range(12)))
    with pytest.raises(NoFaceError, match="no face in any of the 12 frames"):
        FaceTracker(FaceTrackerConfig(detect_scale=1.0, min_face_fraction=0), det).track(frames)
    assert set(range(12)) <= set(det.calls)


def test_boxes_are_square_with_margin_and_smoothing_keeps_constant_tracks():
    raw = np.full((5, 4), np.nan)
    raw[2] = [10, 20, 50, 80]  # 40 x 60
    out = boxes_from_detections(raw, margin=0.5, smoothing=2.0)
    np.testing.assert_allclose(out, [[-15, 5, 75, 95]] * 5)


def test_crop_faces_pads_outside_and_resizes():
    frame = np.full((1, 100, 100, 3), 255, np.uint8)
    crops = crop_faces(frame, np.array([[-50.0, 0, 50, 100]]), size=32)
    assert crops.shape == (1, 32, 32, 3)
    assert crops[0, :, :14].max() == 0 and crops[0, :, 18:].min() == 255


def test_normalized_boxes_order():
    out = normalized_boxes(np.array([[48.0, 36, 96, 72]]), height=360, width=480)
    np.testing.assert_allclose(out, [[0.1, 0.1, 0.2, 0.2]])


@pytest.fixture(scope="module")
def astronaut_frames():
    import cv2
    from skimage import data

    face = cv2.resize(data.astronaut()[0:220, 140:320], (126, 154))
    frames = np.zeros((12, 360, 480, 3), np.uint8)
    frames[..., 1] = 150
    for i in range(12):
        frames[i, 100:254, 150 + 2 * i : 276 + 2 * i] = face
    return frames


def test_real_mtcnn_finds_the_pasted_face(astronaut_frames):
    track = FaceTracker(FaceTrackerConfig(keyframe_interval=5)).track(astronaut_frames)
    assert track.detected.sum() >= 2
    cx = (track.boxes[:, 0] + track.boxes[:, 2]) / 2
    cy = (track.boxes[:, 1] + track.boxes[:, 3]) / 2
    assert np.all((cx > 170) & (cx < 290)) and np.all((cy > 110) & (cy < 250))
    assert np.diff(cx).mean() == pytest.approx(2.0, abs=1.0)  # follows the motion


def test_graph_pnet_gives_mtcnns_own_numbers(astronaut_frames):
    """`GraphPNet` (the P-net's pyramid in one graph) gives exactly the boxes and confidences
    of mtcnn's own eager P-net stage, on one keyframe and on a batch, downscaled or not."""
    import cv2
    import mtcnn

    from emotf.media.faces import GraphPNet

    tracker = FaceTracker(FaceTrackerConfig())
    assert isinstance(tracker.detector.stages[0], GraphPNet)
    plain = FaceTracker(FaceTrackerConfig(), detector=mtcnn.MTCNN())
    frames = astronaut_frames.copy()
    frames[6:] = cv2.GaussianBlur(frames[6], (0, 0), 1.5)  # another image in the batch
    for scale in (0.5, 1.0):
        for batch in ([frames[0]], list(frames[::3])):
            got, want = tracker.detect(batch, scale), plain.detect(batch, scale)
            assert [len(x) for x in got] == [len(x) for x in want] and sum(map(len, got))
            for g, w in zip(got, want, strict=True):
                for (gb, gc), (wb, wc) in zip(g, w, strict=True):
                    np.testing.assert_array_equal(gb, wb)
                    assert gc == wc


@pytest.mark.parametrize(
    "field, value",
    [
        ("keyframe_interval", 0),
        ("keyframe_interval", 10**6),
        ("margin", -0.1),
        ("margin", 1e9),
        ("smoothing", -1.0),
        ("detect_scale", 0.0),
        ("detect_scale", 1.5),
        ("min_confidence", 1.5),
        ("redetect_frames", -1),
        ("stages", "all"),
        ("crop_size", 100000),
        ("crop_size", 0),
        ("jpeg_quality", 101),
        ("max_gap_seconds", 0.0),
        ("min_face_fraction", 1.0),
        ("margin", float("nan")),
        ("crop_size", 224.0),
        ("keyframe_interval", True),
    ],
)
def test_config_refuses_out_of_range_values_in_one_line(field, value):
    import dataclasses

    from emotf.bounds import bound_of

    with pytest.raises(ValueError, match=rf"^FaceTrackerConfig\.{field} ") as error:
        FaceTrackerConfig(**{field: value})
    assert "\n" not in str(error.value) and f"{field}=" in str(error.value)
    for f in dataclasses.fields(FaceTrackerConfig):  # every field declares its bound
        assert bound_of(f) is not None and bound_of(f).help, f.name
