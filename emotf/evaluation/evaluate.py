"""Evaluation: metrics, confusion matrix, figures, per-clip predictions, accuracy vs N.

The pure parts (`emotf.evaluation.figures`) take plain arrays, lists and dicts; the glue
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

import json
from pathlib import Path

import numpy as np

from emotf.evaluation.figures import (
    plot_accuracy_vs_n,
    plot_training_curves,
    summarize_predictions,
    write_json,
)
from emotf.labels import INTENDED, agreement, check_source, relabel
from emotf.splits import ACTORS, SPEAKER_DEPENDENT, Selection, check_fingerprint

EVALUATION_DIRNAME = "evaluation"


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
    from emotf.configs import ModelConfig

    values = run_config.get("config", {}).get("model")
    if values is None:
        raise ValueError(
            "the run's config.json has no model config (config.model), which is needed to "
            "rebuild the model with another number of segments"
        )
    return ModelConfig.from_dict(values)


def load_saved_model(path):
    """The trained model of a run folder (rebuilt from its `ModelConfig`, weights loaded from
    `model.keras`) or of a bare `.keras` file (`safe_mode=True`); never runs code from the file
    (`emotf.model_io`)."""
    from emotf.model_io import load_run_model

    return load_run_model(path)


def _default_dataset_fn(records):
    def dataset_fn(folds, num_segments, batch_size, run_config):
        from dataclasses import replace

        from emotf.configs import TrainConfig
        from emotf.pipeline import make_dataset
        from emotf.run_data import as_selection

        # The same sampling as training (shapes from the model config), with another N.
        train_config = TrainConfig.from_dict(run_config.get("config", {}))
        sampling = replace(train_config.sampling, num_segments=int(num_segments))
        selection = as_selection(folds)
        return make_dataset(
            records,
            list(selection.folds),
            training=False,
            config=sampling,
            batch_size=batch_size,
            with_metadata=True,
            clip_ids=selection.clips,
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
    model_inputs = {k: v for k, v in inputs.items() if k in ("frames", "audio", "spectrograms")}
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
    """(records folder, what to evaluate): the folds given, else the run's test part (its
    test fold, or the test list of a clip-level split as an `emotf.splits.Selection`)."""
    train_cfg = run_config.get("config", {})
    records = records or train_cfg.get("records")
    if train_cfg.get("split", ACTORS) != ACTORS:
        if folds is not None:  # folds of a clip-level run hold its training clips
            raise ValueError(f"this run used the clip-level split {train_cfg['split']!r}: its "
                             f"folds hold training clips; evaluate it on its test list (no "
                             f"fold). Received: folds={folds}")
        from emotf.configs import TrainConfig
        from emotf.run_data import config_split

        split = config_split(TrainConfig.from_dict(train_cfg))
        check_fingerprint(split, run_config.get("split"), "the model")
        return records, split.test
    if folds is None:
        test = run_config.get("folds", {}).get("test")
        if test is None:
            raise ValueError("no fold given and the run's config.json names no test fold")
        folds = [test]
    folds = [int(folds)] if isinstance(folds, (int, np.integer)) else [int(k) for k in folds]
    return records, folds


def _describe(part, run_config) -> str:
    if isinstance(part, Selection):
        split = run_config.get("config", {}).get("split")
        return f"split {split!r} test list (speaker-dependent)"
    return f"folds {part}"


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
    labels: str | None = None,
    allow_incomplete: bool = False,
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
        labels: "intended" or "perceived" (`emotf.labels`); default: the run's.
        allow_incomplete: evaluate records that fail the manifest check (`emotf.records.manifest`)
            anyway; the problems are recorded in the report.

    Returns the evaluation dict written to `evaluation.json` (see `summarize_predictions`)
    plus "folds", "num_segments" and "model".
    """
    path = Path(model_dir_or_run)
    run = path if path.is_dir() else path.parent
    run_config = load_run_config(run)
    records, folds = _resolve(records, folds, run_config)
    label_source = check_source(labels or run_config.get("config", {}).get("labels", INTENDED))
    records_check = {}
    if dataset_fn is None:
        if not records:
            raise ValueError("no records folder given and the run's config.json names none")
        if Path(records).is_dir():  # else the pipeline's error names the folder
            from emotf.records.manifest import check_records

            records_check = check_records(records, list(getattr(folds, "folds", folds)),
                                          allow_incomplete)
            records_check.pop("clips_in_manifest", None)
        read = _default_dataset_fn(records)

        def dataset_fn(*args):  # labels: intended or perceived (emotf.labels)
            return relabel(read(*args), label_source)
    out = Path(out) if out else run / EVALUATION_DIRNAME
    model = load_saved_model(path)
    num_segments = int(model.inputs[0].shape[1])
    batch = batch_size or int(run_config.get("config", {}).get("batch_size", 16))
    clip_ids, labels, probs = predict_clips(
        model, dataset_fn(folds, num_segments, batch, run_config)
    )
    title = f"{_describe(folds, run_config)}, N={num_segments}"
    report = summarize_predictions(clip_ids, labels, probs, out, votes=votes, title=title)
    report.update({"folds": list(getattr(folds, "folds", folds)), "num_segments": num_segments,
                   "model": str(path), "labels": label_source,
                   "label_agreement": agreement(clip_ids),
                   **records_check})
    if isinstance(folds, Selection):
        report.update({"split": run_config["config"]["split"], "protocol": SPEAKER_DEPENDENT})
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

    from emotf.model import build_model, model_sampling_config

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
    # The same spectrogram layer settings as the trained model (emotf.model.LogMelSpectrogram).
    model = build_model(replace(model_config, num_segments=int(num_segments)),
                        model_sampling_config(trained))
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
        title=f"accuracy vs N ({_describe(folds, run_config)})",
    )
    return rows
