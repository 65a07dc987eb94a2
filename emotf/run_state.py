"""What makes a training run folder resumable: its CSV log, backup epoch and callbacks.

A killed `emotf-train` run restarts from `RUN/backup/` (Keras `BackupAndRestore`); the CSV log
is written before the backup, early stopping's patience is rebuilt from the log, and a run
folder refuses a resume under another configuration or another replica count. Every file goes through `emotf.storage`
(`tf.io.gfile`), so a run folder on gs:// or ram:// works; the CSV log is rewritten whole
(atomically) each epoch, as object stores cannot append.

In a multi-worker run only the chief writes the run folder: a non-chief worker's callbacks
write into its own scratch folder (deleted after each save) and restore from the chief's
backup (`emotf.distribute`).
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

import keras
import numpy as np

from emotf.run import Run
from emotf.storage import StoragePath, as_path, write_atomic

if TYPE_CHECKING:
    from emotf.configs import TrainConfig


def read_log(path) -> list[dict]:
    """Rows of the CSV log, one per epoch in order (an epoch logged twice - killed after the log
    row, before the backup, then re-run - keeps its last row)."""
    path = as_path(path)
    if not path.exists():
        return []
    rows = [{k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(io.StringIO(path.read_text()))]
    by_epoch = {int(row.get("epoch", i)): row for i, row in enumerate(rows)}
    return [by_epoch[e] for e in sorted(by_epoch)]


class EpochLog(keras.callbacks.Callback):
    """Keras' CSVLogger, on any `emotf.storage` path: one row per epoch (`epoch` + the logs,
    columns sorted), the whole file rewritten atomically (`write_atomic`) after each epoch, so
    it works where files cannot be appended to (gs://) and is never half written."""

    def __init__(self, path):
        super().__init__()
        self.path = as_path(path)

    def on_epoch_end(self, epoch, logs=None):
        text = self.path.read_text() if self.path.exists() else ""
        lines = text.splitlines()
        keys = sorted(logs or {})
        header = ",".join(["epoch", *keys])
        if lines and lines[0] != header:
            keys = lines[0].split(",")[1:]  # an older log's columns (a resumed run)
            header = lines[0]
        row = ",".join([str(epoch), *(_csv_value((logs or {}).get(k, "")) for k in keys)])
        write_atomic(self.path, ("\n".join([*(lines or [header]), row]) + "\n").encode())


def _csv_value(value) -> str:
    return "" if value == "" else repr(float(np.asarray(value)))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience counter survives a restart (rebuilt from the CSV log)."""

    def __init__(self, history: list[dict], **kwargs):
        super().__init__(**kwargs)
        self._history = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        values = [row[self.monitor] for row in self._history if self.monitor in row]
        if values:
            best_epoch = int(np.argmax(values) if self.monitor_op == np.greater else np.argmin(values))
            self.best, self.best_epoch = values[best_epoch], best_epoch
            self.wait = len(values) - 1 - best_epoch


# Fields a resumed run may change: they do not alter what the saved state means.
RESUMABLE_CHANGES = (
    "epochs", "verbose", "export", "out", "early_stopping_patience", "cache_records"
)


def describe_changes(old: dict, new: dict, allowed=()) -> str:
    """The changed keys as 'key: old -> new, ...', except `allowed` ('' when none changed).

    `new` goes through JSON first, as the stored `old` did (tuples become lists).
    """
    new = json.loads(json.dumps(new))
    changed = sorted(k for k in set(old) | set(new) if k not in allowed and old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)


def check_resume_config(run: Run, config: "TrainConfig") -> None:
    """Refuse to resume a run folder with a different configuration (it would mix two runs)."""
    if not run.resumable or not run.has_config():
        return
    old = run.config_values()
    # Fields added to TrainConfig since the run began (e.g. `strategy`) take their defaults.
    defaults = type(config)().to_dict()
    old = {**{k: v for k, v in defaults.items() if k not in old}, **old}
    diff = describe_changes(old, config.to_dict(), RESUMABLE_CHANGES)
    if diff:
        raise ValueError(
            f"{run.path} holds a resumable run with another configuration; resuming would mix the "
            f"two. Use a new --out, or the same settings. Received: {diff}"
        )


def check_resume_distribution(run: Run, replicas: int, global_batch_size: int) -> None:
    """Refuse to resume a run folder's backup with another replica count (GPUs, workers): the
    global batch, the steps per epoch and the schedule's meaning would change mid-run. The run's
    values are in config.json (`environment.distribution`, written by `emotf.train`); a run
    recorded before they were is not checked.

    Raises:
        ValueError: one line naming both replica counts and global batches, and what to do.
    """
    if not run.resumable or not run.has_config():
        return
    old = run.record().get("environment", {}).get("distribution")
    if not isinstance(old, dict) or "replicas" not in old:
        return
    if (old["replicas"], old.get("global_batch_size")) != (replicas, global_batch_size):
        raise ValueError(
            f"{run.path} holds a resumable run trained with {old['replicas']} replica(s) (global "
            f"batch {old.get('global_batch_size')}); this start has {replicas} (global batch "
            f"{global_batch_size}): resume with {old['replicas']} replica(s) (the same GPUs and "
            "workers), or use a new --out"
        )


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore for a multi-worker run: restores from `restore_dir` (the chief's
    backup, the one all workers resume from) and writes to `backup_dir`; with `scratch` the
    written folder (a non-chief worker's) is deleted after every save, the tf.distribute
    pattern: every worker saves (reading distributed variables in step), one keeps the files.
    """

    def __init__(self, backup_dir, restore_dir=None, scratch: bool = False, **kwargs):
        super().__init__(str(backup_dir), **kwargs)
        self._restore_dir = str(restore_dir or backup_dir)
        self._scratch = scratch

    def _use_dir(self, folder: str) -> None:
        self.backup_dir = folder
        self._weights_path = str(as_path(folder) / "latest.weights.h5")
        self._training_metadata_path = str(as_path(folder) / "training_metadata.json")
        self._prev_weights_path = f"{self._weights_path}.bkp"
        self._prev_training_metadata_path = f"{self._training_metadata_path}.bkp"

    def on_train_begin(self, logs=None):
        write_dir = self.backup_dir
        self._use_dir(self._restore_dir)
        try:
            super().on_train_begin(logs)
        finally:
            self._use_dir(write_dir)

    def _save_model(self):
        super()._save_model()
        if self._scratch:
            as_path(self.backup_dir).rmtree()


def training_callbacks(run: Run, config: "TrainConfig", scratch: StoragePath | None = None) -> list:
    """CSV log, BackupAndRestore, best-weights checkpoint, TensorBoard, early stopping.

    `scratch` (a non-chief worker of a multi-worker run): every callback writes under this
    folder instead of the run folder (the non-chief's files are never kept), and the backup is
    restored from the run's (the chief's) `backup/`.
    """
    writes = Run(scratch) if scratch is not None else run
    log_path = writes.log_path
    if not run.backup_dir.exists() and log_path.exists():
        log_path.unlink()  # a fresh start: an old log would be appended to
    history = read_log(run.log_path)
    best_val = max((row["val_accuracy"] for row in history if "val_accuracy" in row), default=None)
    # The CSV log is written before the backup: a kill between the two re-runs an epoch that is
    # already logged (`read_log` keeps its last row) instead of losing a row.
    callbacks = [
        EpochLog(log_path),
        WorkerBackupAndRestore(writes.backup_dir, restore_dir=run.backup_dir,
                               scratch=scratch is not None, delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(writes.best_weights_path),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_val,
        ),
        keras.callbacks.TensorBoard(str(writes.tensorboard_dir), profile_batch=0),
    ]
    if config.early_stopping_patience > 0:
        callbacks.append(
            ResumableEarlyStopping(
                history, monitor="val_accuracy", mode="max", patience=config.early_stopping_patience
            )
        )
    return callbacks
