"""Confidence intervals for accuracies with actors as the sampling unit.

Clips of one actor are not independent (same voice, same face), and a test fold holds only ~9
actors, so the uncertainty of an actor-independent result is driven by the actors. Every
accuracy here is a ratio over actors, r = sum_a y_a / sum_a n_a (the model: correct clips /
clips; the raters: correct responses / responses, as `emotf.evaluation.human`). Its interval is
r +- t_{k-1} * SE with the cluster-robust (linearised) standard error over the k actors,
    SE^2 = k / (k - 1) * sum_a (y_a - r n_a)^2 / (sum_a n_a)^2,
clipped to [0, 1] (with 2 actors, 1 degree of freedom, it is very wide: honestly so),
and "model minus raters" uses the per-actor difference of the two linearised terms, so it
accounts for the clips they share. In simulation (docs/evaluation.md) this held the true
accuracy 96 % of the time with 9 actors, where a percentile bootstrap over actors held it 92 %
(`tools/interval_coverage.py`).

The actor of each clip is given (`actors`: the records' actor ids, as `predictions.csv` keeps
them for corpora other than CREMA-D), or read from a CREMA-D clip name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from emotf.corpora.cremad import parse_clip_name
from emotf.corpora.votes import MODES

METHOD = (
    "t interval (k - 1 df) on the actor-clustered, linearised standard error of the ratio accuracy"
)


def _interval(
    estimate: float, residuals: np.ndarray, level: float, bounds: tuple[float, float] = (0.0, 1.0)
) -> dict:
    """estimate +- t * SE, clipped to `bounds` (an accuracy stays in [0, 1]); `residuals` are
    the per-actor linearised terms already divided by the ratio's denominator total."""
    k = len(residuals)
    out = {"estimate": estimate, "low": None, "high": None, "level": level}
    if k < 2 or not np.isfinite(estimate):
        return out  # one actor: no spread to estimate; NaN: nothing to bound
    se = np.sqrt(k / (k - 1) * np.sum(residuals**2))
    half = float(stats.t.ppf((1 + level) / 2, k - 1) * se)
    out.update(low=max(bounds[0], estimate - half), high=min(bounds[1], estimate + half))
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, np.ndarray]:
    """(sum num / sum den, per-actor linearised residuals / sum den); NaN if no denominator."""
    total = float(den.sum())
    if total <= 0:
        return float("nan"), np.zeros_like(num, dtype=float)
    estimate = float(num.sum() / total)
    return estimate, (num - estimate * den) / total


def clip_actors(clip_ids: list[str], actors=None) -> np.ndarray:
    """The actor of each clip: `actors` (int [M]) when given, else read from CREMA-D names.

    Raises:
        ValueError: `actors` of another length, or (without `actors`) a name that is not a
            CREMA-D clip name.
    """
    if actors is None:
        return np.array([parse_clip_name(c).actor_id for c in clip_ids])
    actors = np.asarray(actors).reshape(-1)
    if actors.shape[0] != len(clip_ids):
        raise ValueError(
            f"need one actor per clip. Received: {actors.shape[0]} actors for {len(clip_ids)} clips"
        )
    return actors


def actor_intervals(clip_ids, correct, votes=None, *, actors=None, level: float = 0.95) -> dict:
    """Intervals for the model's accuracy, the raters' per mode, and model minus raters.

    Args:
        clip_ids: M distinct clip names.
        actors: the M clips' actor ids; None reads them from CREMA-D clip names.
        correct: bool [M], the model right on each clip.
        votes: an `emotf.corpora.votes.VoteTable` holding every clip, or None for no human
            intervals.
        level: two-sided confidence level.

    Returns:
        {"method", "actors", "model": {"estimate", "low", "high", "level"}, and with votes
        "humans": {mode: ...}, "model_minus_humans": {mode: ...}}; low/high None with one actor
        (or a mode without responses, whose estimate is NaN).
    """
    clip_ids = [str(c) for c in clip_ids]
    correct = np.asarray(correct, bool)
    if correct.shape != (len(clip_ids),) or not clip_ids:
        raise ValueError(
            f"need one `correct` value per clip and at least one clip. Received: "
            f"{correct.size} values for {len(clip_ids)} clips"
        )
    if len(set(clip_ids)) != len(clip_ids):
        raise ValueError(
            "clip ids repeat: the model and the raters would not be scored on the same clips"
        )
    unique, index = np.unique(clip_actors(clip_ids, actors), return_inverse=True)
    k = len(unique)
    model, model_res = _ratio(
        np.bincount(index, weights=correct, minlength=k),
        np.bincount(index, minlength=k).astype(float),
    )
    out: dict[str, Any] = {
        "method": METHOD,
        "actors": k,
        "model": _interval(model, model_res, level),
    }
    if votes is None:
        return out
    table = votes.select(clip_ids)
    actor_of = dict(zip(clip_ids, index, strict=True))
    rows = np.array([actor_of[c] for c in table.clip_ids], dtype=np.int64)
    right = table.counts[np.arange(len(table.labels)), table.labels]
    responses = table.counts.sum(axis=1)
    modes = np.asarray(table.modes)
    out["humans"], out["model_minus_humans"] = {}, {}
    for mode in MODES:
        m = modes == mode
        human, human_res = _ratio(
            np.bincount(rows[m], weights=right[m], minlength=k),
            np.bincount(rows[m], weights=responses[m], minlength=k),
        )
        out["humans"][mode] = _interval(human, human_res, level)
        out["model_minus_humans"][mode] = _interval(
            model - human, model_res - human_res, level, bounds=(-1.0, 1.0)
        )
    return out


def paired_difference(clip_ids, correct_a, correct_b, *, actors=None, level: float = 0.95) -> dict:
    """Two models scored on the same clips: each accuracy and A minus B with t intervals over
    actors (per-actor differences, so the shared clips cancel as they should). `actors`: the
    clips' actor ids (None: read from CREMA-D clip names).

    Returns:
        {"method", "actors", "clips", "a", "b", "a_minus_b": {"estimate", "low", "high",
        "level"}, "only_a_right", "only_b_right" (clip counts where the two disagree)}.
    """
    clip_ids = [str(c) for c in clip_ids]
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != (len(clip_ids),) or b.shape != a.shape or not clip_ids:
        raise ValueError(
            f"need one value per clip from each model and at least one clip. "
            f"Received: {a.size} and {b.size} values for {len(clip_ids)} clips"
        )
    if len(set(clip_ids)) != len(clip_ids):
        raise ValueError("clip ids repeat")
    _, index = np.unique(clip_actors(clip_ids, actors), return_inverse=True)
    k = int(index.max()) + 1
    clips = np.bincount(index, minlength=k).astype(float)
    est_a, res_a = _ratio(np.bincount(index, weights=a, minlength=k), clips)
    est_b, res_b = _ratio(np.bincount(index, weights=b, minlength=k), clips)
    return {
        "method": METHOD,
        "actors": k,
        "clips": len(clip_ids),
        "a": _interval(est_a, res_a, level),
        "b": _interval(est_b, res_b, level),
        "a_minus_b": _interval(est_a - est_b, res_a - res_b, level, bounds=(-1.0, 1.0)),
        "only_a_right": int(np.sum(a & ~b)),
        "only_b_right": int(np.sum(b & ~a)),
    }
