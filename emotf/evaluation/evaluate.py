"""Evaluation: metrics, confusion matrix, figures, per-clip predictions, accuracy vs N.

The pure parts (`emotf.evaluation.figures`) take plain arrays, lists and dicts; the glue
(`evaluate_model`, `accuracy_vs_segments`) loads a run's saved model, runs the deterministic
evaluation pipeline (`emotf.pipeline.make_dataset(..., training=False, with_metadata=True)`)
and writes next to the run (`RUN/evaluation/`) or to `out`:

    evaluation.json        accuracy, per-class precision/recall/F1/support, confusion matrix
                           (`emotf.evaluation.metrics.clip_metrics`), the labels used and how
                           often intended and perceived labels agree, and the report extras
                           (`emotf.evaluation.summary.ReportExtras`)
    predictions.csv        clip_id, label, predicted, p_<class> per class (CREMA-D: p_ANG ..
                           p_SAD; the mean of the N softmaxes); for another corpus also
                           actor_id (the records')
    confusion_matrix.csv   counts, rows = true class, columns = predicted class
    confusion_matrix.png   row-normalised colours, counts and row percentages in the cells
    training_curves.png    from RUN/training_log.csv when present
    accuracy_vs_n.csv/png  with `accuracy_vs_segments`

The classes are the run's corpus's (`emotf.runs.folder.Run.corpus`: `metrics.json`'s `corpus`,
else the records manifest's, else CREMA-D). Figures use matplotlib's Agg backend (no screen
needed). Runs, model files and the output folder may be local or on any filesystem
`tf.io.gfile` knows (`gs://`, `ram://`; `emotf.storage`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from emotf import pipeline
from emotf.configs import TrainConfig
from emotf.corpora.info import CorpusInfo
from emotf.corpora.labels import PERCEIVED, agreement, check_source, relabel
from emotf.corpora.splits import ACTORS, SPEAKER_DEPENDENT, Selection, check_fingerprint
from emotf.evaluation.figures import json_safe, plot_accuracy_vs_n, plot_training_curves
from emotf.evaluation.metrics import predict_clips
from emotf.evaluation.summary import ALL_EXTRAS, ReportExtras, summarize_predictions
from emotf.model import build_model, model_sampling_config
from emotf.records.manifest import check_records
from emotf.runs.data import (
    DatasetFactory,
    as_selection,
    check_records_folder,
    check_records_settings,
    config_split,
)
from emotf.runs.folder import EvaluationDir, Run
from emotf.runs.model_io import check_archive
from emotf.storage import as_path, write_json

# === Glue: a run's saved model + the records ===
#
# Evaluation datasets come from an `emotf.runs.data.DatasetFactory` called as
# `dataset_fn(part, False, config, 0)`, where `config` is the run's TrainConfig with the batch
# size, labels and number of segments N of this evaluation; its batches carry the clip ids:
# (inputs dict, labels int32 [B], {"clip_id": string [B]}).


def records_evaluation_dataset(records) -> DatasetFactory:
    """The default evaluation factory: `emotf.pipeline.make_dataset(records, ...,
    training=False, with_metadata=True)` with the config's sampling (the run's, with its N),
    relabelled with `config.labels` (`emotf.corpora.labels`)."""

    def dataset_fn(part: Selection, training: bool, config: TrainConfig, epoch: int):
        dataset = pipeline.make_dataset(
            records,
            list(part.folds),
            training=False,
            config=config.sampling,
            batch_size=config.batch_size,
            with_metadata=True,
            clip_ids=part.clips,
        )
        return relabel(dataset, config.labels)

    return dataset_fn


def with_segments(config: TrainConfig, num_segments: int, **changes) -> TrainConfig:
    """`config` with N = `num_segments` (model and sampling) and other fields changed."""
    return replace(config, model=replace(config.model, num_segments=int(num_segments)), **changes)


def _train_config(run: Run) -> TrainConfig:
    """The run's TrainConfig; the defaults for a bare model file without a config.json."""
    return run.train_config() if run.has_config() else TrainConfig()


