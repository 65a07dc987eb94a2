"""Learning, shown: on the synthetic sample, `both` modalities beat `audio` and `video` alone.

    python tools/learning_demo.py [--work DIR] [--records DIR] [--folds 0] [--epochs 30]

1. `emotf.synthetic.sample.make_sample`: the `emotf-demo` sample, 10 actors x 36 clips (one
   actor per fold), seed 0. Its cues are planted so that each modality alone tells only a pair
   of emotions (~1/2 accuracy at best) and the two together tell all six.
2. `emotf.records.build.build_records` on it (skipped with --records DIR).
3. `emotf.training.train.train_fold` three times (modalities both / audio / video), test
   fold(s) --folds, with a small CPU-sized model: N=4 segments, widths video 8 | 16,32,
   audio 8,16,32, fc 32, SGD momentum 0.9 with a cosine schedule from lr 0.02, batch 8.
   Validation = the next fold (its actor held out of training); the reported fold is looked at
   once.
Prints the held-out-fold accuracies (chance = 1/6) and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emotf.configs import TrainConfig
from emotf.demo import DEMO_MODEL, DemoConfig  # noqa: E402
from emotf.training.train import train_fold  # noqa: E402


def build_demo_records(work: Path) -> Path:
    """Synthetic sample -> record shards under `work` (reused when already built)."""
    from emotf.records.build import build_records
    from emotf.records.config import BuildConfig
    from emotf.synthetic.config import SampleConfig
    from emotf.synthetic.sample import make_sample

    sample, records = work / "sample", work / "records"
    if not (sample / "sample.json").exists():
        demo = DemoConfig()  # the same sample as emotf-demo
        make_sample(
            sample,
            SampleConfig(
                num_actors=demo.num_actors, clips_per_actor=demo.clips_per_actor, seed=demo.seed
            ),
        )
    if not (records / "manifest.json").exists():
        build_records(BuildConfig(data_dir=str(sample), out_dir=str(records)))
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/learning_demo")
    parser.add_argument("--records", help="pre-built record shards of the synthetic sample")
    parser.add_argument("--folds", default="0", help="comma-separated test folds")
    parser.add_argument("--epochs", type=int, default=DemoConfig().epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)

    work = Path(args.work)
    records = Path(args.records) if args.records else build_demo_records(work)
    folds = [int(k) for k in args.folds.split(",")]
    accuracies, seconds = {}, {}
    for modalities in ("both", "audio", "video"):
        start, accs = time.time(), []
        for fold in folds:
            config = TrainConfig(
                records=str(records),
                out=str(work / f"run-{modalities}-fold{fold}"),
                fold=fold,
                epochs=args.epochs,
                batch_size=8,
                learning_rate=0.02,
                lr_schedule="cosine",
                early_stopping_patience=0,
                seed=args.seed,
                precision="float32",
                verbose=args.verbose,
                model=dataclasses.replace(DEMO_MODEL, modalities=modalities),
            )
            accs.append(train_fold(config)["accuracy"])
        accuracies[modalities] = sum(accs) / len(accs)
        seconds[modalities] = round(time.time() - start, 1)
        print(
            f"{modalities:>5}: held-out-fold accuracy {100 * accuracies[modalities]:.1f} % "
            f"(folds {folds}, {seconds[modalities]:.0f} s)"
        )
    print(
        f"chance: {100 / 6:.1f} %; both beats audio and video: "
        f"{accuracies['both'] > max(accuracies['audio'], accuracies['video'])}"
    )
    print(
        json.dumps(
            {
                "accuracy": accuracies,
                "seconds": seconds,
                "folds": folds,
                "epochs": args.epochs,
                "model": DEMO_MODEL.to_dict(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
