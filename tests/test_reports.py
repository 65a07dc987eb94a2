"""Cross-validation report (Table I shape) for a tiny two-fold run."""

import json
import re

import numpy as np
import pytest
from test_evaluate import assert_valid_png, fake_dataset_fn, make_run

from emotf.corpora.cremad import EMOTIONS
from emotf.evaluation.figures import plot_accuracy_vs_n, write_predictions
from emotf.evaluation.reports import PAPER_REPORTED, cv_report

FOLD_CLIPS = {
    0: ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_DFA_ANG_XX", "1001_DFA_SAD_XX"],
    1: ["1002_DFA_SAD_XX", "1002_ITH_FEA_XX", "1002_DFA_DIS_XX", "1002_TAI_NEU_XX"],
}
LOG = "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.2,1.8,0.1,1.9\n1,0.3,1.7,0.2,1.8\n"


@pytest.fixture
def two_fold_run(tmp_path):
    """fold-0 and fold-1 as emotf-train and evaluate_model leave them (no model needed)."""
    cv = tmp_path / "cv"
    for k, clips in FOLD_CLIPS.items():
        run = cv / f"fold-{k}"
        (run / "evaluation").mkdir(parents=True)
        labels = [EMOTIONS.index(c.split("_")[2]) for c in clips]
        predicted = labels[:3] + [(labels[3] + 1) % 6] if k == 0 else labels[:2] + [0, 0]
        write_predictions(
            run / "evaluation" / "predictions.csv", clips, labels, np.eye(6)[predicted], EMOTIONS
        )
        accuracy = float(np.mean(np.array(labels) == np.array(predicted)))
        (run / "metrics.json").write_text(
            json.dumps({"fold": k, "accuracy": accuracy, "num_clips": 4, "best_epoch": 2})
        )
        (run / "config.json").write_text(
            json.dumps({"config": {"model": {"num_segments": 10}}, "folds": {"test": k}})
        )
        (run / "training_log.csv").write_text(LOG)
        rows = [
            {
                "source": "trained with N=10, evaluated with N",
                "n": n,
                "accuracy": 0.3 + 0.02 * n + 0.01 * k,
            }
            for n in range(1, 11)
        ]
        plot_accuracy_vs_n(
            rows, run / "evaluation" / "accuracy_vs_n.csv", run / "evaluation" / "accuracy_vs_n.png"
        )
    (cv / "fold-2").mkdir()  # an unfinished fold is skipped
    return cv


def test_report_renders_for_two_folds(two_fold_run, cremad_tables_dir):
    from emotf.corpora.votes import load_votes
    from emotf.evaluation.human import human_accuracy

    votes = load_votes(cremad_tables_dir / "tabulatedVotes.csv")
    md_path, json_path = cv_report(two_fold_run, votes=votes)
    summary = json.loads(json_path.read_text())
    assert summary["num_folds"] == 2 and summary["num_segments"] == [10]
    assert [f["accuracy"] for f in summary["per_fold"]] == [0.75, 0.5]
    assert summary["mean_accuracy"] == pytest.approx(0.625)
    assert summary["std_accuracy"] == pytest.approx(np.std([0.75, 0.5], ddof=1))
    expected = human_accuracy(votes, FOLD_CLIPS[1])
    assert summary["per_fold"][1]["human_accuracy_same_clips"] == pytest.approx(expected)
    assert summary["pooled"]["num_examples"] == 8
    # Which labels were scored, and how often intended and perceived labels agree (issue 12).
    from emotf.corpora.labels import agreement

    assert summary["labels"] == "intended"
    pooled_agreement = agreement(FOLD_CLIPS[0] + FOLD_CLIPS[1])
    assert summary["label_agreement"] == {**pooled_agreement, "folds_counted": 2}
    assert summary["per_fold"][0]["label_agreement"] == agreement(FOLD_CLIPS[0])
    assert f"agree on {pooled_agreement['agree']} of the 8 evaluated clips" in md_path.read_text()
    assert [r["accuracy_percent"] for r in summary["reported_in_the_paper"]] == [
        68.4,
        63.6,
        65.0,
        66.5,
        55.8,
    ]

    # By group, pooled: fold 0 is actor 1001 (male, 3 of 4 right), fold 1 actor 1002 (female,
    # 2 of 4); the one LO-intensity clip (1001_IEO_HAP_LO) was right.
    by_group = summary["pooled"]["by_group"]
    assert by_group["sex"]["Male"]["model"] == 0.75 and by_group["sex"]["Female"]["model"] == 0.5
    assert by_group["intensity"]["LO"] == {
        "num_clips": 1,
        "model": 1.0,
        **human_accuracy(votes, ["1001_IEO_HAP_LO"]),
    }
    assert (two_fold_run / "figures" / "accuracy_by_group.csv").is_file()

    intervals = summary["pooled"]["confidence_intervals"]
    assert intervals["actors"] == 2 and intervals["model"]["estimate"] == pytest.approx(0.625)
    assert intervals["model"]["low"] <= 0.625 <= intervals["model"]["high"]
    assert intervals["humans"]["voice"]["estimate"] == pytest.approx(
        human_accuracy(votes, FOLD_CLIPS[0] + FOLD_CLIPS[1])["voice"]
    )

    md = md_path.read_text()
    assert "62.5 ± 17.7" in md
    low, high = (100 * intervals["model"][k] for k in ("low", "high"))
    assert f"(95 % CI {low:.1f}-{high:.1f} %" in md and "t interval over 2 actors" in md
    assert "| sex | Female | 4 | 50.0 |" in md and "| intensity | LO | 1 | 100.0 |" in md
    assert md.count("— reported in the paper |") == len(PAPER_REPORTED)
    assert f"{100 * expected['audio-visual']:.1f}" in md
    for name, _ in PAPER_REPORTED:
        assert name in md
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert "figures/confusion_matrix.png" in links and "figures/accuracy_vs_n.png" in links
    assert len(links) == 4  # + one training-curves figure per fold
    for link in links:
        assert_valid_png(md_path.parent / link)


