"""`emotf-train`: train/evaluate on one cross-validation fold, or on all ten.

    emotf-train --records R --fold K --out RUN [--config FILE.json] [--FIELD VALUE ...]
    emotf-train --records R --fold all --out RUNS

Every field of `emotf.train.TrainConfig` and of its `model` (`emotf.model.ModelConfig`) is a
flag (`--batch-size`, `--lr-schedule`, `--branch-weights`, `--video-widths 64,128,256`, ...);
sampling fields are set with `--sampling KEY=VALUE` (repeatable). A JSON config file (same
layout as the `config` object in RUN/config.json) gives defaults; flags override it.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import fields

from emotf.cli import Parser, command
from emotf.configs import BRANCH_WEIGHTS, LR_SCHEDULES, MODALITIES, PRECISIONS, ModelConfig

ALIASES = {"learning_rate": ["--lr"], "early_stopping_patience": ["--patience"]}
CHOICES = {
    "branch_weights": BRANCH_WEIGHTS,
    "modalities": MODALITIES,
    "precision": PRECISIONS,
    "lr_schedule": LR_SCHEDULES,
    "labels": ("intended", "perceived"),  # emotf.labels.LABEL_SOURCES
}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false. Received: {text!r}")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace("x", ",").split(",") if v)


def _type_of(annotation):
    text = str(annotation)
    if "tuple" in text:
        return _ints
    if "bool" in text:
        return _bool
    if "float" in text:
        return float
    if "int" in text:
        return int
    return str


def _add_fields(parser, cls, skip=()):
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            *ALIASES.get(f.name, []),
            dest=f.name,
            type=_type_of(hints[f.name]),
            # a bare boolean flag (`--allow-incomplete`) means true
            **({"nargs": "?", "const": True} if _type_of(hints[f.name]) is _bool else {}),
            choices=CHOICES.get(f.name),
            default=None,
            help=f"{cls.__name__}.{f.name} (default {f.default!r})",
        )


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """--config, --sampling and one flag per TrainConfig / ModelConfig field (not --fold)."""
    from emotf.configs import TrainConfig

    parser.add_argument("--config", help="JSON file of TrainConfig fields (flags override it)")
    parser.add_argument("--sampling", action="append", default=[], metavar="KEY=VALUE",
                        help="a SamplingConfig field (VALUE parsed as JSON when it can be)")
    _add_fields(parser, TrainConfig, skip=("model", "sampling", "fold"))
    _add_fields(parser.add_argument_group("model"), ModelConfig)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="emotf-train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fold", help="test fold 0..9, or 'all' for the 10-fold cross-validation")
    add_config_flags(parser)
    return parser


def resolve_config(args: argparse.Namespace):
    """(TrainConfig, run_all_folds) from the config file, then the flags."""
    from emotf.configs import TrainConfig

    values = json.loads(open(args.config).read()) if args.config else {}
    values = values.get("config", values)  # accept a RUN/config.json as is
    model = dict(values.pop("model", {}))
    sampling = dict(values.pop("sampling", {}))
    fold = args.fold if args.fold is not None else values.pop("fold", 0)
    values.pop("fold", None)
    for f in fields(TrainConfig):
        if f.name not in ("model", "sampling", "fold") and getattr(args, f.name) is not None:
            values[f.name] = getattr(args, f.name)
    for f in fields(ModelConfig):
        if getattr(args, f.name) is not None:
            model[f.name] = getattr(args, f.name)
    for item in args.sampling:
        key, _, text = item.partition("=")
        try:
            sampling[key] = json.loads(text)
        except json.JSONDecodeError:
            sampling[key] = text
    run_all = str(fold) == "all"
    if run_all and values.get("split", "actors") != "actors":
        raise ValueError("--fold all is the actor-independent cross-validation; a clip-level "
                         f"split has one test list. Received: --split {values['split']}")
    config = TrainConfig(
        **values, fold=0 if run_all else int(fold), model=ModelConfig.from_dict(model), sampling=sampling
    )
    return config, run_all


@command("emotf-train")
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, run_all = resolve_config(args)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    from emotf.train import train_all_folds, train_fold

    if run_all:
        summary = train_all_folds(config)
        print(f"cross-validation: {100 * summary['mean_accuracy']:.1f} % +- {100 * summary['std_accuracy']:.1f} "
              f"over {summary['num_folds']} folds -> {config.out}/cv_summary.md")
    else:
        metrics = train_fold(config)
        where = (f"fold {metrics['fold']}" if metrics["fold"] is not None else
                 f"split {metrics['split']} test list (speaker-dependent)")
        print(f"{where}: accuracy {100 * metrics['accuracy']:.1f} % "
              f"({metrics['num_clips']} clips) -> {config.out}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
