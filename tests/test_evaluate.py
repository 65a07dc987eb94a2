"""Metrics, confusion matrix, figures and predictions files of emotf.evaluate."""

import csv
import json

import numpy as np
import pytest

from emotf.cremad import EMOTIONS
from emotf.evaluate import (
    classification_report_dict,
    mean_std,
    model_vs_humans,
    plot_accuracy_vs_n,
    plot_training_curves,
    read_accuracy_vs_n,
    read_predictions,
    summarize_predictions,
    write_confusion_matrix,
    write_predictions,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


# Hand-computed case, 3 classes:
#   true: a a a b b c      pred: a a b b c c
#   cm = [[2,1,0],[0,1,1],[0,0,1]]
#   precision a=2/2, b=1/2, c=1/2; recall a=2/3, b=1/2, c=1/1; accuracy 4/6
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def test_report_against_hand_computed_case():
    r = classification_report_dict(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert r["num_examples"] == 6
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    expected = {"a": (1.0, 2 / 3, 3), "b": (0.5, 0.5, 2), "c": (0.5, 1.0, 1)}
    for name, (p, rec, support) in expected.items():
        got = r["per_class"][name]
        assert got["precision"] == pytest.approx(p)
        assert got["recall"] == pytest.approx(rec)
        assert got["f1"] == pytest.approx(2 * p * rec / (p + rec))
        assert got["support"] == support
    assert r["macro_avg"]["recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    json.dumps(r)  # JSON-ready


def test_report_keeps_absent_classes_and_rejects_bad_input():
    r = classification_report_dict([0, 0], [0, 1], EMOTIONS)
    assert len(r["confusion_matrix"]) == 6
    assert r["per_class"]["SAD"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    with pytest.raises(ValueError, match="differ in length"):
        classification_report_dict([0, 1], [0], EMOTIONS)
    with pytest.raises(ValueError, match="outside"):
        classification_report_dict([0, 7], [0, 1], EMOTIONS)


def test_mean_std_ignores_missing():
    assert mean_std([0.5, 0.7, None, float("nan")]) == pytest.approx((0.6, 0.1))
    assert all(np.isnan(mean_std([])))


@pytest.mark.parametrize("normalize", ["true", None])
def test_confusion_matrix_files(tmp_path, normalize):
    cm = [[2, 1, 0], [0, 1, 1], [0, 0, 0]]  # an empty row must not break normalisation
    write_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm.csv", tmp_path / "cm.png",
                           normalize=normalize)
    with open(tmp_path / "cm.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true\\predicted", "a", "b", "c"]
    assert rows[1] == ["a", "2", "1", "0"]
    assert_valid_png(tmp_path / "cm.png")
    with pytest.raises(ValueError, match="3x3"):
        write_confusion_matrix([[1]], ["a", "b", "c"], tmp_path / "x.csv")


def test_training_curves_png(tmp_path):
    log = tmp_path / "training_log.csv"
    log.write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n"
        "0,0.2,1.8,0.18,1.79\n1,0.35,1.6,0.3,1.7\n2,0.5,1.3,0.38,1.6\n"
    )
    plot_training_curves(log, tmp_path / "curves.png")
    assert_valid_png(tmp_path / "curves.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="no epochs"):
        plot_training_curves(empty, tmp_path / "x.png")


def test_accuracy_vs_n_files(tmp_path):
    rows = [{"source": "trained N=10", "n": n, "accuracy": 0.3 + 0.03 * n} for n in range(10, 0, -1)]
    rows.append({"source": "trained with N", "n": 4, "accuracy": 0.4})
    plot_accuracy_vs_n(rows, tmp_path / "acc.csv", tmp_path / "acc.png")
    back = read_accuracy_vs_n(tmp_path / "acc.csv")
    assert [r["n"] for r in back if r["source"] == "trained N=10"] == list(range(1, 11))
    assert back[0]["accuracy"] == pytest.approx(0.33)
    assert_valid_png(tmp_path / "acc.png")


def test_predictions_round_trip(tmp_path):
    probs = np.eye(6)[[0, 3, 5]] * 0.9 + 0.1 / 6
    write_predictions(tmp_path / "p.csv", ["a", "b", "c"], [0, 2, 5], probs)
    back = read_predictions(tmp_path / "p.csv")
    assert back["clip_ids"] == ["a", "b", "c"]
    assert back["labels"].tolist() == [0, 2, 5]
    assert back["predicted"].tolist() == [0, 3, 5]
    np.testing.assert_allclose(back["probabilities"], probs, atol=1e-6)


def test_model_vs_humans_on_real_clips(cremad_tables_dir):
    from emotf.human import load_votes

    votes = load_votes(cremad_tables_dir / "tabulatedVotes.csv")
    clips = ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_DFA_ANG_XX"]
    side = model_vs_humans(clips, [4, 3, 0], [4, 4, 0], votes)
    assert side["num_clips"] == 3
    assert side["model"]["all"] == pytest.approx(2 / 3)
    assert side["model"]["HAP"] == 0.0 and side["model"]["NEU"] == 1.0
    assert np.isnan(side["model"]["SAD"])
    # Row 100001: 1001_IEO_NEU_XX voice, 10 of 11 said neutral.
    assert side["humans"]["voice"]["NEU"] == pytest.approx(10 / 11)


def test_summarize_predictions_writes_everything(tmp_path):
    clips = ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_DFA_ANG_XX", "1002_DFA_SAD_XX"]
    probs = np.eye(6)[[4, 4, 0, 5]]
    report = summarize_predictions(clips, [4, 3, 0, 5], probs, tmp_path)
    assert report["accuracy"] == pytest.approx(0.75)
    for name in ("predictions.csv", "confusion_matrix.csv", "evaluation.json"):
        assert (tmp_path / name).is_file()
    assert_valid_png(tmp_path / "confusion_matrix.png")
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["humans_same_clips"]["model"]["DIS"] is None  # NaN -> null
    assert 0 < saved["humans_same_clips"]["humans"]["audio-visual"]["all"] < 1
