"""Exports, model loading, evaluation and prediction on a `tf.io.gfile` URL (issue 14 item 4).

A run folder is copied into TensorFlow's in-memory filesystem (`ram://`), which stands for
`gs://`: both are reached only through `tf.io.gfile`. Everything read or written there must
stay there (nothing falls back to a local path of the same name) and give what the local run
gives.
"""

import contextlib
import os
import uuid

import numpy as np
import pytest
import tensorflow as tf

from emotf.cli.export import main as export_main
from emotf.evaluation.compare import compare_predictions
from emotf.evaluation.evaluate import accuracy_vs_segments, evaluate_model
from emotf.evaluation.figures import read_predictions
from emotf.evaluation.reports import cv_report
from emotf.runs.folder import Run
from emotf.runs.model_io import ModelLoadError, check_archive, load_model_file, load_run_model
from emotf.serving.export import export_run, read_metadata
from emotf.serving.metadata import model_versions, resolve_saved_model
from emotf.serving.outputs import write_outputs
from emotf.serving.predict import Predictor
from emotf.storage import read_json
from tests.helpers_crafted import craft_keras_file
from tests.test_evaluate import CLIPS, PNG_SIGNATURE, fake_dataset_fn, make_run

gfile = tf.io.gfile


def copy_tree(local, url: str) -> str:
    """Copy a local folder into `url`, recursively, with `tf.io.gfile` (as `gsutil cp -r`)."""
    for folder, _, names in os.walk(local):
        target = url + (
            "/" + os.path.relpath(folder, local).replace(os.sep, "/")
            if folder != str(local)
            else ""
        )
        gfile.makedirs(target)
        for name in names:
            gfile.copy(os.path.join(folder, name), f"{target}/{name}", overwrite=True)
    return url


def files_under(url: str) -> set[str]:
    """Every file under `url`, relative to it."""
    return {
        f"{folder}/{name}"[len(url) + 1 :] for folder, _, names in gfile.walk(url) for name in names
    }


@pytest.fixture(scope="module")
def root():
    url = f"ram://emotf-test-{uuid.uuid4().hex[:12]}"
    gfile.makedirs(url)
    yield url
    for _ in range(5):
        if not gfile.exists(url):
            break
        # TensorFlow's RamFileSystem lists `assets.extra` as a child `.extra` of `assets` (a
        # prefix match): its rmtree fails on that phantom, after deleting what it can.
        with contextlib.suppress(tf.errors.NotFoundError):
            gfile.rmtree(url)
    assert not gfile.exists(url), list(gfile.walk(url))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, root):
    """(the local run folder, its copy on ram://) of a tiny run (`tests.test_evaluate`)."""
    local = make_run(tmp_path_factory.mktemp("storage") / "run")
    return local, copy_tree(local, f"{root}/run")


def test_export_to_ram_serves_what_the_local_export_serves(runs, tmp_path, capsys):
    local, url = runs
    local_version = export_run(local, tmp_path / "export")
    version = export_run(url)
    assert str(version) == f"{url}/export/1"
    # The whole SavedModel with its metadata, no temporary folder left, and nothing written
    # to a local path named like the URL.
    assert [name.rstrip("/") for name in gfile.listdir(f"{url}/export")] == ["1"]
    assert {
        "saved_model.pb",
        "assets.extra/emotf.json",
        "variables/variables.index",
    } <= files_under(str(version))
    assert not os.path.exists("ram:") and not os.path.exists(str(version))
    metadata, local_metadata = read_metadata(f"{url}/export"), read_metadata(local_version)
    assert metadata["run"] == url and local_metadata["run"] == str(local.resolve())
    assert {**metadata, "run": None} == {**local_metadata, "run": None}

    # emotf-predict's loader reads the metadata and the SavedModel from the URL, and serves
    # exactly what the local export serves.
    predictor = Predictor(f"{url}/export")
    assert predictor.model_dir == version and predictor.sample_rate == 16000
    rng = np.random.default_rng(0)
    clips = [
        {
            "frames": rng.integers(0, 256, [t, 32, 32, 3]).astype(np.uint8),
            "fps": fps,
            "sample_rate": 16000,
            "pcm16": rng.integers(-3000, 3000, s).astype(np.int16),
        }
        for t, fps, s in ((20, 25.0, 24000), (14, 30.0, 19000))
    ]
    for out, expected in zip(
        predictor.run_model(clips), Predictor(local_version).run_model(clips), strict=True
    ):
        assert out["label"] == expected["label"]
        for key in ("probabilities", "segment_probabilities"):
            np.testing.assert_array_equal(out[key], expected[key])

    # The console script: the next version number is found by listing the URL folder.
    assert export_main([url]) == 0
    assert capsys.readouterr().out.strip() == f"{url}/export/2"
    assert model_versions(f"{url}/export") == [1, 2]
    assert resolve_saved_model(f"{url}/export") == f"{url}/export/2"
    # A version still being written (no saved_model.pb yet) is not served, but is counted.
    gfile.makedirs(f"{url}/export/3/variables")
    assert resolve_saved_model(f"{url}/export") == f"{url}/export/2"
    assert model_versions(f"{url}/export") == [1, 2, 3]


