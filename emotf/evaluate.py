"""Evaluation: metrics, confusion matrix, figures, per-clip predictions, accuracy vs N.

The pure parts take plain arrays, lists and dicts (tested on hand-computed cases); the glue
(`evaluate_model`, `accuracy_vs_segments`) loads a run's saved model, runs the deterministic
evaluation pipeline (`emotf.pipeline.make_dataset(..., training=False, with_metadata=True)`)
and writes next to the run (`RUN/evaluation/`) or to `out`:

    evaluation.json        accuracy, per-class precision/recall/F1/support, confusion matrix,
                           and the human baseline on exactly the evaluated clips
    predictions.csv        clip_id, label, predicted, p_ANG .. p_SAD (mean of the N softmaxes)
    confusion_matrix.csv   counts, rows = true class, columns = predicted class
    confusion_matrix.png   row-normalised colours, counts and row percentages in the cells
    training_curves.png    from RUN/training_log.csv when present
    accuracy_vs_n.csv/png  with `accuracy_vs_segments`

Figures use matplotlib's Agg backend (no screen needed).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from emotf.cremad import EMOTIONS

EVALUATION_DIRNAME = "evaluation"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# === Metrics (pure) ===


def classification_report_dict(y_true, y_pred, class_names=EMOTIONS) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        y_true, y_pred: int [M] class indices into `class_names`.
        class_names: C names; every class gets a row even when absent from `y_true`
            (precision/recall of an empty class are 0, as scikit-learn's `zero_division=0`).

    Returns:
        {"num_examples", "accuracy", "per_class": {name: {"precision", "recall", "f1",
        "support"}}, "macro_avg": {...}, "weighted_avg": {...}, "class_names": [...],
        "confusion_matrix": C x C list of ints (rows true, columns predicted)}.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred differ in length. Received: {y_true.shape[0]} and {y_pred.shape[0]}"
        )
    if y_true.size == 0:
        raise ValueError("nothing to evaluate. Received: 0 examples")
    labels = list(range(len(class_names)))
    bad = sorted(set(np.concatenate([y_true, y_pred]).tolist()) - set(labels))
    if bad:
        raise ValueError(f"class indices outside 0..{len(labels) - 1}. Received: {bad[:5]}")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        name: {
            "precision": float(p[k]),
            "recall": float(r[k]),
            "f1": float(f[k]),
            "support": int(s[k]),
        }
        for k, name in enumerate(class_names)
    }

    def average(kind):
        pa, ra, fa, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=kind, zero_division=0
        )
        return {"precision": float(pa), "recall": float(ra), "f1": float(fa)}

    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "num_examples": int(y_true.size),
        "accuracy": float(np.mean(y_true == y_pred)),
        "per_class": per_class,
        "macro_avg": average("macro"),
        "weighted_avg": average("weighted"),
        "class_names": list(class_names),
        "confusion_matrix": cm.astype(int).tolist(),
    }


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as `emotf.train`'s CV summary) of the
    finite values; std is 0 for one value, both NaN for none."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


# === Files and figures (pure) ===


def write_confusion_matrix(
    cm, class_names, csv_path, png_path=None, normalize: str | None = "true", title: str = ""
) -> None:
    """Write a confusion matrix as CSV (always raw counts) and optionally as a PNG.

    Args:
        cm: int [C, C], rows = true class, columns = predicted class.
        normalize: colours of the PNG: "true" (rows sum to 1, i.e. recall on the diagonal),
            "pred" (columns sum to 1) or None (raw counts). Cells show the count and, when
            normalised, the fraction.
    """
    cm = np.asarray(cm, np.int64)
    names = list(class_names)
    if cm.shape != (len(names), len(names)):
        raise ValueError(f"cm must be {len(names)}x{len(names)}. Received: shape={cm.shape}")
    if normalize not in ("true", "pred", None):
        raise ValueError(f"normalize must be 'true', 'pred' or None. Received: {normalize!r}")
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *names])
        for name, row in zip(names, cm):
            writer.writerow([name, *row.tolist()])
    if png_path is None:
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            shown = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            shown = cm / cm.sum(axis=0, keepdims=True)
        else:
            shown = cm.astype(np.float64)
    shown = np.nan_to_num(shown)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(names), 0.8 + 0.9 * len(names)))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1, shown.max()))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = (1 if normalize else max(1, shown.max())) / 2
    for i in range(len(names)):
        for j in range(len(names)):
            text = f"{cm[i, j]}" + (f"\n{shown[i, j]:.0%}" if normalize else "")
            color = "white" if shown[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_title(
        title or ("confusion matrix" + (f" (normalised by {normalize})" if normalize else ""))
    )
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def read_training_log(csv_log) -> dict[str, list[float]]:
    """Columns of a Keras `CSVLogger` file as float lists (empty cells become NaN)."""
    with open(csv_log, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"training log has no epochs. Received: {csv_log}")
    columns = {}
    for key in rows[0]:
        values = []
        for row in rows:
            try:
                values.append(float(row[key]))
            except (TypeError, ValueError):
                values.append(float("nan"))
        columns[key] = values
    return columns


def plot_training_curves(csv_log, png_path, title: str = "") -> None:
    """Loss and accuracy per epoch, training and validation, from a Keras `CSVLogger` file.

    Uses the columns `loss`, `val_loss`, `accuracy`, `val_accuracy` that exist (an accuracy
    column may also be named `sparse_categorical_accuracy`); the x axis is `epoch` + 1.
    """
    log = read_training_log(csv_log)
    epochs = np.asarray(log.get("epoch", range(len(next(iter(log.values()))))), np.float64) + 1
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = (
        ("loss", ("loss", "val_loss")),
        (
            "accuracy",
            (
                "accuracy",
                "val_accuracy",
                "sparse_categorical_accuracy",
                "val_sparse_categorical_accuracy",
            ),
        ),
    )
    for ax, (label, keys) in zip(axes, panels):
        for key in keys:
            if key in log:
                ax.plot(
                    epochs,
                    log[key],
                    marker="o",
                    markersize=3,
                    label="validation" if key.startswith("val_") else "training",
                )
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {label} in the log", ha="center", transform=ax.transAxes)
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


ACCURACY_VS_N_FIELDS = ("source", "n", "accuracy", "num_examples")


def plot_accuracy_vs_n(rows, csv_path, png_path, title: str = "") -> None:
    """Accuracy against the number of segments N (the analogue of the paper's Fig. 5).

    Args:
        rows: dicts with "n" (int), "accuracy" (float in [0, 1]) and optionally "source"
            (a curve label, e.g. "trained N=10, evaluated with N" or "trained with N") and
            "num_examples". One line per source.
    """
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError("no accuracy-vs-N rows to plot")
    for r in rows:
        r.setdefault("source", "model")
        r.setdefault("num_examples", "")
    rows.sort(key=lambda r: (str(r["source"]), int(r["n"])))
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=ACCURACY_VS_N_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for source in dict.fromkeys(r["source"] for r in rows):
        part = [r for r in rows if r["source"] == source]
        ax.plot(
            [int(r["n"]) for r in part],
            [100 * float(r["accuracy"]) for r in part],
            marker="o",
            label=str(source),
        )
    accuracies = [100 * float(r["accuracy"]) for r in rows]
    ax.set_ylim(max(0.0, min(accuracies) - 5), min(100.0, max(accuracies) + 5))
    ax.set_xlabel("number of segments N")
    ax.set_ylabel("accuracy (%)")
    ax.set_xticks(sorted({int(r["n"]) for r in rows}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "accuracy vs number of segments")
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def read_accuracy_vs_n(csv_path) -> list[dict]:
    """Rows written by `plot_accuracy_vs_n` (n int, accuracy float)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["n"] = int(r["n"])
        r["accuracy"] = float(r["accuracy"])
    return rows


PREDICTION_FIELDS = ("clip_id", "label", "predicted") + tuple(f"p_{e}" for e in EMOTIONS)


def write_predictions(path, clip_ids, labels, probabilities) -> None:
    """One row per clip: clip_id, true label, predicted label (argmax), class probabilities.

    Args:
        clip_ids: M strings; labels: int [M]; probabilities: float [M, 6] (rows of the
            model's `probabilities` output, the mean of the N segment softmaxes).
    """
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if probabilities.shape != (len(clip_ids), len(EMOTIONS)) or labels.shape[0] != len(clip_ids):
        raise ValueError(
            f"need M clip ids, M labels and [M, {len(EMOTIONS)}] probabilities. Received: "
            f"{len(clip_ids)}, {labels.shape[0]}, {probabilities.shape}"
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PREDICTION_FIELDS)
        for clip, label, probs in zip(clip_ids, labels, probabilities):
            writer.writerow(
                [
                    clip,
                    EMOTIONS[label],
                    EMOTIONS[int(np.argmax(probs))],
                    *(f"{p:.6f}" for p in probs),
                ]
            )


def read_predictions(path) -> dict:
    """`predictions.csv` back as {"clip_ids": [M], "labels": int [M], "predicted": int [M],
    "probabilities": float [M, 6]}."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        "clip_ids": [r["clip_id"] for r in rows],
        "labels": np.asarray([EMOTIONS.index(r["label"]) for r in rows], np.int64),
        "predicted": np.asarray([EMOTIONS.index(r["predicted"]) for r in rows], np.int64),
        "probabilities": np.asarray(
            [[float(r[f"p_{e}"]) for e in EMOTIONS] for r in rows], np.float64
        ).reshape(-1, len(EMOTIONS)),
    }


def model_vs_humans(clip_ids, y_true, y_pred, votes=None) -> dict:
    """Model and human raters side by side on exactly the same clips, overall and per class.

    Model per-class accuracy is its recall on the clips of that class; human accuracy is
    correct responses / all responses (see `emotf.human`).

    Returns:
        {"num_clips", "model": {"all": acc, "ANG": ..., ...},
         "humans": {mode: {"all": acc, "ANG": ..., ...}} for voice, face, audio-visual}.
    """
    from emotf.human import human_accuracy, load_votes

    votes = votes if votes is not None else load_votes()
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    model = {"all": float(np.mean(y_true == y_pred)) if y_true.size else float("nan")}
    for k, emotion in enumerate(EMOTIONS):
        of_class = y_true == k
        model[emotion] = float(np.mean(y_pred[of_class] == k)) if of_class.any() else float("nan")
    return {
        "num_clips": len(set(clip_ids)),
        "model": model,
        "humans": human_accuracy(votes, clip_ids, by_class=True),
    }


def _json_safe(value):
    """NaN -> None, numpy scalars -> Python, recursively (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, value) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(value), indent=2) + "\n")
    return path


