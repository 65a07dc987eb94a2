"""The evaluation report from predictions in hand: metrics, files, and the report extras.

`summarize_predictions` writes an evaluation folder (`emotf.runs.folder.EvaluationDir`) and returns
the `evaluation.json` dict. Its classes are those of the run's corpus
(`emotf.corpora.info.CorpusInfo`, from `emotf.runs.folder.Run.corpus`). The extras
(`ReportExtras`: human raters on the same clips, accuracy by actor group, calibration,
actor-clustered intervals) are each on by default and can be switched off; an extra that cannot
be computed (clip names outside CREMA-D, clips without votes, non-finite probabilities) is left
out (`None`) and a `ReportWarning` saying why is printed: the rest of the report still stands.

Human raters and the groups are CREMA-D's (its votes, its clip names and demographics): for
another corpus they are absent, with one line in the report's "notes" (`corpus_notes`) and one
`ReportWarning`. Its intervals use the records' actor ids (`predictions.csv`'s `actor_id`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from emotf.bounds import bounded, check_bounds
from emotf.configs import Config
from emotf.corpora.info import CREMAD_INFO, CorpusInfo
from emotf.corpora.votes import load_votes
from emotf.evaluation.calibration import calibration_summary, plot_reliability
from emotf.evaluation.figures import json_safe, write_confusion_matrix, write_predictions
from emotf.evaluation.groups import accuracy_by_group, write_group_table
from emotf.evaluation.human import human_accuracy
from emotf.evaluation.metrics import clip_metrics
from emotf.evaluation.stats import actor_intervals
from emotf.runs.folder import EvaluationDir
from emotf.storage import write_json


class ReportWarning(UserWarning):
    """A report extra that was left out, with the reason."""


def report_warning(extra: str, reason) -> None:
    warnings.warn(f"{extra} left out of the report: {reason}", ReportWarning, stacklevel=3)


@dataclass(frozen=True)
class ReportExtras(Config):
    """Which extras an evaluation report (and the CV report) computes; all on by default."""

    humans: bool = bounded(
        True, help="CREMA-D raters' accuracy on the same clips (emotf.evaluation.human)"
    )
    groups: bool = bounded(
        True, help="accuracy by actor sex, age band and clip intensity (emotf.evaluation.groups)"
    )
    calibration: bool = bounded(
        True, help="ECE and reliability diagram (emotf.evaluation.calibration)"
    )
    intervals: bool = bounded(True, help="actor-clustered t intervals (emotf.evaluation.stats)")

    def __post_init__(self):
        check_bounds(self)


ALL_EXTRAS = ReportExtras()


def is_cremad(corpus: CorpusInfo) -> bool:
    """Do the clip names follow CREMA-D's (actor, sentence, intensity: the groups)?"""
    return corpus.name == CREMAD_INFO.name


def no_raters_line(corpus: CorpusInfo) -> str:
    return (
        f"no human-rater baseline: corpus {corpus.name!r} has no rater votes "
        "(the shipped votes are CREMA-D's)"
    )


def no_groups_line(corpus: CorpusInfo) -> str:
    return (
        f"no accuracy by group: corpus {corpus.name!r} is not CREMA-D (the groups come from "
        "CREMA-D's clip names and VideoDemographics.csv)"
    )


def corpus_notes(corpus: CorpusInfo, extras: ReportExtras) -> list[str]:
    """The report's one line per CREMA-D-only extra that `corpus` cannot have (each also
    printed once as a `ReportWarning`); [] for CREMA-D."""
    notes = []
    if extras.humans and not corpus.has_rater_votes:
        notes.append(no_raters_line(corpus))
    if extras.groups and not is_cremad(corpus):
        notes.append(no_groups_line(corpus))
    for note in notes:  # stacklevel 1: one location, so printed once per process
        warnings.warn(note, ReportWarning, stacklevel=1)
    return notes


def model_vs_humans(clip_ids, y_true, y_pred, votes=None) -> dict:
    """Model and human raters side by side on exactly the same clips, overall and per class.

    Model per-class accuracy is its recall on the clips of that class; human accuracy is
    correct responses / all responses (see `emotf.evaluation.human`).

    Returns:
        {"num_clips", "model": {"all": acc, "ANG": ..., ...},
         "humans": {mode: {"all": acc, "ANG": ..., ...}} for voice, face, audio-visual}.

    Raises:
        KeyError: a clip has no votes in the table.
    """
    votes = votes if votes is not None else load_votes()
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    model = {"all": float(np.mean(y_true == y_pred)) if y_true.size else float("nan")}
    for k, emotion in enumerate(CREMAD_INFO.class_codes):  # the votes' classes
        of_class = y_true == k
        model[emotion] = float(np.mean(y_pred[of_class] == k)) if of_class.any() else float("nan")
    return {
        "num_clips": len(set(clip_ids)),
        "model": model,
        "humans": human_accuracy(votes, clip_ids, by_class=True),
    }


