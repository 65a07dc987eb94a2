"""Train and evaluate the twin-branch model on one cross-validation fold, or on all of them.

Protocol (user-independent 10-fold cross-validation; folds never share an actor):
    test fold  K                 evaluated once, at the end, with the chosen weights;
    validation folds             `validation_folds` of the other folds (the next ones after K,
                                 cyclically): their actors are held out of training and pick the
                                 best epoch and drive early stopping;
    training folds               the rest.
Nothing (epoch, model, hyper-parameter) is selected on fold K.

A run folder RUN holds: `config.json` (the resolved config + emotf/TF/Keras versions),
`backup/` (BackupAndRestore: weights, optimizer state and epoch, so a killed run resumes from its
last completed epoch), `best.weights.h5` (best validation accuracy), `model.keras` (the chosen
model, all three outputs), `training_log.csv`, `tensorboard/`, `metrics.json`.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

import emotf
from emotf.cremad import EMOTIONS, NUM_FOLDS
from emotf.model import ModelConfig, build_model, training_model
from emotf.precision import PRECISIONS, precision_policy
from emotf.run_state import check_resume_config, completed_epochs, read_log, training_callbacks
from emotf.schedules import LR_SCHEDULES, make_schedule


@dataclass(frozen=True)
class TrainConfig:
    """Everything one `emotf-train` run depends on (flags map onto these fields).

    `lr_schedule`:
        `paper`    learning_rate * decay_rate ** floor(s / decay_steps) with s the step *within the
                   epoch* (the paper's literal schedule: restarts at 1e-3 every epoch);
        `step`     the same staircase on the global step (no restart);
        `cosine`   cosine decay from learning_rate to 0 over all training steps (the saner
                   alternative: no dead tail after the first 100-150 steps of each epoch);
        `constant` learning_rate throughout.
    `sampling` holds `emotf.sampling.SamplingConfig` fields (its `num_segments` follows
    `model.num_segments`).
    `cache_records` keeps the serialised records in memory after the first epoch (about 0.7 MB
    per CREMA-D clip, ~4.5 GB for the training folds): later epochs skip reading and the page
    faults of a large shuffle buffer (~1 ms of CPU per clip less, docs/sampling.md). The first
    epoch is the same with and without it; later epochs read the records in the first epoch's
    file order (the shuffle buffer still reshuffles them).
    """

    records: str = ""
    out: str = "runs/emotf"
    fold: int = 0
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    momentum: float = 0.9
    lr_schedule: str = "paper"
    decay_steps: int = 50
    decay_rate: float = 0.1
    validation_folds: int = 1
    early_stopping_patience: int = 10
    seed: int = 0
    precision: str = "auto"
    deterministic: bool = True
    steps_per_epoch: int | None = None
    cache_records: bool = False
    verbose: int = 1
    export: bool = True
    model: ModelConfig = ModelConfig()
    sampling: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}. Received: lr_schedule={self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}. Received: precision={self.precision!r}")
        if not (0 <= int(self.fold) < NUM_FOLDS):
            raise ValueError(f"fold must be in 0..{NUM_FOLDS - 1}. Received: fold={self.fold}")
        if not (1 <= self.validation_folds <= NUM_FOLDS - 2):
            raise ValueError(f"validation_folds must be in 1..{NUM_FOLDS - 2}. Received: validation_folds={self.validation_folds}")

    def to_dict(self) -> dict:
        values = asdict(self)
        values["model"] = self.model.to_dict()
        values["sampling"] = dict(self.sampling)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**values)


# A dataset factory: (folds, training, config[, epoch=0]) -> tf.data.Dataset of (inputs dict,
# label int32 [B]). `epoch` (the epochs already completed, > 0 after a resume) is passed only to
# factories whose signature accepts it, so that a resumed run does not replay epoch 0's draws.
DatasetFn = Callable[..., tf.data.Dataset]


def call_factory(dataset_fn, folds, training, config, epoch=0) -> tf.data.Dataset:
    """`dataset_fn(folds, training, config[, epoch=epoch])`: `epoch` only if it is accepted."""
    import inspect

    try:
        params = inspect.signature(dataset_fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "epoch" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return dataset_fn(folds, training, config, epoch=epoch)
    return dataset_fn(folds, training, config)


def split_folds(fold: int, validation_folds: int = 1, num_folds: int = NUM_FOLDS):
    """(training folds, validation folds, test fold): validation = the next folds after `fold`."""
    val = [(fold + 1 + i) % num_folds for i in range(validation_folds)]
    train = [k for k in range(num_folds) if k != fold and k not in val]
    return train, val, fold


def sampling_config(config: TrainConfig):
    """The `SamplingConfig` of a run: `config.sampling` with N, frame size and spectrogram shape
    taken from the model config (one source of truth for the shapes the model expects)."""
    from emotf.sampling import SamplingConfig

    m = config.model
    shapes = {
        "num_segments": m.num_segments,
        "frame_size": m.frame_size,
        "time_bins": m.spectrogram_shape[0],
        "freq_bins": m.spectrogram_shape[1],
    }
    conflicts = {
        k: v for k, v in config.sampling.items() if k in shapes and int(v) != shapes[k]
    }
    if conflicts:
        raise ValueError(
            "sampling shapes come from the model config (--num-segments, --frame-size, "
            f"--spectrogram-shape), which gives {shapes}. Received: sampling={conflicts}"
        )
    return SamplingConfig.from_dict({**config.sampling, **shapes})


def records_dataset(folds, training: bool, config: TrainConfig, epoch: int = 0) -> tf.data.Dataset:
    """The default dataset factory: `emotf.pipeline.make_dataset` on the shards in `config.records`.

    `epoch` is the first epoch the dataset serves (non-zero when a run resumes), so a resumed
    run draws fresh samples instead of replaying epoch 0's.
    """
    from emotf.pipeline import make_dataset

    return make_dataset(
        config.records,
        list(folds),
        training=training,
        config=sampling_config(config),
        batch_size=config.batch_size,
        seed=config.seed,
        epoch=epoch,
        cache=config.cache_records,
    )


def count_clips(records, folds) -> int:
    """Clips of `folds` in a record folder (shards hold one fold each: counts raw records only)."""
    from emotf.pipeline import record_files

    files = [str(f) for f in record_files(records, folds)]
    compression = "GZIP" if files[0].endswith(".gz") else ""
    return int(tf.data.TFRecordDataset(files, compression_type=compression).reduce(np.int64(0), lambda n, _: n + 1))


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


def num_batches(dataset: tf.data.Dataset, config: TrainConfig, folds) -> int:
    """Training batches per epoch (for the schedules), without decoding any clip if possible."""
    n = int(dataset.cardinality())
    if n >= 0:
        return n
    if n == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The training dataset is infinite: set TrainConfig.steps_per_epoch.")
    if config.records and Path(config.records).is_dir():
        clips = count_clips(config.records, folds)
        if clips < config.batch_size:  # training batches drop the remainder
            raise ValueError(
                f"the training folds {list(folds)} of {config.records} hold {clips} clips, fewer "
                f"than one batch. Received: batch_size={config.batch_size}"
            )
        return clips // config.batch_size
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def fit_datasets(dataset_fn: DatasetFn, config: TrainConfig, train_folds, val_folds, epoch: int = 0):
    """(training dataset, validation dataset, steps per epoch) ready for `keras.Model.fit`.

    Sizes are made known to Keras (exact progress bars; the end of the data is not taken for
    an interruption, no "ran out of data" warning); with `steps_per_epoch` set the training
    data repeats.
    """
    train_ds = call_factory(dataset_fn, train_folds, True, config, epoch)
    val_ds = call_factory(dataset_fn, val_folds, False, config, epoch)
    if int(val_ds.cardinality()) < 0 and config.records and Path(config.records).is_dir():
        val_batches = -(-count_clips(config.records, val_folds) // config.batch_size)
        val_ds = val_ds.apply(tf.data.experimental.assert_cardinality(val_batches))
    steps = config.steps_per_epoch or num_batches(train_ds, config, train_folds)
    if config.steps_per_epoch:
        train_ds = train_ds.repeat()
    elif int(train_ds.cardinality()) < 0:
        train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps))
    return train_ds, val_ds, steps


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
    train_folds, val_folds, test_fold = split_folds(config.fold, config.validation_folds)
    check_resume_config(run, config)
    (run / "config.json").write_text(
        json.dumps({"config": config.to_dict(), "folds": {"train": train_folds, "validation": val_folds, "test": test_fold}, "environment": environment()}, indent=2)
    )

    keras.utils.set_random_seed(config.seed)
    if config.deterministic and not tf.config.list_physical_devices("GPU"):
        # Process-wide and not undoable in TF 2.17; on a GPU it slows training and the runs are
        # not bit-repeatable anyway (cuDNN autotuning), so it only applies on the CPU.
        tf.config.experimental.enable_op_determinism()

    with precision_policy(config.precision) as policy:
        first_epoch = completed_epochs(run)
        train_ds, val_ds, steps = fit_datasets(
            dataset_fn, config, train_folds, val_folds, first_epoch
        )
        model = build_model(config.model)
        trainer = training_model(model)
        trainer.compile(
            optimizer=keras.optimizers.SGD(make_schedule(config, steps), momentum=config.momentum),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
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
        # The one look at the test fold.
        y_true, probs = _predict(model, call_factory(dataset_fn, [test_fold], False, config))

    val_acc = [row.get("val_accuracy", float("nan")) for row in log]
    metrics = {
        "fold": test_fold,
        **evaluation_metrics(y_true, probs, config.model.num_classes),
        "validation_folds": val_folds,
        "training_folds": train_folds,
        "best_epoch": int(log[int(np.nanargmax(val_acc))]["epoch"]) + 1 if val_acc else None,
        "best_validation_accuracy": float(np.nanmax(val_acc)) if val_acc else None,
        "epochs_run": len(log),
        "steps_per_epoch": int(steps),
        "parameters": int(model.count_params()),
        "precision": policy,
        "wall_time_s": round(time.time() - start, 2),
    }
    if config.export:
        from emotf.export import export_run

        metrics["saved_model"] = str(export_run(run))
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def train_all_folds(config: TrainConfig, dataset_fn: DatasetFn | None = None, folds=None) -> dict:
    """Run `train_fold` for each fold into `config.out/fold-K`; write `cv_summary.json` / `.md`.

    Folds whose `metrics.json` already exists are not retrained (a killed sweep resumes).
    """
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

