"""`emotf-tune`: keras-tuner hyperparameter search on one fold's validation folds.

    emotf-tune --records R --fold K --out DIR [--max-trials 10] [--tuner random|bayesian|hyperband]
               [--search learning_rate,lr_schedule,dropout] [--tuner-seed S]
               [--config FILE.json] [--FIELD VALUE ...]

Every `emotf-train` flag (and `--config`) sets the base configuration of the trials; `--epochs`
is the epochs per trial (Hyperband: the most epochs of a trial). Fold K is never read. Re-run
the same command to continue an interrupted search. Then:
`emotf-train --config DIR/best_config.json` (see docs/tuning.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emotf.cli import Parser, command
from emotf.cli.train import add_config_flags, resolve_config


def build_parser() -> argparse.ArgumentParser:
    from emotf.tune import DEFAULT_SEARCH, SEARCH_SPACE, TUNERS

    parser = Parser(prog="emotf-tune", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fold", help="test fold 0..9: never read; the search validates on the next fold(s)"
    )
    parser.add_argument("--max-trials", type=int, default=10, help="random/bayesian (default 10)")
    parser.add_argument("--tuner", choices=TUNERS, default="random")
    parser.add_argument(
        "--search",
        default=",".join(DEFAULT_SEARCH),
        help=f"comma-separated, from: {', '.join(SEARCH_SPACE)} "
        f"(default {','.join(DEFAULT_SEARCH)})",
    )
    parser.add_argument(
        "--tuner-seed",
        type=int,
        default=None,
        help="seed of the hyperparameter draws (default: --seed)",
    )
    add_config_flags(parser)
    return parser


@command("emotf-tune")
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from emotf.tune import TuneConfig, check_resume, tune

    if str(args.fold) == "all":
        parser.error(
            "emotf-tune searches on the validation folds of one test fold. Received: --fold all"
        )
    if args.out is None:
        parser.error("--out DIR (the search folder) is required")
    try:
        train, _ = resolve_config(args)
        config = TuneConfig(
            train=train,
            out=args.out,
            max_trials=args.max_trials,
            tuner=args.tuner,
            search=args.search,
            seed=args.tuner_seed,
        )
        check_resume(Path(config.out), config)  # a changed search: a usage error, not a crash
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    result = tune(config)
    print(
        f"best val_accuracy {100 * result['best_val_accuracy']:.1f} % "
        f"({len(result['trials'])} trials, {result['best_hyperparameters']}) -> "
        f"{result['best_config_path']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
