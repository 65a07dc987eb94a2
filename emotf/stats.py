"""Confidence intervals for accuracies, resampling actors (the unit of the protocol).

Clips of one actor are not independent (same voice, same face), so a clip-level bootstrap
understates the uncertainty of an actor-independent result. `actor_bootstrap` resamples
actors with replacement and recomputes ratio accuracies (the model's correct clips / clips;
the raters' correct responses / responses, as `emotf.human`), paired: every resample draws
the same actors for the model and for the raters, so the interval of their difference
accounts for the clips they share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotf.cremad import parse_clip_name

METHOD = "percentile bootstrap over actors (clips of a drawn actor kept together)"


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided `level` percentile interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "level": self.level}


def _ratio_intervals(numerators: dict[str, np.ndarray], denominators: dict[str, np.ndarray],
                     resamples: np.ndarray, level: float) -> dict[str, Interval]:
    out = {}
    for name, num in numerators.items():
        den = denominators[name]
        estimate = float(num.sum() / den.sum())
        draws = num[resamples].sum(axis=1) / np.maximum(den[resamples].sum(axis=1), 1e-12)
        low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
        out[name] = Interval(estimate, float(low), float(high), level)
    return out


def actor_bootstrap(clip_ids, correct, votes=None, *, resamples: int = 2000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """95 % intervals for the model's accuracy, the raters' per mode, and model minus raters.

    Args:
        clip_ids: M CREMA-D clip names (the actor is read from the name).
        correct: bool [M], the model right on each clip.
        votes: an `emotf.human.VoteTable` holding every clip, or None for no human intervals.
        resamples, seed, level: the bootstrap (seeded: the same inputs give the same output).

    Returns:
        {"method", "resamples", "actors", "model": Interval dict, and with votes
         "humans": {mode: Interval dict}, "model_minus_humans": {mode: Interval dict}}.
    """
    correct = np.asarray(correct, bool)
    actors = np.array([parse_clip_name(c).actor_id for c in clip_ids])
    if correct.shape != actors.shape or correct.size == 0:
        raise ValueError(f"need one `correct` value per clip and at least one clip. Received: "
                         f"{correct.size} values for {actors.size} clips")
    unique, index = np.unique(actors, return_inverse=True)
    k = len(unique)
    num = {"model": np.bincount(index, weights=correct, minlength=k)}
    den = {"model": np.bincount(index, minlength=k).astype(float)}
    if votes is not None:
        from emotf.human import MODES

        table = votes.select(clip_ids)
        actor_of = {c: i for c, i in zip(map(str, clip_ids), index, strict=True)}
        rows = np.array([actor_of[c] for c in table.clip_ids])
        right = table.counts[np.arange(len(table.labels)), table.labels]
        total = table.counts.sum(axis=1)
        modes = np.asarray(table.modes)
        for mode in MODES:
            m = modes == mode
            num[mode] = np.bincount(rows[m], weights=right[m], minlength=k)
            den[mode] = np.bincount(rows[m], weights=total[m], minlength=k)
    resampled = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    intervals = _ratio_intervals(num, den, resampled, level)
    out = {"method": METHOD, "resamples": resamples, "seed": seed, "actors": k,
           "model": intervals.pop("model").to_dict()}
    if votes is not None:
        out["humans"] = {mode: iv.to_dict() for mode, iv in intervals.items()}
        model_draws = num["model"][resampled].sum(1) / den["model"][resampled].sum(1)
        out["model_minus_humans"] = {}
        for mode in intervals:
            human_draws = num[mode][resampled].sum(1) / np.maximum(
                den[mode][resampled].sum(1), 1e-12)
            diff = model_draws - human_draws
            low, high = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
            estimate = out["model"]["estimate"] - out["humans"][mode]["estimate"]
            out["model_minus_humans"][mode] = Interval(estimate, float(low), float(high),
                                                       level).to_dict()
    return out
