"""Every face (`emotf-predict --faces all`): stable ids through a crossing, a face that leaves
and returns gets its id back after a short gap and a new one after a long gap, one timeline per
face in the JSON, the CSV and the PNG; the association itself on synthetic boxes (no MTCNN)."""

import csv
import json
from fractions import Fraction

import av
import keras
import numpy as np
import pytest
from helpers_boxes import BoxDetector, frame

import emotf.serving.predict
from emotf.configs import ModelConfig, SamplingConfig
from emotf.media.face_tracks import FaceAssigner, FaceTracksConfig
from emotf.media.faces import FaceTracker, FaceTrackerConfig
from emotf.media.stream import MultiStreamTracker
from emotf.model import build_model
from emotf.serving.console import format_table
from emotf.serving.export import export_saved_model
from emotf.serving.predict import PredictConfig, Predictor, predict_files
from emotf.serving.timeline_plot import face_timelines, timeline_figure

N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)
CODES = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]

# --------------------------------------------------------------------------------------------
# The association, on boxes


def box(x, y, side=20.0):
    return (x, y, x + side, y + side)


def ids_over(assigner, boxes_of, frames):
    """{frame: [face id or None per box]} for boxes_of(frame) on the given frames."""
    out = {}
    for i in frames:
        tracks = assigner.assign(i, boxes_of(i))
        assigner.end_keyframe(i)
        out[i] = [t.face_id if t is not None else None for t in tracks]
    return out


def crossing(i):
    """A moves right, B left at the same height; at the crossing (frames 45-55) B is hidden
    behind A (one box)."""
    a, b = box(5 + 0.8 * i, 10), box(85 - 0.8 * i, 10)
    return [a] if 45 <= i <= 55 else [a, b]


def test_two_faces_crossing_keep_their_ids_by_their_motion():
    assigner = FaceAssigner(FaceTracksConfig(), fps=30.0)
    got = ids_over(assigner, crossing, range(0, 101, 5))
    assert got[0] == [None, None]  # tentative until seen again
    assert got[5] == [0, 1]
    # After the crossing, A (first box, now on the right) still 0, B (on the left) still 1.
    assert all(got[i] == [0] for i in (45, 50, 55))
    assert all(got[i] == [0, 1] for i in range(60, 101, 5))
    assert assigner.stats["faces"] == 2 and assigner.stats["reidentified"] >= 1


@pytest.mark.parametrize("gap_s, same", [(0.8, True), (2.5, False)])
def test_a_face_that_returns_gets_its_id_back_after_a_short_gap_only(gap_s, same):
    away = (1.0, 1.0 + gap_s)  # seconds without the face (it left at the left edge)
    fps = 30.0

    def boxes(i):
        t = i / fps
        out = [box(100, 40, 30)]
        if not away[0] <= t < away[1]:
            out.append(box(0, 5, 24))
        return out

    assigner = FaceAssigner(FaceTracksConfig(max_gap_seconds=2.0), fps)
    got = ids_over(assigner, boxes, range(0, 150, 10))
    returned = [ids[1] for i, ids in got.items() if i / fps >= away[1] + 0.5]
    assert returned and len(set(returned)) == 1
    assert (returned[0] == 1) is same
    assert assigner.stats["faces"] == (2 if same else 3)


def test_a_single_false_detection_and_a_second_box_on_a_face_are_no_faces():
    face = (20, 20, 40, 44)
    forehead = (22, 10, 38, 26)  # MTCNN's extra box on the forehead and hair of one face

    def boxes(i):
        out = [face, forehead]
        if i == 30:
            out.append(box(60, 5, 10))  # once only
        return out

    assigner = FaceAssigner(FaceTracksConfig(), fps=10.0)
    got = ids_over(assigner, boxes, range(0, 100, 10))
    assert all(ids[:2] == [0, None] for i, ids in got.items() if i)
    assert got[30][2] is None and assigner.stats == {"faces": 1, "reidentified": 0, "dropped": 1}


