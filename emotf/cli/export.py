"""`emotf-export`: write a training run's model as a SavedModel with in-graph preprocessing.

    emotf-export RUN [--out DIR] [--version V]

Writes `DIR/<V>/` (TensorFlow Serving layout; default DIR = RUN/export, V = next integer) and
prints its path. RUN and DIR may be local or `tf.io.gfile` URLs (`gs://bucket/...`). See
docs/serving.md for the signatures. The new model's ops are checked against the allowlist that
`emotf-predict` enforces (`emotf.graph_ops`, SECURITY.md): a TensorFlow whose export uses an op
the list lacks gets a one-line warning here (`emotf.export.export_saved_model`), not only a
refusal later at predict time.
"""

from __future__ import annotations

import sys

from emotf.cli import Parser, command


@command("emotf-export")
def main(argv=None) -> int:
    parser = Parser(prog="emotf-export", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="emotf-train run folder (holds model.keras and config.json)")
    parser.add_argument("--out", default=None, help="model base folder (default: RUN/export)")
    parser.add_argument("--version", type=int, default=None, help="version number (default: next)")
    args = parser.parse_args(argv)

    from emotf.export import export_run

    print(export_run(args.run, args.out, args.version))  # errors: one line (emotf.cli.command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
