"""emotf-predict against careless or hostile inputs: out-of-bounds settings, symbolic link
loops, long and repeated names, outputs that cannot be written, and SavedModels from elsewhere."""

import contextlib
import errno
import glob
import json
import os
import shutil
import signal

import keras
import pytest
import tensorflow as tf

import emotf.serving.predict
import emotf.serving.timeline
from emotf.cli.predict import main as predict_main
from emotf.configs import ModelConfig, SamplingConfig
from emotf.model import build_model
from emotf.serving.export import export_saved_model
from emotf.serving.graph_ops import UntrustedModelError
from emotf.serving.inputs import _glob_files, expand_inputs
from emotf.serving.outputs import MAX_STEM_BYTES
from emotf.serving.predict import Predictor, predict_files
from emotf.synthetic.video import write_face_video

N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    keras.utils.set_random_seed(7)
    root = tmp_path_factory.mktemp("inputs")
    return export_saved_model(build_model(TINY), SamplingConfig(num_segments=N), root / "export")


@pytest.fixture(scope="module")
def predictor(saved):
    return Predictor(saved)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """1 s with a face: one whole-clip window."""
    return write_face_video(
        tmp_path_factory.mktemp("video") / "face.mkv", 1.0, fps=10, width=240, height=180
    )


class Overrun(Exception):
    """Not an OSError: glob swallows those, and went on in the loop."""


