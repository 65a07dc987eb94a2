"""`emotf-tune`: keras-tuner hyperparameter search on one fold's validation folds.

    emotf-tune --records R --fold K --out DIR [--max-trials 10] [--tuner random|bayesian|hyperband]
               [--search learning_rate,lr_schedule,dropout] [--tuner-seed S]
               [--config FILE.json] [--FIELD VALUE ...]
               [--tuner-id chief|tunerN --oracle-address HOST:PORT]

Every field of `emotf.tuning.config.TuneConfig` is a flag named by its dotted path
(`--tune.max_trials`, `--max_trials`, `--tune.seed`); its base `train` config takes every
`emotf-train` flag (`--epochs`, `--model.fc_units`, `--sampling.window_seconds`,
`--batch-size`, ...; also as `--train.epochs`), and `--config` is a TrainConfig file. `--seed`
is the training seed, as in emotf-train; `--tuner-seed` (= `--tune.seed`) the seed of the
hyperparameter draws. `--epochs` is the epochs per trial (Hyperband: the most epochs of a
trial). Fold K is never read. Re-run the same command to continue an interrupted search. Then:
`emotf-train --config DIR/best_config.json` (see docs/tuning.md).

Distributed search (keras-tuner's chief/worker mode): the same command, with the same DIR on a
shared filesystem or gs://, once with `--tuner-id chief` (serves the trials, trains nothing,
writes the trials table and best config at the end) and once per worker with `--tuner-id
tuner0`, `tuner1`, ..., all with `--oracle-address HOST:PORT` of the chief
(= `--distributed.tuner_id`, `--distributed.oracle_address`; or keras-tuner's variables
KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT, which the flags override).
A worker whose chief does not answer within `--oracle_timeout_seconds` (default 300 s) stops
with one line naming the oracle's address.
"""

from __future__ import annotations

import argparse
import sys

from emotf.cli import Parser, command
from emotf.cli.flags import ConfigFlags
from emotf.cli.train import ALL_FOLDS, fold_or_all, train_aliases
from emotf.configs import SAMPLING_SHAPES
from emotf.training.corpus import check_config
from emotf.tuning.config import TUNERS, TuneConfig
from emotf.tuning.distributed import TunerRole, wait_for_oracle


def tune_flags() -> ConfigFlags:
    return ConfigFlags(
        TuneConfig,
        "tune",
        promote=("train",),
        keyvalue={"--sampling": "train.sampling"},
        aliases={
            **train_aliases("train."),
            "--out": "out",
            "--max-trials": "max_trials",
            "--tuner-seed": "seed",
        },
        choices={"TuneConfig.tuner": TUNERS},
        types={"TrainConfig.fold": fold_or_all},
        config_at="train",
    )


def role_flags() -> ConfigFlags:
    return ConfigFlags(
        TunerRole,
        "distributed",
        aliases={"--tuner-id": "tuner_id", "--oracle-address": "oracle_address"},
        config_at=None,
    )


def build_parser(
    flags: ConfigFlags | None = None, roles: ConfigFlags | None = None
) -> argparse.ArgumentParser:
    parser = Parser(prog="emotf-tune", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    (flags or tune_flags()).add_to(parser)
    (roles or role_flags()).add_to(parser)
    return parser


def parse_config(argv=None):
    """The `TuneConfig` of a command line (see `parse_args`)."""
    return parse_args(argv)[0]


def parse_args(argv=None):
    """The `TuneConfig` and `TunerRole` of a command line; a bad flag or value (a role from
    the flags over keras-tuner's variables), or a changed search in the same folder, exits
    (status 2)."""
    from emotf.tuning.search import check_resume  # TensorFlow (emotf.quiet silenced it)

    flags, roles = tune_flags(), role_flags()
    parser = build_parser(flags, roles)
    args = parser.parse_args(argv)
    try:
        role = TunerRole.from_environ(**roles.given(args))
    except ValueError as error:
        parser.error(str(error))
    base = flags.file_values(args)
    sampling = base.get("train", {}).get("sampling")
    if isinstance(sampling, dict):  # derived from the model (see emotf.cli.train)
        base["train"]["sampling"] = {k: v for k, v in sampling.items() if k not in SAMPLING_SHAPES}
    values = flags.values(args, base=base)
    if str(values.get("train", {}).get("fold")) == ALL_FOLDS:
        parser.error(
            "emotf-tune searches on the validation folds of one test fold. Received: --fold all"
        )
    if "out" not in values:
        parser.error("--out DIR (the search folder) is required")
    try:
        config = flags.build(values)
        check_config(config.train)  # the class count and folds against the records' corpus
        check_resume(config.out, config)  # a changed search: a usage error, not a crash
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    return config, role


@command("emotf-tune")
def main(argv=None) -> int:
    config, role = parse_args(argv)
    from emotf.tuning.search import tune  # imports TensorFlow: only after parsing

    wait_for_oracle(role, config.oracle_timeout_seconds)  # a worker: its chief must answer
    result = tune(config, role=role)
    if role.is_worker:
        ran = ", ".join(result["trials_run"]) or "none"
        print(
            f"{role.tuner_id}: trials run: {ran} (the chief writes the trials table and "
            f"best_config.json in {config.out})"
        )
        return 0
    print(
        f"best val_accuracy {100 * result['best_val_accuracy']:.1f} % "
        f"({len(result['trials'])} trials, {result['best_hyperparameters']}) -> "
        f"{result['best_config_path']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
