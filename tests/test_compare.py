"""`emotf-evaluate --compare`: two runs on the same clips, A minus B with a t interval."""

import json

import numpy as np
import pytest

from emotf.cli.evaluate import main
from emotf.corpora.cremad import EMOTIONS
from emotf.evaluation.compare import compare_predictions
from emotf.evaluation.figures import write_predictions
from emotf.evaluation.stats import paired_difference

CLIPS = [
    f"{actor}_{s}_{e}_XX"
    for actor in (1001, 1002, 1003, 1004)
    for s in ("DFA", "IEO", "TIE")
    for e in ("ANG", "SAD")
]
LABELS = [EMOTIONS.index(c.split("_")[2]) for c in CLIPS]


def write_run(folder, right) -> None:
    """A run folder whose evaluation/predictions.csv is right exactly where `right` says."""
    labels = np.array(LABELS)
    predicted = np.where(right, labels, (labels + 1) % 6)
    (folder / "evaluation").mkdir(parents=True)
    write_predictions(
        folder / "evaluation" / "predictions.csv", CLIPS, labels, np.eye(6)[predicted], EMOTIONS
    )


def test_fusion_against_one_modality(tmp_path, capsys):
    right_a = np.ones(24, bool)
    right_b = np.arange(24) % 6 <= np.arange(24) // 6  # actor k: k + 1 of its 6 clips right
    write_run(tmp_path / "both", right_a)
    write_run(tmp_path / "audio", right_b)
    result = compare_predictions(tmp_path / "both", tmp_path / "audio" / "evaluation")
    assert result["a"]["estimate"] == 1.0 and result["b"]["estimate"] == pytest.approx(10 / 24)
    assert result["a_minus_b"]["estimate"] == pytest.approx(14 / 24)
    assert result["only_a_right"] == 14 and result["only_b_right"] == 0
    diff = result["a_minus_b"]
    assert 0 < diff["low"] < 14 / 24 < diff["high"] <= 1.0
    assert result["actors"] == 4 and result["clips"] == 24
    assert main(["--compare", str(tmp_path / "both"), str(tmp_path / "audio")]) == 0
    assert json.loads(capsys.readouterr().out)["a_minus_b"] == result["a_minus_b"]


def test_the_same_model_twice_differs_by_exactly_nothing():
    right = np.arange(24) % 3 == 0
    diff = paired_difference(CLIPS, right, right)["a_minus_b"]
    assert (diff["estimate"], diff["low"], diff["high"]) == (0.0, 0.0, 0.0)


def test_only_shared_clips_count_and_bad_pairs_are_refused(tmp_path, capsys):
    write_run(tmp_path / "a", np.ones(24, bool))
    (tmp_path / "b" / "evaluation").mkdir(parents=True)
    labels = np.array(LABELS[:12])
    write_predictions(
        tmp_path / "b" / "evaluation" / "predictions.csv",
        CLIPS[:12],
        labels,
        np.eye(6)[labels],
        EMOTIONS,
    )
    result = compare_predictions(tmp_path / "a", tmp_path / "b")
    assert (result["clips"], result["only_in_a"], result["only_in_b"]) == (12, 12, 0)
    with pytest.raises(FileNotFoundError, match="no predictions.csv"):
        compare_predictions(tmp_path / "a", tmp_path / "nowhere")
    (tmp_path / "c" / "evaluation").mkdir(parents=True)
    write_predictions(
        tmp_path / "c" / "evaluation" / "predictions.csv",
        CLIPS,
        (np.array(LABELS) + 1) % 6,
        np.eye(6)[np.array(LABELS)],
        EMOTIONS,
    )
    with pytest.raises(ValueError, match="different labels"):
        compare_predictions(tmp_path / "a", tmp_path / "c")
    assert main(["--compare", str(tmp_path / "a"), str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err  # checked before anything is loaded, in one line
    assert err.count("\n") == 1 and "nowhere: no such file or folder" in err
