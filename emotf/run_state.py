"""What makes a training run folder resumable: its CSV log, backup epoch and callbacks.

A killed `emotf-train` run restarts from `RUN/backup/` (Keras `BackupAndRestore`); the CSV log
is written before the backup, early stopping's patience is rebuilt from the log, and a run
folder refuses a resume under another configuration.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from emotf.run import Run

if TYPE_CHECKING:
    from emotf.configs import TrainConfig


def read_log(path: Path) -> list[dict]:
    """Rows of the CSV log, one per epoch in order (an epoch logged twice - killed after the log
    row, before the backup, then re-run - keeps its last row)."""
    if not path.exists():
        return []
    with path.open() as f:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    by_epoch = {int(row.get("epoch", i)): row for i, row in enumerate(rows)}
    return [by_epoch[e] for e in sorted(by_epoch)]


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
    diff = describe_changes(old, config.to_dict(), RESUMABLE_CHANGES)
    if diff:
        raise ValueError(
            f"{run.path} holds a resumable run with another configuration; resuming would mix the "
            f"two. Use a new --out, or the same settings. Received: {diff}"
        )


def training_callbacks(run: Run, config: "TrainConfig") -> list:
    """CSV log, BackupAndRestore, best-weights checkpoint, TensorBoard, early stopping."""
    log_path = run.log_path
    backup = run.backup_dir
    if not backup.exists() and log_path.exists():
        log_path.unlink()  # a fresh start: an old log would be appended to
    history = read_log(log_path)
    best_val = max((row["val_accuracy"] for row in history if "val_accuracy" in row), default=None)
    # The CSV log is written before the backup: a kill between the two re-runs an epoch that is
    # already logged (`_read_log` keeps its last row) instead of losing a row.
    callbacks = [
        keras.callbacks.CSVLogger(str(log_path), append=True),
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(run.best_weights_path),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_val,
        ),
        keras.callbacks.TensorBoard(str(run.tensorboard_dir), profile_batch=0),
    ]
    if config.early_stopping_patience > 0:
        callbacks.append(
            ResumableEarlyStopping(
                history, monitor="val_accuracy", mode="max", patience=config.early_stopping_patience
            )
        )
    return callbacks