def group_table(clip_ids, labels, predicted, votes, csv_path, what: str) -> dict | None:
    """Accuracy by actor group and clip intensity (model and raters), also written to
    `csv_path`; None, with a `ReportWarning` naming `what`, for names that are not CREMA-D's."""
    try:
        table = accuracy_by_group(clip_ids, labels, predicted, votes)
    except ValueError as err:  # names that are not CREMA-D clip names
        report_warning(what, err)
        return None
    write_group_table(csv_path, table)
    return table


def accuracy_intervals(
    clip_ids, labels, predicted, votes=None, *, corpus: CorpusInfo = CREMAD_INFO, actors=None
) -> dict | None:
    """`emotf.evaluation.stats.actor_intervals` for these predictions: the model's 95 %
    interval, and (CREMA-D) the raters' and model-minus-raters' when the vote table holds every
    clip. `actors`: the clips' actor ids (None: read from CREMA-D clip names).

    Returns None (with a `ReportWarning`) without actors for names that are not CREMA-D clip
    names, or for repeated clips; the model's interval only (with a warning) when some clips
    have no votes.
    """
    correct = np.asarray(labels) == np.asarray(predicted)
    try:
        if not corpus.has_rater_votes:
            return actor_intervals(clip_ids, correct, actors=actors)
        try:
            votes = load_votes() if votes is None else votes
            return actor_intervals(clip_ids, correct, votes, actors=actors)
        except KeyError as err:  # some clips have no votes: the model's interval only
            report_warning("the raters' intervals", f"a clip has no votes ({err})")
            return actor_intervals(clip_ids, correct, actors=actors)
    except ValueError as err:
        report_warning("confidence intervals", err)
        return None


def summarize_predictions(
    clip_ids,
    labels,
    probabilities,
    out,
    *,
    corpus: CorpusInfo,
    actor_ids=None,
    votes=None,
    title="",
    extras: ReportExtras = ALL_EXTRAS,
) -> dict:
    """Everything `evaluate_model` writes, from predictions already in hand (no model needed).

    Writes predictions.csv, confusion_matrix.csv/png, evaluation.json and, with the extras,
    reliability.png and accuracy_by_group.csv into `out`; returns the evaluation dict:
    `emotf.evaluation.metrics.clip_metrics` over `corpus.class_codes`, plus "corpus"
    (`CorpusInfo.to_dict`), "notes" (`corpus_notes`), "humans_same_clips" (`model_vs_humans`),
    "confidence_intervals" (`accuracy_intervals`), "calibration"
    (`emotf.evaluation.calibration.calibration_summary`) and "by_group"
    (`emotf.evaluation.groups.accuracy_by_group`), each None when switched off or left out.
    `actor_ids`: the clips' actor ids (the records'); written to predictions.csv and used for
    the intervals for a corpus other than CREMA-D (whose clip names hold the actor).
    """
    files = EvaluationDir(out)
    probabilities = np.asarray(probabilities, np.float64)
    predicted = np.argmax(probabilities, axis=-1)
    actors = None if is_cremad(corpus) else actor_ids
    write_predictions(
        files.predictions, clip_ids, labels, probabilities, corpus.class_codes, actors
    )
    report = clip_metrics(labels, probabilities, corpus.class_codes)
    write_confusion_matrix(
        report["confusion_matrix"],
        corpus.class_codes,
        files.confusion_csv,
        files.confusion_png,
        title=title,
    )
    report["corpus"] = corpus.to_dict()
    report["notes"] = corpus_notes(corpus, extras)
    report["humans_same_clips"] = None
    if extras.humans and corpus.has_rater_votes:
        try:
            report["humans_same_clips"] = model_vs_humans(clip_ids, labels, predicted, votes)
        except KeyError as err:  # clips outside CREMA-D (e.g. hand-made test names)
            report_warning("human raters on the same clips", f"a clip has no votes ({err})")
    report["confidence_intervals"] = (
        accuracy_intervals(clip_ids, labels, predicted, votes, corpus=corpus, actors=actors)
        if extras.intervals
        else None
    )
    report["calibration"] = None
    if extras.calibration:
        try:
            report["calibration"] = calibration_summary(labels, probabilities)
            plot_reliability(report["calibration"], files.reliability_png, title=title)
        except ValueError as err:  # non-finite probabilities
            report_warning("calibration", err)
    report["by_group"] = (
        group_table(clip_ids, labels, predicted, votes, files.by_group_csv, "accuracy by group")
        if extras.groups and is_cremad(corpus)
        else None
    )
    write_json(files.report, json_safe(report))
    return report
