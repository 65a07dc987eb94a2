"""The corpus seam: what any corpus gives the rest of emotf.

A `Corpus` is a list of `Clip`s (id, video path, audio path or None for the video's own audio
track, label, speaker, groups), its class names in order, its name, the files it passed over
with the reason (`Skip`), and a speaker-independent fold for every speaker. Each corpus module
(`cremad_corpus`, `ravdess`, `table`) only lists clips; `emotf.corpora.registry.open_corpus`
opens one by name.

Folds are always by speaker: no speaker is in two folds. A corpus with a canonical assignment
(CREMA-D's 10 actor folds, RAVDESS's blocks of actors) brings its own; otherwise
`balanced_speaker_folds` deals speakers into k folds by the rule of scikit-learn's `GroupKFold`
(most clips first, each into the fold with the fewest clips so far), made deterministic by
breaking ties by speaker name and then by the lowest fold number.
"""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

MAX_FOLDS = 1000  # far above any cross-validation; a typo (an extra zero) is refused


class CorpusError(ValueError):
    """A corpus that cannot be opened: one line naming what was expected and what was found."""


@dataclass(frozen=True)
class Clip:
    """One clip of a corpus.

    Attributes:
        clip_id: unique within the corpus (a file stem, or a path-derived id).
        video: path of the video file (local path or URL text).
        audio: path of a separate audio file, or None: the video's own audio track.
        label: the class name (one of the corpus's `class_names`).
        speaker: who speaks (folds never split a speaker).
        groups: grouping -> group of this clip (e.g. {"sex": "Female", "intensity": "strong"}).
    """

    clip_id: str
    video: str
    audio: str | None
    label: str
    speaker: str
    groups: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        for name in ("clip_id", "video", "label", "speaker"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise CorpusError(f"Clip.{name} must be a non-empty string. Received: {value!r}")
        object.__setattr__(self, "groups", types.MappingProxyType(dict(self.groups)))


@dataclass(frozen=True)
class Skip:
    """A file (or a table's row: `row`, 1 = the header) a corpus passed over, and why."""

    path: str
    reason: str
    row: int | None = None

    def to_dict(self) -> dict:
        out: dict = {"path": self.path, "reason": self.reason}
        if self.row is not None:
            out["row"] = self.row
        return out


@dataclass(frozen=True)
class Corpus:
    """A corpus: its clips, class names in order, speaker -> fold (0..num_folds-1), the files
    it passed over (`skipped`) and caveats for its results (`notes`).

    Built by a corpus module; `__post_init__` checks that every label is a class, clip ids are
    unique, and every speaker has a fold in range.
    """

    name: str
    root: str
    class_names: tuple[str, ...]
    clips: tuple[Clip, ...]
    speaker_folds: Mapping[str, int] = field(hash=False)
    num_folds: int
    skipped: tuple[Skip, ...] = ()
    notes: tuple[str, ...] = ()  # caveats to show with results (e.g. clip-level folds)

    def __post_init__(self):
        object.__setattr__(self, "speaker_folds", types.MappingProxyType(dict(self.speaker_folds)))
        if len(set(self.class_names)) != len(self.class_names) or not self.class_names:
            raise CorpusError(
                f"{self.name}: class names must be distinct and at least one. "
                f"Received: {self.class_names!r}"
            )
        if not 1 <= self.num_folds <= MAX_FOLDS:
            raise CorpusError(
                f"{self.name}: num_folds must be in [1, {MAX_FOLDS}]. Received: {self.num_folds}"
            )
        ids = Counter(c.clip_id for c in self.clips)
        twice = sorted(i for i, n in ids.items() if n > 1)
        if twice:
            raise CorpusError(f"{self.name}: clip ids must be unique. Repeated: {twice[:5]}")
        classes = set(self.class_names)
        for clip in self.clips:
            if clip.label not in classes:
                raise CorpusError(
                    f"{self.name}: clip {clip.clip_id} has label {clip.label!r}, "
                    f"not one of {list(self.class_names)}"
                )
            fold = self.speaker_folds.get(clip.speaker)
            if fold is None or not 0 <= fold < self.num_folds:
                raise CorpusError(
                    f"{self.name}: speaker {clip.speaker!r} needs a fold in "
                    f"0..{self.num_folds - 1}. Received: {fold!r}"
                )

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def speakers(self) -> tuple[str, ...]:
        """The speakers of the clips, sorted."""
        return tuple(sorted({c.speaker for c in self.clips}))

    def label_index(self, clip: Clip) -> int:
        """The clip's class as an index into `class_names`."""
        return self.class_names.index(clip.label)

    def fold_of(self, clip: Clip) -> int:
        return self.speaker_folds[clip.speaker]

    def clips_in(self, fold: int) -> tuple[Clip, ...]:
        """The clips of one fold, in corpus order."""
        return tuple(c for c in self.clips if self.speaker_folds[c.speaker] == fold)

    def skipped_dicts(self) -> list[dict[str, str]]:
        """`skipped` as JSON-ready [{path, reason[, row]}] (as the records build reports it)."""
        return [s.to_dict() for s in self.skipped]


def check_num_folds(num_folds: object, num_speakers: int, corpus: str) -> int:
    """`num_folds` as an int in [1, min(MAX_FOLDS, num_speakers)], else one CorpusError line."""
    if isinstance(num_folds, bool) or not isinstance(num_folds, int):
        raise CorpusError(f"{corpus}: folds must be an integer. Received: folds={num_folds!r}")
    if not 1 <= num_folds <= MAX_FOLDS:
        raise CorpusError(f"{corpus}: folds must be in [1, {MAX_FOLDS}]. Received: {num_folds}")
    if num_folds > num_speakers:
        raise CorpusError(
            f"{corpus}: {num_folds} speaker-independent folds need at least {num_folds} "
            f"speakers. Received: {num_speakers} speakers"
        )
    return num_folds


def balanced_speaker_folds(speakers: Iterable[str], num_folds: int) -> dict[str, int]:
    """Speaker -> fold (0..num_folds-1), GroupKFold's balanced rule, deterministic.

    `speakers` holds one entry per clip (a speaker repeated once per clip). Speakers are taken
    by clip count, most first (ties: by name), and each goes into the fold with the fewest clips
    so far (ties: fewest speakers, then the lowest fold number). The result depends only on the
    multiset of speakers, never on their order.

    Raises:
        CorpusError: num_folds not in [1, number of speakers].
    """
    counts = Counter(speakers)
    check_num_folds(num_folds, len(counts), "balanced_speaker_folds")
    clips = [0] * num_folds
    members = [0] * num_folds
    folds: dict[str, int] = {}
    for speaker, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        fold = min(range(num_folds), key=lambda f: (clips[f], members[f], f))
        folds[speaker] = fold
        clips[fold] += count
        members[fold] += 1
    return folds


def build_options(cls, options: Mapping[str, object], corpus: str):
    """`cls(**options)` (an options dataclass), or one CorpusError line naming the bad option."""
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise CorpusError(f"{corpus}: unknown options {unknown} (known: {', '.join(known)})")
    try:
        return cls(**options)
    except (TypeError, ValueError) as error:
        raise CorpusError(f"{corpus}: {error}") from None
