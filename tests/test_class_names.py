"""Class names travel into evaluation: a run of another corpus (3 classes, no rater votes) is
scored, reported and compared in its own classes; CREMA-D's human raters and groups are absent
with one line; no module outside emotf/corpora reads CREMA-D's classes or folds directly."""

import ast
import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_evaluate import make_run

from emotf.corpora.info import CREMAD_INFO, CorpusInfo
from emotf.corpora.splits import ACTORS, OGM, run_split, split_folds
from emotf.evaluation.compare import compare_predictions
from emotf.evaluation.evaluate import evaluate_model
from emotf.evaluation.figures import read_predictions, write_predictions
from emotf.evaluation.reports import cv_report
from emotf.evaluation.summary import ReportWarning, no_groups_line, no_raters_line
from emotf.runs.folder import Run

ROOT = Path(__file__).resolve().parents[1]
MOODS = CorpusInfo(
    name="moods",
    class_codes=("calm", "tense", "happy"),
    class_names=("calm", "tense", "happy"),
    num_folds=4,
)
CLIPS = ["anna_01", "anna_02", "bob_01", "bob_02", "cleo_01", "cleo_02"]
ACTORS_OF = [0, 0, 1, 1, 2, 2]
LABELS = [0, 1, 2, 0, 1, 2]


def moods_dataset_fn(part, training, config, epoch):
    """Six clips of three speakers, 3 classes, with clip and actor ids (as the records give)."""
    import tensorflow as tf

    n = config.model.num_segments
    rng = np.random.default_rng(0)
    inputs = {
        "frames": rng.integers(0, 256, (6, n, 32, 32, 3)).astype("uint8"),
        "audio": rng.normal(0, 0.1, (6, n, 20480)).astype("float32"),
    }
    meta = {"clip_id": CLIPS, "actor_id": np.array(ACTORS_OF, np.int32)}
    return tf.data.Dataset.from_tensor_slices((inputs, np.array(LABELS, np.int32), meta)).batch(4)


def moods_run(path, corpus=MOODS):
    """A finished tiny run of a 3-class model whose metrics.json names its corpus."""
    run = make_run(path, num_classes=corpus.num_classes)
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "corpus": corpus.to_dict()}))
    return run


