"""CREMA-D names, labels and actor-independent folds.

Clip names follow `ActorID_Sentence_Emotion_Level`, e.g. `1001_DFA_ANG_XX`. Parsing is strict:
a name that does not match raises `ClipNameError` naming the input; nothing is guessed.

Folds: actors are shuffled with a fixed seed (optionally within each sex: females, then males)
and dealt round-robin into `n_folds` folds, so every fold holds `len(actors) // n_folds` or one
more actor (and, when stratified, the sexes are balanced to within one actor per fold). No actor is
in two folds; the assignment depends only on the actor set, the seed and the stratify flag.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

EMOTIONS: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
EMOTION_NAMES: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "neutral", "sad")
# Single-letter codes used by CREMA-D's vote tables, in the same order as EMOTIONS.
VOTE_LETTERS: tuple[str, ...] = ("A", "D", "F", "H", "N", "S")
SENTENCES: tuple[str, ...] = (
    "IEO",
    "TIE",
    "IOM",
    "IWW",
    "TAI",
    "MTI",
    "IWL",
    "ITH",
    "DFA",
    "ITS",
    "TSI",
    "WSI",
)
INTENSITIES: tuple[str, ...] = ("LO", "MD", "HI", "XX")
FIRST_ACTOR, LAST_ACTOR = 1001, 1091
NUM_FOLDS = 10

_NAME_RE = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<intensity>[A-Z]{2})$"
)


class ClipNameError(ValueError):
    """A file name that is not a valid CREMA-D clip name."""


@dataclass(frozen=True)
class ClipName:
    """A parsed CREMA-D clip name."""

    actor_id: int
    sentence: str
    emotion: str
    intensity: str

    @property
    def clip_id(self) -> str:
        return f"{self.actor_id}_{self.sentence}_{self.emotion}_{self.intensity}"

    @property
    def label(self) -> int:
        """Index of the emotion in `EMOTIONS`."""
        return EMOTIONS.index(self.emotion)


def parse_clip_name(name: str | Path) -> ClipName:
    """Parse a clip name or a media path (`.../1001_DFA_ANG_XX.flv`) strictly.

    Raises:
        ClipNameError: the stem does not match `AAAA_SSS_EEE_LL` with a known actor (1001..1091),
            sentence, emotion and intensity.
    """
    stem = Path(str(name)).name
    if "." in stem:
        stem = stem.split(".", 1)[0]
    match = _NAME_RE.match(stem)
    if match is None:
        raise ClipNameError(
            f"not a CREMA-D clip name (expected ActorID_SENT_EMO_LVL, e.g. 1001_DFA_ANG_XX). "
            f"Received: name={str(name)!r}"
        )
    actor = int(match["actor"])
    problems = []
    if not FIRST_ACTOR <= actor <= LAST_ACTOR:
        problems.append(f"actor {actor} outside {FIRST_ACTOR}..{LAST_ACTOR}")
    if match["sentence"] not in SENTENCES:
        problems.append(f"unknown sentence {match['sentence']!r}")
    if match["emotion"] not in EMOTIONS:
        problems.append(f"unknown emotion {match['emotion']!r}")
    if match["intensity"] not in INTENSITIES:
        problems.append(f"unknown intensity {match['intensity']!r}")
    if problems:
        raise ClipNameError(f"{'; '.join(problems)}. Received: name={str(name)!r}")
    return ClipName(actor, match["sentence"], match["emotion"], match["intensity"])


def data_path(filename: str) -> Path:
    """Path of a metadata table shipped inside the package (`emotf/data/`)."""
    return Path(str(resources.files("emotf") / "data" / filename))


def load_clip_names(path: str | Path | None = None) -> list[str]:
    """All clip names from `SentenceFilenames.csv` (defaults to the shipped copy)."""
    path = Path(path) if path else data_path("SentenceFilenames.csv")
    with open(path, newline="") as f:
        return [row["Filename"] for row in csv.DictReader(f)]


def load_actor_sexes(path: str | Path | None = None) -> dict[int, str]:
    """Actor id -> `"Male"`/`"Female"` from `VideoDemographics.csv` (shipped copy by default)."""
    path = Path(path) if path else data_path("VideoDemographics.csv")
    with open(path, newline="") as f:
        return {int(row["ActorID"]): row["Sex"] for row in csv.DictReader(f)}


def assign_folds(
    actor_ids,
    n_folds: int = NUM_FOLDS,
    seed: int = 0,
    stratify_by_sex: bool = False,
    sexes: dict[int, str] | None = None,
) -> dict[int, int]:
    """Deterministic actor-independent fold of each actor (0..n_folds-1).

    Args:
        actor_ids: actor ids (duplicates are ignored).
        n_folds: number of folds.
        seed: shuffling seed; the same actors and seed always give the same folds.
        stratify_by_sex: deal females then males (sorted sex names) so each fold's sexes differ
            by at most one.
        sexes: actor -> sex; defaults to the shipped demographics table.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1. Received: n_folds={n_folds}")
    actors = sorted(set(int(a) for a in actor_ids))
    rng = np.random.default_rng(seed)
    if stratify_by_sex:
        sexes = sexes if sexes is not None else load_actor_sexes()
        missing = [a for a in actors if a not in sexes]
        if missing:
            raise ValueError(f"no sex known for actors {missing} in the demographics table")
        groups = [
            [a for a in actors if sexes[a] == s] for s in sorted(set(sexes[a] for a in actors))
        ]
    else:
        groups = [actors]
    order = [a for group in groups for a in rng.permutation(group).tolist()]
    return {actor: i % n_folds for i, actor in enumerate(order)}


def fold_of_clips(names, **fold_kwargs) -> dict[str, int]:
    """Clip id -> fold, with folds assigned over the actors of `names` (see `assign_folds`)."""
    parsed = [parse_clip_name(n) for n in names]
    folds = assign_folds([p.actor_id for p in parsed], **fold_kwargs)
    return {p.clip_id: folds[p.actor_id] for p in parsed}


def canonical_folds(seed: int = 0, stratify_by_sex: bool = False) -> dict[int, int]:
    """Folds over all 91 CREMA-D actors: stable whatever subset of the dataset is on disk.

    `emotf-build-records` uses this by default, so a partial copy, a resumed build and the full
    dataset agree on every actor's fold.
    """
    return assign_folds(
        range(FIRST_ACTOR, LAST_ACTOR + 1), NUM_FOLDS, seed=seed, stratify_by_sex=stratify_by_sex
    )
