"""Issue 21, serving: a model trained on other classes than CREMA-D's carries them (codes, names,
the corpus block) into its SavedModel, its LiteRT export and every `emotf-predict` output; an
export without a corpus block (older than corpora) still reads as CREMA-D."""

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from emotf.cli.export import main as export_main
from emotf.cli.predict import main as predict_main
from emotf.configs import TrainConfig
from emotf.corpora.info import CREMAD_INFO, CorpusInfo
from emotf.model import build_model
from emotf.runs.folder import Run
from emotf.serving.console import format_table
from emotf.serving.export import export_run, export_saved_model, read_metadata, run_corpus
from emotf.serving.metadata import (
    MetadataError,
    check_metadata,
    metadata_corpus,
    metadata_path,
)
from emotf.serving.outputs import CSV_COLUMNS, probability_columns
from emotf.serving.predict import Predictor
from emotf.serving.timeline_plot import timeline_figure
from emotf.synthetic.video import write_face_video
from tests.test_export import SAMPLING, TINY

THREE = CorpusInfo(
    name="moods",
    class_codes=("calm", "tense", "happy"),
    class_names=("Calm", "Tense", "Happy"),
    num_folds=4,
)
TINY3 = dataclasses.replace(TINY, num_classes=3)


def _make_run(path: Path, model_config, metrics: dict | None, records: str = "") -> Run:
    """A finished-looking run folder: the model file, config.json and (optionally) metrics.json."""
    path.mkdir(parents=True)
    run = Run(path)
    keras.utils.set_random_seed(3)
    build_model(model_config).save(str(run.model_path))
    config = TrainConfig(records=records, out=str(path), model=model_config, sampling={})
    Path(str(run.config_path)).write_text(json.dumps({"config": config.to_dict()}))
    if metrics is not None:
        run.write_metrics(metrics)
    return run


def _write_manifest(folder: Path, corpus: CorpusInfo) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"corpus": corpus.to_dict()}))
    return folder


@pytest.fixture(scope="module")
def three_run(tmp_path_factory):
    return _make_run(
        tmp_path_factory.mktemp("three") / "run",
        TINY3,
        {"accuracy": 0.5, "corpus": THREE.to_dict()},
    )


@pytest.fixture(scope="module")
def three_export(three_run):
    return export_run(three_run.path)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """1 s with a face: one whole-clip window."""
    return write_face_video(
        tmp_path_factory.mktemp("video") / "face.mkv", 1.0, fps=10, width=240, height=180
    )


def test_the_savedmodel_carries_the_runs_classes(three_export):
    meta = tf.saved_model.load(str(three_export)).signatures["metadata"]()
    assert [c.decode() for c in meta["class_codes"].numpy()] == list(THREE.class_codes)
    assert [c.decode() for c in meta["class_names"].numpy()] == list(THREE.class_names)
    assert CorpusInfo.from_dict(json.loads(meta["corpus"].numpy())) == THREE
    on_disk = read_metadata(three_export)
    assert on_disk["class_codes"] == list(THREE.class_codes)
    assert on_disk["class_names"] == list(THREE.class_names)
    assert on_disk["corpus"] == THREE.to_dict()
    assert metadata_corpus(check_metadata(on_disk, "m.json"), "m.json") == THREE
    # The signatures answer with the three classes.
    n, size = SAMPLING.num_segments, SAMPLING.frame_size
    rng = np.random.default_rng(0)
    out = tf.saved_model.load(str(three_export)).signatures["predict_segments"](
        frames=tf.constant(rng.integers(0, 256, [2, n, size, size, 3]), tf.uint8),
        audio=tf.constant(rng.normal(0, 0.1, [2, n, SAMPLING.window_length]), tf.float32),
    )
    assert out["probabilities"].shape == (2, 3)
    labels = out["label"].numpy()
    assert [c.decode() for c in out["label_code"].numpy()] == [THREE.class_codes[k] for k in labels]
    assert [c.decode() for c in out["label_name"].numpy()] == [THREE.class_names[k] for k in labels]


