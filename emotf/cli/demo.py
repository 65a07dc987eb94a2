"""`emotf-demo`: the whole chain on the built-in synthetic sample (see `emotf.demo`)."""

from __future__ import annotations

from emotf.cli import Parser, command
from emotf.demo import DemoConfig, run_demo


@command("emotf-demo")
def main(argv=None) -> int:
    defaults = DemoConfig()
    parser = Parser(
        prog="emotf-demo",
        description="sample -> emotf-build-records -> emotf-train (one fold) -> export -> "
        "emotf-predict on a held-out clip, on synthetic CREMA-D-like data",
    )
    parser.add_argument("--out", default=defaults.out, help="working folder (resumable)")
    parser.add_argument("--actors", type=int, default=defaults.num_actors)
    parser.add_argument("--clips-per-actor", type=int, default=defaults.clips_per_actor)
    parser.add_argument("--fold", type=int, default=defaults.fold, help="held-out test fold")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=None, help="build workers (all cores)")
    parser.add_argument("--verbose", type=int, default=defaults.verbose, help="Keras verbosity")
    args = parser.parse_args(argv)
    run_demo(
        DemoConfig(
            out=args.out,
            num_actors=args.actors,
            clips_per_actor=args.clips_per_actor,
            fold=args.fold,
            epochs=args.epochs,
            seed=args.seed,
            workers=args.workers,
            verbose=args.verbose,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
