"""Human baseline from CREMA-D's crowd-sourced votes (`tabulatedVotes.csv`).

The table has one row per clip and presentation mode. The row id's first digit is the mode
(1 voice only, 2 face only, 3 audio-visual); columns `A D F H N S` count the raters' responses
for each emotion. The intended emotion is the one in the clip's file name.

Human accuracy is *correct responses / all responses* (every response counts once, so a clip
rated by 12 people weighs more than one rated by 8). On the whole table this gives voice
40.0%, face 57.4%, audio-visual 63.1%; the dataset paper reports 40.9 / 58.2 / 63.6 on its
own counting (it also filtered raters), so small differences are expected.

The votes are read by `emotf.corpora.votes`.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np

from emotf.corpora.cremad import EMOTIONS
from emotf.corpora.votes import MODES, VoteTable


def _accuracy(labels: np.ndarray, counts: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return float("nan")
    return float(counts[np.arange(len(labels)), labels].sum() / total)


@overload
def human_accuracy(
    votes: VoteTable, clip_ids=None, by_class: Literal[False] = False
) -> dict[str, float]: ...


@overload
def human_accuracy(
    votes: VoteTable, clip_ids=None, *, by_class: Literal[True]
) -> dict[str, dict[str, float]]: ...


@overload
def human_accuracy(
    votes: VoteTable, clip_ids=None, by_class: bool = False
) -> dict[str, float] | dict[str, dict[str, float]]: ...


def human_accuracy(
    votes: VoteTable, clip_ids=None, by_class: bool = False
) -> dict[str, float] | dict[str, dict[str, float]]:
    """Raters' accuracy per presentation mode: correct responses / all responses.

    Args:
        votes: from `load_votes`.
        clip_ids: restrict to exactly these clips (duplicates ignored); None = the whole table.
        by_class: also split by intended emotion.

    Returns:
        `{mode: accuracy}` for mode in `MODES`; with `by_class`,
        `{mode: {"all": accuracy, "ANG": ..., ..., "SAD": ...}}` (NaN for a class without clips).

    Raises:
        KeyError: a clip id is not in the table.
    """
    table = votes if clip_ids is None else votes.select(clip_ids)
    modes = np.asarray(table.modes)
    out: dict[str, Any] = {}
    for mode in MODES:
        rows = modes == mode
        labels, counts = table.labels[rows], table.counts[rows]
        overall = _accuracy(labels, counts)
        if not by_class:
            out[mode] = overall
            continue
        per = {"all": overall}
        for k, emotion in enumerate(EMOTIONS):
            of_class = labels == k
            per[emotion] = _accuracy(labels[of_class], counts[of_class])
        out[mode] = per
    return out


def human_summary(votes: VoteTable, clip_ids=None) -> dict:
    """JSON-ready human baseline on some clips: per mode, overall and per-class accuracy,
    number of clips and of responses."""
    table = votes if clip_ids is None else votes.select(clip_ids)
    modes = np.asarray(table.modes)
    acc = human_accuracy(table, by_class=True)
    summary = {}
    for mode in MODES:
        rows = modes == mode
        summary[mode] = {
            "accuracy": acc[mode]["all"],
            "per_class": {e: acc[mode][e] for e in EMOTIONS},
            "num_clips": int(rows.sum()),
            "num_responses": int(table.counts[rows].sum()),
        }
    return summary
