"""`emotf-make-sample`: write a synthetic CREMA-D sample (see `emotf.synthetic.sample`).

    emotf-make-sample --out DIR [--tiny] [--workers N] [--config FILE.json] [--FIELD VALUE ...]

Every `SampleConfig` field is a flag named by its dotted path (`--num_actors 2` = `--sample.num_actors 2`,
`--snr_db 15,25`, `--fps 25`); the older names stay (`--actors`, `--clips-per-actor`, `--seed`).
`--tiny` starts from `SampleConfig.tiny()` (2 actors x 3 short clips); a `--config` file and
the flags override it.
"""

from __future__ import annotations

import time

from emotf.cli import Parser, command
from emotf.cli.flags import ConfigFlags, int_in, kebab_aliases, nonempty_path
from emotf.synthetic.sample import SampleConfig, make_sample

MAX_WORKERS = 256  # processes writing clips: far above any machine's use, below an overflow

SAMPLE_FLAGS = ConfigFlags(
    SampleConfig,
    "sample",
    aliases={**kebab_aliases(SampleConfig), "--actors": "num_actors"},
)


def parse_config(argv=None):
    """(SampleConfig, args) of a command line; a bad flag or value exits (status 2)."""
    parser = Parser(
        prog="emotf-make-sample",
        description="Write a synthetic CREMA-D sample: VideoFlash/*.flv, AudioWAV/*.wav, "
        "sample.json.",
        allow_abbrev=False,
    )
    parser.add_argument("--out", required=True, type=nonempty_path, help="output folder")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="start from SampleConfig.tiny(): 2 actors x 3 short clips",
    )
    parser.add_argument(
        "--workers",
        type=int_in(1, MAX_WORKERS, "a number of processes"),
        default=None,
        help=f"processes, 1 to {MAX_WORKERS} (default: auto)",
    )
    SAMPLE_FLAGS.add_to(parser)
    args = parser.parse_args(argv)
    base = {
        **(SampleConfig.tiny().to_dict() if args.tiny else {}),
        **SAMPLE_FLAGS.file_values(args),
    }
    try:
        config = SAMPLE_FLAGS.build(SAMPLE_FLAGS.values(args, base=base))
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    return config, args


@command("emotf-make-sample")
def main(argv: list[str] | None = None) -> int:
    config, args = parse_config(argv)
    start = time.perf_counter()
    paths = make_sample(args.out, config, workers=args.workers)
    print(
        f"wrote {len(paths)} clips ({config.num_actors} actors) to {args.out} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
