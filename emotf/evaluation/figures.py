"""The pure files and figures of evaluation: confusion matrix, curves, predictions files.

Everything here takes plain arrays, lists and dicts (tested on hand-computed cases) and needs
no model or records; the metrics are in `emotf.evaluation.metrics`, the evaluation report in
`emotf.evaluation.summary`, and `emotf.evaluation.evaluate` is the glue that loads a run's
model and runs the evaluation pipeline. Figures use matplotlib's Agg backend (no screen needed).

Every file is read and written through `emotf.storage` (`tf.io.gfile`), so an evaluation
folder may be local or on `gs://` (`ram://` in the tests); each file is written whole
(`write_atomic`): a reader never sees half a CSV or PNG.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Sequence

import numpy as np

from emotf.storage import MAX_TABLE_BYTES, StoragePath, as_path, write_atomic

__all__ = [
    "ACCURACY_VS_N_FIELDS",
    "ACTOR_FIELD",
    "json_safe",
    "open_csv",
    "plot_accuracy_vs_n",
    "plot_training_curves",
    "prediction_fields",
    "read_accuracy_vs_n",
    "read_csv_rows",
    "read_predictions",
    "read_training_log",
    "save_figure",
    "write_confusion_matrix",
    "write_predictions",
]


def pyplot():
    """`matplotlib.pyplot` on the non-interactive Agg backend."""
    # matplotlib is imported only to draw: pyplot is slow to import and picks a backend.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # (after the backend is chosen)

    return plt


# === Storage ===


@contextlib.contextmanager
def open_csv(path):
    """Like `open(path, "w", newline="")` for a CSV, on any `emotf.storage` path: the text is
    written whole (`write_atomic`) when the block ends without an error."""
    text = io.StringIO(newline="")
    yield text
    write_atomic(path, text.getvalue().encode("utf-8"))


def read_csv_rows(path) -> list[dict]:
    """The rows of a CSV file with a header (`csv.DictReader`), on any `emotf.storage` path."""
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return list(csv.DictReader(io.StringIO(path.read_text(MAX_TABLE_BYTES), newline="")))


def save_figure(fig, path, dpi: int = 100) -> StoragePath:
    """Write a matplotlib figure as a PNG (whole, `write_atomic`) and close it."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi)
    pyplot().close(fig)
    return write_atomic(path, png.getvalue())


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
    with open_csv(csv_path) as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *names])
        for name, row in zip(names, cm, strict=True):
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
    plt = pyplot()
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
    save_figure(fig, png_path)