def test_the_corpus_comes_from_metrics_then_the_manifest_then_cremad(three_run, tmp_path):
    other = CorpusInfo("other", ("a", "b", "c"), ("A", "B", "C"), 3)
    records = _write_manifest(tmp_path / "records", other)
    assert run_corpus(three_run, records) == THREE  # metrics.json first
    unfinished = Run(tmp_path / "nothing")
    assert run_corpus(unfinished, records) == other  # no metrics.json: the records' manifest
    assert run_corpus(unfinished, None) == CREMAD_INFO  # neither: an old CREMA-D run
    (tmp_path / "old").mkdir()
    old = Run(tmp_path / "old")
    old.write_metrics({"accuracy": 0.5})  # metrics.json older than corpora: no corpus key
    assert run_corpus(old, records) == other
    assert run_corpus(old, tmp_path / "no-records") == CREMAD_INFO


def test_export_refuses_a_corpus_of_another_size_in_one_line(tmp_path):
    # A 3-class model whose run records no corpus: CREMA-D's 6 classes do not fit.
    run = _make_run(tmp_path / "run", TINY3, {"accuracy": 0.5})
    with pytest.raises(ValueError, match="the model has 3 classes but the corpus 'cremad' has 6"):
        export_run(run.path)
    assert not (tmp_path / "run" / "export" / "1").exists()


