"""emotf-predict on raw synthetic videos: same numbers as the record path, per-file errors."""

import dataclasses
import json
from fractions import Fraction

import av
import keras
import numpy as np
import pytest

from emotf.cli.predict import main as predict_main
from emotf.configs import ModelConfig, SamplingConfig
from emotf.model import build_model
from emotf.pipeline import make_dataset, record_files
from emotf.records.build import build_records
from emotf.records.config import BuildConfig
from emotf.serving.console import format_table
from emotf.serving.export import export_saved_model
from emotf.serving.predict import Predictor, predict_files
from emotf.synthetic.sample import SampleConfig, make_sample

N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)
SAMPLING = SamplingConfig(num_segments=N)


def _write_flv(path, seconds: float, fps: float = 30.0):
    """A flat grey FLV1 video without an audio track (no face in it)."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="flv") as out:
        video = out.add_stream("flv", rate=rate)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(
                np.full([120, 160, 3], 128, np.uint8), format="rgb24"
            )
            frame.pts, frame.time_base = i, 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode())
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    videos = make_sample(
        root / "sample",
        SampleConfig.tiny(num_actors=1, clips_per_actor=2),
        workers=1,
        progress=False,
    )
    keras.utils.set_random_seed(3)
    model = build_model(TINY)
    saved = export_saved_model(model, SAMPLING, root / "export")
    return {
        "root": root,
        "videos": videos,
        "model": model,
        "saved": saved,
        "predictor": Predictor(root / "export"),
    }


def _wav(video):
    return video.parent.parent / "AudioWAV" / f"{video.stem}.wav"


def _record_path_probabilities(model, records) -> dict:
    """clip id -> the Keras model's evaluation-mode probabilities on the built records."""
    ds = make_dataset(
        record_files(records, range(10)),
        range(10),
        training=False,
        config=SAMPLING,
        batch_size=8,
        with_metadata=True,
    )
    expected = {}
    for features, _, meta in ds:
        probs = model(features, training=False)["probabilities"].numpy()
        for clip_id, p in zip(meta["clip_id"].numpy(), probs, strict=True):
            expected[clip_id.decode()] = p
    return expected


