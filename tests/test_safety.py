"""Loading never runs code from a file; tampered serving metadata is refused; CLI errors are
one line (issue 10)."""

import errno
import json
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from emotf.cli.build_records import main as build_main
from emotf.cli.evaluate import main as evaluate_main
from emotf.cli.export import main as export_main
from emotf.cli.predict import main as predict_main
from emotf.cli.train import main as train_main
from emotf.configs import ModelConfig, SamplingConfig, TrainConfig
from emotf.model import build_model
from emotf.runs.folder import Run
from emotf.runs.model_io import ModelLoadError, check_archive, load_model_file, load_run_model
from emotf.serving.export import export_saved_model
from emotf.serving.metadata import METADATA_FILE, MetadataError, resolve_saved_model
from emotf.serving.predict import Predictor
from emotf.tuning.search import tune
from tests.helpers_crafted import craft_keras_file
from tests.test_train import FakeFactory
from tests.test_tune import tune_config

N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)


def _run_folder(path, model_config=TINY, crafted_marker=None, sampling=None):
    """A finished-looking emotf-train run folder: config.json + model.keras (genuine, or the
    genuine file with its config.json replaced by the crafted one)."""
    path.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    model = build_model(model_config)
    model.save(str(path / "model.keras"))
    config = TrainConfig(
        records=str(path / "records"), out=str(path), model=model_config, sampling=sampling or {}
    )
    (path / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    if crafted_marker is not None:
        genuine = path / "genuine.keras"
        (path / "model.keras").rename(genuine)
        craft_keras_file(path / "model.keras", crafted_marker, template=genuine)
        genuine.unlink()
    return path, model


def test_the_current_keras_itself_refuses_the_crafted_file(tmp_path):
    marker = tmp_path / "MARKER"
    crafted = craft_keras_file(tmp_path / "evil.keras", marker)
    with pytest.raises(Exception):  # noqa: B017 (Keras refuses it with several error types)
        keras.saving.load_model(str(crafted), safe_mode=True, compile=False)
    assert not marker.exists()


def test_every_loader_refuses_the_crafted_model_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    run, _ = _run_folder(tmp_path / "run", crafted_marker=marker)
    bare = craft_keras_file(tmp_path / "bare.keras", marker)

    for load in (
        lambda: Run(run).load_model(),
        lambda: load_model_file(bare),
        lambda: load_run_model(bare),
        lambda: check_archive(run / "model.keras"),
    ):
        with pytest.raises(ModelLoadError, match="refused to load: its config names"):
            load()
    capsys.readouterr()
    assert export_main([str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.keras: refused to load" in err and "'os'" in err
    assert evaluate_main(["--run", str(run), "--fold", "0"]) != 0
    err = capsys.readouterr().err.strip()
    assert "refused to load" in err and "Traceback" not in err
    assert not marker.exists()
    assert not (run / "export").exists()


def test_tune_resume_reads_no_model_file(tmp_path):
    marker = tmp_path / "MARKER"
    first = tune(tune_config(tmp_path, max_trials=1), FakeFactory())
    out = tmp_path / "tune"
    for folder in [out, out / "search", *(out / "search").glob("**/trial_*")]:
        craft_keras_file(folder / "model.keras", marker)
    resumed = tune(tune_config(tmp_path, max_trials=2), FakeFactory())
    assert len(resumed["trials"]) == 2 and first["trials"][0] in resumed["trials"]
    assert not marker.exists()


@pytest.mark.parametrize("branch_weights", ["shared", "independent"])
def test_a_genuine_run_loads_with_its_exact_weights(tmp_path, branch_weights):
    config = ModelConfig(**{**TINY.to_dict(), "branch_weights": branch_weights})
    run, model = _run_folder(tmp_path / "run", model_config=config)
    check_archive(run / "model.keras")  # a genuine emotf model passes the JSON check
    loaded = Run(run).load_model()
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(load_model_file(run / "model.keras").get_weights()) == len(model.get_weights())


def test_a_run_with_its_own_audio_settings_loads_and_exports_with_them(tmp_path):
    run, _ = _run_folder(tmp_path / "run", sampling={"window_seconds": 1.0, "frame_step": 80})
    expected = SamplingConfig(window_seconds=1.0, frame_step=80).window_length
    assert Run(run).load_model().input["audio"].shape[-1] == expected
    assert export_main([str(run)]) == 0
    metadata = json.loads((run / "export" / "1" / "assets.extra" / METADATA_FILE).read_text())
    assert metadata["sampling_config"]["window_seconds"] == 1.0
    assert metadata["sampling_config"]["frame_step"] == 80


def test_a_model_file_that_does_not_fit_the_run_config_is_refused(tmp_path):
    run, _ = _run_folder(tmp_path / "run")
    other = ModelConfig(**{**TINY.to_dict(), "fc_units": 16})
    with pytest.raises(ModelLoadError, match="do not fit the run's model config"):
        load_run_model(run / "model.keras", other)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="junk.keras: not a Keras model archive"):
        load_model_file(tmp_path / "junk.keras")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ModelLoadError, match="not a Keras model archive"):
        load_model_file(tmp_path / "empty.keras")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(3)
    return export_saved_model(
        build_model(TINY),
        SamplingConfig(num_segments=N),
        tmp_path_factory.mktemp("export") / "emotf",
    )


@pytest.mark.parametrize(
    "where, key, value",
    [
        ("face_tracker", "crop_size", 100_000),
        ("face_tracker", "jpeg_quality", 0),
        ("face_tracker", "margin", float("nan")),
        ("sampling_config", "sample_rate", "16000"),
        ("sampling_config", "window_seconds", 1e9),
        ("sampling_config", "num_segments", 2.5),
        (None, "min_clip_seconds", -1),
        (None, "temperature", float("inf")),
    ],
)
def test_tampered_serving_metadata_is_refused_naming_the_value(
    exported, tmp_path, capsys, where, key, value
):
    copy = tmp_path / "model" / "1"
    import shutil

    shutil.copytree(resolve_saved_model(exported), copy)
    path = copy / "assets.extra" / METADATA_FILE
    metadata = json.loads(path.read_text())
    (metadata.setdefault(where, {}) if where else metadata)[key] = value
    path.write_text(json.dumps(metadata))
    with pytest.raises(MetadataError, match=rf"{METADATA_FILE}: (\w+: \w+\.)?{key}"):
        Predictor(copy)
    clip = tmp_path / "clip.flv"
    clip.write_bytes(b"")
    capsys.readouterr()
    assert predict_main(["--model", str(copy), str(clip)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{key}" in err and "Traceback" not in err, err


def test_untampered_metadata_is_accepted(exported):
    assert Predictor(exported).tracker_config.crop_size == 224


def test_cli_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert (
        train_main(
            [
                "--config",
                str(tmp_path / "missing.json"),
                "--fold",
                "0",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert (
        err.strip() == f"emotf-train: error: {tmp_path / 'missing.json'}: no such file or directory"
    )
    for flag, value, name in (
        ("--batch-size", "0", "batch_size"),
        ("--epochs", "0", "epochs"),
        ("--batch-size", "-4", "batch_size"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            train_main(["--records", "r", "--fold", "0", "--out", str(tmp_path / "o"), flag, value])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{name} must be" in err  # the declared bound
        assert f"Received: {name}={value}" in err
    assert not (tmp_path / "o").exists()  # nothing trained, nothing exported

    import emotf.records.build

    def full_disk(config):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "x.tfrecord"))

    monkeypatch.setattr(emotf.records.build, "build_records", full_disk)
    data = tmp_path / "data"
    data.mkdir()
    assert (
        build_main(["--data-dir", str(data), "--out", str(tmp_path / "out"), "--workers", "1"]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "x.tfrecord: no space left on device" in err
    assert "finished shards are kept" in err and "rerun" in err


def test_console_scripts_are_quiet_and_debug_shows_the_traceback(tmp_path):
    """No TensorFlow C++ chatter on a fresh process's console; --debug shows the traceback."""
    script = "from emotf.cli.export import main; import sys; sys.exit(main())"
    env_run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-c", script, str(tmp_path / "nothing"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            k: v
            for k, v in __import__("os").environ.items()
            if not k.startswith(("TF_CPP", "EMOTF"))
        },
    )
    quiet = env_run()
    assert quiet.returncode == 1
    lines = quiet.stderr.strip().splitlines()
    assert len(lines) == 1, quiet.stderr
    assert (
        lines[0].startswith("emotf-export: error: ")
        and "not a finished emotf-train run" in lines[0]
    )
    debug = env_run("--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    verbose = env_run("--verbose")
    assert "oneDNN" in verbose.stderr or "cuda" in verbose.stderr.lower()
