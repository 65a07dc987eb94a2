"""What makes a training run folder resumable: its CSV log, backup epoch and callbacks.

A killed `emotf-train` run restarts from `RUN/backup/` (Keras `BackupAndRestore`); the CSV log
is written before the backup, early stopping's patience is rebuilt from the log, and a run
folder refuses a resume under another configuration or another replica count. Every file goes
through `emotf.storage` (`tf.io.gfile`), so a run folder on gs:// or ram:// works; the CSV log
is rewritten whole (atomically) each epoch, as object stores cannot append.

Every weights file (the backup's, `best.weights.h5`, `model.keras`) is written to a temporary
name beside it and then renamed into place (`save_atomic`), so a kill or a full disk never
leaves half a file under the real name; a full disk ends the run with one line naming the file
(`OSError` ENOSPC), and the rerun resumes from the last complete epoch. A truncated or
unreadable weights file left by an older release is named in one warning line and set aside
(`repair_resume_files`) instead of blocking the resume.

In a multi-worker run only the chief writes the run folder: a non-chief worker's callbacks
write into its own scratch folder (deleted after each save) and restore from the chief's
backup (`emotf.training.distribute`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import shutil
import uuid
import warnings

import h5py
import keras
import numpy as np

from emotf.configs import TrainConfig
from emotf.runs.folder import BACKUP_METADATA_FILE, Run
from emotf.storage import StoragePath, as_path, read_json, write_atomic, write_json

# === Writing weights: atomically, a full disk named ===


def is_no_space(error: BaseException) -> bool:
    """Is `error` (or what caused it) a full disk? errno ENOSPC, or h5py's and TensorFlow's
    wrapped forms (an OSError or RuntimeError whose message says "No space left")."""
    seen = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:
            return True
        if isinstance(link, (OSError, RuntimeError)) and (
            "No space left" in str(link) or "errno = 28" in str(link)
        ):
            return True
        link = link.__cause__ or link.__context__
    return False


def no_space(path) -> OSError:
    """The one error a full disk becomes: `PATH: no space left on device` on the console."""
    return OSError(errno.ENOSPC, "No space left on device", str(path))


@contextlib.contextmanager
def naming_full_disk(path):
    """Turn a full disk while writing `path` into `no_space(path)` (other errors pass)."""
    try:
        yield
    except Exception as error:
        if is_no_space(error):
            raise no_space(path) from None
        raise


def save_atomic(save, path, suffix: str) -> StoragePath:
    """Call `save(temporary_path)` on a temporary name beside `path` (ending in `suffix`, which
    Keras needs: ".weights.h5", ".keras"), then rename it onto `path`: readers (and a resume)
    see the old file or the new one, never half of one. The temporary file is removed on any
    failure; a full disk is raised as `no_space(path)`."""
    path = as_path(path)
    path.parent.mkdir()
    tmp = path.with_name(f".{path.name.removesuffix(suffix)}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        with naming_full_disk(path):
            save(str(tmp))
            tmp.replace(path)
    except BaseException:
        with contextlib.suppress(Exception):
            tmp.unlink(missing_ok=True)
        raise
    return path


def weights_bytes(model: keras.Model) -> int:
    """About the size of `model.save_weights`' file: the model's and the optimizer's
    variables, plus HDF5's bookkeeping (4 KiB a variable, 64 KiB a file, measured generously)."""
    optimizer = getattr(model, "optimizer", None)  # none before compile()
    variables = [*model.weights, *(optimizer.variables if optimizer is not None else [])]
    data = sum(int(np.prod(v.shape)) * _itemsize(v.dtype) for v in variables)
    return data + 4096 * len(variables) + 65536


def _itemsize(dtype) -> int:
    try:
        return np.dtype(str(dtype)).itemsize
    except TypeError:  # a dtype NumPy does not know (bfloat16): at most 8 bytes a value
        return 8


def check_free_space(path, needed: int) -> None:
    """Refuse to write `needed` bytes into `path`'s folder when its disk has less free (a
    local path only): HDF5 does not survive a full disk (it crashes the process while closing
    the file, after a screen of tracebacks), so a weights file is never started on one."""
    path = as_path(path)
    if not path.is_local:
        return
    path.parent.mkdir()
    free = shutil.disk_usage(path.parent.local_path()).free
    if free < needed:
        raise no_space(path)