def summarize_predictions(clip_ids, labels, probabilities, out, *, votes=None, title="") -> dict:
    """Everything `evaluate_model` writes, from predictions already in hand (no model needed).

    Writes predictions.csv, confusion_matrix.csv/png and evaluation.json into `out` and
    returns the evaluation dict (metrics + "humans_same_clips" from `model_vs_humans`).
    """
    out = Path(out)
    probabilities = np.asarray(probabilities, np.float64)
    predicted = np.argmax(probabilities, axis=-1)
    write_predictions(out / "predictions.csv", clip_ids, labels, probabilities)
    report = classification_report_dict(labels, predicted, EMOTIONS)
    write_confusion_matrix(
        report["confusion_matrix"],
        EMOTIONS,
        out / "confusion_matrix.csv",
        out / "confusion_matrix.png",
        title=title,
    )
    try:
        report["humans_same_clips"] = model_vs_humans(clip_ids, labels, predicted, votes)
    except KeyError as err:  # clips outside CREMA-D (e.g. hand-made test names)
        report["humans_same_clips"] = {"error": str(err)}
    write_json(out / "evaluation.json", report)
    return report


# === Glue: a run's saved model + the records ===
#
# A dataset factory for evaluation: (folds, num_segments, batch_size, run_config) ->
# tf.data.Dataset of (inputs dict, labels int32 [B], clip ids string [B]). The default one is
# `emotf.pipeline.make_dataset(records, folds, training=False, with_metadata=True)`.


