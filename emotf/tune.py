"""Hyperparameter search with keras-tuner on one cross-validation fold's validation folds.

Protocol (as in `emotf.train.train_fold`): for test fold K, the search trains on the training
folds and scores each trial by its best `val_accuracy` on the validation folds (the next
folds after K). The test fold is never read: pick hyperparameters here, then run
`emotf-train --config OUT/best_config.json` (or `--fold all`) to get the reported accuracy.

OUT holds keras-tuner's project (`OUT/search/`: oracle state, one folder per trial with its
best-epoch weights; every trial sees the same samples (the base seed), so one fit per trial; a search re-run with the same OUT continues where it stopped and does not
redo finished trials), `OUT/tensorboard/` (one run per trial and execution), `trials.json`
(every finished trial, best first) and `best_config.json` (the best trial as a full
`TrainConfig`, in the `RUN/config.json` layout that `emotf-train --config` reads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import keras
import keras_tuner

from emotf.model import build_model, training_model
from emotf.precision import precision_policy
from emotf.schedules import LR_SCHEDULES, make_schedule
from emotf.train import DatasetFn, TrainConfig, fit_datasets, records_dataset, split_folds

TUNERS = ("random", "bayesian", "hyperband")


def _learning_rate(hp, base: TrainConfig) -> TrainConfig:
    return replace(base, learning_rate=hp.Float("learning_rate", 1e-4, 1e-1, sampling="log"))


def _lr_schedule(hp, base: TrainConfig) -> TrainConfig:
    return replace(base, lr_schedule=hp.Choice("lr_schedule", list(LR_SCHEDULES)))


def _momentum(hp, base: TrainConfig) -> TrainConfig:
    return replace(base, momentum=hp.Choice("momentum", [0.0, 0.5, 0.9, 0.95]))


def _batch_size(hp, base: TrainConfig) -> TrainConfig:
    return replace(base, batch_size=hp.Choice("batch_size", [8, 16, 32]))


def _dropout(hp, base: TrainConfig) -> TrainConfig:
    return replace(base, model=replace(base.model, dropout=hp.Float("dropout", 0.0, 0.6, step=0.1)))


def _fc_units(hp, base: TrainConfig) -> TrainConfig:
    return replace(base, model=replace(base.model, fc_units=hp.Choice("fc_units", [64, 128, 256])))


# What can be searched, and over which range: the optimiser knobs the paper fixes by hand
# (SGD, lr 1e-3 with a staircase, momentum 0.9, batch 16) and the head's regularisation.
# Widths and N stay with the user: they change the model's cost, not only its fit.
SEARCH_SPACE: dict[str, Callable] = {
    "learning_rate": _learning_rate,  # log-uniform in [1e-4, 1e-1]
    "lr_schedule": _lr_schedule,  # paper / step / cosine / constant
    "momentum": _momentum,  # 0, 0.5, 0.9, 0.95
    "batch_size": _batch_size,  # 8, 16, 32
    "dropout": _dropout,  # 0.0 .. 0.6 in steps of 0.1
    "fc_units": _fc_units,  # 64, 128, 256
}
DEFAULT_SEARCH = ("learning_rate", "lr_schedule", "dropout")


@dataclass(frozen=True)
class TuneConfig:
    """One hyperparameter search (`emotf-tune` flags map onto these fields).

    Attributes:
        train: the base `TrainConfig` (records, fold, epochs per trial, model, sampling,
            precision, seed); each trial overrides the searched fields.
        out: the search folder (see the module docstring).
        max_trials: trials to run (random and bayesian; hyperband sizes its own brackets
            from `train.epochs`).
        tuner: "random", "bayesian" (Gaussian-process) or "hyperband".
        search: names from `SEARCH_SPACE`.
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    out: str = "runs/tune"
    max_trials: int = 10
    tuner: str = "random"
    search: tuple[str, ...] = DEFAULT_SEARCH

    def __post_init__(self):
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train))
        object.__setattr__(self, "search", tuple(self.search))
        unknown = [name for name in self.search if name not in SEARCH_SPACE]
        if unknown or not self.search:
            raise ValueError(
                f"search must name one or more of {sorted(SEARCH_SPACE)}. "
                f"Received: search={list(self.search)}"
            )
        if self.tuner not in TUNERS:
            raise ValueError(f"tuner must be one of {TUNERS}. Received: tuner={self.tuner!r}")
        if self.max_trials < 1:
            raise ValueError(f"max_trials must be >= 1. Received: max_trials={self.max_trials}")


def trial_config(config: TuneConfig, hp: keras_tuner.HyperParameters) -> TrainConfig:
    """The base TrainConfig with the searched fields set from `hp` (registered on first use)."""
    trial = config.train
    for name in config.search:
        trial = SEARCH_SPACE[name](hp, trial)
    return trial