def save_weights(model: keras.Model, path) -> StoragePath:
    """`model.save_weights(path)`, atomically (`save_atomic`), never started on a disk without
    room for it (`check_free_space`): one `OSError` ENOSPC naming `path` instead."""
    check_free_space(path, int(1.25 * weights_bytes(model)))
    return save_atomic(lambda tmp: model.save_weights(tmp, overwrite=True), path, ".weights.h5")


def save_model(model: keras.Model, path) -> StoragePath:
    """`model.save(path)` (a .keras file), atomically (`save_atomic`)."""
    return save_atomic(lambda tmp: model.save(tmp, overwrite=True), path, ".keras")


def weights_problem(path) -> str | None:
    """What is wrong with a .weights.h5 file (None: every array in it reads back): a file cut
    short by a full disk or a kill under an older release fails here."""

    def read(_name, item):
        if isinstance(item, h5py.Dataset):
            item[()]

    path = as_path(path)
    try:  # a local file is read by HDF5 itself, a URL's bytes whole (a file emotf wrote)
        source = path.local_path() if path.is_local else io.BytesIO(path.read_bytes(None))
        with h5py.File(source, "r") as f:
            f.visititems(read)
    except Exception as error:  # noqa: BLE001  (any failure to read it back is the answer)
        text = str(error).strip().splitlines()
        return f"unreadable weights ({text[0] if text else type(error).__name__})"
    return None


def repair_resume_files(run: Run) -> list[str]:
    """Before a resume: set aside what an interrupted write of an older release left behind,
    with one warning line each naming the file, instead of failing on it mid-run.

    - `best.weights.h5` unreadable: removed; the best epoch from here on is kept.
    - `backup/latest.weights.h5` or `backup/training_metadata.json` unreadable: the backup is
      removed and the run starts again from its first epoch (a backup's weights and epoch go
      together; without them there is nothing to resume from).

    Returns the warnings given (also issued as `UserWarning`s).
    """
    said = []
    for folder in (run.path, run.backup_dir):  # temporaries of a write that was killed
        for tmp in [*folder.glob(".*.tmp.weights.h5"), *folder.glob(".*.tmp.keras")]:
            with contextlib.suppress(Exception):
                tmp.unlink(missing_ok=True)

    def warn(text: str) -> None:
        said.append(text)
        warnings.warn(text, UserWarning, stacklevel=3)

    best = run.best_weights_path
    if best.is_file():
        problem = weights_problem(best)
        if problem:
            best.unlink(missing_ok=True)
            warn(f"{best}: {problem}: removed; the best of the epochs run from now on is kept")
    backup_weights = run.backup_dir / "latest.weights.h5"
    problem = None
    if backup_weights.is_file():
        problem = weights_problem(backup_weights)
        bad = backup_weights
    if problem is None and run.backup_metadata_path.is_file():
        bad = run.backup_metadata_path
        try:
            epoch = read_json(bad).get("epoch")
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                problem = f"no epoch count. Received: epoch={epoch!r}"
        except (OSError, ValueError) as error:
            problem = str(error).removeprefix(f"{bad}: ")
    if problem:
        run.backup_dir.rmtree()
        warn(f"{bad}: {problem}: the backup is removed and training starts again from epoch 1")
    return said


# A training log is one short row an epoch: anything this large is not one (read it never).
MAX_LOG_BYTES = 64 * 2**20


def _log_text(path: StoragePath) -> str:
    """The log's text, capped (`emotf.storage.FileTooLargeError` naming the file)."""
    try:
        return path.read_text(MAX_LOG_BYTES)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a training log ({error})") from None