def test_the_settings_are_bounded_where_they_are_declared():
    with pytest.raises(ValueError, match=r"FaceTracksConfig.min_iou must be in \(0, 1\]"):
        FaceTracksConfig(min_iou=0.0)
    with pytest.raises(ValueError, match="FaceTracksConfig.max_gap_seconds"):
        FaceTracksConfig(max_gap_seconds=-1.0)
    with pytest.raises(ValueError, match="PredictConfig.faces must be one of 'largest', 'all'"):
        PredictConfig(faces="every")
    assert FaceTracksConfig.from_dict(FaceTracksConfig(max_faces=3).to_dict()).max_faces == 3


# --------------------------------------------------------------------------------------------
# The tracker, on frames (a detector stand-in: no MTCNN)


def run(faces_of, num, fps=30.0, config=None):
    cfg = FaceTrackerConfig(detect_scale=1.0, keyframe_interval=5)
    stream = MultiStreamTracker(FaceTracker(cfg, BoxDetector(faces_of)), fps, 48, 64, config)
    out = []
    for i in range(num):
        out += list(stream.push(frame(i)))
    out += list(stream.finish())
    return stream, out


def small_crossing(i):
    a, b = box(2 + 0.4 * i, 10, 12), box(46 - 0.4 * i, 12, 12)
    return [a] if 50 <= i <= 56 else [a, b]


def test_every_frame_comes_back_in_order_with_each_face_on_its_own_path():
    stream, out = run(small_crossing, 110)
    assert [t.index for t in out] == list(range(110))
    assert {f.face_id for t in out for f in t.faces} == {0, 1}
    for t in out:
        centres = {f.face_id: (f.box[0] + f.box[2]) / 2 for f in t.faces}
        if len(centres) == 2 and abs(t.index - 53) > 8:
            # face 0 started on the left and moves right: left before the crossing, right after
            assert (centres[0] < centres[1]) == (t.index < 53), (t.index, centres)
    assert stream.stats["multi_face_frames"] == 0 and stream.stats["most_faces"] == 2


def test_frames_held_do_not_grow_with_video_length():
    def wandering(i):
        return [box(5 + (i % 200) * 0.2, 5, 12), box(40, 20 + (i % 100) * 0.1, 14)]

    short, _ = run(wandering, 300)
    long, out = run(wandering, 3000)
    assert len(out) == 3000 and long.max_held == short.max_held
    # keyframes per call x interval + redetect + 2 gaps + smoothing radius + 1 + an interval
    assert long.max_held <= 4 * 5 + 3 + 2 * 15 + 5 + 1 + 5
    assert sum(len(path.index) for _, path in long.paths.values()) < 40


def test_a_face_out_of_reach_is_not_on_the_frames_where_it_is_gone():
    gone = range(40, 80)

    def faces(i):
        return [box(5, 5, 12)] + ([] if i in gone else [box(40, 20, 14)])

    _, out = run(faces, 120, config=FaceTracksConfig(max_gap_seconds=2.0))
    on = {t.index: {f.face_id for f in t.faces} for t in out}
    gap = 15  # the tracker's max_gap_seconds 0.5 s at 30 fps: carried at most this far
    assert all(on[i] == {0} for i in range(40 + gap + 1, 80 - gap - 1))
    assert on[10] == on[110] == {0, 1}  # the same id after the gap


# --------------------------------------------------------------------------------------------
# End to end: MTCNN and a tiny model on a synthetic video


def _paste(frame, head, alpha, x, y):
    """Paste a head with its top-left corner at (x, y), clipped to the frame."""
    h, w = head.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    a, part = alpha[y0 - y : y1 - y, x0 - x : x1 - x], head[y0 - y : y1 - y, x0 - x : x1 - x]
    frame[y0:y1, x0:x1] = (a * part + (1 - a) * patch).astype(np.uint8)


