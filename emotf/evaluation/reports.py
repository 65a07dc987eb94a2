"""Cross-validation report in the shape of the paper's Table I (Markdown + JSON + figures).

`cv_report(CV_DIR)` reads an `emotf-train --fold all` folder (`emotf.runs.folder.CrossValidation`):
each `fold-K/` run's metrics (test-fold accuracy, labels, label agreement, wall time), config
(N) and training log, and, when `emotf-evaluate` has run on it, its evaluation folder's
per-clip predictions (needed for the human baseline on the same clips, the pooled confusion
matrix and the pooled extras) and accuracy-vs-N rows. It writes the one CV summary,
`cv_report.md`, `cv_report.json` and `figures/*.png`, into `out` (default CV_DIR):
`emotf.training.train.train_all_folds` writes it after the folds, `emotf-evaluate --cv-dir`
rewrites it.
With `records` (or `evaluate=True` and the records named in the runs' config), folds without
predictions are evaluated first. The pooled extras follow `ReportExtras`; one that cannot be
computed is left out with a printed `ReportWarning`.

The classes are the runs' corpus's (`emotf.runs.folder.Run.corpus`; every fold must agree).
The human baseline is CREMA-D's crowd-sourced votes on the clips with the same ids (see
`emotf.evaluation.human`): on the synthetic sample those ids are real CREMA-D names, so the
human figures are the real clips' votes while the model saw generated media. For another corpus
the human rows, the groups and the paper's figures are absent, and the report's notes say so
in one line each (`emotf.evaluation.summary.corpus_notes`).
"""

from __future__ import annotations

import numpy as np

from emotf.corpora.info import CorpusInfo
from emotf.corpora.labels import agreement
from emotf.corpora.votes import MODES, load_votes
from emotf.evaluation.evaluate import evaluate_model
from emotf.evaluation.figures import (
    json_safe,
    plot_accuracy_vs_n,
    plot_training_curves,
    read_accuracy_vs_n,
    read_predictions,
    write_confusion_matrix,
)
from emotf.evaluation.human import human_accuracy
from emotf.evaluation.markdown import render_markdown
from emotf.evaluation.metrics import classification_report_dict, mean_std
from emotf.evaluation.summary import (
    ALL_EXTRAS,
    ReportExtras,
    accuracy_intervals,
    corpus_notes,
    group_table,
    is_cremad,
    report_warning,
)
from emotf.runs.folder import (
    CONFIG_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    CrossValidation,
    Run,
)
from emotf.storage import StoragePath, as_path, read_json, write_atomic, write_json

# Accuracies (%) on CREMA-D reported in the paper's Table I (10-fold CV), for reference only.
PAPER_REPORTED: tuple[tuple[str, float], ...] = (
    ("Temporal aggregation of asynchronous audio and video, N=10 (this method)", 68.4),
    ("Human raters (CREMA-D, audio-visual)", 63.6),
    ("RMA", 65.0),
    ("MERML", 66.5),
    ("Single-window CNN baseline", 55.8),
)


def _num_segments(run: Run) -> int | None:
    if run.has_config():
        return run.train_config().model.num_segments
    evaluation = run.find_evaluation_file(run.evaluation.report.name)
    if evaluation:
        return read_json(evaluation).get("num_segments")
    return None


def _why_not_evaluated(run: Run, records, evaluate: bool, dataset_fn) -> str | None:
    """Why a fold without predictions cannot be evaluated now (None: it can)."""
    if not run.model_path.is_file():
        return f"no {run.model_path.name} in the fold's run"
    if records or dataset_fn:
        return None
    if not evaluate:
        return "not evaluated (emotf-evaluate --cv-dir evaluates them)"
    named = run.config_values().get("records")
    if not named or not isinstance(named, str):
        return f"their {CONFIG_FILE} names no records folder: pass --records"
    if not as_path(named).is_dir():
        return f"the records their {CONFIG_FILE} names, {named}, are gone: pass --records"
    return None


