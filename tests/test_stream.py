"""emotf.media.stream: frames on a constant grid, the online face tracker (bounded memory, the
several-faces rule, equal to the whole-clip tracker), containers and variable frame rate."""

import numpy as np
import pytest
from helpers_boxes import BoxDetector, frame

from emotf.media.decode import open_video
from emotf.media.faces import FaceTracker, FaceTrackerConfig
from emotf.media.stream import StreamTracker
from emotf.synthetic.video import write_face_video


def run(tracker, num, fps=30.0, batch=None):
    stream = StreamTracker(tracker, fps, 48, 64, batch=batch)
    out = []
    for i in range(num):
        out += list(stream.push(frame(i)))
    out += list(stream.finish())
    return stream, out


def test_frames_held_do_not_grow_with_video_length():
    cfg = FaceTrackerConfig(detect_scale=1.0)

    def one(i):
        return [(10 + i % 20, 10, 30 + i % 20, 30)]

    short, _ = run(FaceTracker(cfg, BoxDetector(one)), 300)
    long, out_long = run(FaceTracker(cfg, BoxDetector(one)), 6000)
    assert [t.index for t in out_long] == list(range(6000))
    radius = 5  # ceil(3 * smoothing 1.5)
    assert long.batch == 4  # keyframes per detector call (small frames)
    # A batch of keyframes, the frames a miss may re-detect on, the smoothing radius.
    bound = 4 * cfg.keyframe_interval + cfg.redetect_frames + radius + 1
    assert long.max_held == short.max_held <= bound
    # Without a face for long stretches: still bounded (2 gaps more), frames flagged.

    def gappy(i):
        return [] if (i // 300) % 2 else [(10, 10, 30, 30)]

    stream, out = run(FaceTracker(cfg, BoxDetector(gappy)), 6000)
    gap = 15  # 0.5 s at 30 fps
    assert stream.max_held <= bound + 2 * gap
    faces = np.array([t.face for t in out])
    assert not faces[300 + gap + 2 : 600 - gap - 2].any() and faces[:300].all()
    assert len(stream.det_index) < 10  # old detections are forgotten


def test_keyframes_are_detected_in_batches_with_the_same_boxes():
    """Batching keyframes changes only how many images go to MTCNN per call, not the boxes,
    also when keyframes are lost and re-detected one frame at a time."""

    def gappy(i):
        return [] if 40 <= i < 75 or i in (110, 111) else [(10 + i % 7, 10, 30, 32)]

    cfg = FaceTrackerConfig(detect_scale=1.0)
    results = {}
    for batch in (1, 3, 4):
        det = BoxDetector(gappy)
        stream, out = run(FaceTracker(cfg, det), 203, batch=batch)
        results[batch] = (
            np.stack([t.box for t in out]),
            [t.detected for t in out],
            [t.face for t in out],
            sorted(det.calls),
        )
        # 0, 10, ... 200, 202; the last frame joins the call of the keyframes still pending
        assert batch <= max(det.batches) <= batch + 1 and stream.stats["keyframes"] == 22
    for batch in (3, 4):
        np.testing.assert_array_equal(results[batch][0], results[1][0])
        assert results[batch][1:] == results[1][1:]
    assert results[1][1][112] == 1 and not any(results[1][1][40:75])


def test_the_last_frame_is_detected_with_the_pending_keyframes():
    """The clip's last frame (a keyframe too) goes to MTCNN in the same call as the keyframes
    still pending, not alone; when a re-detection after a miss already found the face on it,
    it costs no call at all."""
    cfg = FaceTrackerConfig(detect_scale=1.0)
    det = BoxDetector(lambda i: [(10, 10, 30, 32)])
    stream, _ = run(FaceTracker(cfg, det), 75, batch=4)  # keys 0..70 and 74
    assert det.batches == [4, 4, 1]  # 40..70 went at frame 73: nothing was pending at 74
    det = BoxDetector(lambda i: [(10, 10, 30, 32)])
    stream, _ = run(FaceTracker(cfg, det), 63, batch=4)  # keys 0..60 and 62
    assert det.batches == [4, 4] and det.calls[-2:] == [60, 62]
    assert stream.stats["keyframes"] == 8 and stream.stats["detector_images"] == 8

    # keyframe 60 missed: re-detected on 60, 61, 62 (hit): frame 62's keyframe result unused
    det = BoxDetector(lambda i: [] if i in (60, 61) else [(10, 10, 30, 32)])
    stream, out = run(FaceTracker(cfg, det), 63, batch=4)
    assert det.batches == [4, 4, 1, 1, 1] and det.calls[-5:] == [60, 62, 60, 61, 62]
    assert stream.stats["keyframes"] == 7 and stream.stats["redetections"] == 3
    assert [t.detected for t in out][60:] == [0, 0, 1]


def test_large_frames_are_detected_downscaled():
    """The smallest face searched for is min_face_fraction of the shorter side: keyframes of
    large frames are downscaled below detect_scale so that face is MTCNN's 20 px minimum."""
    tracker = FaceTracker(FaceTrackerConfig())  # detect_scale 0.5, min_face_fraction 1/12
    assert tracker.scales(480, 640) == (0.5, 1.0)  # as before at and below 480 lines
    assert tracker.scales(360, 480) == (0.5, 1.0)
    scale, rescale = tracker.scales(1080, 1920)
    assert scale == pytest.approx(20 / 90) and rescale == pytest.approx(40 / 90)
    assert FaceTracker(FaceTrackerConfig(min_face_fraction=0)).scales(1080, 1920) == (0.5, 1.0)
    # Held frames: fewer keyframes per call on large frames (bounded bytes).
    assert StreamTracker(tracker, 30.0, 1080, 1920).batch == 1
    assert StreamTracker(tracker, 30.0, 480, 640).batch == 4


def test_equals_the_whole_clip_tracker_when_the_face_is_found():
    rng = np.random.default_rng(1)
    path = np.cumsum(rng.normal(0, 1.5, size=(95, 2)), axis=0) + 20

    def faces(i):
        return [(path[i, 0], path[i, 1], path[i, 0] + 18, path[i, 1] + 20)]

    cfg = FaceTrackerConfig(detect_scale=1.0)
    _, out = run(FaceTracker(cfg, BoxDetector(faces)), 95)
    whole = FaceTracker(cfg, BoxDetector(faces)).track(np.stack([frame(i) for i in range(95)]))
    np.testing.assert_allclose(np.stack([t.box for t in out]), whole.boxes, atol=1e-4)
    assert [t.detected for t in out] == whole.detected.tolist()


def test_several_faces_follows_the_largest_consistently():
    """Largest face first; followed by overlap even when the other one grows larger later."""

    def faces(i):
        big = (4 + i * 0.1, 10, 24 + i * 0.1, 32)  # 20x22, drifting right
        side = 8 + 0.2 * i  # the other face grows past it after ~65 frames (never touching)
        other = (60 - side, 5, 60, 5 + side)
        return [other, big]

    cfg = FaceTrackerConfig(detect_scale=1.0, smoothing=0, margin=0.0)
    stream, out = run(FaceTracker(cfg, BoxDetector(faces)), 90)
    centres = np.array([(t.box[0] + t.box[2]) / 2 for t in out])
    assert np.all(centres < 30)  # always the first (largest at the start) face
    assert stream.stats["multi_face_frames"] == stream.stats["detector_images"] > 0


def test_a_second_box_on_the_same_face_is_not_another_face():
    """MTCNN sometimes adds a box on the forehead and hair of the one face (overlapping it by
    a quarter of the smaller box, IoU ~0.1, confidence 0.90-0.95): that is not "other faces
    present". A face beside it, however small, still is."""
    face = (20, 20, 40, 44)
    forehead = (22, 10, 38, 26)  # 16x16, a quarter of it inside the face box
    beside = (48, 20, 56, 30)
    cfg = FaceTrackerConfig(detect_scale=1.0)
    one, out = run(FaceTracker(cfg, BoxDetector(lambda i: [forehead, face])), 40)
    assert one.stats["multi_face_frames"] == 0 and one.stats["detector_images"] > 0
    assert all(abs((t.box[1] + t.box[3]) / 2 - 32) < 1e-3 for t in out)  # the face followed
    two, _ = run(FaceTracker(cfg, BoxDetector(lambda i: [face, forehead, beside])), 40)
    assert two.stats["multi_face_frames"] == two.stats["detector_images"] > 0


@pytest.fixture(scope="module")
def mtcnn_tracker():
    return FaceTracker(FaceTrackerConfig())


def test_no_other_faces_note_on_a_one_face_synthetic_clip(tmp_path, mtcnn_tracker):
    """A clip of the synthetic sample where real MTCNN sees a second box on the one face (at
    frame 10): no "other faces present" note (it had one before)."""
    from emotf.media.preprocess import ClipSettings, read_clip
    from emotf.synthetic.media import render_audio, render_frames, write_flv
    from emotf.synthetic.sample import SampleConfig, clip_plan

    config = SampleConfig(max_duration=0.7, min_duration=0.7)
    plan = clip_plan("1004_IEO_ANG_HI", config)
    video = tmp_path / "1004_IEO_ANG_HI.flv"
    write_flv(video, render_frames(plan, config), render_audio(plan, config), config)
    seen = []
    detect = mtcnn_tracker.detect
    mtcnn_tracker.detect = lambda frames, scale=1.0: (
        seen.extend(out := detect(frames, scale)) or out
    )
    try:
        clip = read_clip(video, None, ClipSettings(), mtcnn_tracker)
    finally:
        del mtcnn_tracker.detect
    assert max(len(c) for c in seen) == 2  # MTCNN did see two boxes on one detection
    assert clip.detected.sum() >= 2
    assert not any("other faces" in note for note in clip.notes), clip.notes


def test_two_faces_side_by_side_give_the_other_faces_note(tmp_path, mtcnn_tracker):
    from emotf.media.preprocess import ClipSettings, read_clip

    video = write_face_video(
        tmp_path / "two.mp4", 1.0, fps=10, width=320, height=180, second_face=True
    )
    clip = read_clip(video, None, ClipSettings(), mtcnn_tracker)
    assert any("other faces present" in note for note in clip.notes), clip.notes


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


def test_a_clip_on_a_url_is_read_from_a_local_copy_deleted_after(tmp_path):
    """PyAV and libsndfile read local files: a ram:// (gs://) video is staged, then removed."""
    import gc
    import glob
    import tempfile
    import uuid

    from emotf.media.preprocess import ClipReader, ClipSettings
    from emotf.storage import as_path

    local = write_face_video(tmp_path / "v.mp4", 1.0, fps=15, width=96, height=64)
    url = as_path(f"ram://emotf-test-{uuid.uuid4().hex[:8]}") / "v.mp4"
    url.parent.mkdir()
    url.write_bytes(local.read_bytes())
    staging = f"{tempfile.gettempdir()}/emotf-stage-*"
    before = set(glob.glob(staging))
    settings = ClipSettings(min_duration_s=0.1)
    tracker = FaceTracker(settings.tracker, BoxDetector(lambda i: [(30, 10, 60, 40)]))
    try:
        crops = [ClipReader(path, None, settings, tracker) for path in (local, str(url))]
        assert set(glob.glob(staging)) - before  # the URL's local copy, while it is read
        got = [[c.crop for c in reader.crops()] for reader in crops]
        assert len(got[0]) == len(got[1]) == 15
        assert all(np.array_equal(a, b) for a, b in zip(*got, strict=True))
        assert crops[1].path == str(url)
        del crops, got
        gc.collect()
        assert set(glob.glob(staging)) == before  # deleted with the reader
    finally:
        url.parent.rmtree()
