"""`emotf-demo`: the whole chain on the built-in synthetic sample (see `emotf.demo`).

Every `DemoConfig` field is a flag named by its dotted path (`--epochs 5` = `--demo.epochs 5`,
`--model.fc_units 16`, `--num_actors 4`); the older names stay (`--actors`, `--clips-per-actor`).
`--verbose 2` is the Keras verbosity; a bare `--verbose` shows TensorFlow's logs.
"""

from __future__ import annotations

from emotf.cli import Parser, command
from emotf.cli.flags import ConfigFlags, kebab_aliases
from emotf.configs import ModelConfig
from emotf.demo import DemoConfig, run_demo

DEMO_FLAGS = ConfigFlags(
    DemoConfig,
    "demo",
    aliases={
        **kebab_aliases(DemoConfig),
        **kebab_aliases(ModelConfig, "model."),
        "--actors": "num_actors",
    },
)


def parse_config(argv=None) -> DemoConfig:
    """The `DemoConfig` of a command line; a bad flag or value exits (status 2)."""
    parser = Parser(
        prog="emotf-demo",
        description="sample -> emotf-build-records -> emotf-train (one fold) -> export -> "
        "emotf-predict on a held-out clip, on synthetic CREMA-D-like data",
        allow_abbrev=False,
    )
    DEMO_FLAGS.add_to(parser)
    args = parser.parse_args(argv)
    try:
        config = DEMO_FLAGS.build(DEMO_FLAGS.values(args))
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    return config


@command("emotf-demo")
def main(argv=None) -> int:
    run_demo(parse_config(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