def test_evaluation_of_another_corpus_uses_its_classes(tmp_path):
    run = moods_run(tmp_path / "run")
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        report = evaluate_model(run, dataset_fn=moods_dataset_fn)
    out = run / "evaluation"
    with open(out / "predictions.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["clip_id", "actor_id", "label", "predicted", "p_calm", "p_tense", "p_happy"]
    back = read_predictions(out / "predictions.csv")
    assert back["class_codes"] == MOODS.class_codes
    assert back["labels"].tolist() == LABELS and back["actor_ids"].tolist() == ACTORS_OF
    with open(out / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true\\predicted", "calm", "tense", "happy"]
    assert [r[0] for r in rows[1:]] == ["calm", "tense", "happy"]
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["class_names"] == ["calm", "tense", "happy"]
    assert set(saved["per_class"]) == {"calm", "tense", "happy"}
    assert saved["corpus"] == MOODS.to_dict()
    # No human raters, no CREMA-D groups or label agreement: absent, one line each.
    assert report["humans_same_clips"] is None and report["by_group"] is None
    assert report["label_agreement"] is None
    assert saved["notes"] == [no_raters_line(MOODS), no_groups_line(MOODS)]
    said = [str(w.message) for w in warned if issubclass(w.category, ReportWarning)]
    assert said.count(no_raters_line(MOODS)) == 1
    # The intervals cluster on the records' actor ids (the names are not CREMA-D's).
    assert report["confidence_intervals"]["actors"] == 3
    assert "humans" not in report["confidence_intervals"]


def test_perceived_labels_and_a_model_of_other_classes_are_refused(tmp_path):
    run = moods_run(tmp_path / "run")
    with pytest.raises(ValueError, match="needs rater votes; corpus 'moods' has none"):
        evaluate_model(run, dataset_fn=moods_dataset_fn, labels="perceived")
    six = make_run(tmp_path / "six")  # a 6-class model, metrics naming the 3-class corpus
    (six / "metrics.json").write_text(json.dumps({"corpus": MOODS.to_dict()}))
    with pytest.raises(ValueError, match="model scores 6 classes, corpus 'moods' has 3"):
        evaluate_model(six, dataset_fn=moods_dataset_fn)


def test_cv_report_of_another_corpus(tmp_path):
    cv = tmp_path / "cv"
    for k in (0, 1):
        run = cv / f"fold-{k}"
        (run / "evaluation").mkdir(parents=True)
        predicted = [0, 1, 2, 0, 0, 0] if k == 0 else LABELS
        write_predictions(
            run / "evaluation" / "predictions.csv",
            [f"{c}_f{k}" for c in CLIPS],
            LABELS,
            np.eye(3)[predicted],
            MOODS.class_codes,
            [a + 3 * k for a in ACTORS_OF],
        )
        (run / "metrics.json").write_text(json.dumps({"fold": k, "corpus": MOODS.to_dict()}))
        (run / "config.json").write_text(json.dumps({"config": {"model": {"num_segments": 3}}}))
    md_path, json_path = cv_report(cv)
    summary = json.loads(json_path.read_text())
    assert summary["corpus"] == MOODS.to_dict()
    assert summary["pooled"]["class_names"] == ["calm", "tense", "happy"]
    assert summary["pooled"]["confidence_intervals"]["actors"] == 6
    assert summary["human_accuracy_same_clips_mean_std"] is None
    assert summary["reported_in_the_paper"] == [] and summary["pooled"]["by_group"] is None
    md = md_path.read_text()
    assert "Corpus: `moods`, 3 classes: calm, tense, happy." in md
    assert "| calm | 4 |" in md and "| tense | 4 |" in md
    assert "Human raters" not in md and "human voice" not in md and "Table I" not in md
    assert md.count(no_raters_line(MOODS)) == 1
    with open(cv / "figures" / "confusion_matrix.csv", newline="") as f:
        assert next(csv.reader(f)) == ["true\\predicted", "calm", "tense", "happy"]
    # A fold of another corpus is refused in one line.
    (cv / "fold-1" / "metrics.json").write_text(json.dumps({"fold": 1}))  # CREMA-D
    with pytest.raises(ValueError, match="fold 0 is of corpus 'moods'.*fold 1 of 'cremad'"):
        cv_report(cv)


def test_cremad_reports_keep_their_names_and_say_the_corpus(tmp_path):
    from emotf.evaluation.summary import summarize_predictions

    clips = ["1001_IEO_NEU_XX", "1001_DFA_ANG_XX"]
    report = summarize_predictions(clips, [4, 0], np.eye(6)[[4, 0]], tmp_path, corpus=CREMAD_INFO)
    with open(tmp_path / "predictions.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["clip_id", "label", "predicted"] + [f"p_{c}" for c in CREMAD_INFO.class_codes]
    assert report["notes"] == [] and report["humans_same_clips"] is not None


def test_run_corpus_from_metrics_then_records_then_cremad(tmp_path):
    from emotf.records.folder import RecordsFolder

    run = make_run(tmp_path / "run")
    assert Run(run).corpus() == CREMAD_INFO  # an old run: no corpus anywhere
    records = tmp_path / "records"
    records.mkdir()
    manifest = RecordsFolder(records).manifest_path
    Path(str(manifest)).write_text(json.dumps({"corpus": MOODS.to_dict()}))
    assert Run(run).corpus(records) == MOODS  # the records' manifest
    (run / "metrics.json").write_text(json.dumps({"corpus": MOODS.to_dict()}))
    assert Run(run).corpus() == MOODS  # what training saw
    Path(str(manifest)).write_text(json.dumps({"corpus": CREMAD_INFO.to_dict()}))
    with pytest.raises(ValueError, match="the records hold the classes .* the run was trained"):
        Run(run).corpus(records)
    (run / "metrics.json").write_text(json.dumps({"corpus": {"name": "x"}}))
    with pytest.raises(ValueError, match=r"metrics.json: corpus\.class_codes"):
        Run(run).corpus()


def test_predictions_files_are_read_in_their_own_classes(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("clip_id,label,predicted,p_a,p_b\nx,b,a,0.6,0.4\n")
    back = read_predictions(path)
    assert back["class_codes"] == ("a", "b") and back["labels"].tolist() == [1]
    assert back["actor_ids"] is None
    path.write_text("clip_id,label,predicted,p_a,p_b\nx,c,a,0.6,0.4\n")
    with pytest.raises(ValueError, match="label 'c' is not one of"):
        read_predictions(path)
    path.write_text("clip,label,p_a,p_b\nx,a,0.6,0.4\n")
    with pytest.raises(ValueError, match="not a predictions file"):
        read_predictions(path)


def test_compare_runs_of_another_corpus_on_actor_ids(tmp_path):
    for name, predicted in (("a", LABELS), ("b", [0, 0, 0, 0, 0, 0])):
        write_predictions(
            tmp_path / f"{name}.csv",
            CLIPS,
            LABELS,
            np.eye(3)[predicted],
            MOODS.class_codes,
            ACTORS_OF,
        )
    result = compare_predictions(tmp_path / "a.csv", tmp_path / "b.csv")
    assert result["actors"] == 3 and result["a"]["estimate"] == 1.0
    assert result["b"]["estimate"] == pytest.approx(2 / 6)
    write_predictions(
        tmp_path / "c.csv", CLIPS, [0] * 6, np.eye(2)[[0] * 6], ("calm", "other"), ACTORS_OF
    )
    with pytest.raises(ValueError, match="score different classes"):
        compare_predictions(tmp_path / "a.csv", tmp_path / "c.csv")


def test_actor_folds_follow_the_corpus():
    assert split_folds(5, 1, num_folds=6) == ([1, 2, 3, 4], [0], 5)
    split = run_split(ACTORS, fold=2, validation_folds=2, num_folds=6)
    assert split.train.folds == (0, 1, 5) and split.validation.folds == (3, 4)
    assert "6-fold" in split.protocol
    assert run_split(ACTORS, fold=9).test.folds == (9,)  # CREMA-D's 10 by default
    with pytest.raises(ValueError, match=r"fold must be in 0\.\.5 .*Received: fold=6"):
        split_folds(6, 1, num_folds=6)
    with pytest.raises(ValueError, match="validation_folds must be in 1..4"):
        split_folds(0, 5, num_folds=6)
    with pytest.raises(ValueError, match="clip-level split of CREMA-D clip names"):
        run_split(OGM, num_folds=6)


# Modules that may import CREMA-D's classes and folds by name: the corpora package itself and
# the CREMA-D-only human-rater baseline.
CREMAD_CONSTANTS = {"EMOTIONS", "EMOTION_NAMES", "NUM_FOLDS"}
# The synthetic CREMA-D sample writes that corpus's own layout (its names, its six emotions).
ALLOWED = (
    "emotf/corpora/",
    "emotf/evaluation/human.py",
    "emotf/synthetic/config.py",
    "emotf/synthetic/sample.py",
)


def test_no_module_outside_the_corpora_reads_cremad_classes():
    offenders = []
    for path in sorted((ROOT / "emotf").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        if where.startswith(ALLOWED):
            continue
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(node, ast.ImportFrom) and node.module == "emotf.corpora.cremad":
                names = {alias.name for alias in node.names} & CREMAD_CONSTANTS
                if names:
                    offenders.append(f"{where}:{node.lineno} imports {sorted(names)}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in CREMAD_CONSTANTS
                and isinstance(node.value, ast.Name)
                and node.value.id == "cremad"
            ):
                offenders.append(f"{where}:{node.lineno} reads cremad.{node.attr}")
    assert not offenders, "\n".join(offenders)