def read_log(path) -> list[dict]:
    """Rows of the CSV log, one per epoch in order (an epoch logged twice - killed after the log
    row, before the backup, then re-run - keeps its last row).

    Raises:
        ValueError: naming the file, when it is larger than `MAX_LOG_BYTES` or not a log.
    """
    path = as_path(path)
    if not path.exists():
        return []
    text = _log_text(path)
    try:
        rows = [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(io.StringIO(text))
        ]
    except (TypeError, ValueError, csv.Error) as error:
        raise ValueError(f"{path}: not a training log ({error})") from None
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
        text = _log_text(self.path) if self.path.exists() else ""
        lines = text.splitlines()
        keys = sorted(logs or {})
        header = ",".join(["epoch", *keys])
        if lines and lines[0] != header:
            keys = lines[0].split(",")[1:]  # an older log's columns (a resumed run)
            header = lines[0]
        row = ",".join([str(epoch), *(_csv_value((logs or {}).get(k, "")) for k in keys)])
        with naming_full_disk(self.path):
            write_atomic(self.path, ("\n".join([*(lines or [header]), row]) + "\n").encode())


class BestWeights(keras.callbacks.Callback):
    """Keras' ModelCheckpoint(save_best_only=True, save_weights_only=True) on `val_accuracy`,
    written atomically (`save_weights`): the weights of the best epoch so far, never half a
    file. `best`: the best value of the epochs already run (a resumed run)."""

    def __init__(self, path, monitor: str = "val_accuracy", best: float | None = None):
        super().__init__()
        self.path, self.monitor, self.best = as_path(path), monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(float(value)):
            return
        if self.best is None or float(value) > self.best:
            self.best = float(value)
            save_weights(self.model, self.path)


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
            best_epoch = int(
                np.argmax(values) if self.monitor_op == np.greater else np.argmin(values)
            )
            self.best, self.best_epoch = values[best_epoch], best_epoch
            self.wait = len(values) - 1 - best_epoch


# Fields a resumed run may change: they do not alter what the saved state means.
RESUMABLE_CHANGES = (
    "epochs",
    "verbose",
    "export",
    "out",
    "early_stopping_patience",
    "cache_records",
    "remat",
    "remat_chunks",
)


def describe_changes(old: dict, new: dict, allowed=()) -> str:
    """The changed keys as 'key: old -> new, ...', except `allowed` ('' when none changed).

    `new` goes through JSON first, as the stored `old` did (tuples become lists).
    """
    new = json.loads(json.dumps(new))
    changed = sorted(
        k for k in set(old) | set(new) if k not in allowed and old.get(k) != new.get(k)
    )
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)


def check_resume_config(run: Run, config: TrainConfig) -> None:
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
    values are in config.json (`environment.distribution`, written by `emotf.training.train`); a run
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
        self._training_metadata_path = str(as_path(folder) / BACKUP_METADATA_FILE)
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
        # Keras' own save writes the weights in place (a full disk leaves half a file that the
        # resume then fails on): the weights are renamed into place, then the epoch count.
        save_weights(self.model, self._weights_path)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        with naming_full_disk(self._training_metadata_path):
            write_json(self._training_metadata_path, metadata)
        if self._scratch:
            as_path(self.backup_dir).rmtree()


def training_callbacks(run: Run, config: TrainConfig, scratch: StoragePath | None = None) -> list:
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
    # The best so far counts only while its weights are there (`repair_resume_files` may
    # have removed an unreadable best.weights.h5): else the next epoch is saved.
    best_val = (
        max((row["val_accuracy"] for row in history if "val_accuracy" in row), default=None)
        if run.best_weights_path.is_file()
        else None
    )
    # The CSV log is written before the backup: a kill between the two re-runs an epoch that is
    # already logged (`read_log` keeps its last row) instead of losing a row.
    callbacks = [
        EpochLog(log_path),
        WorkerBackupAndRestore(
            writes.backup_dir,
            restore_dir=run.backup_dir,
            scratch=scratch is not None,
            delete_checkpoint=False,
        ),
        BestWeights(writes.best_weights_path, "val_accuracy", best_val),
        keras.callbacks.TensorBoard(str(writes.tensorboard_dir), profile_batch=0),
    ]
    if config.early_stopping_patience > 0:
        callbacks.append(
            ResumableEarlyStopping(
                history, monitor="val_accuracy", mode="max", patience=config.early_stopping_patience
            )
        )
    return callbacks
