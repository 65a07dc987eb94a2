"""`emotf-make-sample`: write a synthetic CREMA-D sample (see `emotf.synthetic.sample`), or with
`--corpus ravdess` a synthetic RAVDESS sample (see `emotf.synthetic.ravdess`).

    emotf-make-sample --out DIR [--corpus cremad|ravdess] [--tiny] [--workers N]
                      [--config FILE.json] [--FIELD VALUE ...]

Every `SampleConfig` field is a flag named by its dotted path (`--num_actors 2` =
`--sample.num_actors 2`, `--snr_db 15,25`, `--fps 25`); the older names stay (`--actors`,
`--clips-per-actor`, `--seed`).
`--tiny` starts from `SampleConfig.tiny()` (2 actors x 3 short clips); a `--config` file and
the flags override it. With `--corpus ravdess` the fields are `RavdessSampleConfig`'s (the same
flag names where the fields agree; `--tiny` is its 320x180 preset).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from emotf.cli import Parser, command
from emotf.cli.flags import ConfigFlags, int_in, kebab_aliases, nonempty_path
from emotf.synthetic.ravdess import RavdessSampleConfig, make_ravdess_sample
from emotf.synthetic.sample import SampleConfig, make_sample

MAX_WORKERS = 256  # processes writing clips: far above any machine's use, below an overflow

SAMPLE_FLAGS = ConfigFlags(
    SampleConfig,
    "sample",
    aliases={**kebab_aliases(SampleConfig), "--actors": "num_actors"},
)
RAVDESS_FLAGS = ConfigFlags(
    RavdessSampleConfig,
    "sample",
    aliases={**kebab_aliases(RavdessSampleConfig), "--actors": "num_actors"},
)
# corpus -> (its config's flags, the writer)
CORPORA: dict[str, tuple[ConfigFlags, Callable[..., list[Path]]]] = {
    "cremad": (SAMPLE_FLAGS, make_sample),
    "ravdess": (RAVDESS_FLAGS, make_ravdess_sample),
}
DEFAULT_CORPUS = "cremad"


def _corpus_flag(parser) -> None:
    parser.add_argument(
        "--corpus",
        choices=tuple(CORPORA),
        default=DEFAULT_CORPUS,
        help="the layout to write: cremad (VideoFlash/*.flv, AudioWAV/*.wav; the default) or "
        "ravdess (Actor_NN/01-01-EE-II-SS-RR-AA.mp4)",
    )


def _corpus_of(argv) -> str:
    """The `--corpus` of a command line (its flags depend on it); a bad value is left to the
    full parser to report."""
    pre = Parser(prog="emotf-make-sample", add_help=False, allow_abbrev=False)
    pre.add_argument("--corpus", default=DEFAULT_CORPUS)
    known, _ = pre.parse_known_args(argv)
    return known.corpus if known.corpus in CORPORA else DEFAULT_CORPUS


def parse_config(argv=None):
    """(config, args) of a command line: a `SampleConfig`, or a `RavdessSampleConfig` with
    `--corpus ravdess`; a bad flag or value exits (status 2)."""
    flags, _ = CORPORA[_corpus_of(argv)]
    parser = Parser(
        prog="emotf-make-sample",
        description="Write a synthetic CREMA-D sample (VideoFlash/*.flv, AudioWAV/*.wav, "
        "sample.json) or, with --corpus ravdess, a RAVDESS one (Actor_NN/*.mp4, sample.json).",
        allow_abbrev=False,
    )
    parser.add_argument("--out", required=True, type=nonempty_path, help="output folder")
    _corpus_flag(parser)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help=f"start from {flags.cls.__name__}.tiny(): 2 actors x 3 short clips",
    )
    parser.add_argument(
        "--workers",
        type=int_in(1, MAX_WORKERS, "a number of processes"),
        default=None,
        help=f"processes, 1 to {MAX_WORKERS} (default: auto)",
    )
    flags.add_to(parser)
    args = parser.parse_args(argv)
    base = {
        **(flags.cls.tiny().to_dict() if args.tiny else {}),
        **flags.file_values(args),
    }
    try:
        config = flags.build(flags.values(args, base=base))
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    return config, args


@command("emotf-make-sample")
def main(argv: list[str] | None = None) -> int:
    config, args = parse_config(argv)
    start = time.perf_counter()
    _, write = CORPORA[args.corpus]
    paths = write(args.out, config, workers=args.workers)
    print(
        f"wrote {len(paths)}{' RAVDESS' * (args.corpus == 'ravdess')} clips "
        f"({config.num_actors} actors) to {args.out} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
