"""emotf-predict on user-style videos: sliding-window timeline, files and schema, windows
without a face, several faces, folders and globs, bounded memory while streaming."""

import csv
import json
import math

import keras
import numpy as np
import pytest

from emotf.cli.predict import main as predict_main
from emotf.configs import ModelConfig, SamplingConfig
from emotf.model import build_model
from emotf.serving.export import export_saved_model
from emotf.serving.inputs import expand_inputs
from emotf.serving.predict import Predictor, predict_files
from emotf.serving.timeline import TooManyWindowsError, WindowPlanner, planned_windows
from emotf.serving.timeline_plot import plot_timeline, timeline_figure
from emotf.synthetic.video import write_face_video

N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)
CODES = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    keras.utils.set_random_seed(5)
    saved = export_saved_model(build_model(TINY), SamplingConfig(num_segments=N), root / "export")
    return Predictor(saved)


@pytest.fixture(scope="module")
def gap_video(tmp_path_factory):
    """9 s, no face from 3.5 s to 6.5 s."""
    return write_face_video(
        tmp_path_factory.mktemp("videos") / "talk.mp4",
        9.0,
        fps=12,
        width=240,
        height=180,
        no_face=((3.5, 6.5),),
    )


def test_window_plan_covers_the_video_and_a_short_clip_is_one_window():
    plan = WindowPlanner(2.5, 1.0, 30.0, 16000)
    windows = plan.ready(300) + plan.finish(300)
    assert [(w.start, w.end) for w in windows] == [(k, k + 2.5) for k in range(8)] + [(7.5, 10.0)]
    assert windows[0].first_frame == 0 and windows[0].end_frame == 75
    assert windows[-1].end_frame == 300 and windows[-1].end_sample == 160000
    assert planned_windows(10.0, 2.5, 1.0) == len(windows)
    short = WindowPlanner(2.5, 1.0, 30.0, 16000)
    [whole] = short.ready(60) + short.finish(60)
    assert (whole.start, whole.end, whole.first_frame, whole.end_frame) == (0, 2.0, 0, 60)
    assert whole.end_sample is None  # all the audio, as the records store it