def load_run_config(run) -> dict:
    """The `config.json` that `emotf-train` writes into a run folder (TrainConfig under
    "config", folds under "folds"); {} when the folder has none."""
    path = Path(run) / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _model_config(run_config: dict):
    from emotf.model import ModelConfig

    values = run_config.get("config", {}).get("model")
    if values is None:
        raise ValueError(
            "the run's config.json has no model config (config.model), which is needed to "
            "rebuild the model with another number of segments"
        )
    return ModelConfig.from_dict(values)


def load_saved_model(path):
    """Load `model.keras` (a file, or a run folder holding one) without compiling it."""
    import keras

    import emotf.model  # noqa: F401  (registers the custom segment layers)

    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"no saved model. Received: {path}")
    return keras.saving.load_model(str(path), compile=False)


def _default_dataset_fn(records):
    def dataset_fn(folds, num_segments, batch_size, run_config):
        from dataclasses import replace

        from emotf.pipeline import make_dataset
        from emotf.train import TrainConfig, sampling_config

        # The same sampling as training (shapes from the model config), with another N.
        train_config = TrainConfig.from_dict(run_config.get("config", {}))
        sampling = replace(sampling_config(train_config), num_segments=int(num_segments))
        return make_dataset(
            records,
            list(folds),
            training=False,
            config=sampling,
            batch_size=batch_size,
            with_metadata=True,
        )

    return dataset_fn