def _resolve(records, folds, run: Run, config: TrainConfig) -> tuple[str, Selection]:
    """(records folder, what to evaluate): the folds given, else the run's test part (its
    test fold, or the test list of a clip-level split)."""
    records = records or config.records
    if config.split != ACTORS:
        if folds is not None:  # folds of a clip-level run hold its training clips
            raise ValueError(
                f"this run used the clip-level split {config.split!r}: its "
                f"folds hold training clips; evaluate it on its test list (no "
                f"fold). Received: folds={folds}"
            )
        split = config_split(config)
        check_fingerprint(split, run.recorded_split(), "the model")
        return records, split.test
    if folds is None:
        folds = run.test_fold()
        if folds is None:
            raise ValueError(f"no fold given and {run.config_path} names no test fold")
    return records, as_selection(folds)


def _describe(part: Selection, config: TrainConfig) -> str:
    if part.clips is not None:
        return f"split {config.split!r} test list (speaker-dependent)"
    return f"folds {list(part.folds)}"


def _clip_predictions(model, dataset, corpus: CorpusInfo):
    predictions = predict_clips(model, dataset)
    if predictions.clip_ids is None:
        raise ValueError(
            "an evaluation dataset must carry clip ids: (inputs, labels, {'clip_id': ...}) batches"
        )
    width = predictions.probabilities.shape[-1]
    if width != corpus.num_classes:
        raise ValueError(
            f"the model scores {width} classes, corpus {corpus.name!r} has "
            f"{corpus.num_classes} ({list(corpus.class_codes)}): a model of another corpus?"
        )
    return predictions


def _check_labels(label_source: str, corpus: CorpusInfo) -> str:
    """Perceived labels are the raters' majority: CREMA-D's votes only."""
    if label_source == PERCEIVED and not corpus.has_rater_votes:
        raise ValueError(
            f"labels={PERCEIVED!r} needs rater votes; corpus {corpus.name!r} has none "
            "(CREMA-D's only): use labels='intended'"
        )
    return label_source


def evaluate_model(
    model_dir_or_run,
    records=None,
    folds=None,
    out=None,
    *,
    batch_size: int | None = None,
    votes=None,
    dataset_fn: DatasetFactory | None = None,
    curves: bool = True,
    labels: str | None = None,
    allow_incomplete: bool = False,
    extras: ReportExtras = ALL_EXTRAS,
) -> dict:
    """Evaluate a saved model on the clips of some folds and write the report files.

    Args:
        model_dir_or_run: a run folder (`emotf.runs.folder.Run`) or a model file.
        records: records folder; default: the one in the run's config.
        folds: fold index or list; default: the run's test fold.
        out: output folder; default the run's `evaluation/`.
        dataset_fn: an evaluation `DatasetFactory` (see above; tests inject tiny datasets).
        curves: also plot the run's training log when it has one.
        labels: "intended" or "perceived" (`emotf.corpora.labels`); default: the run's.
        allow_incomplete: evaluate records that fail the manifest check (`emotf.records.manifest`)
            anyway; the problems are recorded in the report.
        extras: which report extras to compute (`emotf.evaluation.summary.ReportExtras`).

    Returns the evaluation dict written to `evaluation.json` (see `summarize_predictions`)
    plus "folds", "num_segments", "model", "labels" and "label_agreement".
    """
    path = as_path(model_dir_or_run)
    run = Run.of(path)
    config = _train_config(run)
    records, part = _resolve(records, folds, run, config)
    label_source = check_source(labels or config.labels)
    records_check = {}
    # The model file first (cheap: its zip directory and config.json, nothing loaded): a
    # crafted or broken archive is refused as such, before anything else is looked at.
    model_file = path if path.is_file() else run.model_path
    if model_file.is_file():
        check_archive(model_file)
    corpus = run.corpus(records or None)
    _check_labels(label_source, corpus)
    if dataset_fn is None:
        if not records:
            raise ValueError(f"no records folder given and {run.config_path} names none")
        # A missing folder, a file, a folder of something else, records of another audio rate
        # or crop size: one line before the model is loaded (not a NotFoundError mid-run).
        check_records_folder(records)
        check_records_settings(config, records)
        records_check = check_records(records, list(part.folds), allow_incomplete)
        records_check.pop("clips_in_manifest", None)
        dataset_fn = records_evaluation_dataset(records)
    files = EvaluationDir(out) if out else run.evaluation
    model = run.load_model(path if path.is_file() else None)
    num_segments = int(model.inputs[0].shape[1])
    eval_config = with_segments(
        config, num_segments, batch_size=batch_size or config.batch_size, labels=label_source
    )
    predictions = _clip_predictions(model, dataset_fn(part, False, eval_config, 0), corpus)
    title = f"{_describe(part, config)}, N={num_segments}"
    report = summarize_predictions(
        predictions.clip_ids,
        predictions.labels,
        predictions.probabilities,
        files.path,
        corpus=corpus,
        actor_ids=predictions.actor_ids,
        votes=votes,
        title=title,
        extras=extras,
    )
    report.update(
        {
            "folds": list(part.folds),
            "num_segments": num_segments,
            "model": str(path),
            "labels": label_source,
            "label_agreement": agreement(predictions.clip_ids) if corpus.has_rater_votes else None,
            **records_check,
        }
    )
    if part.clips is not None:
        report.update({"split": config.split, "protocol": SPEAKER_DEPENDENT})
    if curves and run.log_path.is_file():
        plot_training_curves(
            run.log_path, files.training_curves_png, title=f"training curves ({run.path.name})"
        )
    write_json(files.report, json_safe(report))
    return report


