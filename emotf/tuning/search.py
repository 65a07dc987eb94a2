"""Hyperparameter search with keras-tuner on one fold's validation folds (`emotf-tune`).

Protocol (the same split as `emotf.training.train.train_fold`): for test fold K, every trial
trains on the training folds of `split_folds(K, validation_folds)` and is scored by its best-epoch
`val_accuracy` on the validation folds (by default fold K+1). **The test fold K is never read**
(no dataset, no record file, no clip count): choose here, then report with
`emotf-train --config OUT/best_config.json`, which trains once more and tests on fold K. Under a
clip-level split (`--split ogm`) trials train on its training list less the validation clips,
are scored on those, and the test list is never read either.

Every trial rebuilds its datasets with the base seed and starts from the same initial weights
(`keras.utils.set_random_seed(train.seed)`), so trials see the same samples in the same order
(up to the batch size) and their scores differ by the hyperparameters, not by the draw.

OUT holds:
    search/             keras-tuner's project: `oracle.json`, `trial_<id>/` (trial.json, the
                        best epoch's weights). A search re-run with the same OUT reloads it,
                        keeps the finished trials, retries the one that was interrupted and runs
                        the rest up to `max_trials`.
    tune_config.json    the search's TuneConfig; a re-run with another one is refused.
    tensorboard/<id>/   one TensorBoard run per trial (with keras-tuner's HParams summary).
    trials.json / .csv  every trial: id, status, best val_accuracy, its epoch, epochs trained,
                        the Hyperband trial it continues, hyperparameters; best first,
                        unfinished trials last.
    best_config.json    the best trial as a full `TrainConfig` (`{"config": ..., "tuning": ...}`,
                        the `RUN/config.json` layout that `emotf-train --config` reads).
                        These two are written by `emotf.tuning.outputs`.

OUT may be a local folder or any `tf.io.gfile` URL (`gs://...`; `ram://...` in the tests): every
file here and keras-tuner's project go through `emotf.storage` / `tf.io.gfile`. A search may run
over several processes or machines (keras-tuner's chief/worker mode, `emotf.tuning.distributed`):
the chief serves the oracle and alone writes `tune_config.json`, the trials table and
`best_config.json`; the workers write their own trials' files under `search/` and `tensorboard/`,
so OUT must then be on a filesystem they all share (or `gs://`).
"""

from __future__ import annotations

import sys
from dataclasses import replace

import keras
import keras_tuner
import tensorflow as tf

from emotf.configs import TrainConfig
from emotf.runs.data import DatasetFactory, records_dataset
from emotf.storage import StoragePath, as_path, read_json, write_json
from emotf.training.precision import precision_policy, resolve_precision
from emotf.training.run_state import describe_changes
from emotf.training.task import Task
from emotf.training.train import environment, fit_verbose
from emotf.tuning.config import MODEL_FIELDS, SEARCH_SPACE, TuneConfig
from emotf.tuning.distributed import TunerRole, keras_tuner_environment, serve_oracle
from emotf.tuning.outputs import plain_value, write_results

# A continued search may change these: they do not change what a trial means (deadlines
# included: a search begun before they existed continues with the defaults).
RESUMABLE_CHANGES = (
    "max_trials",
    "train.out",
    "train.verbose",
    "train.export",
    "train.cache_records",
    "oracle_timeout_seconds",
    "train.worker_timeout_seconds",
)


def trial_config(config: TuneConfig, hp: keras_tuner.HyperParameters) -> TrainConfig:
    """The base TrainConfig with the searched fields drawn from `hp` (registered on first use)."""
    values = {name: plain_value(SEARCH_SPACE[name](hp)) for name in config.search}
    model = {k: v for k, v in values.items() if k in MODEL_FIELDS}
    train = {k: v for k, v in values.items() if k not in MODEL_FIELDS}
    return replace(config.train, model=replace(config.train.model, **model), **train)


