"""emotf.records.stream: frames on a constant grid, the online face tracker (bounded memory, the
several-faces rule, equal to the whole-clip tracker), containers and variable frame rate."""

import numpy as np
import pytest

from emotf.records.faces import FaceTracker, FaceTrackerConfig
from emotf.records.stream import StreamTracker, open_video
from emotf.synthetic.video import write_face_video


class BoxDetector:
    """MTCNN stand-in: faces given per frame index (painted into pixel [0, 0, :2])."""

    def __init__(self, faces_of):
        self.faces_of, self.calls = faces_of, []

    def detect_faces(self, images, box_format="xyxy"):
        out = []
        for image in images:
            i = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
            self.calls.append(i)
            scale = image.shape[1] / 64
            out.append([{"box": (np.asarray(b) * scale).tolist(), "confidence": 0.99}
                        for b in self.faces_of(i)])
        return out


def frame(i):
    f = np.zeros((48, 64, 3), np.uint8)
    f[0, 0, 0], f[0, 0, 1] = i % 256, i // 256
    return f


def run(tracker, num, fps=30.0):
    stream = StreamTracker(tracker, fps, 48, 64)
    out = []
    for i in range(num):
        out += list(stream.push(frame(i)))
    out += list(stream.finish())
    return stream, out


def test_frames_held_do_not_grow_with_video_length():
    cfg = FaceTrackerConfig(detect_scale=1.0)
    one = lambda i: [(10 + i % 20, 10, 30 + i % 20, 30)]  # noqa: E731
    short, out_short = run(FaceTracker(cfg, BoxDetector(one)), 300)
    long, out_long = run(FaceTracker(cfg, BoxDetector(one)), 6000)
    assert [t.index for t in out_long] == list(range(6000))
    radius = 5  # ceil(3 * smoothing 1.5)
    assert long.max_held == short.max_held <= cfg.keyframe_interval + radius + 1
    # Without a face for long stretches: still bounded (2 gaps + radius), frames flagged.
    gappy = lambda i: [] if (i // 300) % 2 else [(10, 10, 30, 30)]  # noqa: E731
    stream, out = run(FaceTracker(cfg, BoxDetector(gappy)), 6000)
    gap = 15  # 0.5 s at 30 fps
    assert stream.max_held <= 2 * gap + radius + 2
    faces = np.array([t.face for t in out])
    assert not faces[300 + gap + 2: 600 - gap - 2].any() and faces[:300].all()
    assert len(stream.det_index) < 10  # old detections are forgotten


def test_equals_the_whole_clip_tracker_when_the_face_is_found():
    rng = np.random.default_rng(1)
    path = np.cumsum(rng.normal(0, 1.5, size=(95, 2)), axis=0) + 20
    faces = lambda i: [(path[i, 0], path[i, 1], path[i, 0] + 18, path[i, 1] + 20)]  # noqa: E731
    cfg = FaceTrackerConfig(detect_scale=1.0)
    _, out = run(FaceTracker(cfg, BoxDetector(faces)), 95)
    whole = FaceTracker(cfg, BoxDetector(faces)).track(np.stack([frame(i) for i in range(95)]))
    np.testing.assert_allclose(np.stack([t.box for t in out]), whole.boxes, atol=1e-4)
    assert [t.detected for t in out] == whole.detected.tolist()


def test_several_faces_follows_the_largest_consistently():
    """Largest face first; followed by overlap even when the other one grows larger later."""
    def faces(i):
        big = (4 + i * 0.1, 10, 24 + i * 0.1, 32)  # 20x22, drifting right
        side = 8 + 0.3 * i  # the other face grows past it after ~40 frames
        other = (60 - side, 5, 60, 5 + side)
        return [other, big]

    cfg = FaceTrackerConfig(detect_scale=1.0, smoothing=0, margin=0.0)
    stream, out = run(FaceTracker(cfg, BoxDetector(faces)), 90)
    centres = np.array([(t.box[0] + t.box[2]) / 2 for t in out])
    assert np.all(centres < 30)  # always the first (largest at the start) face
    assert stream.stats["multi_face_frames"] == stream.stats["detector_images"] > 0


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm", ".avi", ".flv"])
def test_containers_decode(tmp_path, suffix):
    path = write_face_video(tmp_path / f"v{suffix}", 1.0, fps=15, width=96, height=64)
    info, frames = open_video(path)
    got = [f.shape for f in frames]
    assert info.fps == 15 and len(got) >= 15 and got[0] == (64, 96, 3)


def test_variable_frame_rate_is_put_on_the_grid_by_timestamps(tmp_path):
    path = write_face_video(tmp_path / "vfr.mkv", 2.0, fps=15, width=96, height=64, vfr=True)
    info, frames = open_video(path)
    assert sum(1 for _ in frames) == 30  # 2 s at 15 fps although 4 frames were left out
    assert info.duplicated == 4 and info.dropped == 0
