"""How far the model's probabilities can be trusted: expected calibration error, log loss,
Brier score and a reliability diagram, on the top-label confidence (the largest of the C class
probabilities, the mean of the N segment softmaxes that the SavedModel serves). Any number of
classes: nothing here depends on the corpus.
"""

from __future__ import annotations

import textwrap

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import log_loss

from emotf.evaluation.figures import pyplot, save_figure
from emotf.storage import StoragePath


def calibration_summary(labels, probabilities, bins: int = 10) -> dict:
    """Top-label calibration over `bins` equal-width confidence bins.

    Returns:
        {"ece": sum over bins of |accuracy - confidence| weighted by the bin's share of clips,
         "mce": the largest such gap over non-empty bins, "log_loss" (scikit-learn, natural
         log), "brier": mean over clips of the squared error summed over classes,
         "mean_confidence", "accuracy", "bins": [{"low", "high", "count", "confidence",
         "accuracy"}] (confidence and accuracy None for an empty bin)}.
    """
    labels = np.asarray(labels, np.int64)
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 2 or len(labels) != len(probabilities) or not len(labels):
        raise ValueError(
            f"need probabilities [M, C] and M labels, M > 0. Received: "
            f"{probabilities.shape} probabilities, {labels.shape} labels"
        )
    if not np.isfinite(probabilities).all() or (probabilities.sum(axis=1) <= 0).any():
        raise ValueError(
            "probabilities hold NaN, inf or an all-zero row (a diverged model?): "
            "no calibration to measure"
        )
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece, mce = [], 0.0, 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        row: dict[str, float | int | None] = {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "count": count,
            "confidence": None,
            "accuracy": None,
        }
        if count:
            mean_confidence = float(confidence[members].mean())
            accuracy = float(correct[members].mean())
            row["confidence"], row["accuracy"] = mean_confidence, accuracy
            gap = abs(accuracy - mean_confidence)
            ece += gap * count / len(labels)
            mce = max(mce, gap)
        rows.append(row)
    one_hot = np.eye(probabilities.shape[1])[labels]
    return {
        "ece": float(ece),
        "mce": float(mce),
        # Rows renormalised for the log loss: float32 softmax means sum to 1 only within ~1e-7.
        "log_loss": float(
            log_loss(
                labels,
                probabilities / probabilities.sum(1, keepdims=True),
                labels=range(probabilities.shape[1]),
            )
        ),
        "brier": float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1))),
        "mean_confidence": float(confidence.mean()),
        "accuracy": float(correct.mean()),
        "bins": rows,
    }


def plot_reliability(summary: dict, path, title: str = "") -> StoragePath:
    """Reliability diagram: accuracy per confidence bin against the diagonal, clip counts below."""
    plt = pyplot()
    rows = [r for r in summary["bins"] if r["count"]]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    width = summary["bins"][0]["high"] - summary["bins"][0]["low"]
    top.bar(
        [r["low"] for r in rows],
        [r["accuracy"] for r in rows],
        width=width,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    heading = f"reliability, ECE {100 * summary['ece']:.1f} %"
    top.set_title("\n".join(textwrap.wrap(title, 60) + [heading]), fontsize=9)
    bottom.bar(
        [r["low"] for r in rows],
        [r["count"] for r in rows],
        width=width,
        align="edge",
        edgecolor="black",
        color="grey",
    )
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("clips")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    return save_figure(fig, path)


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """Temperature scaling of probabilities: softmax(log p / T), i.e. p^(1/T) renormalised.
    T > 1 softens over-confident probabilities, T < 1 sharpens under-confident ones; the
    argmax (the predicted emotion) never changes."""
    log_p = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
    log_p -= log_p.max(axis=-1, keepdims=True)
    scaled = np.exp(log_p)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def fit_temperature(labels, probabilities) -> float:
    """The temperature T in [e^-4, e^4] that minimises the log loss of `apply_temperature`
    on held-out clips (Guo et al., 2017, "On Calibration of Modern Neural Networks")."""
    labels = np.asarray(labels, np.int64)
    log_p = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0))
    if not np.isfinite(log_p).all() or len(labels) != len(log_p) or not len(labels):
        raise ValueError("need finite probabilities [M, C] and M > 0 labels to fit a temperature")

    def loss(log_t: float) -> float:
        z = log_p / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))

    return float(np.exp(minimize_scalar(loss, bounds=(-4.0, 4.0), method="bounded").x))


def temperature_record(labels, probabilities) -> dict:
    """What `emotf-train` stores in RUN/calibration.json: the temperature fitted on the
    validation clips and their ECE before and after; {"temperature": None, "error"} if the
    probabilities cannot be fitted (NaN from a diverged run)."""
    try:
        temperature = fit_temperature(labels, probabilities)
        before = calibration_summary(labels, probabilities)["ece"]
        after = calibration_summary(labels, apply_temperature(probabilities, temperature))["ece"]
    except ValueError as err:
        return {"temperature": None, "error": str(err)}
    return {
        "temperature": temperature,
        "fitted_on": "validation clips",
        "clips": int(len(labels)),
        "ece_before": before,
        "ece_after": after,
    }
