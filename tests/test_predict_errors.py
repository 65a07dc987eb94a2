"""emotf-predict's failures keep issue 19's rule: exit 0, or non-zero with exactly one line on
stderr naming the problem (`emotf-predict: error: ...`; other lines only `... warning: ...`).
Results and where the files went are on stdout; a damaged SavedModel is one line naming it."""

import json
import os
import shutil

import keras
import pytest
import tensorflow as tf

from emotf.cli.predict import failure_line
from emotf.cli.predict import main as predict_main
from emotf.configs import ModelConfig, SamplingConfig
from emotf.model import build_model
from emotf.serving.export import export_saved_model
from emotf.serving.predict import Predictor
from emotf.serving.saved_model import load_problem
from emotf.synthetic.video import write_face_video

N = 2
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(4,), audio_widths=(4, 4), fc_units=4
)
DATA = "variables/variables.data-00000-of-00001"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    keras.utils.set_random_seed(5)
    root = tmp_path_factory.mktemp("model")
    return export_saved_model(build_model(TINY), SamplingConfig(num_segments=N), root / "export")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """1 s with a face: one whole-clip window."""
    return write_face_video(
        tmp_path_factory.mktemp("video") / "face.mkv", 1.0, fps=10, width=240, height=180
    )


def _run(capsys, argv) -> tuple[int, str, list[str]]:
    """(exit status, stdout, stderr's lines that are not warnings)."""
    code = predict_main([*map(str, argv), "--no-progress"])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert all(line.startswith("emotf-predict: ") for line in lines), lines
    assert "Traceback" not in captured.err + captured.out
    return (
        code,
        captured.out,
        [line for line in lines if not line.startswith("emotf-predict: warning: ")],
    )


def _garbage(path, data=b"\x8f\x01\xfe"):
    path.write_bytes(data)
    return path


# --- defect 1: per-video results on stdout, one error line at the end ------------------------


def test_a_bad_video_is_one_line_naming_it_and_the_others_go_on(saved, video, tmp_path, capsys):
    bad = _garbage(tmp_path / "bad.mp4")
    out = tmp_path / "out"
    code, stdout, errors = _run(capsys, ["--model", saved, bad, video, "--out", out])
    assert code == 1
    assert errors == [
        f"emotf-predict: error: 1 of 2 videos failed: {bad}: cannot open as video "
        + errors[0].split("cannot open as video ", 1)[1]
    ], errors
    assert "label:" in stdout and "ERROR" in stdout  # the good video was predicted
    assert f"{video} -> {out / 'face.json'}" in stdout
    assert f"wrote 4 files for 2 videos to {out}" in stdout
    assert os.path.isfile(out / "face.timeline.png")


def test_several_failures_name_the_first_and_count_the_rest(saved, video, tmp_path, capsys):
    bad, worse = _garbage(tmp_path / "a.mp4"), _garbage(tmp_path / "b.flv", b"")
    code, _, errors = _run(capsys, ["--model", saved, bad, video, worse])
    assert code == 1 and len(errors) == 1, errors
    assert errors[0].startswith(f"emotf-predict: error: 2 of 3 videos failed: {bad}: ")
    assert errors[0].endswith(" and 1 more; see the table")
    code, stdout, errors = _run(
        capsys, ["--model", saved, bad, video, worse, "--json", "--out", tmp_path / "out"]
    )
    assert code == 1 and len(errors) == 1 and errors[0].endswith("and 1 more; see the JSON")
    docs = json.loads(stdout)  # stdout stays one JSON document (outputs are in it)
    assert [bool(d["error"]) for d in docs] == [True, False, True]
    assert docs[1]["outputs"]["json"] == str(tmp_path / "out" / "face.json")


def test_success_prints_nothing_on_stderr(saved, video, tmp_path, capsys):
    code, stdout, errors = _run(capsys, ["--model", saved, video, "--out", tmp_path / "out"])
    assert code == 0 and errors == [] and "wrote 3 files for 1 videos" in stdout


def test_a_long_audio_name_is_one_line(saved, video, tmp_path, capsys):
    audio = tmp_path / ("a" * 300 + ".wav")
    code, _, errors = _run(capsys, ["--model", saved, video, "--audio", audio])
    assert code == 1 and len(errors) == 1, errors
    assert errors[0].startswith("emotf-predict: error: 1 of 1 videos failed: ")
    assert "a" * 300 in errors[0] and "File name too long" in errors[0]


# --- defect 2: --out that cannot be made, inputs that match nothing ---------------------------


def test_an_out_folder_with_a_long_name_is_one_line(saved, video, tmp_path, capsys):
    out = tmp_path / ("o" * 300)
    code, stdout, errors = _run(capsys, ["--model", saved, video, "--out", out])
    assert code == 1 and len(errors) == 1, errors
    assert errors[0] == (
        f"emotf-predict: error: 1 of 1 videos failed: {video}: cannot write "
        f"the outputs to {out}: File name too long"
    )
    assert "ERROR" in stdout and f"wrote 0 files for 1 videos to {out}" in stdout