def test_predict_matches_the_record_path(setup):
    """Video + WAV through emotf-predict == the same clips built into records, Keras eval mode."""
    videos = setup["videos"]
    records = setup["root"] / "records"
    build_records(
        BuildConfig(
            data_dir=str(setup["root"] / "sample"), out_dir=str(records), workers=1, progress=False
        )
    )
    expected = _record_path_probabilities(setup["model"], records)
    results = predict_files(None, videos, [_wav(v) for v in videos], predictor=setup["predictor"])
    assert len(results) == len(videos) == len(expected)
    for video, result in zip(videos, results, strict=True):
        assert "error" not in result, result
        got = np.array(
            [result["probabilities"][c] for c in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")]
        )
        np.testing.assert_allclose(got, expected[video.stem], rtol=0, atol=1e-5)
        assert (
            result["label_code"] == ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")[int(np.argmax(got))]
        )
        assert np.asarray(result["segment_probabilities"]).shape == (N, 6)
        assert result["timings_s"]["total_s"] > 0


def test_errors_per_file_do_not_stop_the_others(setup, tmp_path):
    good = setup["videos"][0]
    not_video = tmp_path / "notes.flv"
    not_video.write_text("not a video")
    grey = _write_flv(tmp_path / "grey.flv", 1.5)
    short = _write_flv(tmp_path / "short.flv", 0.3)
    videos = [not_video, good, tmp_path / "missing.flv", grey, grey, short]
    audios = [None, None, None, None, _wav(good), _wav(good)]
    results = predict_files(None, videos, audios, predictor=setup["predictor"], batch_size=2)
    assert [("error" in r) for r in results] == [True, False, True, True, True, True]
    assert "cannot open as video" in results[0]["error"] or "no decodable" in results[0]["error"]
    assert results[1]["audio"] is None and abs(sum(results[1]["probabilities"].values()) - 1) < 1e-5
    assert "file not found" in results[2]["error"]
    assert "no audio" in results[3]["error"]
    assert "no face" in results[4]["error"] and str(grey) in results[4]["error"]
    assert "too short" in results[5]["error"] and "0.5" in results[5]["error"]
    table = format_table(results)
    assert "ERROR" in table and "label:" in table


def test_cli_json_and_exit_status(setup, capsys, tmp_path):
    video = setup["videos"][1]
    assert (
        predict_main(
            ["--model", str(setup["saved"]), str(video), "--audio", str(_wav(video)), "--json"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out[0]["file"] == str(video) and out[0]["label_name"] in (
        "anger",
        "disgust",
        "fear",
        "happy",
        "neutral",
        "sad",
    )
    bad = tmp_path / "bad.flv"
    bad.write_bytes(b"")
    assert (
        predict_main(["--model", str(setup["saved"].parent), str(video), str(bad), "--no-progress"])
        == 1
    )
    captured = capsys.readouterr()
    assert "empty file" in captured.out  # the table names each failure; stderr one line
    assert captured.err.strip() == (
        f"emotf-predict: error: 1 of 2 videos failed: {bad}: empty file (0 bytes)"
    )
    with pytest.raises(SystemExit):
        predict_main(["--model", str(setup["saved"]), str(video), str(bad), "--audio", "a.wav"])


def test_an_unexpected_crash_on_one_file_does_not_stop_the_others(setup, monkeypatch):
    predictor = setup["predictor"]
    real_detect = predictor.tracker.detect
    bad = setup["videos"][0]

    def detect(frames, scale=1.0):
        if detect.calls == 0:
            detect.calls += 1
            raise RuntimeError("detector exploded")
        return real_detect(frames, scale)

    detect.calls = 0
    monkeypatch.setattr(predictor.tracker, "detect", detect)
    results = predict_files(None, [bad, setup["videos"][1]], predictor=predictor)
    assert "unexpected RuntimeError: detector exploded" in results[0]["error"]
    assert str(bad) in results[0]["error"]
    assert "error" not in results[1]


def test_predictor_crops_faces_as_the_records_were_built(tmp_path):
    """The build's tracker settings and minimum length travel with the model (no skew)."""
    from emotf.media.faces import FaceTrackerConfig
    from emotf.serving.export import export_saved_model, read_metadata
    from emotf.serving.metadata import build_settings

    records = tmp_path / "records"
    records.mkdir()
    tracker = FaceTrackerConfig(margin=0.45, jpeg_quality=80, keyframe_interval=7)
    arguments = {"tracker": dataclasses.asdict(tracker), "min_duration_s": 0.8}
    (records / "manifest.json").write_text(json.dumps({"arguments": arguments}))
    saved = export_saved_model(
        build_model(TINY), SAMPLING, tmp_path / "export", records_dir=records
    )
    assert read_metadata(saved)["face_tracker"]["margin"] == 0.45
    assert build_settings(records)["face_tracker"] == dataclasses.asdict(tracker)
    predictor = Predictor(saved)
    assert predictor.tracker_config == tracker
    assert predictor.tracker.config == tracker
    assert predictor.min_seconds == 0.8
    assert predictor.audio_window_seconds == SAMPLING.window_seconds
    # Without records (or from an older export): the build's defaults.
    plain = Predictor(export_saved_model(build_model(TINY), SAMPLING, tmp_path / "plain"))
    assert plain.tracker_config == FaceTrackerConfig() and plain.min_seconds == 0.5


def test_predict_matches_records_built_with_non_default_tracker_settings(setup, tmp_path):
    """Records built with another margin and JPEG quality: emotf-predict on the model exported
    from them gives the record path's numbers (it would not with the default tracker)."""
    from emotf.media.faces import FaceTrackerConfig

    tracker = FaceTrackerConfig(margin=0.6, jpeg_quality=60)
    records = tmp_path / "records"
    build_records(
        BuildConfig(
            data_dir=str(setup["root"] / "sample"),
            out_dir=str(records),
            workers=1,
            progress=False,
            tracker=tracker,
        )
    )
    saved = export_saved_model(setup["model"], SAMPLING, tmp_path / "export", records_dir=records)
    expected = _record_path_probabilities(setup["model"], records)
    videos = setup["videos"]
    predictor = Predictor(saved)
    assert predictor.tracker_config == tracker
    # window=10: one window per clip, the whole clip as the records hold it (the default
    # window, the median training clip, would split the longer half of the clips).
    assert predictor.window_seconds < 10
    results = predict_files(None, videos, [_wav(v) for v in videos], predictor=predictor, window=10)
    default = predict_files(None, videos, [_wav(v) for v in videos], predictor=setup["predictor"])
    codes = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
    differs = False
    for video, result, other in zip(videos, results, default, strict=True):
        assert "error" not in result, result
        got = np.array([result["probabilities"][c] for c in codes])
        np.testing.assert_allclose(got, expected[video.stem], rtol=0, atol=1e-5)
        with_defaults = np.array([other["probabilities"][c] for c in codes])
        differs |= not np.allclose(with_defaults, expected[video.stem], rtol=0, atol=1e-5)
    assert differs  # the default tracker's crops give other numbers: the test has teeth


def test_a_clip_shorter_than_the_window_is_zero_padded_with_a_note(setup, tmp_path):
    """Like the build (keeps clips from 0.5 s; real CREMA-D has 1.27 s clips): not refused."""
    import wave

    from emotf.media.files import decode_video

    source = setup["videos"][0]
    frames = decode_video(source).frames[:30]  # 1.0 s at 30 fps
    short = tmp_path / "short_face.flv"
    with av.open(str(short), "w", format="flv") as out:
        stream = out.add_stream("flv", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with wave.open(str(_wav(source)), "rb") as full:
        params, pcm = full.getparams(), full.readframes(int(full.getframerate() * 1.0))
    audio = tmp_path / "short_face.wav"
    with wave.open(str(audio), "wb") as cut:
        cut.setparams(params)
        cut.writeframes(pcm)
    [result] = predict_files(None, [short], [audio], predictor=setup["predictor"])
    assert "error" not in result, result
    assert result["duration_s"] == pytest.approx(1.0, abs=0.05)
    assert any(
        "shorter than the 1.28 s window" in n and "zero-padded, as in training" in n
        for n in result["notes"]
    )


def test_the_demo_never_calls_a_training_clip_held_out(tmp_path):
    """emotf.demo's predict step: a clip of the test fold, or a clear error (no fallback)."""
    from emotf.corpora.cremad import canonical_folds
    from emotf.demo import held_out_clip

    folds = canonical_folds()
    actor = min(folds)
    other_fold = next(f for f in sorted(set(folds.values())) if f != folds[actor])
    flash = tmp_path / "VideoFlash"
    flash.mkdir()
    (flash / f"{actor}_DFA_ANG_XX.flv").write_bytes(b"")
    with pytest.raises(ValueError, match="no clip of the held-out fold"):
        held_out_clip(tmp_path, other_fold, num_actors=1)
    assert held_out_clip(tmp_path, folds[actor]) == flash / f"{actor}_DFA_ANG_XX.flv"


def test_calibrated_probabilities_follow_the_exported_temperature(setup):
    from emotf.evaluation.calibration import apply_temperature

    saved = export_saved_model(
        setup["model"], SAMPLING, setup["root"] / "export-t", extra_metadata={"temperature": 2.5}
    )
    predictor = Predictor(saved.parent)
    video = setup["videos"][0]
    [result] = predict_files(None, [video], [_wav(video)], predictor=predictor)
    codes = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
    raw = np.array([[result["probabilities"][c] for c in codes]])
    calibrated = np.array([result["calibrated_probabilities"][c] for c in codes])
    np.testing.assert_allclose(calibrated, apply_temperature(raw, 2.5)[0], atol=1e-6)
    assert (
        "calibrated_probabilities"
        not in predict_files(None, [video], [_wav(video)], predictor=setup["predictor"])[0]
    )


def test_windows_past_the_end_of_a_short_audio_track_are_skipped_with_a_reason(setup, tmp_path):
    """The serving signature refuses less than the shortest clip's audio (its in-graph bound):
    windows after the audio track ends are skipped, named, and the others still scored."""
    import wave

    source = setup["videos"][0]
    with wave.open(str(_wav(source)), "rb") as full:
        params, pcm = full.getparams(), full.readframes(int(full.getframerate() * 0.7))
    audio = tmp_path / "cut.wav"
    with wave.open(str(audio), "wb") as cut:
        cut.setparams(params)
        cut.writeframes(pcm)
    [result] = predict_files(
        None, [source], [audio], predictor=setup["predictor"], window=0.6, hop=0.3
    )
    assert "error" not in result, result
    scored = [w for w in result["timeline"] if w["probabilities"] is not None]
    skipped = [w for w in result["timeline"] if w["probabilities"] is None]
    assert scored and all(w["start"] <= 0.7 - 0.5 for w in scored)
    assert skipped and all("of audio (the model needs 0.50 s)" in w["skipped"] for w in skipped)


def test_a_tflite_model_gives_the_savedmodels_timeline(setup, tmp_path):
    """`--model X.tflite`: the same host-side path (tracker, crops, windows, audio), the model
    run by LiteRT; every window within the float32 export's 1e-4 of the SavedModel's."""
    pytest.importorskip("ai_edge_litert")
    from emotf.serving.litert_convert import export_litert

    tflite = export_litert(setup["model"], SAMPLING, tmp_path / "lite")
    lite = Predictor(tflite, num_threads=1)
    assert lite.class_codes == setup["predictor"].class_codes
    video = setup["videos"][0]
    kwargs = {"window": 0.6, "hop": 0.3}
    [got] = predict_files(None, [video], [_wav(video)], predictor=lite, **kwargs)
    [want] = predict_files(None, [video], [_wav(video)], predictor=setup["predictor"], **kwargs)
    assert "error" not in got, got
    assert len(got["timeline"]) == len(want["timeline"]) > 1
    for g, w in zip(got["timeline"], want["timeline"], strict=True):
        assert (g["start"], g["end"], g["face_id"]) == (w["start"], w["end"], w["face_id"])
        np.testing.assert_allclose(
            list(g["probabilities"].values()), list(w["probabilities"].values()), rtol=0, atol=1e-4
        )
    assert got["label_code"] == want["label_code"]
