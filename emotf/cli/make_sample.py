"""`emotf-make-sample`: write a synthetic CREMA-D sample (see `emotf.synthetic.sample`)."""

from __future__ import annotations

import time

from emotf.cli import Parser, command
from emotf.synthetic.sample import SampleConfig, make_sample


@command("emotf-make-sample")
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="emotf-make-sample",
        description="Write a synthetic CREMA-D sample: VideoFlash/*.flv, AudioWAV/*.wav, "
        "sample.json.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--actors", type=int, default=None, help="number of actors (default 10)")
    parser.add_argument("--clips-per-actor", type=int, default=None, help="default 12")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="2 actors x 3 short clips")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: auto)")
    args = parser.parse_args(argv)

    fields = {"seed": args.seed}
    if args.actors is not None:
        fields["num_actors"] = args.actors
    if args.clips_per_actor is not None:
        fields["clips_per_actor"] = args.clips_per_actor
    config = SampleConfig.tiny(**fields) if args.tiny else SampleConfig(**fields)
    start = time.perf_counter()
    paths = make_sample(args.out, config, workers=args.workers)
    print(f"wrote {len(paths)} clips ({config.num_actors} actors) to {args.out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