class EmotfHyperModel(keras_tuner.HyperModel):
    """Builds and fits the twin-branch model for one trial, as `emotf.training.train.train_fold`
    does: through the trial's `emotf.training.task.Task` (the base config's, with the searched
    fields drawn), which builds the model, compiles it (loss, metrics, optimiser) and makes the
    datasets with `dataset_fn` (an `emotf.runs.data.DatasetFactory`; default
    `emotf.runs.data.records_dataset`) for the training and validation parts only. `fit` uses
    the tuner's callbacks (checkpoint of the best epoch, TensorBoard, reporting to the oracle).
    """

    def __init__(self, config: TuneConfig, dataset_fn: DatasetFactory | None = None):
        super().__init__(name="emotf")
        self.config = config
        self.task = Task(config.train, dataset_fn or records_dataset)
        self.dataset_fn = self.task.dataset_fn
        self.split = self.task.split  # the test part is never served
        self.policy = resolve_precision(config.train.precision)
        self._steps: dict[int, int] = {}  # batch size -> training batches per epoch

    def trial_config(self, hp: keras_tuner.HyperParameters) -> TrainConfig:
        """The trial's TrainConfig: `trial_config(self.config, hp)`, its classifier sized by the
        records' corpus (`emotf.training.task.Task`)."""
        return self.trial_task(hp).config

    def trial_task(self, hp: keras_tuner.HyperParameters) -> Task:
        """The trial's Task: the base one's data source and split, the trial's config."""
        return self.task.with_config(trial_config(self.config, hp))

    def steps_per_epoch(self, trial: TrainConfig) -> int:
        """Training batches per epoch for the trial's batch size (counted once per size)."""
        if trial.steps_per_epoch:
            return trial.steps_per_epoch
        if trial.batch_size not in self._steps:
            self._steps[trial.batch_size] = self.task.with_config(trial).count_steps()
        return self._steps[trial.batch_size]

    def build(self, hp):
        task = self.trial_task(hp)
        # keras-tuner calls keras.backend.clear_session() before every build, which also resets
        # the global dtype policy: set it again, or mixed precision would silently be lost.
        keras.mixed_precision.set_global_policy(self.policy)
        keras.utils.set_random_seed(task.config.seed)
        trainer = task.training_model(task.build_model())
        return task.compile(trainer, self.steps_per_epoch(task.config))

    def fit(self, hp, model, *args, **kwargs):
        """Train one trial. `kwargs` from keras-tuner: `callbacks`, `epochs` and (Hyperband,
        continuing a trial) `initial_epoch`, which is also passed to the factory as its `epoch`."""
        task = self.trial_task(hp)
        trial = task.config
        initial_epoch = int(kwargs.get("initial_epoch", 0))
        train_ds, val_ds, _ = task.fit_datasets(initial_epoch)
        return model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=int(kwargs.get("epochs", trial.epochs)),
            initial_epoch=initial_epoch,
            shuffle=False,  # the tf.data pipeline shuffles (emotf.pipeline); Keras would warn
            steps_per_epoch=trial.steps_per_epoch or None,
            callbacks=kwargs.get("callbacks", []),
            verbose=fit_verbose(trial.verbose),
        )


class _EmotfTuner:
    """Mixed into the keras-tuner tuners: `trials_run`, the ids of the trials this process ran
    (a worker's own account of its part of a distributed search), and a search space declared
    without building a model."""

    def _populate_initial_space(self):
        # keras-tuner builds the model to find the hyperparameters; emotf's have no conditions,
        # so drawing the trial config once declares them all, in the same order as `build`.
        hp = self.oracle.get_space()
        trial_config(self.hypermodel.config, hp)
        self.oracle.update_space(hp)

    def _try_run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        # keras-tuner's own keeps the whole traceback as the trial's message (and prints it
        # again when too many trials fail in a row): a failed trial is one warning line here,
        # and its message the error's first line.
        try:
            self._run_and_update_trial(trial, *fit_args, **fit_kwargs)
            trial.status = keras_tuner.engine.trial.TrialStatus.COMPLETED
            return
        except Exception as error:
            if isinstance(error, keras_tuner.errors.FatalError):
                raise
            failed = isinstance(error, keras_tuner.errors.FailedTrialError)
            trial.status = (
                keras_tuner.engine.trial.TrialStatus.FAILED
                if failed
                else keras_tuner.engine.trial.TrialStatus.INVALID
            )
            trial.message = first_line(error)
            print(
                f"emotf-tune: warning: trial {trial.trial_id} failed: {trial.message}",
                file=sys.stderr,
                flush=True,
            )

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.__dict__.setdefault("trials_run", []).append(trial.trial_id)


class _RandomSearch(_EmotfTuner, keras_tuner.RandomSearch):
    pass


class _BayesianOptimization(_EmotfTuner, keras_tuner.BayesianOptimization):
    pass


class _Hyperband(_EmotfTuner, keras_tuner.Hyperband):
    pass