def _clip_ids_of(element) -> tuple:
    """(inputs, labels, clip ids) from a dataset element, whichever way metadata is attached:
    a third tuple item (a string tensor or a dict with "clip_id"), or "clip_id" in the inputs."""
    inputs, labels, *rest = element
    meta = rest[0] if rest else inputs
    if isinstance(meta, dict):
        if "clip_id" not in meta:
            raise ValueError(f"dataset metadata has no clip_id. Received keys: {sorted(meta)}")
        ids = meta["clip_id"]
    else:
        ids = meta
    ids = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(ids).reshape(-1)]
    model_inputs = {k: v for k, v in inputs.items() if k in ("frames", "spectrograms")}
    return model_inputs, np.asarray(labels).reshape(-1), ids


def predict_clips(model, dataset):
    """Run `model` over an evaluation dataset with clip ids.

    Returns (clip_ids list [M], labels int64 [M], probabilities float32 [M, 6]) where the
    probabilities are the model's `probabilities` output (mean of the N segment softmaxes).
    """
    clip_ids, labels, probs = [], [], []
    for element in dataset:
        inputs, y, ids = _clip_ids_of(element)
        out = model(inputs, training=False)
        p = out["probabilities"] if isinstance(out, dict) else out
        clip_ids += ids
        labels.append(y)
        probs.append(np.asarray(p, np.float32))
    if not clip_ids:
        raise ValueError("the evaluation dataset is empty (no clips of these folds?)")
    return clip_ids, np.concatenate(labels).astype(np.int64), np.concatenate(probs)


def _resolve(records, folds, run_config):
    train_cfg = run_config.get("config", {})
    records = records or train_cfg.get("records")
    if folds is None:
        test = run_config.get("folds", {}).get("test")
        if test is None:
            raise ValueError("no fold given and the run's config.json names no test fold")
        folds = [test]
    folds = [int(folds)] if isinstance(folds, (int, np.integer)) else [int(k) for k in folds]
    return records, folds


def evaluate_model(
    model_dir_or_run,
    records=None,
    folds=None,
    out=None,
    *,
    batch_size: int | None = None,
    votes=None,
    dataset_fn=None,
    curves: bool = True,
) -> dict:
    """Evaluate a saved model on the clips of some folds and write the report files.

    Args:
        model_dir_or_run: a run folder (`model.keras`, `config.json`, `training_log.csv`) or
            a `model.keras` file.
        records: records folder; default: the one in the run's config.
        folds: fold index or list; default: the run's test fold.
        out: output folder; default `RUN/evaluation/`.
        dataset_fn: see the comment above (tests inject tiny datasets here).
        curves: also plot `training_log.csv` when the run has one.

    Returns the evaluation dict written to `evaluation.json` (see `summarize_predictions`)
    plus "folds", "num_segments" and "model".
    """
    path = Path(model_dir_or_run)
    run = path if path.is_dir() else path.parent
    run_config = load_run_config(run)
    records, folds = _resolve(records, folds, run_config)
    if dataset_fn is None:
        if not records:
            raise ValueError("no records folder given and the run's config.json names none")
        dataset_fn = _default_dataset_fn(records)
    out = Path(out) if out else run / EVALUATION_DIRNAME
    model = load_saved_model(path)
    num_segments = int(model.inputs[0].shape[1])
    batch = batch_size or int(run_config.get("config", {}).get("batch_size", 16))
    clip_ids, labels, probs = predict_clips(
        model, dataset_fn(folds, num_segments, batch, run_config)
    )
    title = f"folds {folds}, N={num_segments}"
    report = summarize_predictions(clip_ids, labels, probs, out, votes=votes, title=title)
    report.update({"folds": folds, "num_segments": num_segments, "model": str(path)})
    log = run / "training_log.csv"
    if curves and log.is_file():
        plot_training_curves(
            log, out / "training_curves.png", title=f"training curves ({run.name})"
        )
    write_json(out / "evaluation.json", report)
    return report


