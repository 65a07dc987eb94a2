"""Accuracy broken down by who speaks and how: actor sex, age band, race, ethnicity (CREMA-D's
own `VideoDemographics.csv`), the clip's sentence and intensity, model and human raters side by
side on the same clips of each group.

`emotf-evaluate` writes the result to `evaluation.json` ("by_group") and
`accuracy_by_group.csv`. Human accuracy is correct responses / all responses
(`emotf.evaluation.human`). CREMA-D only (the groups come from its clip names and
demographics): for another corpus the report leaves the table out with one line
(`emotf.evaluation.summary.corpus_notes`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from emotf.corpora.cremad import INTENSITIES, data_path, parse_clip_name
from emotf.corpora.votes import load_votes
from emotf.evaluation.figures import open_csv, read_csv_rows
from emotf.evaluation.human import human_accuracy

GROUPINGS: tuple[str, ...] = ("sex", "age", "race", "ethnicity", "intensity", "sentence")
UNKNOWN = "not in VideoDemographics.csv"
GROUP_FIELDS = ("grouping", "group", "num_clips", "model", "voice", "face", "audio-visual")


def load_demographics(path: str | Path | None = None) -> dict[int, dict[str, str]]:
    """Actor id -> {"sex", "age" (decade band, e.g. "20-29"), "race", "ethnicity"} from
    `VideoDemographics.csv` (the shipped copy by default)."""
    actors = {}
    for row in read_csv_rows(path if path else data_path("VideoDemographics.csv")):
        decade = int(row["Age"]) // 10 * 10
        actors[int(row["ActorID"])] = {
            "sex": row["Sex"],
            "age": f"{decade}-{decade + 9}",
            "race": row["Race"],
            "ethnicity": row["Ethnicity"],
        }
    return actors


def clip_groups(clip_ids, demographics: dict | None = None) -> dict[str, list[str]]:
    """For each grouping in `GROUPINGS`, the group of every clip (in order); actors missing
    from the demographics table fall in `UNKNOWN` (the table's own "Unknown" race is kept)."""
    demographics = load_demographics() if demographics is None else demographics
    names = [parse_clip_name(c) for c in clip_ids]
    groups = {
        key: [demographics.get(n.actor_id, {}).get(key, UNKNOWN) for n in names]
        for key in ("sex", "age", "race", "ethnicity")
    }
    groups["intensity"] = [n.intensity for n in names]
    groups["sentence"] = [n.sentence for n in names]
    return groups


def accuracy_by_group(clip_ids, y_true, y_pred, votes=None, demographics=None) -> dict:
    """{grouping: {group: {"num_clips", "model", "voice", "face", "audio-visual"}}}.

    Groups are sorted by name (intensity: LO, MD, HI, XX); a human accuracy is None where the
    vote table lacks the clips (clips outside CREMA-D) or has no responses.
    """
    votes = load_votes() if votes is None else votes
    clip_ids = [str(c) for c in clip_ids]
    correct = np.asarray(y_true, np.int64) == np.asarray(y_pred, np.int64)
    out: dict[str, dict] = {}
    for grouping, names in clip_groups(clip_ids, demographics).items():
        labels = np.asarray(names)
        table = {}
        order = {level: i for i, level in enumerate(INTENSITIES)} if grouping == "intensity" else {}
        for group in sorted(set(labels.tolist()), key=lambda g: (order.get(g, 0), g)):
            members = labels == group
            ids = [c for c, m in zip(clip_ids, members, strict=True) if m]
            try:
                humans = human_accuracy(votes, ids)
            except KeyError:
                humans = {}
            table[group] = {
                "num_clips": int(members.sum()),
                "model": float(correct[members].mean()),
                **{mode: _finite(humans.get(mode)) for mode in ("voice", "face", "audio-visual")},
            }
        out[grouping] = table
    return out


def _finite(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def write_group_table(path, by_group: dict) -> None:
    """`accuracy_by_group.csv`: one row per (grouping, group), accuracies as fractions
    (any `emotf.storage` path, written whole)."""
    with open_csv(path) as f:
        writer = csv.DictWriter(f, fieldnames=GROUP_FIELDS)
        writer.writeheader()
        for grouping, table in by_group.items():
            for group, row in table.items():
                writer.writerow(
                    {
                        "grouping": grouping,
                        "group": group,
                        **{
                            k: ""
                            if row[k] is None
                            else (f"{row[k]:.6f}" if k != "num_clips" else row[k])
                            for k in GROUP_FIELDS[2:]
                        },
                    }
                )
