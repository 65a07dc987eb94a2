"""Which emotion a clip is scored against: the intended (acted) one or the one raters perceived.

    intended    the emotion in the file name (what the actor was asked to show): the paper's
                labels and the default. The records store it (`label`).
    perceived   the raters' majority among the audio-visual responses of CREMA-D's
                `tabulatedVotes.csv` (rows whose id starts with 3;
                `emotf.corpora.votes.load_votes`).

Tie rule (420 of the 7,442 clips have a tied audio-visual majority): when the intended emotion
is among the tied ones it wins (332 clips), otherwise the first tied emotion in `EMOTIONS`
order (ANG, DIS, FEA, HAP, NEU, SAD; 88 clips). Clips without audio-visual votes (none in
CREMA-D: a name the table lacks) keep their intended emotion and are counted as such. On the
whole dataset the two labels agree on 76.7 % of the clips (5,706 of 7,442; 74.8 % if ties
went to the first tied emotion regardless).

Published CREMA-D accuracies differ by up to 25 points depending on which of the two they
score against, so every metrics file, evaluation and report says which one was used.
"""

from __future__ import annotations

import functools

import numpy as np

from emotf.corpora.cremad import parse_clip_name
from emotf.corpora.votes import load_votes

INTENDED, PERCEIVED = "intended", "perceived"
LABEL_SOURCES = (INTENDED, PERCEIVED)


def check_source(labels: str) -> str:
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels must be one of {LABEL_SOURCES}. Received: labels={labels!r}")
    return labels


def majority(counts, intended: int) -> int:
    """The perceived label of one clip from its 6 response counts (tie rule above)."""
    counts = np.asarray(counts)
    tied = np.flatnonzero(counts == counts.max())
    return int(intended) if int(intended) in tied else int(tied[0])


@functools.lru_cache(maxsize=2)
def perceived_labels(votes_path: str | None = None) -> dict[str, int]:
    """{clip id: perceived label index} for every clip with audio-visual votes."""
    votes = load_votes(votes_path)
    out = {}
    for clip_id, mode, label, counts in zip(
        votes.clip_ids, votes.modes, votes.labels, votes.counts, strict=True
    ):
        if mode == "audio-visual" and counts.sum() > 0:
            out[clip_id] = majority(counts, label)
    return out


def label_of(clip_id: str, labels: str, table: dict[str, int] | None = None) -> int:
    """The label index of a clip under `labels`."""
    intended = parse_clip_name(clip_id).label
    if check_source(labels) == INTENDED:
        return intended
    table = perceived_labels() if table is None else table
    return table.get(clip_id, intended)


def agreement(clip_ids, table: dict[str, int] | None = None) -> dict:
    """How often the intended and perceived labels agree on these clips (each counted once).

    Returns {"clips", "agree", "rate", "without_votes"} (rate None for no clips).
    """
    table = perceived_labels() if table is None else table
    ids = sorted({str(c) for c in clip_ids})
    agree = sum(parse_clip_name(c).label == table.get(c, parse_clip_name(c).label) for c in ids)
    return {
        "clips": len(ids),
        "agree": int(agree),
        "rate": agree / len(ids) if ids else None,
        "without_votes": sum(c not in table for c in ids),
    }


def relabel(dataset, labels: str):
    """A dataset of (inputs, label, meta) with `label` replaced by the clip's label under
    `labels` (looked up by meta["clip_id"] in a static table; unknown clips keep theirs)."""
    # TensorFlow imported here only: emotf.configs imports this module, and the records build's
    # worker processes import emotf.configs without needing TensorFlow (seconds per worker).
    import tensorflow as tf

    if check_source(labels) == INTENDED:
        return dataset
    table = perceived_labels()
    names = sorted(table)
    lookup = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(names, tf.string), tf.constant([table[n] for n in names], tf.int32)
        ),
        default_value=-1,
    )

    def swap(inputs, label, meta):
        found = lookup.lookup(meta["clip_id"])
        return inputs, tf.where(found >= 0, found, tf.cast(label, tf.int32)), meta

    return dataset.map(swap)