def model_with_segments(trained, num_segments: int, model_config):
    """The trained model rebuilt for another number of segments, sharing the trained weights.

    Only possible with shared branch weights: the twin branches are one `core` sub-model whose
    weights do not depend on N. Independent branches have N different cores (`core_00`, ...),
    so a model trained with one N has no weights for another N.

    Raises:
        ValueError: the run's branch weights are independent, or the core is missing.
    """
    if model_config.branch_weights != "shared":
        raise ValueError(
            "accuracy vs N at inference needs shared branch weights: with independent weights "
            "each of the N branches has its own core, so there are no weights for another N; "
            "train one model per N instead and pass those runs. "
            f"Received: branch_weights={model_config.branch_weights!r}"
        )
    names = {layer.name for layer in trained.layers}
    if "core" not in names:
        raise ValueError(f"the saved model has no shared 'core' sub-model. Layers: {sorted(names)}")
    # The same spectrogram layer settings as the trained model (emotf.model.LogMelSpectrogram).
    model = build_model(
        replace(model_config, num_segments=int(num_segments)), model_sampling_config(trained)
    )
    model.get_layer("core").set_weights(trained.get_layer("core").get_weights())
    return model


def accuracy_vs_segments(
    run,
    records=None,
    folds=None,
    out=None,
    *,
    segments=range(1, 11),
    other_runs=(),
    batch_size: int | None = None,
    dataset_fn: DatasetFactory | None = None,
) -> list[dict]:
    """Accuracy of one trained model evaluated with N = `segments` at inference (shared
    weights only), plus each run of `other_runs` (models trained with their own N) at its N.

    Writes `accuracy_vs_n.csv` and `.png` into `out` (default the run's `evaluation/`) and
    returns the rows {"source", "n", "accuracy", "num_examples"}.
    """
    run = Run.of(run)
    config = run.train_config()  # the model config is needed to rebuild another N
    records, part = _resolve(records, folds, run, config)
    dataset_fn = dataset_fn or records_evaluation_dataset(records)
    batch = batch_size or config.batch_size
    trained = run.load_model()
    rows = []

    def row(source, n, model, eval_config):
        predictions = predict_clips(model, dataset_fn(part, False, eval_config, 0))
        return {
            "source": source,
            "n": int(n),
            "num_examples": int(predictions.labels.size),
            "accuracy": float(np.mean(predictions.labels == predictions.predicted)),
        }

    source = f"trained with N={config.model.num_segments}, evaluated with N"
    for n in segments:
        model = model_with_segments(trained, n, config.model)
        rows.append(row(source, n, model, with_segments(config, n, batch_size=batch)))
    for other in other_runs:
        other_run = Run.of(other)
        other_model = other_run.load_model(other if as_path(other).is_file() else None)
        n = int(other_model.inputs[0].shape[1])
        other_config = other_run.train_config() if other_run.has_config() else config
        rows.append(
            row(
                "trained and evaluated with N",
                n,
                other_model,
                with_segments(other_config, n, batch_size=batch),
            )
        )
    files = EvaluationDir(out) if out else run.evaluation
    plot_accuracy_vs_n(
        rows,
        files.accuracy_vs_n_csv,
        files.accuracy_vs_n_png,
        title=f"accuracy vs N ({_describe(part, config)})",
    )
    return rows