def model_with_segments(trained, num_segments: int, model_config):
    """The trained model rebuilt for another number of segments, sharing the trained weights.

    Only possible with shared branch weights: the twin branches are one `core` sub-model whose
    weights do not depend on N. Independent branches have N different cores (`core_00`, ...),
    so a model trained with one N has no weights for another N.

    Raises:
        ValueError: the run's branch weights are independent, or the core is missing.
    """
    from dataclasses import replace

    from emotf.model import build_model

    if model_config.branch_weights != "shared":
        raise ValueError(
            "accuracy vs N at inference needs shared branch weights: with independent weights "
            "each of the N branches has its own core, so there are no weights for another N; "
            "train one model per N instead and pass those runs. "
            f"Received: branch_weights={model_config.branch_weights!r}"
        )
    names = {layer.name for layer in trained.layers}
    if "core" not in names:
        raise ValueError(f"the saved model has no shared 'core' sub-model. Layers: {sorted(names)}")
    model = build_model(replace(model_config, num_segments=int(num_segments)))
    model.get_layer("core").set_weights(trained.get_layer("core").get_weights())
    return model


def accuracy_vs_segments(
    run,
    records=None,
    folds=None,
    out=None,
    *,
    segments=range(1, 11),
    other_runs=(),
    batch_size: int | None = None,
    dataset_fn=None,
) -> list[dict]:
    """Accuracy of one trained model evaluated with N = `segments` at inference (shared
    weights only), plus each run of `other_runs` (models trained with their own N) at its N.

    Writes `accuracy_vs_n.csv` and `.png` into `out` (default `RUN/evaluation/`) and returns
    the rows {"source", "n", "accuracy", "num_examples"}.
    """
    run = Path(run)
    run_config = load_run_config(run)
    records, folds = _resolve(records, folds, run_config)
    dataset_fn = dataset_fn or _default_dataset_fn(records)
    batch = batch_size or int(run_config.get("config", {}).get("batch_size", 16))
    model_config = _model_config(run_config)
    trained = load_saved_model(run)
    source = f"trained with N={model_config.num_segments}, evaluated with N"
    rows = []
    for n in segments:
        model = model_with_segments(trained, n, model_config)
        _, labels, probs = predict_clips(model, dataset_fn(folds, n, batch, run_config))
        rows.append(
            {
                "source": source,
                "n": int(n),
                "num_examples": int(labels.size),
                "accuracy": float(np.mean(labels == probs.argmax(-1))),
            }
        )
    for other in other_runs:
        other_model = load_saved_model(other)
        n = int(other_model.inputs[0].shape[1])
        _, labels, probs = predict_clips(
            other_model, dataset_fn(folds, n, batch, load_run_config(other) or run_config)
        )
        rows.append(
            {
                "source": "trained and evaluated with N",
                "n": n,
                "num_examples": int(labels.size),
                "accuracy": float(np.mean(labels == probs.argmax(-1))),
            }
        )
    out = Path(out) if out else run / EVALUATION_DIRNAME
    plot_accuracy_vs_n(
        rows,
        out / "accuracy_vs_n.csv",
        out / "accuracy_vs_n.png",
        title=f"accuracy vs N (folds {folds})",
    )
    return rows
