"""The configuration of one hyperparameter search (`emotf-tune`): `TuneConfig` and what can be
searched (`SEARCH_SPACE`). Light (no keras-tuner, no TensorFlow): the flags, `emotf.tuning.search`
and `emotf.tuning.outputs` all read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emotf.bounds import bounded, check_bounds
from emotf.configs import MAX_SEED, MAX_TIMEOUT_SECONDS, Config, TrainConfig

TUNERS = ("random", "bayesian", "hyperband")


# What can be searched: name -> how keras-tuner draws it. Names are TrainConfig fields, or
# ModelConfig fields (MODEL_FIELDS). The optimiser knobs the paper fixes by hand (SGD, lr 1e-3
# with a per-epoch staircase, momentum 0.9, batch 16) and the head's capacity/regularisation.
# Widths and N are left out on purpose: they change the model's cost, not only its fit.
SEARCH_SPACE = {
    # log-uniform: SGD's useful rates span three decades (1e-3 is the paper's, cosine wants ~1e-2)
    "learning_rate": lambda hp: hp.Float("learning_rate", 1e-4, 1e-1, sampling="log"),
    # `step` is left out: it stops training after a few hundred steps (docs/training.md)
    "lr_schedule": lambda hp: hp.Choice("lr_schedule", ["paper", "cosine", "constant"]),
    # 0 = plain SGD; the effective step is lr / (1 - momentum)
    "momentum": lambda hp: hp.Choice("momentum", [0.0, 0.5, 0.9, 0.95]),
    # also sets the steps per epoch, so the paper schedule's shape changes with it
    "batch_size": lambda hp: hp.Choice("batch_size", [8, 16, 32]),
    # before the FC layer; the paper's 0.5 is in the middle
    "dropout": lambda hp: hp.Float("dropout", 0.0, 0.6, step=0.1),
    # 0 = the softmax classifier is the only FC layer (the paper's literal reading)
    "fc_units": lambda hp: hp.Choice("fc_units", [0, 64, 128, 256]),
}
MODEL_FIELDS = ("dropout", "fc_units")
DEFAULT_SEARCH = ("learning_rate", "lr_schedule", "dropout")


@dataclass(frozen=True)
class TuneConfig(Config):
    """One hyperparameter search (`emotf-tune` flags map onto these fields; each field's
    description is its `help`).

    `train` is the base `TrainConfig` (records, fold, epochs per trial, model, sampling,
    precision, seed, early-stopping patience); each trial overrides the searched fields.
    `max_trials` is ignored by Hyperband: one Hyperband iteration with
    `max_epochs = train.epochs`, factor 3. The bayesian tuner (a Gaussian process) draws the
    first third of the trials, at least 2, at random. Weights and data use `train.seed` in
    every trial; `seed` only chooses which hyperparameters are tried.
    """

    train: TrainConfig = bounded(
        default_factory=TrainConfig,
        help="the base TrainConfig; each trial overrides the searched fields",
    )
    out: str = bounded(
        "runs/tune", nonempty=True, help="the search folder (see emotf.tuning.search)"
    )
    max_trials: int = bounded(
        10, ge=1, le=100_000, help="trials of the random and bayesian tuners (not hyperband)"
    )
    tuner: str = bounded("random", choices=TUNERS, help="random, bayesian or hyperband")
    search: tuple[str, ...] = bounded(
        DEFAULT_SEARCH,
        choices=tuple(SEARCH_SPACE),
        help="the hyperparameters searched, each once (names of SEARCH_SPACE)",
    )
    seed: int | None = bounded(
        None,
        ge=0,
        le=MAX_SEED,
        help="seed of the tuner's draws (which hyperparameters are tried); none = train.seed",
    )
    oracle_timeout_seconds: float = bounded(
        300.0,
        gt=0.0,
        le=MAX_TIMEOUT_SECONDS,
        help="how long a tuning worker waits for the chief's oracle",
    )

    def __post_init__(self):
        if isinstance(self.search, str):  # "a,b" in Python: the flag's syntax
            object.__setattr__(
                self, "search", tuple(s.strip() for s in self.search.split(",") if s.strip())
            )
        check_bounds(self)
        if isinstance(self.train, Mapping):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train))
        if not isinstance(self.train, TrainConfig):
            raise ValueError(
                "TuneConfig.train must be a TrainConfig or a JSON object of its "
                f"fields. Received: train={self.train!r}"
            )
        object.__setattr__(self, "search", tuple(self.search))
        if not self.search or len(set(self.search)) != len(self.search):
            raise ValueError(
                f"search must name one or more of {list(SEARCH_SPACE)}, each once. "
                f"Received: search={list(self.search)}"
            )
        if self.train.strategy not in ("auto", "one_device"):
            raise ValueError(
                "trials train on one device each; spread a search over GPUs or machines with "
                "one worker per device (--tuner-id tunerN --oracle-address HOST:PORT, "
                f"docs/tuning.md). Received: strategy={self.train.strategy!r}"
            )

    @property
    def tuner_seed(self) -> int:
        return self.train.seed if self.seed is None else self.seed