def test_report_to_another_folder_and_empty_dir(two_fold_run, tmp_path):
    md_path, json_path = cv_report(two_fold_run, out=tmp_path / "report")
    assert md_path.parent == tmp_path / "report" and json_path.is_file()
    assert (tmp_path / "report" / "figures" / "confusion_matrix.png").is_file()
    with pytest.raises(FileNotFoundError, match="no finished fold"):
        cv_report(tmp_path / "report")


def test_report_evaluates_folds_without_predictions(tmp_path):
    cv = tmp_path / "cv"
    for k in (0, 1):
        run = make_run(cv / f"fold-{k}")
        config = json.loads((run / "config.json").read_text())
        config["folds"]["test"] = k
        (run / "config.json").write_text(json.dumps(config))
    md_path, json_path = cv_report(cv, dataset_fn=fake_dataset_fn)
    summary = json.loads(json_path.read_text())
    assert [f["num_clips"] for f in summary["per_fold"]] == [5, 5]
    assert summary["num_segments"] == [3]
    assert (cv / "fold-1" / "evaluation" / "predictions.csv").is_file()
    assert "Human raters, audio-visual (same clips)" in md_path.read_text()


def test_cli_cv_report(two_fold_run, capsys):
    from emotf.cli.evaluate import main

    assert main(["--cv-dir", str(two_fold_run)]) == 0
    assert "cv_report.md" in capsys.readouterr().out
    assert (two_fold_run / "cv_report.json").is_file()


def _unevaluated_cv(tmp_path, records):
    """Two finished folds (metrics.json, model.keras) without predictions, whose config.json
    names `records`."""
    cv = tmp_path / "cv"
    for k in (0, 1):
        run = make_run(cv / f"fold-{k}", records=records, test_fold=k)
        (run / "metrics.json").write_text(json.dumps({"fold": k, "accuracy": 0.5, "num_clips": 5}))
    return cv


def test_cli_cv_report_takes_the_records_from_the_runs(tmp_path, monkeypatch, recwarn):
    """Without --records, folds without predictions are evaluated on the records their
    config.json names: the human-rater rows are filled in, not n/a."""
    import emotf.evaluation.evaluate as evaluate_module
    from emotf.cli.evaluate import main
    from emotf.records.manifest import seal_records

    records = tmp_path / "records"
    records.mkdir()
    seal_records(records)  # an (empty) records folder with its manifest
    asked = []

    def factory(folder):
        asked.append(str(folder))
        return fake_dataset_fn

    monkeypatch.setattr(evaluate_module, "records_evaluation_dataset", factory)
    cv = _unevaluated_cv(tmp_path, records)
    assert main(["--cv-dir", str(cv)]) == 0
    assert asked == [str(records)] * 2
    summary = json.loads((cv / "cv_report.json").read_text())
    assert all(
        f["human_accuracy_same_clips"]["audio-visual"] is not None for f in summary["per_fold"]
    )
    assert not [w for w in recwarn if "human raters" in str(w.message)]


def test_cli_cv_report_says_why_human_rows_are_missing(tmp_path, capsys):
    """The records the runs name are gone and no --records: one warning line says so."""
    import sys
    import warnings

    from emotf.cli.evaluate import main

    gone = tmp_path / "records-gone"
    cv = _unevaluated_cv(tmp_path, gone)

    def to_stderr(message, category, *args, **kwargs):  # as outside pytest's warning capture
        sys.stderr.write(warnings.formatwarning(message, category, *args))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = to_stderr
        assert main(["--cv-dir", str(cv)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "human raters" in line]
    assert lines == [
        f"emotf-evaluate: warning: human raters left out of the report: no per-clip "
        f"predictions for folds 0, 1 (the records their config.json names, {gone}, "
        f"are gone: pass --records)"
    ]
    summary = json.loads((cv / "cv_report.json").read_text())
    assert all(f["human_accuracy_same_clips"]["audio-visual"] is None for f in summary["per_fold"])