def cv_corpus(cv_dir, records=None) -> CorpusInfo:
    """The corpus of the folds of `cv_dir` (`Run.corpus` of each; CREMA-D without any).

    Raises:
        ValueError: two folds of different classes.
    """
    found: dict[CorpusInfo, int] = {}
    for k, run in CrossValidation(cv_dir).folds():
        found.setdefault(run.corpus(records), k)
    if len(found) > 1:
        (a, ka), (b, kb) = list(found.items())[:2]
        raise ValueError(
            f"{cv_dir}: fold {ka} is of corpus {a.name!r} {list(a.class_codes)}, fold {kb} of "
            f"{b.name!r} {list(b.class_codes)}: one report pools folds of one corpus"
        )
    return next(iter(found), Run(cv_dir).corpus(records))


def collect_folds(
    cv_dir,
    *,
    votes,
    corpus: CorpusInfo,
    records=None,
    evaluate: bool = False,
    dataset_fn=None,
    extras: ReportExtras = ALL_EXTRAS,
) -> list[dict]:
    """Per-fold facts: accuracy, labels, clip ids and predictions, label agreement, human
    accuracy on the same clips (`corpus` with rater votes only).

    A fold without predictions is evaluated first with `records`, `dataset_fn` or (with
    `evaluate`) the records its config.json names, when they still exist. Human accuracy needs
    the predictions' clip ids: when some fold has none, one `ReportWarning` says which folds
    and why."""
    folds = []
    unscored: dict[str, list[int]] = {}  # why -> folds without per-clip predictions
    for k, run in CrossValidation(cv_dir).folds():
        predictions_path = run.find_evaluation_file(run.evaluation.predictions.name)
        why = None
        if predictions_path is None:
            why = _why_not_evaluated(run, records, evaluate, dataset_fn)
        if predictions_path is None and why is None:
            evaluate_model(run.path, records, dataset_fn=dataset_fn, votes=votes, extras=extras)
            predictions_path = run.find_evaluation_file(run.evaluation.predictions.name)
        metrics = run.read_metrics() if run.finished else {}
        fold = {
            "fold": k,
            "run": run,
            "num_segments": _num_segments(run),
            "best_epoch": metrics.get("best_epoch"),
            "wall_time_s": metrics.get("wall_time_s"),
            "labels": metrics.get("labels")
            or (run.train_config().labels if run.has_config() else None),
            "label_agreement": metrics.get("label_agreement"),
            "predictions": None,
            "humans": {mode: None for mode in MODES} if corpus.has_rater_votes else None,
        }
        accuracy = metrics.get("accuracy")
        num_clips = metrics.get("num_clips")
        if predictions_path is not None:
            predictions = read_predictions(predictions_path)
            if predictions["class_codes"] != corpus.class_codes:
                raise ValueError(
                    f"{predictions_path}: classes {list(predictions['class_codes'])}, the "
                    f"runs' corpus {corpus.name!r} has {list(corpus.class_codes)}"
                )
            fold["predictions"] = predictions
            if accuracy is None:
                accuracy = float(np.mean(predictions["labels"] == predictions["predicted"]))
            num_clips = len(predictions["clip_ids"])
            if corpus.has_rater_votes:
                fold["label_agreement"] = agreement(predictions["clip_ids"])
            if extras.humans and corpus.has_rater_votes:
                try:
                    fold["humans"] = human_accuracy(votes, predictions["clip_ids"])
                except KeyError as err:  # clip ids outside CREMA-D
                    report_warning(f"human raters of fold {k}", f"a clip has no votes ({err})")
        if accuracy is None:
            continue  # neither metrics nor predictions: an unfinished fold
        if predictions_path is None:
            unscored.setdefault(why or "no predictions", []).append(k)
        fold.update(accuracy=float(accuracy), num_clips=num_clips)
        accuracy_vs_n = run.find_evaluation_file(run.evaluation.accuracy_vs_n_csv.name)
        fold["accuracy_vs_n"] = read_accuracy_vs_n(accuracy_vs_n) if accuracy_vs_n else []
        folds.append(fold)
    if unscored and extras.humans and corpus.has_rater_votes:
        report_warning(
            "human raters",
            "no per-clip predictions for "
            + "; ".join(
                f"fold{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))} ({why})"
                for why, ks in unscored.items()
            ),
        )
    return folds


