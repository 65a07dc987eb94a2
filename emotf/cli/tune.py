"""`emotf-tune`: keras-tuner hyperparameter search on one fold's validation folds.

    emotf-tune --records R --fold K --out DIR [--max-trials 10] [--tuner random|bayesian|hyperband]
               [--search learning_rate,lr_schedule,dropout] [--epochs E] [--config FILE.json]
               [--FIELD VALUE ...]

Every `emotf-train` flag sets the base configuration of the trials (`--epochs` is the epochs per
trial); the test fold K is never read. Then: `emotf-train --config DIR/best_config.json`.
"""

from __future__ import annotations

import argparse
import sys

from emotf.cli.train import add_config_flags, resolve_config


def build_parser() -> argparse.ArgumentParser:
    from emotf.tune import DEFAULT_SEARCH, SEARCH_SPACE, TUNERS

    parser = argparse.ArgumentParser(prog="emotf-tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fold", default="0", help="test fold 0..9 (never read by the search)")
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--tuner", choices=TUNERS, default="random")
    parser.add_argument("--search", default=",".join(DEFAULT_SEARCH),
                        help=f"comma-separated, from {', '.join(sorted(SEARCH_SPACE))}")
    add_config_flags(parser)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from emotf.tune import TuneConfig, tune

    if str(args.fold) == "all":
        parser.error("emotf-tune searches on one fold's validation folds. Received: --fold all")
    try:
        train, _ = resolve_config(args)
        config = TuneConfig(
            train=train,
            out=train.out,
            max_trials=args.max_trials,
            tuner=args.tuner,
            search=tuple(name.strip() for name in args.search.split(",") if name.strip()),
        )
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    result = tune(config)
    print(f"best val_accuracy {100 * result['best_val_accuracy']:.1f} % over "
          f"{len(result['trials'])} trials {result['best_hyperparameters']} -> "
          f"{result['best_config_path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
