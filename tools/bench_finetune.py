"""Fine-tuning vs training from scratch, measured on the synthetic CREMA-D and RAVDESS samples.

    python tools/bench_finetune.py [--work DIR] [--source-epochs 10] [--epochs 4]
                                   [--seeds 0,1,2] [--freeze none,both-branches]

1. `emotf.synthetic.sample.make_sample` (CREMA-D: `--cremad-actors` actors, one per fold, x
   `--cremad-clips` clips) and `emotf.synthetic.ravdess.make_ravdess_sample` (RAVDESS:
   `--ravdess-actors` actors, one per fold of 6, x `--ravdess-clips` clips), both built into
   records with `--crop`-pixel faces (`emotf.records.build.build_records`); reused when present.
2. The source: `emotf.training.train.train_fold` on the CREMA-D records (test fold 0,
   `--source-epochs` epochs), 6 classes.
3. On the RAVDESS records (test fold 0, validation fold 1, training folds 2-5), 8 classes, for
   each seed: a run from scratch and a run per `--freeze` value starting from the source
   (`init_from`: branch weights loaded, classifier re-initialised), all with the same epochs,
   schedule and data order. The held-out (test fold) accuracy is what is compared.
Prints one line per variant (mean and per-seed accuracy, chance = 1/8) and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emotf.configs import ModelConfig, TrainConfig  # noqa: E402
from emotf.media.faces import FaceTrackerConfig  # noqa: E402
from emotf.records.build import build_records  # noqa: E402
from emotf.records.config import BuildConfig  # noqa: E402
from emotf.records.folder import RecordsFolder  # noqa: E402
from emotf.synthetic.ravdess import RavdessSampleConfig, make_ravdess_sample  # noqa: E402
from emotf.synthetic.sample import SampleConfig, make_sample  # noqa: E402
from emotf.training.train import train_fold  # noqa: E402

# The demo's small model (emotf.demo.DEMO_MODEL) at a smaller face crop.
MODEL = ModelConfig(
    num_segments=4,
    frame_size=64,
    video_stem_width=8,
    video_widths=(16, 32),
    audio_widths=(8, 16, 32),
    fc_units=32,
    dropout=0.3,
)


def records(work: Path, corpus: str, actors: int, clips: int, crop: int) -> Path:
    """The synthetic sample of `corpus` built into records under `work` (reused if there)."""
    data, out = work / f"{corpus}-sample", work / f"{corpus}-records"
    if RecordsFolder(out).manifest_path.is_file():
        return out
    if corpus == "cremad":
        make_sample(data, SampleConfig(num_actors=actors, clips_per_actor=clips))
    else:
        make_ravdess_sample(
            data,
            RavdessSampleConfig.tiny(num_actors=actors, clips_per_actor=clips),
            progress=False,
        )
    build_records(
        BuildConfig(
            str(data),
            str(out),
            corpus=corpus,
            progress=False,
            tracker=FaceTrackerConfig(crop_size=crop),
        )
    )
    return out


def run(records_dir: Path, out: Path, epochs: int, seed: int, verbose: int, **extra) -> dict:
    """`train_fold` on test fold 0 (validation fold 1); the run's metrics (reused if there)."""
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    config = TrainConfig(
        records=str(records_dir),
        out=str(out),
        fold=0,
        epochs=epochs,
        batch_size=8,
        learning_rate=0.02,
        lr_schedule="cosine",
        early_stopping_patience=0,
        seed=seed,
        precision="float32",
        verbose=verbose,
        export=False,
        model=dataclasses.replace(MODEL, frame_size=extra.pop("crop")),
        **extra,
    )
    return train_fold(config)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/bench_finetune")
    parser.add_argument("--cremad-actors", type=int, default=10)
    parser.add_argument("--cremad-clips", type=int, default=12)
    parser.add_argument("--ravdess-actors", type=int, default=6)
    parser.add_argument("--ravdess-clips", type=int, default=16)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--source-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--freeze", default="none,both-branches")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    cremad = records(work, "cremad", args.cremad_actors, args.cremad_clips, args.crop)
    ravdess = records(work, "ravdess", args.ravdess_actors, args.ravdess_clips, args.crop)
    built = round(time.time() - start, 1)
    source_dir = work / "source"
    source = run(cremad, source_dir, args.source_epochs, 0, args.verbose, crop=args.crop)
    print(
        f"source: CREMA-D, {args.source_epochs} epochs: held-out accuracy "
        f"{100 * source['accuracy']:.1f} % (chance {100 / 6:.1f} %)",
        flush=True,
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = {"scratch": {}} | {
        f"fine-tuned (freeze {f})": {"init_from": str(source_dir), "freeze": f}
        for f in args.freeze.split(",")
    }
    results: dict[str, dict] = {}
    for name, extra in variants.items():
        begun, accuracies = time.time(), []
        for seed in seeds:
            tag = name.split(" ")[0] + ("-" + extra["freeze"] if extra else "")
            out = work / f"ravdess-{tag}-seed{seed}"
            metrics = run(ravdess, out, args.epochs, seed, args.verbose, crop=args.crop, **extra)
            accuracies.append(metrics["accuracy"])
        results[name] = {
            "mean_accuracy": statistics.fmean(accuracies),
            "accuracies": accuracies,
            "seconds": round(time.time() - begun, 1),
        }
        print(
            f"{name:>30}: RAVDESS held-out accuracy {100 * results[name]['mean_accuracy']:.1f} % "
            f"(seeds {seeds}: {', '.join(f'{100 * a:.1f}' for a in accuracies)}; "
            f"{args.epochs} epochs; chance {100 / 8:.1f} %)",
            flush=True,
        )
    print(
        json.dumps(
            {
                "source_accuracy": source["accuracy"],
                "results": results,
                "epochs": args.epochs,
                "source_epochs": args.source_epochs,
                "seeds": seeds,
                "records_seconds": built,
                "model": dataclasses.replace(MODEL, frame_size=args.crop).to_dict(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