def pooled_agreement(folds) -> dict | None:
    """Intended vs perceived labels over the folds' evaluated clips (folds never share a clip,
    so the counts add up); None when no fold has them."""
    counted = [f["label_agreement"] for f in folds if f.get("label_agreement")]
    if not counted:
        return None
    total = {key: sum(a[key] for a in counted) for key in ("clips", "agree", "without_votes")}
    return {
        **total,
        "rate": total["agree"] / total["clips"] if total["clips"] else None,
        "folds_counted": len(counted),
    }


def _mean_accuracy_vs_n(folds) -> list[dict]:
    """Accuracy vs N averaged over the folds that measured it (per source and N)."""
    grouped: dict[tuple[str, int], list[float]] = {}
    for fold in folds:
        for row in fold["accuracy_vs_n"]:
            grouped.setdefault((row["source"], row["n"]), []).append(row["accuracy"])
    return [
        {
            "source": f"{source} (mean of {len(v)} folds)",
            "n": n,
            "accuracy": float(np.mean(v)),
            "num_examples": "",
        }
        for (source, n), v in grouped.items()
    ]


def cv_report(
    cv_dir,
    out=None,
    *,
    votes=None,
    records=None,
    evaluate: bool = False,
    dataset_fn=None,
    extras: ReportExtras = ALL_EXTRAS,
    config: dict | None = None,
) -> tuple[StoragePath, StoragePath]:
    """Render the one cross-validation summary of an `emotf-train --fold all` folder.

    Args:
        cv_dir: the parent folder holding `fold-K/` runs (local or a `tf.io.gfile` URL).
        out: where to write `cv_report.md`, `cv_report.json` and `figures/` (default cv_dir).
        votes: an `emotf.corpora.votes.VoteTable` (default: the shipped vote table; read for
            a corpus with rater votes only).
        records / evaluate / dataset_fn: evaluate folds that have no predictions yet
            (see `emotf.evaluation.evaluate.evaluate_model`).
        extras: which pooled extras to compute (`ReportExtras`).
        config: the sweep's TrainConfig dict to record (default: the first fold's).

    Returns:
        (markdown path, json path).

    Raises:
        FileNotFoundError: no finished fold (metrics.json or predictions.csv) under cv_dir.
        ValueError: folds of different corpora.
    """
    cv_dir = as_path(cv_dir)
    target = CrossValidation(out if out else cv_dir)
    figures = target.figures_dir
    pooled_files = CrossValidation.figure_files(figures)
    corpus = cv_corpus(cv_dir, records)
    raters = corpus.has_rater_votes
    if raters:
        votes = votes if votes is not None else load_votes()
    folds = collect_folds(
        cv_dir,
        votes=votes,
        corpus=corpus,
        records=records,
        evaluate=evaluate,
        dataset_fn=dataset_fn,
        extras=extras,
    )
    if not folds:
        raise FileNotFoundError(
            f"no finished fold-K run ({METRICS_FILE} or {PREDICTIONS_FILE}) under {cv_dir}"
        )

    mean, std = mean_std([f["accuracy"] for f in folds])
    segments = sorted({f["num_segments"] for f in folds if f["num_segments"] is not None})
    human_mean = {m: mean_std([f["humans"][m] for f in folds]) for m in MODES} if raters else None
    figure_links: dict[str, str] = {}

    def link(path: StoragePath) -> str:
        return path.relative_to(target.path)

    # Pooled over the folds that have per-clip predictions.
    with_predictions = [f for f in folds if f["predictions"] is not None]
    pooled = None
    if with_predictions:
        clip_ids = [c for f in with_predictions for c in f["predictions"]["clip_ids"]]
        labels = np.concatenate([f["predictions"]["labels"] for f in with_predictions])
        predicted = np.concatenate([f["predictions"]["predicted"] for f in with_predictions])
        actor_lists = [f["predictions"]["actor_ids"] for f in with_predictions]
        actors = np.concatenate(actor_lists) if all(a is not None for a in actor_lists) else None
        pooled = classification_report_dict(labels, predicted, corpus.class_codes)
        pooled["humans"] = None
        if extras.humans and raters:
            try:
                pooled["humans"] = human_accuracy(votes, clip_ids, by_class=True)
            except KeyError as err:
                report_warning("pooled human raters", f"a clip has no votes ({err})")
        write_confusion_matrix(
            pooled["confusion_matrix"],
            corpus.class_codes,
            pooled_files.confusion_csv,
            pooled_files.confusion_png,
            title=f"pooled over {len(with_predictions)} test folds",
        )
        figure_links["confusion_matrix"] = link(pooled_files.confusion_png)
        pooled["confidence_intervals"] = (
            accuracy_intervals(clip_ids, labels, predicted, votes, corpus=corpus, actors=actors)
            if extras.intervals
            else None
        )
        pooled["by_group"] = (
            group_table(
                clip_ids,
                labels,
                predicted,
                votes,
                pooled_files.by_group_csv,
                "pooled accuracy by group",
            )
            if extras.groups and is_cremad(corpus)
            else None
        )
    for fold in folds:
        log = fold["run"].log_path
        if log.is_file():
            png = CrossValidation.training_curves_png(figures, fold["fold"])
            plot_training_curves(log, png, title=f"training curves, fold {fold['fold']}")
            figure_links[f"training_curves_fold_{fold['fold']}"] = link(png)
    curve_rows = _mean_accuracy_vs_n(folds)
    if curve_rows:
        plot_accuracy_vs_n(
            curve_rows, pooled_files.accuracy_vs_n_csv, pooled_files.accuracy_vs_n_png
        )
        figure_links["accuracy_vs_n"] = link(pooled_files.accuracy_vs_n_png)

    label_sources = sorted({f["labels"] for f in folds if f["labels"]})
    if config is None:
        config = folds[0]["run"].config_values()
    summary = {
        "cv_dir": str(cv_dir),
        "corpus": corpus.to_dict(),
        "num_folds": len(folds),
        "num_segments": segments,
        "labels": label_sources[0] if len(label_sources) == 1 else label_sources or None,
        "label_agreement": pooled_agreement(folds),
        "mean_accuracy": mean,
        "std_accuracy": std,
        "std_kind": "sample (ddof=1)",
        "per_fold": [
            {
                "fold": f["fold"],
                "accuracy": f["accuracy"],
                "num_clips": f["num_clips"],
                "num_segments": f["num_segments"],
                "best_epoch": f["best_epoch"],
                "wall_time_s": f["wall_time_s"],
                "labels": f["labels"],
                "label_agreement": f["label_agreement"],
                "human_accuracy_same_clips": f["humans"],
            }
            for f in folds
        ],
        "human_accuracy_same_clips_mean_std": {
            m: {"mean": v[0], "std": v[1]} for m, v in human_mean.items()
        }
        if human_mean is not None
        else None,
        "pooled": pooled,
        # The paper's figures are CREMA-D's.
        "reported_in_the_paper": [{"method": m, "accuracy_percent": a} for m, a in PAPER_REPORTED]
        if is_cremad(corpus)
        else [],
        "figures": figure_links,
        "config": config,
        "note": "Human figures are CREMA-D's crowd-sourced votes on the clips with these ids "
        "(correct responses / all responses); on a synthetic sample they are the real "
        "clips' votes, not ratings of the generated media."
        if raters
        else None,
        "notes": corpus_notes(corpus, extras),
    }
    json_path = write_json(target.report_json, json_safe(summary))
    write_atomic(target.report_md, render_markdown(summary).encode("utf-8"))
    return target.report_md, json_path