def test_emotf_predict_shows_the_three_classes(three_export, video, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--model", str(three_export), str(video), "--no-progress"]
    assert predict_main([*args, "--out", str(out), "--json"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["error"] is None
    assert list(doc["probabilities"]) == list(THREE.class_codes)
    assert doc["label_code"] in THREE.class_codes
    assert doc["label_name"] == THREE.class_names[THREE.class_codes.index(doc["label_code"])]
    assert all(list(w["probabilities"]) == list(THREE.class_codes) for w in doc["timeline"])
    assert json.loads((out / "face.json").read_text())["probabilities"] == doc["probabilities"]
    with open(out / "face.timeline.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["start", "end", "face_id", "label", "calm", "tense", "happy", "skipped"]
    assert rows[1][3] == doc["timeline"][0]["label"] and rows[1][3] in THREE.class_codes
    assert float(rows[1][4]) == pytest.approx(doc["timeline"][0]["probabilities"]["calm"])
    # The figure's legend names the model's classes.
    figure = timeline_figure(doc, list(THREE.class_codes))
    try:
        legend = figure.axes[1].get_legend()
        assert [t.get_text() for t in legend.get_texts()] == list(THREE.class_codes)
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
    # The console table: a row per class, the probabilities in one column.
    assert predict_main(args) == 0
    table = capsys.readouterr().out
    assert f"label: {doc['label_code']} ({doc['label_name']};" in table
    rows = [
        line for line in table.splitlines() if line.split()[:1] in (["calm"], ["tense"], ["happy"])
    ]
    assert len(rows) == 3
    assert len({line.index(".") for line in rows}) == 1  # aligned despite codes of 4 and 5


def test_console_table_aligns_codes_of_any_length():
    result = {
        "file": "v.mp4",
        "duration_s": 1.0,
        "audio": None,
        "label_code": "a",
        "label_name": "A",
        "probabilities": {"a": 0.7, "much_longer_code": 0.3},
    }
    lines = [line for line in format_table([result]).splitlines() if "0." in line]
    assert len(lines) == 2 and lines[0].index("0.") == lines[1].index("0.")


def test_probability_columns_never_take_another_columns_name():
    assert probability_columns(list(CREMAD_INFO.class_codes)) == list(CREMAD_INFO.class_codes)
    codes = ["label", "start", "p_label", "calm"]
    columns = probability_columns(codes)
    assert columns == ["p_p_label", "p_start", "p_label", "calm"]
    assert len(set(columns) | set(CSV_COLUMNS)) == len(columns) + len(CSV_COLUMNS)


def test_the_litert_export_carries_the_runs_classes(three_run, tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    from emotf.serving.litert import LiteRTModel, metadata_file

    assert export_main([str(three_run.path), "--format", "litert", "--out", str(tmp_path)]) == 0
    path = capsys.readouterr().out.strip()
    meta = json.loads(Path(metadata_file(path)).read_text())
    assert meta["class_codes"] == list(THREE.class_codes)
    assert meta["class_names"] == list(THREE.class_names)
    assert meta["corpus"] == THREE.to_dict()
    assert meta["outputs"]["segment_probabilities"]["shape"] == [SAMPLING.num_segments, 3]
    lite = LiteRTModel(path, num_threads=1)
    assert lite.corpus == THREE and lite.class_names == list(THREE.class_names)
    # Metadata naming other classes than the flatbuffer gives is refused in one line.
    two = CorpusInfo("two", ("calm", "tense"), ("Calm", "Tense"), 4)
    edited = {**meta, "class_codes": ["calm", "tense"], "class_names": ["Calm", "Tense"]}
    Path(metadata_file(path)).write_text(json.dumps({**edited, "corpus": two.to_dict()}))
    with pytest.raises(MetadataError, match="output does not match its metadata's 2 classes"):
        LiteRTModel(path, num_threads=1)


def test_metadata_checks_accept_any_corpus_and_refuse_disagreement():
    base = {"sampling_config": SAMPLING.to_dict()}
    three = {
        **base,
        "class_codes": list(THREE.class_codes),
        "class_names": list(THREE.class_names),
        "corpus": THREE.to_dict(),
    }
    assert metadata_corpus(check_metadata(three, "m.json"), "m.json") == THREE
    for bad, message in (
        ({"corpus": {**THREE.to_dict(), "class_codes": ["calm", "tense", "sad"]}}, "differ"),
        ({"class_names": ["Calm", "Tense"]}, "must name each"),
        ({"class_codes": ["calm"], "class_names": ["Calm"], "corpus": None}, "2 to 1000"),
        ({"class_codes": ["calm", "calm", "x"], "corpus": None}, "distinct"),
        ({"class_codes": "calm"}, "must be lists"),
        ({"corpus": {**THREE.to_dict(), "num_folds": 0}}, "num_folds"),
    ):
        with pytest.raises(MetadataError, match=message) as error:
            check_metadata({**three, **bad}, "m.json")
        assert str(error.value).startswith("m.json: ")
    # Written before corpora existed: no corpus block, CREMA-D's classes and folds.
    old = {
        **base,
        "class_codes": list(CREMAD_INFO.class_codes),
        "class_names": list(CREMAD_INFO.class_names),
    }
    assert metadata_corpus(check_metadata(old, "m.json"), "m.json") == CREMAD_INFO


def test_an_export_without_a_corpus_block_loads_as_cremad(tmp_path):
    keras.utils.set_random_seed(4)
    saved = export_saved_model(build_model(TINY), SAMPLING, tmp_path / "export")
    assert read_metadata(saved)["corpus"] == CREMAD_INFO.to_dict()  # a new CREMA-D export
    path = Path(str(metadata_path(saved)))
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "corpus"}
    path.write_text(json.dumps(old))
    predictor = Predictor(saved)
    assert predictor.corpus == CREMAD_INFO
    assert predictor.class_codes == list(CREMAD_INFO.class_codes)
    assert predictor.class_names == list(CREMAD_INFO.class_names)


def test_a_savedmodel_whose_metadata_names_other_classes_is_refused(three_export, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(str(three_export), copy)
    path = Path(str(metadata_path(copy)))
    meta = json.loads(path.read_text())
    two = CorpusInfo("two", ("calm", "tense"), ("Calm", "Tense"), 4)
    meta.update(class_codes=["calm", "tense"], class_names=["Calm", "Tense"], corpus=two.to_dict())
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="gives 3 probabilities but its metadata names 2"):
        Predictor(copy)