@contextlib.contextmanager
def deadline(seconds: int):
    """Overrun when the block runs longer (a symlink loop once never ended)."""

    def expire(*_):
        raise Overrun(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- bounds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, field",
    [
        (["--window", "1e-9"], "window_s"),
        (["--window", "0.4"], "window_s"),
        (["--window", "1e9"], "window_s"),
        (["--hop", "1e-9"], "hop_s"),
        (["--hop", "0.01"], "hop_s"),
        (["--hop", "nan"], "hop_s"),
        (["--batch-size", "0"], "batch_size"),
    ],
)
def test_out_of_bounds_settings_are_refused_in_one_line_before_anything(
    tmp_path, capsys, flags, field
):
    """Refused by the bounds declared on PredictConfig, before the model is even looked for."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        predict_main(["--model", str(tmp_path / "no-model"), "clip.mp4", "--out", str(out), *flags])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and field in err and "Received" in err, err
    assert not out.exists()


@pytest.mark.parametrize("settings", [{"window": 0.3}, {"hop": 0.01}, {"window": 1e-9}])
def test_the_library_refuses_the_same_settings_before_any_video(predictor, video, settings):
    with pytest.raises(ValueError, match="PredictConfig"):
        predict_files(None, [video], predictor=predictor, **settings)
    with pytest.raises(ValueError, match="PredictConfig"):
        predictor.predict_video(video, **settings)


def test_too_many_windows_for_a_video_are_refused_before_decoding(predictor, tmp_path, monkeypatch):
    monkeypatch.setattr(emotf.serving.predict, "MAX_WINDOWS_PER_VIDEO", 10)
    monkeypatch.setattr(emotf.serving.timeline, "MAX_WINDOWS_PER_VIDEO", 10)
    monkeypatch.setattr(predictor.tracker, "detect", lambda *a, **k: pytest.fail("decoded"))
    long = write_face_video(tmp_path / "long.mkv", 3.0, fps=10, width=240, height=180)
    [result] = predict_files(None, [long], predictor=predictor, window=0.5, hop=0.1)
    assert "more than 10 windows" in result["error"] and "--hop" in result["error"]
    assert "unexpected" not in result["error"]


# --- inputs ----------------------------------------------------------------------------------


@pytest.fixture
def loop(tmp_path):
    """loop/ with two links to itself, a link back from a subfolder, a file, and two links
    to one file outside."""
    loop = tmp_path / "loop"
    (loop / "sub").mkdir(parents=True)
    (loop / "a").symlink_to(loop)
    (loop / "b").symlink_to(".")
    (loop / "sub" / "up").symlink_to("..")
    (loop / "clip.mp4").write_bytes(b"x")
    (loop / "sub" / "deep.mkv").write_bytes(b"x")
    real = tmp_path / "real.mp4"
    real.write_bytes(b"x")
    (loop / "x.mp4").symlink_to(real)
    (loop / "y.mp4").symlink_to(real)
    return loop


def test_globs_and_folder_walks_never_loop_and_never_repeat_a_file(loop):
    with deadline(30):
        assert expand_inputs([f"{loop}/**/*.mp4"]) == (
            [str(loop / "clip.mp4"), str(loop / "x.mp4")],
            [],
        )
        assert expand_inputs([loop]) == (
            [str(loop / "clip.mp4"), str(loop / "sub" / "deep.mkv"), str(loop / "x.mp4")],
            [],
        )
        real = loop.parent / "real.mp4"
        assert expand_inputs([real, loop / "y.mp4", f"{loop}/*.mp4", loop / "clip.mp4"]) == (
            [str(real), str(loop / "clip.mp4")],
            [],
        )


@pytest.mark.parametrize(
    "pattern",
    [
        "d/*.mp4",
        "d/**/*.mp4",
        "**/*.mp4",
        "d/*/x?.mp4",
        "d/[ab]*.mp4",
        "d/**",
        "d/**/e/*",
        "*/.h*",
        "none/*.mp4",
    ],
)
def test_patterns_match_what_glob_matches_without_loops(tmp_path, monkeypatch, pattern):
    for name in (
        "d/a.mp4",
        "d/b.mkv",
        "d/.h.mp4",
        "d/e/x1.mp4",
        "d/e/f/x2.mp4",
        "d/.g/x3.mp4",
        "top.mp4",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    for where in ("", f"{tmp_path}/"):
        expected = sorted(
            p for p in glob.glob(where + pattern, recursive=True) if os.path.isfile(p)
        )
        assert _glob_files(where + pattern) == expected


# --- outputs ---------------------------------------------------------------------------------


def test_long_and_repeated_names_get_safe_unique_outputs_and_the_batch_goes_on(
    predictor, video, tmp_path
):
    """A 240-character name once aborted the batch ("file name too long"); a/clip and b/clip
    wrote over each other."""
    long = tmp_path / ("n" * 236 + ".mkv")
    shutil.copy(video, long)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clip.mkv").write_bytes(b"not a video")
    videos = [long, tmp_path / "a" / "clip.mkv", tmp_path / "b" / "clip.mkv"]
    results = predict_files(None, videos, predictor=predictor, out_dir=tmp_path / "out")
    assert "error" not in results[0], results[0]
    assert all("cannot open" in r["error"] or "no decodable" in r["error"] for r in results[1:])
    jsons = [r["outputs"]["json"] for r in results]
    assert len(set(jsons)) == 3 and all(os.path.isfile(p) for p in jsons)
    assert [json.loads(open(p).read())["file"] for p in jsons] == [str(v) for v in videos]
    stem = os.path.basename(jsons[0])[: -len(".json")]
    assert len(stem.encode()) <= MAX_STEM_BYTES and stem.startswith("n" * 100)
    assert set(results[0]["outputs"]) == {"json", "csv", "png"}


def test_an_output_that_cannot_be_written_is_one_line_for_that_video_only(
    saved, video, tmp_path, monkeypatch, capsys
):
    first, second = tmp_path / "first.mkv", tmp_path / "second.mkv"
    shutil.copy(video, first)
    shutil.copy(video, second)
    write_outputs = emotf.serving.predict.write_outputs

    def full_disk(result, out_dir, codes, stem=None):
        if result["file"] == str(first):
            raise OSError(errno.ENOSPC, "No space left on device", f"{out_dir}/first.json")
        return write_outputs(result, out_dir, codes, stem)

    monkeypatch.setattr(emotf.serving.predict, "write_outputs", full_disk)
    out = tmp_path / "out"
    code = predict_main(
        [
            "--model",
            str(saved),
            str(first),
            str(second),
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ]
    )
    assert code == 1
    captured = capsys.readouterr()
    docs = json.loads(captured.out)
    assert docs[0]["error"].startswith(f"{first}: cannot write the outputs to {out}: ")
    assert "No space left on device" in docs[0]["error"] and "\n" not in docs[0]["error"]
    assert docs[0]["label"] is not None  # the prediction itself is kept
    assert docs[1]["error"] is None and os.path.isfile(out / "second.json")
    assert captured.err.strip() == (
        f"emotf-predict: error: 1 of 2 videos failed: {docs[0]['error']}"
    )


def test_out_says_where_the_files_went(saved, video, tmp_path, capsys):
    """On standard output: standard error is for the one line naming a failure."""
    out = tmp_path / "out"
    assert (
        predict_main(["--model", str(saved), str(video), "--out", str(out), "--no-progress"]) == 0
    )
    captured = capsys.readouterr()
    assert (
        f"{video} -> {out / 'face.json'}, {out / 'face.timeline.csv'}, "
        f"{out / 'face.timeline.png'}" in captured.out
    )
    assert f"wrote 3 files for 1 videos to {out}" in captured.out
    assert captured.err == ""


# --- model trust -----------------------------------------------------------------------------


class _Writer(tf.Module):
    """emotf's serving_default signature whose graph also writes a file."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, None, 3], tf.uint8, name="frames"),
            tf.TensorSpec([None], tf.int32, name="num_frames"),
            tf.TensorSpec([None], tf.float32, name="fps"),
            tf.TensorSpec([None, None], tf.float32, name="waveform"),
            tf.TensorSpec([None], tf.int32, name="num_samples"),
            tf.TensorSpec([None], tf.int32, name="sample_rate"),
        ]
    )
    def serve(self, frames, num_frames, fps, waveform, num_samples, sample_rate):
        with tf.control_dependencies([tf.io.write_file(self.target, "pwned")]):
            probabilities = tf.one_hot(tf.fill(tf.shape(num_frames), 3), 6)
        return {
            "probabilities": probabilities,
            "label": tf.argmax(probabilities, axis=-1),
            "segment_probabilities": tf.tile(probabilities[:, None], [1, N, 1]),
        }


@pytest.fixture
def writer_model(saved, tmp_path):
    target = tmp_path / "written-by-the-model.txt"
    folder = tmp_path / "crafted" / "1"
    module = _Writer(str(target))
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    shutil.copytree(saved / "assets.extra", folder / "assets.extra")
    return folder, target


def test_a_savedmodel_that_writes_a_file_is_refused_unless_trusted(writer_model, video, capsys):
    folder, target = writer_model
    with pytest.raises(UntrustedModelError, match="WriteFile"):
        Predictor(folder)
    assert predict_main(["--model", str(folder), str(video), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "WriteFile" in err and "--trust-model" in err, err
    assert not target.exists()
    # --trust-model: the user vouches for the model; it is loaded and run as it is.
    assert predict_main(["--model", str(folder), str(video), "--no-progress", "--trust-model"]) == 0
    assert "label: HAP" in capsys.readouterr().out
    assert target.read_text() == "pwned"
