"""Train and evaluate the twin-branch model on one cross-validation fold, or on all of them.

Protocol (user-independent 10-fold cross-validation; folds never share an actor):
    test fold  K                 evaluated once, at the end, with the chosen weights;
    validation folds             `validation_folds` of the other folds (the next ones after K,
                                 cyclically): their actors are held out of training and pick the
                                 best epoch and drive early stopping;
    training folds               the rest.
Nothing (epoch, model, hyper-parameter) is selected on fold K. `split` = "ogm" (or a folder of
train.csv/test.csv) runs a clip-level split instead, speaker-dependent, for comparison with
papers that report on it (`emotf.splits`).

A run folder RUN holds: `config.json` (the resolved config + emotf/TF/Keras versions),
`backup/` (BackupAndRestore: weights, optimizer state and epoch, so a killed run resumes from its
last completed epoch), `best.weights.h5` (best validation accuracy), `model.keras` (the chosen
model, all three outputs), `calibration.json` (temperature fitted on the validation clips),
`training_log.csv`, `tensorboard/`, `metrics.json`.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import emotf
from emotf.configs import TrainConfig
from emotf.cremad import EMOTIONS, NUM_FOLDS
from emotf.evaluation.calibration import apply_temperature, calibration_summary, temperature_record
from emotf.model import build_model, training_model
from emotf.precision import precision_policy, resolve_jit_compile
from emotf.run_data import (
    DatasetFn,
    call_factory,
    check_clip_split_records,
    check_run_records,
    clips_read,
    config_split,
    count_clips,
    fit_datasets,
    records_dataset,
)
from emotf.run_state import check_resume_config, completed_epochs, read_log, training_callbacks
from emotf.schedules import make_schedule
from emotf.splits import (
    ACTORS,
    check_fingerprint,
)

# === Training ===


def environment() -> dict:
    return {
        "emotf": emotf.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


def _predict(model: keras.Model, dataset: tf.data.Dataset):
    labels, probs = [], []
    for x, y in dataset:
        labels.append(np.asarray(y))
        probs.append(np.asarray(model(x, training=False)["probabilities"]))
    return np.concatenate(labels), np.concatenate(probs)


def evaluation_metrics(y_true, probabilities, num_classes: int = len(EMOTIONS)) -> dict:
    """Accuracy, per-class recall and confusion matrix (rows = true class) with scikit-learn."""
    from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

    y_pred = np.asarray(probabilities).argmax(-1)
    classes = list(range(num_classes))
    names = list(EMOTIONS) if num_classes == len(EMOTIONS) else [str(c) for c in classes]
    recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class_recall": {name: float(r) for name, r in zip(names, recall)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "class_names": names,
        "num_clips": int(len(y_true)),
    }


def train_fold(config: TrainConfig, dataset_fn: DatasetFn | None = None) -> dict:
    """Train on the training folds, pick the epoch on the validation folds, test on `config.fold`.

    Resumes from `config.out/backup` when present. Returns (and writes to `config.out/
    metrics.json`) the test-fold metrics plus parameter count, wall time and the chosen epoch.
    """
    dataset_fn = dataset_fn or records_dataset
    run = Path(config.out)
    run.mkdir(parents=True, exist_ok=True)
    start = time.time()
    split = config_split(config)
    summary = split.summary()
    # Every shard this run reads (train, validation, test) against the records' manifest,
    # before anything is written or trained (emotf.records.manifest; --allow-incomplete opts out).
    records_check = check_run_records(config, split)
    check_resume_config(run, config)
    if (run / "config.json").is_file():
        recorded = json.loads((run / "config.json").read_text()).get("split")
        check_fingerprint(split, recorded, str(run))
    parts = {"config": config.to_dict(), "split": summary}
    if not split.clip_level:  # the folds, where `emotf-evaluate` looks for the test fold
        parts["folds"] = {key: summary[key] for key in ("train", "validation", "test")}
    (run / "config.json").write_text(
        json.dumps({**parts, "environment": environment()}, indent=2)
    )

    keras.utils.set_random_seed(config.seed)
    if config.deterministic and not tf.config.list_physical_devices("GPU"):
        # Process-wide and not undoable in TF 2.17; on a GPU it slows training and the runs are
        # not bit-repeatable anyway (cuDNN autotuning), so it only applies on the CPU.
        tf.config.experimental.enable_op_determinism()

    if split.clip_level and config.records and Path(config.records).is_dir():
        check_clip_split_records(config.records, split)  # before any training
    with precision_policy(config.precision) as policy:
        first_epoch = completed_epochs(run)
        train_ds, val_ds, steps = fit_datasets(
            dataset_fn, config, split.train, split.validation, first_epoch
        )
        model = build_model(config.model, config.sampling)
        trainer = training_model(model)
        trainer.compile(
            optimizer=keras.optimizers.SGD(make_schedule(config, steps), momentum=config.momentum),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=resolve_jit_compile(config.jit_compile),
        )
        history = trainer.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            steps_per_epoch=steps if config.steps_per_epoch else None,
            callbacks=training_callbacks(run, config),
            verbose=config.verbose,
        )
        del history
        log = read_log(run / "training_log.csv")
        best = run / "best.weights.h5"
        if best.exists():
            trainer.load_weights(str(best))
        model.save(str(run / "model.keras"))
        # Temperature scaling for the served probabilities, fitted on the validation clips.
        calibration = temperature_record(*_predict(model, val_ds))
        (run / "calibration.json").write_text(json.dumps(calibration, indent=2))
        # The one look at the test fold (or test list).
        y_true, probs = _predict(model, call_factory(dataset_fn, split.test, False, config))

    val_acc = [row.get("val_accuracy", float("nan")) for row in log]
    metrics = {
        "fold": None if split.clip_level else summary["test"],
        **evaluation_metrics(y_true, probs, config.model.num_classes),
        "split": split.name,
        "protocol": split.protocol,
        **({key: summary[key] for key in ("train_clips", "validation_clips", "test_clips")}
           if split.clip_level else
           {"validation_folds": summary["validation"], "training_folds": summary["train"]}),
        "best_epoch": int(log[int(np.nanargmax(val_acc))]["epoch"]) + 1 if val_acc else None,
        "best_validation_accuracy": float(np.nanmax(val_acc)) if val_acc else None,
        "epochs_run": len(log),
        "steps_per_epoch": int(steps),
        "parameters": int(model.count_params()),
        "precision": policy,
        "wall_time_s": round(time.time() - start, 2),
        "labels": config.labels,
        **{k: v for k, v in records_check.items() if k != "clips_in_manifest"},
        **clips_read(config, split, len(y_true), records_check),
        **_test_calibration(y_true, probs, calibration.get("temperature")),
    }
    if split.clip_level and config.records and Path(config.records).is_dir():
        metrics["clips_in_records"] = {  # the lists' clips that were built (the rest: skipped)
            name: count_clips(config.records, part)
            for name, part in (("train", split.train), ("validation", split.validation),
                               ("test", split.test))
        }
    if config.export:
        from emotf.export import export_run

        metrics["saved_model"] = str(export_run(run))
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _test_calibration(y_true, probs, temperature) -> dict:
    """The test clips' ECE with the raw probabilities and with the validation temperature."""
    try:
        out = {"temperature": temperature, "test_ece": calibration_summary(y_true, probs)["ece"]}
    except ValueError:  # non-finite probabilities
        return {"temperature": temperature, "test_ece": None}
    if temperature is not None:
        scaled = apply_temperature(probs, temperature)
        out["test_ece_scaled"] = calibration_summary(y_true, scaled)["ece"]
    return out


