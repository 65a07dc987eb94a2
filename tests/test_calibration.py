"""Calibration metrics on hand-computed cases, and the reliability diagram."""

import numpy as np
import pytest
from sklearn.metrics import log_loss
from test_evaluate import assert_valid_png

from emotf.corpora.info import CREMAD_INFO
from emotf.evaluation.calibration import calibration_summary, plot_reliability


def confident(labels, right, confidence):
    """Probabilities whose top class (the label when `right`, else the next class) has
    `confidence` and the rest shared evenly."""
    labels = np.asarray(labels)
    confidence = np.broadcast_to(np.asarray(confidence, np.float64), labels.shape)
    top = np.where(right, labels, (labels + 1) % 6)
    probs = np.repeat(((1 - confidence) / 5)[:, None], 6, axis=1)
    probs[np.arange(len(labels)), top] = confidence
    return probs


def test_perfect_and_overconfident_models():
    labels = np.arange(12) % 6
    perfect = calibration_summary(labels, np.eye(6)[labels])
    assert perfect["ece"] == 0.0 and perfect["accuracy"] == 1.0 and perfect["brier"] == 0.0
    right = np.arange(12) < 6  # half right, always 90 % sure
    over = calibration_summary(labels, confident(labels, right, 0.9))
    assert over["ece"] == pytest.approx(0.4) and over["mce"] == pytest.approx(0.4)
    assert over["mean_confidence"] == pytest.approx(0.9) and over["accuracy"] == 0.5
    [used] = [b for b in over["bins"] if b["count"]]
    assert (used["low"], used["high"], used["count"]) == (pytest.approx(0.8), 0.9, 12)
    # By hand: a right clip costs (0.9 - 1)^2 + 5 * 0.02^2 = 0.012, a wrong one
    # 0.9^2 + (0.02 - 1)^2 + 4 * 0.02^2 = 1.772; log loss -ln 0.9 and -ln 0.02.
    assert over["brier"] == pytest.approx((0.012 + 1.772) / 2)
    assert over["log_loss"] == pytest.approx((-np.log(0.9) - np.log(0.02)) / 2)


def test_mce_is_the_worst_bin():
    labels = np.arange(12) % 6
    right = np.arange(12) < 6
    confidence = np.where(right, 0.9, 0.5)  # sure and right; half sure and always wrong
    summary = calibration_summary(labels, confident(labels, right, confidence))
    assert summary["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.5)
    assert summary["mce"] == pytest.approx(0.5)


def test_non_finite_probabilities_are_refused_and_the_report_still_written(tmp_path):
    from emotf.evaluation.summary import ReportWarning, summarize_predictions

    with pytest.raises(ValueError, match="NaN, inf or an all-zero row"):
        calibration_summary([0, 1], np.full((2, 6), np.nan))
    with pytest.raises(ValueError, match="all-zero row"):
        calibration_summary([0, 1], np.zeros((2, 6)))
    with pytest.warns(ReportWarning, match="calibration left out of the report: .*NaN"):
        report = summarize_predictions(
            ["1001_DFA_ANG_XX", "1002_DFA_SAD_XX"],
            [0, 5],
            np.full((2, 6), np.nan),
            tmp_path,
            corpus=CREMAD_INFO,
        )
    assert report["calibration"] is None and (tmp_path / "evaluation.json").is_file()


def test_an_honest_model_has_a_small_error_and_losses_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 4000)
    confidence = rng.uniform(0.2, 1.0, 4000)
    right = rng.random(4000) < confidence  # right exactly as often as it is sure
    probs = confident(labels, right, confidence)
    summary = calibration_summary(labels, probs)
    assert summary["ece"] < 0.03
    assert summary["log_loss"] == pytest.approx(log_loss(labels, probs, labels=range(6)))
    assert sum(b["count"] for b in summary["bins"]) == 4000


def test_reliability_diagram_and_bad_input(tmp_path):
    labels = np.arange(6)
    summary = calibration_summary(labels, confident(labels, labels < 4, 0.7))
    assert_valid_png(plot_reliability(summary, tmp_path / "r.png", title="fold 0"))
    with pytest.raises(ValueError, match="probabilities"):
        calibration_summary([0, 1], np.ones((3, 6)) / 6)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_fit_temperature_recovers_the_temperature_that_made_the_labels(true_temperature):
    """Labels drawn from softmax(z / T0), probabilities softmax(z): the fit finds T0 and
    scaling removes most of the calibration error."""
    from emotf.evaluation.calibration import apply_temperature, fit_temperature, temperature_record

    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (4000, 6))
    truth = softmax(z / true_temperature)
    labels = (truth.cumsum(axis=1) < rng.random((4000, 1))).sum(axis=1)
    probs = softmax(z)
    fitted = fit_temperature(labels, probs)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    scaled = apply_temperature(probs, fitted)
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    assert (scaled.argmax(axis=1) == probs.argmax(axis=1)).all()  # predictions unchanged
    record = temperature_record(labels, probs)
    assert record["ece_after"] < 0.03 < record["ece_before"]
    assert temperature_record([0], np.full((1, 6), np.nan))["temperature"] is None