def read_training_log(csv_log) -> dict[str, list[float]]:
    """Columns of a Keras `CSVLogger` file as float lists (empty cells become NaN)."""
    rows = read_csv_rows(csv_log)
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
    plt = pyplot()
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
    for ax, (label, keys) in zip(axes, panels, strict=True):
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
    save_figure(fig, png_path)


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
    with open_csv(csv_path) as f:
        writer = csv.DictWriter(f, fieldnames=ACCURACY_VS_N_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plt = pyplot()
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
    save_figure(fig, png_path)


def read_accuracy_vs_n(csv_path) -> list[dict]:
    """Rows written by `plot_accuracy_vs_n` (n int, accuracy float)."""
    rows = read_csv_rows(csv_path)
    for r in rows:
        r["n"] = int(r["n"])
        r["accuracy"] = float(r["accuracy"])
    return rows


PROBABILITY_PREFIX = "p_"
ACTOR_FIELD = "actor_id"


def prediction_fields(class_codes: Sequence[str], with_actors: bool = False) -> tuple[str, ...]:
    """The header of `predictions.csv`: clip_id[, actor_id], label, predicted, then one
    probability column `p_<code>` per class, in label order (CREMA-D: p_ANG .. p_SAD)."""
    actor = (ACTOR_FIELD,) if with_actors else ()
    probabilities = tuple(f"{PROBABILITY_PREFIX}{code}" for code in class_codes)
    return ("clip_id", *actor, "label", "predicted", *probabilities)


def write_predictions(
    path, clip_ids, labels, probabilities, class_codes: Sequence[str], actor_ids=None
) -> None:
    """One row per clip: clip_id, true label, predicted label (argmax), class probabilities.

    Args:
        clip_ids: M strings; labels: int [M] indices into `class_codes`; probabilities: float
            [M, C] (rows of the model's `probabilities` output, the mean of the N segment
            softmaxes); class_codes: the C class codes (`CorpusInfo.class_codes`).
        actor_ids: int [M], each clip's actor (speaker) id, written as an `actor_id` column;
            None (CREMA-D: the clip name holds the actor) writes none.
    """
    codes = list(class_codes)
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, np.int64).reshape(-1)
    m = len(clip_ids)
    actors = None if actor_ids is None else np.asarray(actor_ids, np.int64).reshape(-1)
    if (
        probabilities.shape != (m, len(codes))
        or labels.shape[0] != m
        or (actors is not None and actors.shape[0] != m)
    ):
        raise ValueError(
            f"need M clip ids, M labels (and actor ids) and [M, {len(codes)}] probabilities "
            f"(one column per class {codes}). Received: {m}, {labels.shape[0]}, "
            f"{probabilities.shape}"
        )
    if labels.size and not 0 <= labels.min() <= labels.max() < len(codes):
        raise ValueError(f"labels must index the {len(codes)} classes {codes}")
    with open_csv(path) as f:
        writer = csv.writer(f)
        writer.writerow(prediction_fields(codes, actors is not None))
        for i, (clip, label, probs) in enumerate(zip(clip_ids, labels, probabilities, strict=True)):
            actor = [int(actors[i])] if actors is not None else []
            writer.writerow(
                [
                    clip,
                    *actor,
                    codes[label],
                    codes[int(np.argmax(probs))],
                    *(f"{p:.6f}" for p in probs),
                ]
            )


def read_predictions(path) -> dict:
    """`predictions.csv` back as {"clip_ids": [M], "labels": int [M], "predicted": int [M],
    "probabilities": float [M, C], "class_codes": the C codes of its `p_<code>` columns in
    order, "actor_ids": int [M] or None (no `actor_id` column)}.

    Raises:
        ValueError: naming the file, for a header without clip_id/label/predicted or with
            fewer than two `p_<code>` columns, or a row whose label is not one of the codes.
    """
    rows = read_csv_rows(path)
    header = list(rows[0]) if rows else _header(path)
    codes = tuple(f[len(PROBABILITY_PREFIX) :] for f in header if f.startswith(PROBABILITY_PREFIX))
    missing = [f for f in ("clip_id", "label", "predicted") if f not in header]
    if missing or len(codes) < 2:
        raise ValueError(
            f"{path}: not a predictions file of emotf-evaluate (header {header[:8]}: needs "
            f"clip_id, label, predicted and a p_<class> column per class)"
        )
    index = {code: k for k, code in enumerate(codes)}

    def class_index(row: dict, field: str) -> int:
        if row[field] not in index:
            raise ValueError(f"{path}: {field} {row[field]!r} is not one of {list(codes)}")
        return index[row[field]]

    with_actors = ACTOR_FIELD in header
    return {
        "clip_ids": [r["clip_id"] for r in rows],
        "labels": np.asarray([class_index(r, "label") for r in rows], np.int64),
        "predicted": np.asarray([class_index(r, "predicted") for r in rows], np.int64),
        "probabilities": np.asarray(
            [[float(r[f"{PROBABILITY_PREFIX}{c}"]) for c in codes] for r in rows], np.float64
        ).reshape(-1, len(codes)),
        "class_codes": codes,
        "actor_ids": np.asarray([int(r[ACTOR_FIELD]) for r in rows], np.int64)
        if with_actors
        else None,
    }


def _header(path) -> list[str]:
    """The header row of a CSV file without data rows."""
    text = as_path(path).read_text(MAX_TABLE_BYTES)
    return next(csv.reader(io.StringIO(text, newline="")), [])


def json_safe(value):
    """NaN -> None, numpy scalars -> Python, recursively (strict JSON has no NaN): what
    evaluation reports pass to `emotf.storage.write_json`."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