def test_timeline_skips_windows_without_a_face_and_writes_the_files(predictor, gap_video, tmp_path):
    [result] = predict_files(
        None, [gap_video], predictor=predictor, window=2.0, hop=1.0, out_dir=tmp_path / "out"
    )
    assert "error" not in result, result
    timeline = result["timeline"]
    assert [(w["start"], w["end"]) for w in timeline] == [(k, k + 2.0) for k in range(8)]
    skipped = [w for w in timeline if w["probabilities"] is None]
    scored = [w for w in timeline if w["probabilities"] is not None]
    spans = [(w["start"], w["end"]) for w in skipped]
    assert (4, 6) in spans and set(spans) <= {(3, 5), (4, 6), (5, 7)}  # the face is gone 3.5-6.5 s
    assert {(0, 2), (1, 3), (6, 8), (7, 9)} <= {(w["start"], w["end"]) for w in scored}
    assert "no face in" in skipped[0]["skipped"] and skipped[0]["label"] is None
    for w in scored:
        assert sum(w["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert w["label"] == max(w["probabilities"], key=w["probabilities"].get)
    mean = np.mean([[w["probabilities"][c] for c in CODES] for w in scored], axis=0)
    np.testing.assert_allclose(
        [result["probabilities"][c] for c in CODES], mean / mean.sum(), atol=1e-5
    )
    assert result["label_code"] == CODES[int(np.argmax(mean))]
    assert any(f"{len(skipped)} of 8 windows skipped" in n for n in result["notes"])
    # The files: JSON with the documented keys, one CSV row per window, a PNG.
    out = tmp_path / "out"
    doc = json.loads((out / "talk.json").read_text())
    assert {"timeline", "label", "probabilities", "notes", "error"} <= set(doc)
    assert doc["error"] is None and len(doc["timeline"]) == 8
    assert set(doc["timeline"][0]) == {"start", "end", "face_id", "probabilities", "label"}
    assert set(doc["timeline"][4]) == {
        "start",
        "end",
        "face_id",
        "probabilities",
        "label",
        "skipped",
    }
    assert {w["face_id"] for w in doc["timeline"]} == {0}  # the largest face: always id 0
    rows = list(csv.DictReader((out / "talk.timeline.csv").read_text().splitlines()))
    assert len(rows) == 8 and rows[4]["skipped"] and rows[0]["label"] == timeline[0]["label"]
    assert {r["face_id"] for r in rows} == {"0"}
    assert float(rows[0]["HAP"]) == pytest.approx(timeline[0]["probabilities"]["HAP"], abs=1e-6)
    assert (out / "talk.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_held_does_not_grow_with_video_length(predictor, tmp_path):
    """Frames held by the tracker, crops held for windows and audio samples held are the same
    for an 8 s and a 24 s video (counts, not timing)."""
    held = {}
    for seconds in (8, 24):
        video = write_face_video(
            tmp_path / f"v{seconds}.mkv", seconds, fps=10, width=240, height=180
        )
        [result] = predict_files(None, [video], predictor=predictor, window=2.0, hop=1.0)
        assert "error" not in result, result
        held[seconds] = dict(predictor.last_stats)
    assert held[24]["frames"] == 240 and held[24]["windows"] == 23
    for key in ("max_frames_held", "max_crops_held"):
        assert held[24][key] == held[8][key], (key, held)
    assert held[24]["max_crops_held"] <= 2.0 * 10 + 1
    # 4 keyframes per detector call x keyframe interval + redetect_frames + smoothing radius + 1
    assert held[24]["max_frames_held"] <= 4 * 10 + 3 + 5 + 1
    assert held[24]["max_audio_samples_held"] <= held[8]["max_audio_samples_held"] + 16384
    assert held[24]["max_audio_samples_held"] < 4 * 16000


def test_folders_globs_several_faces_and_one_bad_file(predictor, gap_video, tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    two = write_face_video(
        folder / "sub" / "two.mkv", 3.0, fps=10, width=320, height=180, second_face=True
    )
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    (folder / "readme.txt").write_text("not a video")
    videos, problems = expand_inputs([folder, str(tmp_path / "none*.mp4")])
    assert videos == [str(folder / "broken.mp4"), str(two)]
    assert problems == [f"{tmp_path / 'none*.mp4'}: no file matches the pattern"]
    code = predict_main(
        [
            "--model",
            str(predictor.model_dir),
            str(folder),
            "--json",
            "--window",
            "5",
            "--no-progress",
        ]
    )
    assert code == 1
    captured = capsys.readouterr()
    docs = json.loads(captured.out)
    assert [d["file"] for d in docs] == videos
    assert "broken.mp4" in docs[0]["error"] and docs[0]["timeline"] == []
    assert docs[1]["error"] is None and len(docs[1]["timeline"]) == 1
    assert any("other faces present" in n and "largest" in n for n in docs[1]["notes"])
    assert "emotf-predict: error: 1 of 2 videos failed: " in captured.err


@pytest.mark.parametrize(
    "window, hop, fps, frames",
    [
        (2.5, 1.0, 30.0, 90),
        (2.0, 1.5, 10.0, 42),
        (0.5, 0.04, 25.0, 77),
        (3.0, 0.7, 29.97, 100),
        (2.0, 3.0, 10.0, 55),
    ],
)
def test_frames_and_samples_are_kept_until_no_window_can_need_them(window, hop, fps, frames):
    """Replays emotf.serving.predict's loop: windows planned after frame n may only need what was
    kept after frame n - 1 (the end-of-video window too), and at most a window of frames is held."""
    plan = WindowPlanner(window, hop, fps, 16000)
    kept_frame = kept_sample = 0
    for n in range(1, frames + 1):
        for w in plan.ready(n):
            assert w.first_frame >= kept_frame and w.first_sample >= kept_sample, (n, w)
        kept_frame, kept_sample = plan.keep_from(n)
        assert n - kept_frame <= math.ceil(window * fps) + 1
    for w in plan.finish(frames):
        assert w.first_frame >= kept_frame, w
        assert w.end_sample is None or w.first_sample >= kept_sample, w


@pytest.mark.parametrize("seconds, window, hop", [(3.0, 2.5, 1.0), (4.2, 2.0, 1.5)])
def test_each_window_reports_the_span_the_model_saw(
    predictor, tmp_path, monkeypatch, seconds, window, hop
):
    """The frames and audio samples given to the model for each window are exactly those of
    its reported [start, end) (the end-of-video window lost its first frames and audio once)."""
    fps, rate = 10, 16000
    video = write_face_video(tmp_path / "v.mkv", seconds, fps=fps, width=240, height=180)
    fed, run_model = [], predictor.run_model

    def counting(clips):
        fed.extend((len(c["frames"]), len(c["pcm16"])) for c in clips)
        return run_model(clips)

    monkeypatch.setattr(predictor, "run_model", counting)
    [result] = predict_files(None, [video], predictor=predictor, window=window, hop=hop)
    assert "error" not in result, result
    timeline = result["timeline"]
    assert timeline[-1]["end"] == seconds and all(w["probabilities"] for w in timeline)
    assert len(fed) == len(timeline)
    for w, (frames, samples) in zip(timeline, fed, strict=True):
        span = (w["start"], w["end"])
        assert frames == math.ceil(w["end"] * fps - 1e-6) - math.ceil(w["start"] * fps - 1e-6), span
        assert frames == round((w["end"] - w["start"]) * fps), span
        assert samples == round(w["end"] * rate) - round(w["start"] * rate), span


def test_a_video_never_gets_more_windows_than_the_cap():
    """A hop of 2e-6 s once planned 250,000 windows for the first second; now refused."""
    with pytest.raises(TooManyWindowsError, match="use a longer --hop"):
        WindowPlanner(0.5, 2e-6, 30.0, 16000).ready(30)


def _long_result(n: int, gap: tuple[int, int]) -> dict:
    """n windows 2 s long every 0.5 s, random labels, skipped from gap[0] to gap[1], and an
    end-of-video window 0.3 s after the last one."""
    rng = np.random.default_rng(0)
    timeline = []
    starts = [k * 0.5 for k in range(n)] + [(n - 1) * 0.5 + 0.3]
    for k, start in enumerate(starts):
        w = {"start": start, "end": start + 2.0}
        if gap[0] <= k < gap[1]:
            w.update(probabilities=None, label=None, skipped="no face in 20 of 20 frames")
        else:
            p = rng.dirichlet(np.ones(len(CODES)))
            w.update(probabilities=dict(zip(CODES, p, strict=True)), label=CODES[int(np.argmax(p))])
        timeline.append(w)
    return {"file": "long.mp4", "label_code": "HAP", "timeline": timeline}


@pytest.mark.parametrize("n", [45, 600])
def test_the_timeline_plot_stays_readable_and_shows_gaps_as_gaps(n, tmp_path):
    import matplotlib.pyplot as plt

    gap = (n // 3, n // 3 + n // 10)
    result = _long_result(n, gap)
    fig = timeline_figure(result, CODES)
    try:
        band, ax = fig.axes[:2]
        renderer = fig.canvas.get_renderer()
        boxes = sorted((t.get_window_extent(renderer) for t in band.texts), key=lambda b: b.x0)
        assert 1 <= len(boxes) <= 60
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:], strict=False)), (
            "label codes overlap"
        )
        cells = sorted((p.get_x(), p.get_x() + p.get_width()) for p in band.patches)
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(cells, cells[1:], strict=False)), (
            "cells overlap"
        )
        skipped = np.array([w["probabilities"] is None for w in result["timeline"]])
        assert len(ax.lines) == len(CODES)
        for line in ax.lines:  # a NaN per skipped window: no line across the gap
            y = np.asarray(line.get_ydata(), float)
            assert np.isnan(y[skipped]).all() and not np.isnan(y[~skipped]).any()
    finally:
        plt.close(fig)
    plot_timeline(result, CODES, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_the_window_cap_applies_only_where_windows_are_kept():
    """A video's windows are capped (each one kept in its timeline); a live stream that keeps
    no timeline (max_windows None) is not."""
    from emotf.serving.timeline import WindowPlanner

    capped = WindowPlanner(0.5, 0.5, 10.0, 16000, max_windows=3)
    with pytest.raises(TooManyWindowsError):
        capped.ready(100)
    assert len(WindowPlanner(0.5, 0.5, 10.0, 16000, max_windows=None).ready(100)) == 20
