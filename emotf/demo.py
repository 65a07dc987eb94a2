"""The end-to-end demo on the built-in synthetic sample (`emotf-demo`).

    make the sample -> build records -> train one fold briefly -> export a SavedModel
    -> predict a held-out clip from its raw video + WAV -> evaluation report and figures

Every step is the library function the console scripts call, so the demo exercises the same
code a user runs on CREMA-D. The model is a small CPU-sized variant of the default (fewer
segments, narrower layers); the steps are reused when their outputs already exist, so an
interrupted demo resumes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from emotf.bounds import bounded, check_bounds
from emotf.configs import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_LEARNING_RATE,
    MAX_SEED,
    VERBOSITIES,
    Config,
    ModelConfig,
    TrainConfig,
)
from emotf.corpora.cremad import FIRST_ACTOR, LAST_ACTOR, canonical_folds, parse_clip_name
from emotf.corpora.info import CREMAD_INFO
from emotf.media.faces import FaceTrackerConfig
from emotf.records.build import build_records
from emotf.records.config import BuildConfig
from emotf.records.folder import RecordsFolder
from emotf.storage import as_path, write_json
from emotf.synthetic.config import MAX_CLIPS_PER_ACTOR, SampleConfig
from emotf.synthetic.sample import make_sample

DEMO_MODEL = ModelConfig(
    num_segments=4,
    video_stem_width=8,
    video_widths=(16, 32),
    audio_widths=(8, 16, 32),
    fc_units=32,
    dropout=0.3,
)


@dataclass(frozen=True)
class DemoConfig(Config):
    """Sizes of the demo. The defaults run in a few minutes on a 2-core CPU."""

    out: str = bounded(
        "demo_out", nonempty=True, help="the demo's folder: sample, records, run, figures"
    )
    num_actors: int = bounded(
        10,
        ge=1,
        le=LAST_ACTOR - FIRST_ACTOR + 1,
        help="actors of the synthetic sample (CREMA-D has 91)",
    )
    clips_per_actor: int = bounded(
        36, ge=1, le=MAX_CLIPS_PER_ACTOR, help="clips per actor of the synthetic sample"
    )
    fold: int = bounded(0, ge=0, le=CREMAD_INFO.num_folds - 1, help="the held-out test fold")
    epochs: int = bounded(30, ge=1, le=MAX_EPOCHS, help="epochs to train")
    batch_size: int = bounded(8, ge=1, le=MAX_BATCH_SIZE, help="clips per batch")
    learning_rate: float = bounded(
        0.02, gt=0.0, le=MAX_LEARNING_RATE, help="initial learning rate (cosine schedule)"
    )
    seed: int = bounded(0, ge=0, le=MAX_SEED, help="seed of the sample, the weights and the data")
    workers: int | None = bounded(
        None,
        ge=1,
        le=1024,
        help="processes making the sample and building the records "
        "(none = the CPUs this process may use)",
    )
    model: ModelConfig = bounded(DEMO_MODEL, help="the (small) model of the demo")
    verbose: int = bounded(
        2,
        choices=VERBOSITIES,
        help="Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch",
    )

    def __post_init__(self):
        check_bounds(self)
        if isinstance(self.model, Mapping):  # from JSON (`from_dict`)
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))
        if not isinstance(self.model, ModelConfig):
            raise ValueError(
                "DemoConfig.model must be a ModelConfig or a JSON object of its "
                f"fields. Received: model={self.model!r}"
            )


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.time()


def held_out_clip(sample_dir, fold: int, num_actors: int | None = None) -> Path:
    """The first video of `sample_dir/VideoFlash` whose actor is in `fold` (the build's default
    fold assignment). Never falls back to a training clip: ValueError when the fold has none."""
    folds = canonical_folds()
    test_actors = {actor for actor, f in folds.items() if f == fold}
    videos = sorted((Path(sample_dir) / "VideoFlash").glob("*.flv"))
    held_out = [v for v in videos if parse_clip_name(v).actor_id in test_actors]
    if not held_out:
        raise ValueError(
            f"no clip of the held-out fold in {sample_dir}: its actors are in other folds, and "
            f"predicting a training clip would not be a held-out prediction. Received: "
            f"fold={fold}, num_actors={num_actors}, num_videos={len(videos)}"
        )
    return held_out[0]


def run_demo(config: DemoConfig = DemoConfig()) -> dict:
    """Run the whole chain into `config.out`; returns (and prints) where everything is."""
    # These import TensorFlow: here, so that `emotf-demo --help` and usage errors stay instant
    # and TensorFlow is imported after emotf.quiet has silenced it.
    from emotf.evaluation.evaluate import evaluate_model
    from emotf.runs.folder import Run
    from emotf.serving.export import export_run
    from emotf.serving.predict import predict_files
    from emotf.training.train import train_fold

    out = Path(config.out)
    sample_dir, records_dir = out / "sample", out / "records"
    run = Run(out / "run")
    run_dir = run.path
    timings = {}

    start = _step(f"1/6 synthetic CREMA-D sample -> {sample_dir}")
    if not (sample_dir / "sample.json").exists():
        make_sample(
            sample_dir,
            SampleConfig(
                num_actors=config.num_actors,
                clips_per_actor=config.clips_per_actor,
                seed=config.seed,
            ),
            workers=config.workers,
        )
    timings["sample_s"] = round(time.time() - start, 1)

    start = _step(f"2/6 emotf-build-records -> {records_dir}")
    build = BuildConfig(
        data_dir=str(sample_dir),
        out_dir=str(records_dir),
        # Face crops of the model's own frame size: the run refuses records of another
        # crop size (emotf.runs.data.check_records_settings), nothing resizes them.
        tracker=FaceTrackerConfig(crop_size=config.model.frame_size),
    )
    if config.workers:
        build = replace(build, workers=config.workers)
    build_records(build, prog="emotf-demo")
    timings["build_s"] = round(time.time() - start, 1)

    start = _step(f"3/6 emotf-train --fold {config.fold} -> {run_dir}")
    if run.finished:
        metrics = run.read_metrics()
    else:
        metrics = train_fold(
            TrainConfig(
                records=str(records_dir),
                out=str(run_dir),
                fold=config.fold,
                epochs=config.epochs,
                batch_size=config.batch_size,
                learning_rate=config.learning_rate,
                lr_schedule="cosine",
                early_stopping_patience=0,
                seed=config.seed,
                precision="auto",
                verbose=config.verbose,
                model=config.model,
            )
        )
    timings["train_s"] = round(time.time() - start, 1)

    start = _step(f"4/6 emotf-export -> {run.export_dir}")
    saved = metrics.get("saved_model")  # emotf-train exports at the end of a run
    export_dir = as_path(saved) if saved and as_path(saved).exists() else export_run(run_dir)
    timings["export_s"] = round(time.time() - start, 1)

    start = _step("5/6 emotf-predict on a held-out clip (raw FLV + WAV)")
    video = held_out_clip(sample_dir, config.fold, config.num_actors)
    audio = sample_dir / "AudioWAV" / f"{video.stem}.wav"
    prediction = predict_files(export_dir, [video], audios=[audio])[0]
    timings["predict_s"] = round(time.time() - start, 1)

    start = _step(f"6/6 emotf-evaluate -> {run.evaluation.path}")
    evaluation = evaluate_model(run_dir)
    timings["evaluate_s"] = round(time.time() - start, 1)

    summary = {
        "sample": str(sample_dir),
        "records": str(records_dir),
        "run": str(run_dir),
        "saved_model": str(export_dir),
        "held_out_fold": config.fold,
        "held_out_accuracy": metrics["accuracy"],
        "held_out_clips": metrics["num_clips"],
        "held_out_accuracy_reevaluated": evaluation["accuracy"],
        "predicted_clip": video.name,
        "true_label": parse_clip_name(video).emotion,
        "prediction": prediction,
        "figures": sorted(str(p) for p in run.evaluation.path.glob("*.png")),
        "timings_s": timings,
    }
    write_json(out / "demo_summary.json", summary)
    print("\n== done")
    print(f"sample:        {sample_dir}")
    print(f"records:       {records_dir} ({RecordsFolder.MANIFEST})")
    print(
        f"training run:  {run_dir} ({run.metrics_path.name}, {run.log_path.name}, "
        f"{run.tensorboard_dir.name}/)"
    )
    print(f"SavedModel:    {export_dir}")
    print(
        f"held-out fold {config.fold}: accuracy {100 * metrics['accuracy']:.1f} % on "
        f"{metrics['num_clips']} clips (chance 16.7 %)"
    )
    print(f"figures:       {run.evaluation.path} (confusion matrix, training curves)")
    print(
        f"predicted {video.name} (true {summary['true_label']}): "
        f"{prediction.get('label_code', prediction)}"
    )
    print(f"times (s):     {timings}")
    return summary
