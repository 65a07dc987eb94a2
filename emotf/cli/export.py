"""`emotf-export`: write a training run's model as a SavedModel with in-graph preprocessing, or
as a LiteRT (TensorFlow Lite) flatbuffer.

    emotf-export RUN [--out DIR] [--version V]
    emotf-export RUN --format litert [--quantize none|float16|dynamic|int8] [--out DIR]

SavedModel (the default): writes `DIR/<V>/` (TensorFlow Serving layout; default DIR =
RUN/export, V = next integer) and prints its path. RUN and DIR may be local or `tf.io.gfile`
URLs (`gs://bucket/...`). See docs/serving.md for the signatures. The model's classes are the
run's corpus (its `metrics.json`, else its records' manifest; CREMA-D for older runs). The new
model's ops are checked against the allowlist that `emotf-predict` enforces
(`emotf.serving.graph_ops`, SECURITY.md): a TensorFlow whose export uses an op the list lacks
gets a one-line warning here (`emotf.serving.export.export_saved_model`), not only a refusal
later at predict time.

LiteRT: writes `DIR/emotf.tflite` (default DIR = RUN/litert), the per-segment model with the
log-mel spectrogram inside, builtin ops only, and `DIR/emotf.tflite.json` (the metadata), and
prints the model's path; `emotf-predict --model DIR/emotf.tflite` runs it. int8 calibrates on
clips of the run's records. See docs/litert.md (`emotf.serving.litert_convert`).
"""

from __future__ import annotations

import sys

from emotf.cli import Parser, command
from emotf.serving.litert import QUANTIZE_MODES  # no TensorFlow import: --help stays fast

FORMATS = ("savedmodel", "litert")


@command("emotf-export")
def main(argv=None) -> int:
    parser = Parser(prog="emotf-export", description=__doc__.split("\n")[0])
    # (the run's file names are emotf.runs.folder's; importing it here would load Keras)
    parser.add_argument("run", help="a finished emotf-train run folder (its model and config)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="savedmodel",
        help="savedmodel (default) or litert (a .tflite flatbuffer)",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default=None,
        help="litert only: none (float32, default), float16, dynamic or int8",
    )
    parser.add_argument(
        "--out", default=None, help="model base folder (default: RUN/export; RUN/litert for litert)"
    )
    parser.add_argument(
        "--version", type=int, default=None, help="savedmodel only: version number (default: next)"
    )
    args = parser.parse_args(argv)
    if args.format == "litert":
        if args.version is not None:
            parser.error("--version applies to --format savedmodel only")
        # After parsing: imports TensorFlow (emotf.quiet has silenced it; --help stays fast).
        from emotf.serving.litert_convert import export_run_litert

        print(export_run_litert(args.run, args.out, args.quantize or "none"))
        return 0
    if args.quantize is not None:
        parser.error("--quantize applies to --format litert only")

    from emotf.serving.export import export_run  # imports TensorFlow: only after parsing

    print(export_run(args.run, args.out, args.version))  # errors: one line (emotf.cli.command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