def test_a_folder_without_video_is_one_line(saved, tmp_path, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("no video here")
    monkeypatch.chdir(tmp_path)
    code, _, errors = _run(capsys, ["--model", saved, "./"])
    assert code == 1
    assert len(errors) == 1 and errors[0].startswith(
        "emotf-predict: error: no video to predict: ./: no video files in the folder"
    ), errors
    code, _, errors = _run(capsys, ["--model", saved, "none*.mp4", "./"])
    assert code == 1 and errors == [
        "emotf-predict: error: no video to predict: none*.mp4: no file matches the pattern "
        "(and 1 more inputs matched nothing)"
    ], errors


def test_an_input_that_matches_nothing_beside_a_good_video(saved, video, tmp_path, capsys):
    pattern = str(tmp_path / "none*.mp4")
    code, stdout, errors = _run(capsys, ["--model", saved, video, pattern])
    assert code == 1 and "label:" in stdout
    assert errors == [
        f"emotf-predict: error: 1 input matched nothing: {pattern}: no file matches the pattern"
    ], errors


def test_failure_line():
    ok = {"file": "g.mp4", "label": 0}
    bad = [{"file": f"{c}.mp4", "error": f"{c}.mp4: cannot open as video (x)\nmore"} for c in "ab"]
    assert failure_line([ok], []) == (None, [])
    assert failure_line([ok, bad[0]]) == (
        "1 of 2 videos failed: a.mp4: cannot open as video (x)",
        [],
    )
    assert failure_line([bad[0], ok, bad[1]], ["p*: no file matches the pattern"], "the JSON") == (
        "2 of 3 videos failed: a.mp4: cannot open as video (x) and 1 more; see the JSON; "
        "1 input matched nothing",
        ["p*: no file matches the pattern"],
    )
    assert failure_line([ok], ["p*: x", "q*: y"]) == (
        "2 inputs matched nothing: p*: x and 1 more",
        ["q*: y"],
    )


# --- defect 3: a damaged SavedModel ---------------------------------------------------------


def _damaged(saved, tmp_path, name, change):
    """A copy of the SavedModel with one file (relative path, bytes -> bytes) changed."""
    copy = tmp_path / name
    shutil.copytree(saved, copy)
    relative, edit = change
    path = copy / relative
    path.write_bytes(edit(bytearray(path.read_bytes())))
    return copy


def _flip(data: bytearray) -> bytes:
    data[len(data) // 2] ^= 0x36
    return bytes(data)


DAMAGE = {
    "flipped": ((DATA, _flip), f"checksum does not match in {DATA}"),
    "truncated": (
        (DATA, lambda d: bytes(d[: len(d) // 2])),
        f"{DATA} is truncated (read less bytes than requested)",
    ),
    "emptied": ((DATA, lambda d: b""), f"{DATA} is truncated"),
    "index-flipped": (
        ("variables/variables.index", _flip),
        "checksum does not match in variables/variables.index",
    ),
    "index-emptied": (
        ("variables/variables.index", lambda d: b""),
        "variables/variables.index is truncated",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_savedmodel_is_one_line_naming_it(saved, video, tmp_path, capsys, damage):
    change, expected = DAMAGE[damage]
    model = _damaged(saved, tmp_path, damage, change)
    with pytest.raises(ValueError) as raised:
        Predictor(model)
    message = str(raised.value)
    assert message.startswith(f"{model}: cannot load the SavedModel: {expected}"), message
    assert "\n" not in message and "{{" not in message and "[Op:" not in message
    for extra in ([], ["--trust-model"]):
        code, _, errors = _run(capsys, ["--model", model, video, *extra])
        assert code == 2 and errors == [f"emotf-predict: error: {message}"], errors


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "saved_model.pb holds no MetaGraph"),
        (b"\x8f\x01\xfe" * 50, "saved_model.pb is not a SavedModel protobuf"),
    ],
)
def test_a_damaged_graph_loaded_on_trust_is_one_line(saved, tmp_path, content, expected):
    """(Without --trust-model the graph check reads saved_model.pb first:
    emotf.serving.graph_ops.)"""
    model = tmp_path / "model"
    shutil.copytree(saved, model)
    (model / "saved_model.pb").write_bytes(content)
    with pytest.raises(ValueError, match=f"^{model}: cannot load the SavedModel: {expected}"):
        Predictor(model, trust_model=True)


def test_load_problem_keeps_the_first_meaningful_line():
    error = tf.errors.InvalidArgumentError(
        None,
        None,
        "{{function_node __wrapped__Foo_device_/job:localhost/replica:0/task:0/"
        "device:CPU:0}} Something is wrong: x [Op:Foo]\n\tdetails",
    )
    assert load_problem(error) == "Something is wrong: x"
    assert load_problem(ValueError("")) == "ValueError"
    shard = tf.errors.DataLossError(
        None,
        None,
        "{{function_node __wrapped__RestoreV2_dtypes_49}} TensorBundle at "
        "m/1/variables/variables shard 0 (576 bytes): Checksum does not match: "
        "stored 1 vs. calculated on the restored bytes 2 [Op:RestoreV2]",
    )
    assert load_problem(shard, None) == (
        "checksum does not match in variables/variables.data-00000-of-*"
    )