def positions(t: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left corners of head A and head B at t seconds (6 s in all): they swap sides in the
    first 3 s (passing each other, B partly behind A); then B leaves on the left (3.0-3.5 s),
    is away until 4.3 s and comes back where it left."""
    a = (int(10 + 70 * min(t, 3.0)), 30)
    if t < 3.0:
        xb = 220 - 70 * t
    elif t < 3.5:
        xb = 10 - 260 * (t - 3.0)
    elif t < 4.3:
        xb = -400
    elif t < 4.8:
        xb = -120 + 260 * (t - 4.3)
    else:
        xb = 10
    return a, (int(xb), 85)


def write_faces_video(path, seconds=6.0, fps=15, width=360, height=270):
    """The sample's face twice (heads 120 and 110 px high) on `positions`, with audio."""
    from emotf.synthetic.media import _head

    heads = [_head(120)[:2], _head(110)[:2]]
    rate = Fraction(fps)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        sound = out.add_stream("aac", rate=16000)
        sound.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = (50, 150, 70)
            a, b = positions(i / fps)
            _paste(frame, *heads[1], *b)  # B first: A passes in front of it
            _paste(frame, *heads[0], *a)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, 1 / rate
            out.mux(video.encode(vf))
        out.mux(video.encode())
        chunk = 1600
        for start in range(0, int(seconds * 16000), chunk):
            t = (start + np.arange(chunk)) / 16000
            wave = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(chunk)
            pcm = np.round(wave * 32767).astype(np.int16)[None]
            af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            af.sample_rate, af.pts, af.time_base = 16000, start, Fraction(1, 16000)
            for packet in sound.encode(af):
                out.mux(packet)
        out.mux(sound.encode())
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    keras.utils.set_random_seed(11)
    root = tmp_path_factory.mktemp("faces")
    return export_saved_model(build_model(TINY), SamplingConfig(num_segments=N), root / "export")


@pytest.fixture(scope="module")
def predictor(saved):
    return Predictor(saved)


@pytest.fixture(scope="module")
def faces_video(tmp_path_factory):
    return write_faces_video(tmp_path_factory.mktemp("video") / "two.mkv")


def _ids(result) -> set:
    return {w["face_id"] for w in result["timeline"]} - {None}


@pytest.fixture(scope="module")
def result_all(predictor, faces_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    [result] = predict_files(
        None, [faces_video], predictor=predictor, window=1.0, hop=0.5, out_dir=out, faces="all"
    )
    return result, out


def test_each_face_keeps_its_id_on_every_frame_with_mtcnn(predictor, faces_video):
    """A (centre ~95 px down) is face 0 and B (~145 px) face 1 on every frame they are on:
    before, during and after the crossing, and after B's return."""
    from emotf.media.decode import open_video

    info, frames = open_video(faces_video)
    stream = MultiStreamTracker(predictor.tracker, info.fps, info.height, info.width)
    out = [t for f in frames for t in stream.push(f)] + list(stream.finish())
    assert [t.index for t in out] == list(range(90))
    seen = {}
    for t in out:
        for f in t.faces:
            seen.setdefault(f.face_id, []).append((f.box[1] + f.box[3]) / 2)
    assert set(seen) == {0, 1}
    assert max(seen[0]) < 120 < min(seen[1])
    with_b = {t.index for t in out if 1 in {f.face_id for f in t.faces}}
    assert {0, 20, 25, 44, 75, 89} <= with_b and not with_b & set(range(52, 62))  # B away
    assert stream.stats["faces"] == 2 and stream.stats["reidentified"] >= 1


def test_two_faces_keep_two_ids_through_the_crossing_and_a_short_absence(result_all, predictor):
    result, _ = result_all
    assert "error" not in result, result
    assert _ids(result) == {0, 1}, result["timeline"]
    stats = predictor.last_stats
    assert stats["windows"] == 11 and stats["entries"] >= 2 * 11 - 4
    # Both faces scored on the windows while both are in the frame (the crossing included).
    for start in (0.0, 1.0, 1.5, 2.0, 5.0):
        scored = {
            w["face_id"]
            for w in result["timeline"]
            if w["start"] == start and w["probabilities"] is not None
        }
        assert scored == {0, 1}, (start, result["timeline"])
    # B (face 1) is away 3.5-4.3 s (partly out from 3.2 s): its windows then are skipped.
    for start in (3.0, 3.5):
        [b] = [w for w in result["timeline"] if w["start"] == start and w["face_id"] == 1]
        assert b["probabilities"] is None and "face 1 in only" in b["skipped"]
    faces = {f["face_id"]: f for f in result["faces"]}
    assert set(faces) == {0, 1} and result["face_id"] in faces
    assert all(f["label_code"] in CODES and f["windows"] >= 8 for f in faces.values())
    assert result["label_code"] == faces[result["face_id"]]["label_code"]
    assert any("the audio is shared by all faces" in n for n in result["notes"])
    assert not any("other faces present" in n for n in result["notes"])


def test_per_face_timelines_in_the_json_the_csv_and_the_png(result_all):
    import matplotlib.pyplot as plt

    result, out = result_all
    doc = json.loads((out / "two.json").read_text())
    assert all("face_id" in w for w in doc["timeline"]) and doc["faces"] == result["faces"]
    rows = list(csv.DictReader((out / "two.timeline.csv").read_text().splitlines()))
    assert len(rows) == len(doc["timeline"])
    assert {r["face_id"] for r in rows} == {"0", "1"}
    assert (out / "two.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    panels = face_timelines(result)
    assert [face_id for face_id, _ in panels] == [0, 1]
    assert all(len(timeline) == 11 for _, timeline in panels)  # every window, per face
    fig = timeline_figure(result, CODES)
    try:
        assert len(fig.axes) == 4  # a label band and a probability panel per face
        assert [a.get_title().split(": ")[0].split(", ")[-1] for a in fig.axes[::2]] == [
            "face 0",
            "face 1",
        ]
    finally:
        plt.close(fig)
    table = format_table([result])
    assert "face 0:" in table and "face 1:" in table


def test_a_longer_absence_than_max_gap_gives_a_new_id(saved, faces_video):
    short_memory = Predictor(saved, face_tracks=FaceTracksConfig(max_gap_seconds=0.4))
    [result] = predict_files(
        None, [faces_video], predictor=short_memory, window=1.0, hop=0.5, faces="all"
    )
    assert "error" not in result, result
    assert _ids(result) == {0, 1, 2}
    late = {w["face_id"] for w in result["timeline"] if w["start"] >= 5.0}
    assert 2 in late and len(late) == 2


def test_windows_stream_to_a_callback_and_the_timeline_need_not_be_kept(
    predictor, faces_video, result_all
):
    result, _ = result_all
    seen = []
    streamed = predictor.predict_video(
        faces_video, window=1.0, hop=0.5, faces="all", on_window=seen.append, keep_timeline=False
    )
    assert streamed["timeline"] == [] and seen == result["timeline"]
    assert streamed["faces"] == result["faces"]
    assert streamed["probabilities"] == result["probabilities"]
    one = []
    largest = predictor.predict_video(faces_video, window=1.0, hop=0.5, on_window=one.append)
    assert one == largest["timeline"] and {w["face_id"] for w in one} == {0}
    assert "faces" not in largest


# --------------------------------------------------------------------------------------------
# The LiteRT hook (emotf.serving.litert.LiteRTModel's interface, faked: no .tflite export needed;
# tests/test_litert.py runs the real one)


def test_a_tflite_path_runs_through_emotf_litert(saved, predictor, monkeypatch, tmp_path):
    from emotf.serving.export import read_metadata

    made = {}

    class FakeLiteRT:
        def __init__(self, path, num_threads=None):
            made.update(path=path, num_threads=num_threads)
            self.metadata = read_metadata(saved)
            self.class_codes = list(self.metadata["class_codes"])
            self.class_names = list(self.metadata["class_names"])

        def run_model(self, clips):
            made["clips"] = made.get("clips", 0) + len(clips)
            return predictor.run_model(clips)

    monkeypatch.setattr(emotf.serving.predict, "LiteRTModel", FakeLiteRT)
    lite = Predictor(tmp_path / "model.tflite", num_threads=2)
    assert made["path"] == tmp_path / "model.tflite" and made["num_threads"] == 2
    assert lite.class_codes == predictor.class_codes
    assert lite.window_seconds == predictor.window_seconds
    clip = {
        "frames": np.zeros((8, 224, 224, 3), np.uint8),
        "fps": 10.0,
        "pcm16": np.zeros(16000, np.int16),
        "sample_rate": 16000,
    }
    [a], [b] = lite.run_model([clip]), predictor.run_model([clip])
    np.testing.assert_array_equal(a["probabilities"], b["probabilities"])
    assert made["clips"] == 1