def test_evaluate_on_ram_writes_its_files_there(runs, root, tmp_path):
    local, url = runs
    expected = evaluate_model(local, out=tmp_path / "evaluation", dataset_fn=fake_dataset_fn)
    report = evaluate_model(url, dataset_fn=fake_dataset_fn)
    out = f"{url}/evaluation"
    assert {
        "evaluation.json",
        "predictions.csv",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "reliability.png",
        "training_curves.png",
        "accuracy_by_group.csv",
    } <= files_under(out)
    for png in ("confusion_matrix.png", "reliability.png", "training_curves.png"):
        with gfile.GFile(f"{out}/{png}", "rb") as f:
            assert f.read(8) == PNG_SIGNATURE
    assert report["accuracy"] == expected["accuracy"] and report["model"] == url
    assert read_json(f"{out}/evaluation.json")["confusion_matrix"] == expected["confusion_matrix"]
    with gfile.GFile(f"{out}/confusion_matrix.csv", "rb") as f:
        assert f.read() == (tmp_path / "evaluation" / "confusion_matrix.csv").read_bytes()
    predictions = read_predictions(f"{out}/predictions.csv")
    assert predictions["clip_ids"] == CLIPS
    np.testing.assert_array_equal(
        predictions["probabilities"],
        read_predictions(tmp_path / "evaluation" / "predictions.csv")["probabilities"],
    )
    assert compare_predictions(url, tmp_path / "evaluation")["only_in_a"] == 0

    rows = accuracy_vs_segments(url, segments=[1, 2], dataset_fn=fake_dataset_fn)
    assert [r["n"] for r in rows] == [1, 2]
    assert {"accuracy_vs_n.csv", "accuracy_vs_n.png"} <= files_under(out)

    # The cross-validation report of a CV folder on ram://, from the fold's predictions.
    cv = f"{root}/cv"
    copy_tree(local, f"{cv}/fold-0")
    gfile.makedirs(f"{cv}/fold-0/evaluation")  # (ram:// would keep files in a missing folder)
    for name in ("predictions.csv", "evaluation.json"):
        gfile.copy(f"{out}/{name}", f"{cv}/fold-0/evaluation/{name}")
    md, json_path = cv_report(cv)
    assert str(md) == f"{cv}/cv_report.md" and read_json(json_path)["num_folds"] == 1
    assert "figures/confusion_matrix.png" in files_under(cv)


def test_load_run_model_from_ram(runs):
    local, url = runs
    expected = Run(local).load_model().get_weights()
    loaded = Run(url).load_model()
    for a, b in zip(expected, loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    check_archive(f"{url}/model.keras")
    bare = load_run_model(f"{url}/model.keras")  # no config: the file itself, safe mode
    assert len(bare.get_weights()) == len(expected)


def test_a_crafted_model_on_ram_is_refused_and_runs_nothing(runs, root, tmp_path):
    local, _ = runs
    marker = tmp_path / "MARKER"
    crafted = craft_keras_file(tmp_path / "model.keras", marker, template=local / "model.keras")
    url = f"{root}/crafted"
    gfile.makedirs(url)
    gfile.copy(str(local / "config.json"), f"{url}/config.json")
    gfile.copy(str(crafted), f"{url}/model.keras")
    for load in (
        lambda: Run(url).load_model(),
        lambda: load_model_file(f"{url}/model.keras"),
        lambda: load_run_model(f"{url}/model.keras"),
        lambda: check_archive(f"{url}/model.keras"),
        lambda: export_run(url),
    ):
        with pytest.raises(ModelLoadError, match=f"{url}/model.keras: refused to load"):
            load()
    assert not marker.exists() and not gfile.exists(f"{url}/export")
    with gfile.GFile(f"{url}/junk.keras", "wb") as f:
        f.write(b"not a zip")
    with pytest.raises(ModelLoadError, match="junk.keras: not a Keras model archive"):
        load_model_file(f"{url}/junk.keras")
    with pytest.raises(ModelLoadError, match="no such model file"):
        load_run_model(f"{url}/missing.keras")


def test_prediction_files_go_to_ram(root):
    timeline = [
        {"start": 0.0, "end": 2.0, "label": "ANG", "probabilities": {"ANG": 0.9, "HAP": 0.1}},
        {
            "start": 1.0,
            "end": 3.0,
            "label": None,
            "probabilities": None,
            "skipped": "no face in 50 of 50 frames",
        },
    ]
    result = {"file": "/videos/clip.mp4", "label_code": "ANG", "timeline": timeline}
    out = f"{root}/predictions"
    paths = write_outputs(result, out, ["ANG", "HAP"])
    assert paths == {
        "json": f"{out}/clip.json",
        "csv": f"{out}/clip.timeline.csv",
        "png": f"{out}/clip.timeline.png",
    }
    assert read_json(paths["json"])["timeline"] == timeline
    with gfile.GFile(paths["csv"]) as f:
        assert f.read().splitlines()[1] == "0.0,2.0,0,ANG,0.900000,0.100000,"  # face 0
    with gfile.GFile(paths["png"], "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
