"""`emotf-evaluate`: metrics, confusion matrix, curves, accuracy vs N, CV report.

emotf-evaluate --run RUN [--records R] [--fold K] [--out DIR]
emotf-evaluate --model RUN/model.keras --records R --fold K
emotf-evaluate --run RUN --segments 1..10         # accuracy vs N (shared weights only)
emotf-evaluate --cv-dir CV [--records R]          # Table I report of emotf-train --fold all
emotf-evaluate --compare RUN_A RUN_B              # A minus B on the same clips, t interval
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys

import emotf.configs
from emotf.bounds import check_value
from emotf.cli import Parser, command
from emotf.cli.flags import parse_bool
from emotf.corpora.votes import load_votes
from emotf.evaluation.compare import compare_predictions
from emotf.evaluation.evaluate import accuracy_vs_segments, evaluate_model
from emotf.evaluation.reports import cv_report
from emotf.evaluation.summary import ReportExtras
from emotf.runs.data import check_records_folder
from emotf.runs.folder import CONFIG_FILE, MODEL_FILE, PREDICTIONS_FILE
from emotf.storage import as_path

_INTEGER = re.compile(r"^[+-]?[0-9]+$")  # ASCII digits only: int() also takes '１' and '١'


def _integer(text: str) -> int:
    if not _INTEGER.match(text.strip()):
        raise ValueError(f"not an integer: {text!r}")
    return int(text)


def bounded_int(config: str, name: str):
    """An argparse `type`: an integer within the bound the field `name` of the config class
    `config` (in `emotf.configs`) declares, so a flag and the config accept the same values."""

    def parse(text: str) -> int:
        try:
            value = _integer(text)
            check_value(getattr(emotf.configs, config), name, value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    parse.__name__ = f"{config}.{name}"
    return parse


def parse_segments(text: str) -> list[int]:
    """`"1..10"`, `"1,2,4,8"` or `"10"` -> sorted list of N, each within ModelConfig.num_segments'
    declared bound."""
    try:
        if ".." in text:
            ends = [_integer(v) for v in text.split("..", 1)]
        else:
            ends = [_integer(v) for v in text.split(",") if v.strip()]
    except ValueError:
        ends = []
    if not ends or (".." in text and ends[0] > ends[1]):
        raise argparse.ArgumentTypeError(
            f"expected N >= 1 as 'A..B' or a comma list. Received: {text!r}"
        )
    segments = bounded_int("ModelConfig", "num_segments")
    try:
        for n in ends:
            segments(str(n))
    except argparse.ArgumentTypeError as error:  # "'0..3': ModelConfig.num_segments must be..."
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return list(range(ends[0], ends[1] + 1)) if ".." in text else sorted(set(ends))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="emotf-evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", help=f"a run folder of emotf-train ({MODEL_FILE}, {CONFIG_FILE})")
    target.add_argument("--model", help=f"a {MODEL_FILE} file or the folder holding it")
    target.add_argument("--cv-dir", help="an emotf-train --fold all folder: write the CV report")
    target.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help=f"two evaluated runs (or their {PREDICTIONS_FILE}): A minus B on the "
        "clips both scored, with a t interval over actors",
    )
    parser.add_argument("--records", help="records folder (default: the one in the run's config)")
    parser.add_argument(
        "--fold",
        type=bounded_int("TrainConfig", "fold"),
        action="append",
        help="fold(s) to evaluate on (repeatable; default: the run's test fold)",
    )
    parser.add_argument("--out", help="output folder (default: RUN/evaluation, or CV for --cv-dir)")
    parser.add_argument(
        "--segments",
        type=parse_segments,
        help="also measure accuracy vs N at inference, e.g. 1..10",
    )
    parser.add_argument(
        "--trained-runs",
        nargs="*",
        default=(),
        help="runs trained with other N, added to the accuracy-vs-N curve",
    )
    parser.add_argument(
        "--batch-size", type=bounded_int("TrainConfig", "batch_size"), help="evaluation batch size"
    )
    parser.add_argument(
        "--labels",
        choices=("intended", "perceived"),
        help="score against the file name's emotion or the raters' audio-visual "
        "majority (emotf.corpora.labels; default: the run's)",
    )
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="evaluate records that fail the manifest check anyway (recorded)",
    )
    parser.add_argument("--votes", help="CREMA-D tabulatedVotes.csv (default: the shipped copy)")
    for name in EXTRAS:  # emotf.evaluation.summary.ReportExtras, each on by default
        parser.add_argument(
            f"--extras.{name}",
            dest=f"extras_{name}",
            type=parse_bool,
            default=True,
            metavar="BOOL",
            help=f"report extra '{name}' (default: true)",
        )
    return parser


# The fields of emotf.evaluation.summary.ReportExtras, each a --extras.NAME flag.
EXTRAS = tuple(f.name for f in dataclasses.fields(ReportExtras))


def _extras(args) -> ReportExtras:
    return ReportExtras(**{name: getattr(args, f"extras_{name}") for name in EXTRAS})


def _check_paths(args) -> None:
    """Every path given, checked before anything is loaded: one line naming the flag and the
    path (not a NotFoundError from deep inside TensorFlow).

    Raises:
        ValueError: a path that is missing, or of the wrong kind.
    """

    def exists(flag, path, kind=None):
        if path is None:
            return
        if not str(path).strip():
            raise ValueError(f"{flag} is empty: give a path")
        p = as_path(path)
        if not p.exists():
            raise ValueError(f"{flag} {path}: no such file or folder")
        if kind == "dir" and not p.is_dir():
            raise ValueError(f"{flag} {path}: a file, not a folder")
        if kind == "file" and p.is_dir():
            raise ValueError(f"{flag} {path}: a folder, not a file")

    exists("--run", args.run, "dir")
    exists("--model", args.model)
    exists("--cv-dir", args.cv_dir, "dir")
    for path in args.compare or ():
        exists("--compare", path)
    for path in args.trained_runs or ():
        exists("--trained-runs", path, "dir")
    exists("--votes", args.votes, "file")
    if args.out is not None and not str(args.out).strip():
        raise ValueError("--out is empty: give a folder")
    if args.records is not None:
        check_records_folder(args.records)


@command("emotf-evaluate")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _check_paths(args)
    if args.compare:
        try:
            print(json.dumps(compare_predictions(*args.compare), indent=1))
        except (FileNotFoundError, ValueError) as error:
            print(f"emotf-evaluate: error: {error}", file=sys.stderr)
            return 2
        return 0
    votes = load_votes(args.votes)
    if args.cv_dir:
        # Folds without predictions are evaluated on --records, else on the records their
        # config.json names (a warning says when neither exists: human rows stay n/a).
        md_path, json_path = cv_report(
            args.cv_dir,
            args.out,
            votes=votes,
            records=args.records,
            evaluate=True,
            extras=_extras(args),
        )
        print(f"wrote {md_path} and {json_path}")
        return 0

    target = args.run or args.model
    report = evaluate_model(
        target,
        args.records,
        args.fold,
        args.out,
        batch_size=args.batch_size,
        votes=votes,
        labels=args.labels,
        allow_incomplete=args.allow_incomplete,
        extras=_extras(args),
    )
    summary = {
        "accuracy": report["accuracy"],
        "num_examples": report["num_examples"],
        "folds": report["folds"],
        "num_segments": report["num_segments"],
        **{key: report[key] for key in ("split", "protocol") if key in report},
        "accuracy_95ci": [
            ((report.get("confidence_intervals") or {}).get("model") or {}).get(k)
            for k in ("low", "high")
        ],
        "ece": (report.get("calibration") or {}).get("ece"),
    }
    if args.segments:
        run = as_path(target) if as_path(target).is_dir() else as_path(target).parent
        rows = accuracy_vs_segments(
            run,
            args.records,
            args.fold,
            args.out,
            segments=args.segments,
            other_runs=args.trained_runs,
            batch_size=args.batch_size,
        )
        summary["accuracy_vs_n"] = rows
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