def first_line(error: BaseException) -> str:
    """`Type: the first non-empty line of the message` of `error` (a trial's failure)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def make_tuner(config: TuneConfig, dataset_fn: DatasetFactory | None = None) -> keras_tuner.Tuner:
    """The keras-tuner tuner of `config.tuner` over `EmotfHyperModel`; reloads `out/search`.

    Made under `emotf.tuning.distributed.keras_tuner_environment`, it is the chief's tuner (the
    oracle), or a worker's (its oracle a gRPC client of the chief's), as keras-tuner reads it.
    """
    common = {
        "hypermodel": EmotfHyperModel(config, dataset_fn),
        "objective": keras_tuner.Objective("val_accuracy", direction="max"),
        # keras-tuner reads seed 0 as "no seed" (`seed or random.randint(...)`): shift by one
        # so that every seed, 0 included, gives a repeatable search.
        "seed": config.tuner_seed + 1,
        "directory": str(config.out),
        "project_name": "search",
        "overwrite": False,
    }
    if config.tuner == "random":
        tuner = _RandomSearch(max_trials=config.max_trials, **common)
    elif config.tuner == "bayesian":
        tuner = _BayesianOptimization(
            max_trials=config.max_trials,
            num_initial_points=max(2, config.max_trials // 3),
            **common,
        )
    else:
        tuner = _Hyperband(max_epochs=config.train.epochs, factor=3, **common)
    oracle = tuner.oracle  # a worker's is a client of the chief's, which holds the state
    if (
        isinstance(oracle, keras_tuner.Oracle)
        and not oracle.trials
        and (as_path(config.out) / "search" / "oracle.json").exists()
    ):
        # keras-tuner reloads the oracle only when it finds this tuner id's own file
        # (search/tuner0.json of a one-process search, search/chief.json of a distributed
        # one); a search begun under the other id would otherwise restart at trial 0 over it.
        oracle.reload()
    return tuner


def _flat(values: dict, prefix: str = "") -> dict:
    """{"train": {"model": {"dropout": ...}}} -> {"train.model.dropout": ...}."""
    flat = {}
    for key, value in values.items():
        if key in ("train", "model"):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def check_resume(out: str | StoragePath, config: TuneConfig) -> None:
    """Refuse to continue a search in `out` under another TuneConfig (it would mix two searches)."""
    out = as_path(out)
    previous = out / "tune_config.json"
    if not (out / "search").exists() or not previous.exists():
        return
    old = _flat(read_json(previous)["config"])
    diff = describe_changes(old, _flat(config.to_dict()), RESUMABLE_CHANGES)
    if diff:
        raise ValueError(
            f"{out} holds a search with another configuration; continuing would mix the two. "
            f"Use a new --out, or the same settings. Received: {diff}"
        )


def tune(
    config: TuneConfig, dataset_fn: DatasetFactory | None = None, role: TunerRole | None = None
) -> dict:
    """Run (or continue) the search in `config.out`; write the trials and the best config.

    Scores are validation-fold accuracies only: `dataset_fn` (default
    `emotf.runs.data.records_dataset`) is never asked for the test fold `config.train.fold`.

    `role` (default: keras-tuner's variables, `TunerRole.from_environ()`, which keras-tuner
    would obey anyway) makes this process one of a distributed search: the chief serves the
    oracle until every trial is done, then writes the outputs as a one-process search does; a
    worker runs trials until the chief has none left and writes only their files.

    Returns {"best_val_accuracy", "best_hyperparameters", "best_config" (TrainConfig dict),
    "best_config_path", "trials" (as in trials.json: every trial, best first), "tuner_id",
    "trials_run" (the ids of the trials this process trained)}; a worker's, only the last two.
    """
    role = TunerRole.from_environ() if role is None else role
    out = as_path(config.out)
    check_resume(out, config)
    # The shards of the base config's folds against the records' manifest, before any trial
    # (emotf.records.manifest; TrainConfig.allow_incomplete opts out and is recorded below).
    task = Task(config.train, dataset_fn or records_dataset)
    records_check = task.check_records(clip_lists=False)  # the test list is never read
    records_check.pop("clips_in_manifest", None)
    out.mkdir()
    if not role.is_worker:
        write_json(
            out / "tune_config.json", {"config": config.to_dict(), "environment": environment()}
        )
    if config.train.deterministic and not tf.config.list_physical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()  # as train_fold: CPU only, process-wide

    callbacks = [keras.callbacks.TensorBoard(str(out / "tensorboard"), profile_batch=0)]
    patience = config.train.early_stopping_patience
    if 0 < patience < config.train.epochs:
        callbacks.append(
            keras.callbacks.EarlyStopping("val_accuracy", mode="max", patience=patience)
        )
    with precision_policy(config.train.precision), keras_tuner_environment(role):
        tuner = make_tuner(config, dataset_fn)
        if role.is_chief:
            tuner.oracle.verbose = fit_verbose(config.train.verbose)
            serve_oracle(tuner, role)
        else:
            try:
                tuner.search(
                    epochs=config.train.epochs,
                    callbacks=callbacks,
                    verbose=fit_verbose(config.train.verbose),
                )
            except RuntimeError as error:
                if not str(error).startswith("Number of consecutive failures"):
                    raise
                # keras-tuner's words, then the last trial's message: one line instead.
                raise RuntimeError(
                    f"the search in {out / 'search'} stopped: "
                    f"{str(error).partition(chr(10))[0].rstrip('.')}; last failure: "
                    f"{' '.join(str(error).partition(chr(10))[2].split()) or 'unknown'}"
                ) from None
    ran = {"tuner_id": role.tuner_id or "tuner0", "trials_run": getattr(tuner, "trials_run", [])}
    if role.is_worker:
        return ran
    return {**write_results(tuner, config, records_check), **ran}
