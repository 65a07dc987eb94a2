"""How often 95 % intervals for an accuracy hold the truth when actors differ.

    python tools/interval_coverage.py [--actors 9] [--clips 80] [--trials 400] [--seed 0]

Simulates test folds of `--actors` actors x `--clips` clips whose accuracies are drawn from
Beta(7, 3) (mean 0.7, so actors differ as real ones do) and counts how often each interval
holds 0.7:
    actor t      `emotf.evaluation.stats.actor_intervals` (what emotf reports),
    actor boot   a percentile bootstrap over actors (1,000 resamples),
    clip Wald    a normal interval treating every clip as independent.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np

from emotf.corpora.cremad import EMOTIONS, INTENSITIES, SENTENCES
from emotf.evaluation.stats import actor_intervals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actors", type=int, default=9)
    parser.add_argument("--clips", type=int, default=80, help="clips per actor (<= 288)")
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    combos = list(itertools.product(SENTENCES, EMOTIONS, INTENSITIES))[: args.clips]
    clips = [f"{1001 + a}_{s}_{e}_{i}" for a in range(args.actors) for s, e, i in combos]
    actor = np.repeat(np.arange(args.actors), args.clips)
    hits = {"actor t": 0, "actor boot": 0, "clip Wald": 0}
    for _ in range(args.trials):
        correct = rng.random(actor.size) < rng.beta(7, 3, size=args.actors)[actor]
        ci = actor_intervals(clips, correct)["model"]
        hits["actor t"] += ci["low"] <= 0.7 <= ci["high"]
        right = np.bincount(actor, weights=correct)
        draws = rng.integers(0, args.actors, size=(1000, args.actors))
        boot = right[draws].sum(1) / (args.clips * args.actors)
        low, high = np.quantile(boot, [0.025, 0.975])
        hits["actor boot"] += low <= 0.7 <= high
        mean = correct.mean()
        half = 1.96 * np.sqrt(mean * (1 - mean) / correct.size)
        hits["clip Wald"] += mean - half <= 0.7 <= mean + half
    print(json.dumps({**vars(args), "coverage": {k: v / args.trials for k, v in hits.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