class EmotfHyperModel(keras_tuner.HyperModel):
    """Builds and fits the twin-branch model for one trial, as `train_fold` would.

    `build` compiles the training model (SGD with the trial's schedule); `fit` trains on the
    training folds and validates on the validation folds. Datasets come from `dataset_fn`
    (`emotf.train.DatasetFn`), rebuilt for every trial.
    """

    def __init__(self, config: TuneConfig, dataset_fn: DatasetFn | None = None):
        super().__init__(name="emotf")
        self.config = config
        self.dataset_fn = dataset_fn or records_dataset
        self.train_folds, self.val_folds, _ = split_folds(
            config.train.fold, config.train.validation_folds
        )
        self._datasets = None  # (training, validation, steps) of the trial being built

    def build(self, hp):
        trial = trial_config(self.config, hp)
        keras.utils.set_random_seed(trial.seed)
        # Fresh datasets with the base seed for every trial: all trials see the same samples,
        # so their scores differ by the hyperparameters only.
        self._datasets = fit_datasets(self.dataset_fn, trial, self.train_folds, self.val_folds)
        _, _, steps = self._datasets
        trainer = training_model(build_model(trial.model))
        trainer.compile(
            optimizer=keras.optimizers.SGD(make_schedule(trial, steps), momentum=trial.momentum),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        return trainer

    def fit(self, hp, model, *args, **kwargs):
        trial = trial_config(self.config, hp)
        dataset, validation, steps = self._datasets
        return model.fit(
            dataset,
            validation_data=validation,
            epochs=kwargs.get("epochs", trial.epochs),
            initial_epoch=kwargs.get("initial_epoch", 0),
            steps_per_epoch=steps if trial.steps_per_epoch else None,
            callbacks=kwargs.get("callbacks", []),
            verbose=trial.verbose,
        )


def make_tuner(config: TuneConfig, dataset_fn: DatasetFn | None = None) -> keras_tuner.Tuner:
    """The keras-tuner tuner of `config.tuner` over `EmotfHyperModel`, resuming from `out`."""
    common = dict(
        hypermodel=EmotfHyperModel(config, dataset_fn),
        objective=keras_tuner.Objective("val_accuracy", direction="max"),
        seed=config.train.seed,
        directory=config.out,
        project_name="search",
        overwrite=False,
    )
    if config.tuner == "random":
        return keras_tuner.RandomSearch(max_trials=config.max_trials, **common)
    if config.tuner == "bayesian":
        return keras_tuner.BayesianOptimization(max_trials=config.max_trials, **common)
    return keras_tuner.Hyperband(max_epochs=max(2, config.train.epochs), factor=3, **common)


def tune(config: TuneConfig, dataset_fn: DatasetFn | None = None) -> dict:
    """Run (or continue) the search; write `trials.json` and `best_config.json` into `out`.

    Returns {"best_val_accuracy", "best_hyperparameters", "best_config" (TrainConfig dict),
    "trials" (finished trials, best first), "best_config_path"}.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with precision_policy(config.train.precision):
        tuner = make_tuner(config, dataset_fn)
        tuner.search(
            epochs=config.train.epochs,
            callbacks=[keras.callbacks.TensorBoard(str(out / "tensorboard"), profile_batch=0)],
        )
    finished = [
        t for t in tuner.oracle.trials.values()
        if t.status == keras_tuner.engine.trial.TrialStatus.COMPLETED and t.score is not None
    ]
    finished.sort(key=lambda t: t.score, reverse=True)
    if not finished:
        raise RuntimeError(f"no trial of the search in {out} finished; see its logs")
    trials = [
        {"trial_id": t.trial_id, "val_accuracy": float(t.score),
         "hyperparameters": dict(t.hyperparameters.values)}
        for t in finished
    ]
    best = trial_config(config, finished[0].hyperparameters)
    best = replace(best, out=str(out / "best-run"))
    (out / "trials.json").write_text(json.dumps(trials, indent=2))
    best_path = out / "best_config.json"
    best_path.write_text(json.dumps({"config": best.to_dict(), "tuning": {
        "val_accuracy": trials[0]["val_accuracy"],
        "hyperparameters": trials[0]["hyperparameters"],
        "validation_folds": tuner.hypermodel.val_folds,
        "tuner": config.tuner,
        "trials": len(trials),
    }}, indent=2))
    return {
        "best_val_accuracy": trials[0]["val_accuracy"],
        "best_hyperparameters": trials[0]["hyperparameters"],
        "best_config": best.to_dict(),
        "best_config_path": str(best_path),
        "trials": trials,
    }