def train_all_folds(config: TrainConfig, dataset_fn: DatasetFn | None = None, folds=None) -> dict:
    """Run `train_fold` for each fold into `config.out/fold-K`; write `cv_summary.json` / `.md`.

    Folds whose `metrics.json` already exists are not retrained (a killed sweep resumes).
    """
    if config.split != ACTORS:
        raise ValueError(f"--fold all is the actor-independent cross-validation; a clip-level "
                         f"split has one test list: run one fold. Received: split={config.split!r}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    per_fold = []
    for k in folds if folds is not None else range(NUM_FOLDS):
        fold_out = out / f"fold-{k}"
        done = fold_out / "metrics.json"
        if done.exists():
            metrics = json.loads(done.read_text())
        else:
            metrics = train_fold(replace(config, fold=k, out=str(fold_out)), dataset_fn)
        per_fold.append({key: metrics[key] for key in ("fold", "accuracy", "num_clips", "best_epoch", "wall_time_s")})
    accs = [m["accuracy"] for m in per_fold]
    summary = {
        "num_folds": len(per_fold),
        "mean_accuracy": float(np.mean(accs)),
        "std_accuracy": float(statistics.stdev(accs)) if len(accs) > 1 else 0.0,
        "per_fold": per_fold,
        "config": config.to_dict(),
    }
    (out / "cv_summary.json").write_text(json.dumps(summary, indent=2))
    lines = [
        "# Cross-validation summary",
        "",
        f"Mean accuracy over {len(accs)} folds: **{100 * summary['mean_accuracy']:.1f} % "
        f"+- {100 * summary['std_accuracy']:.1f}** (sample std).",
        "",
        "| fold | accuracy | test clips | best epoch | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {m['fold']} | {100 * m['accuracy']:.1f} % | {m['num_clips']} | {m['best_epoch']} | {m['wall_time_s']:.0f} |"
        for m in per_fold
    ]
    (out / "cv_summary.md").write_text("\n".join(lines) + "\n")
    return summary

