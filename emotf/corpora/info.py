"""What travels with records, runs and models about the corpus they came from.

`CorpusInfo` is the one encoding, written by the records build into the manifest (key
`corpus`), copied into a run's `metrics.json` and into a SavedModel's metadata, and read back by
training (the classifier's size), evaluation (class names, human-rater baselines) and
`emotf-predict` (labels in the console table, JSON, CSV and figures). Records, runs and models
written before corpora existed carry no `corpus` key: they are CREMA-D (`CREMAD_INFO`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emotf.corpora.cremad import EMOTION_NAMES, EMOTIONS, NUM_FOLDS

CORPUS_KEY = "corpus"
MAX_CLASSES = 1000
MAX_NAME_CHARS = 200


class CorpusInfoError(ValueError):
    """A `corpus` block that is not a valid `CorpusInfo` (one line, naming the field)."""


@dataclass(frozen=True)
class CorpusInfo:
    """A corpus's name, its class codes in label order, their display names and its folds.

    class_codes: the label strings the records store (CREMA-D: `ANG`, ...; RAVDESS: `angry`);
        a record's integer label indexes this tuple.
    class_names: what people read (CREMA-D: `anger`, ...); the codes themselves elsewhere.
    num_folds: speaker-independent folds of the records (CREMA-D 10, RAVDESS 6 by default).
    """

    name: str
    class_codes: tuple[str, ...]
    class_names: tuple[str, ...]
    num_folds: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= MAX_NAME_CHARS:
            raise CorpusInfoError(
                f"corpus.name must be a non-empty string. Received: {self.name!r}"
            )
        for field_name in ("class_codes", "class_names"):
            values = getattr(self, field_name)
            if (
                not isinstance(values, tuple)
                or not 2 <= len(values) <= MAX_CLASSES
                or not all(isinstance(v, str) and 0 < len(v) <= MAX_NAME_CHARS for v in values)
                or len(set(values)) != len(values)
            ):
                raise CorpusInfoError(
                    f"corpus.{field_name} must be 2 to {MAX_CLASSES} distinct non-empty strings. "
                    f"Received: {values!r}"
                )
        if len(self.class_names) != len(self.class_codes):
            raise CorpusInfoError(
                f"corpus.class_names must name each of the {len(self.class_codes)} class codes. "
                f"Received: {len(self.class_names)} names"
            )
        if isinstance(self.num_folds, bool) or not isinstance(self.num_folds, int):
            raise CorpusInfoError(
                f"corpus.num_folds must be an integer. Received: {self.num_folds!r}"
            )
        if not 2 <= self.num_folds <= MAX_CLASSES:
            raise CorpusInfoError(
                f"corpus.num_folds must be in [2, {MAX_CLASSES}]. Received: {self.num_folds}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_codes)

    @property
    def has_rater_votes(self) -> bool:
        """Whether human-rater baselines exist for this corpus (CREMA-D's votes only)."""
        return self.name == CREMAD_INFO.name and self.class_codes == CREMAD_INFO.class_codes

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "class_codes": list(self.class_codes),
            "class_names": list(self.class_names),
            "num_folds": self.num_folds,
        }

    @classmethod
    def from_dict(cls, data: object) -> CorpusInfo:
        """The `CorpusInfo` of a `to_dict()` block; one-line `CorpusInfoError` otherwise."""
        if not isinstance(data, Mapping):
            raise CorpusInfoError(f"corpus must be a JSON object. Received: {type(data).__name__}")
        unknown = set(data) - {"name", "class_codes", "class_names", "num_folds"}
        if unknown:
            raise CorpusInfoError(f"corpus has unknown keys {sorted(unknown)}")
        codes = data.get("class_codes")
        names = data.get("class_names", codes)
        if not isinstance(codes, list | tuple) or not isinstance(names, list | tuple):
            raise CorpusInfoError("corpus.class_codes and corpus.class_names must be lists")
        return cls(
            name=data.get("name"),  # type: ignore[arg-type]  # checked in __post_init__
            class_codes=tuple(codes),
            class_names=tuple(names),
            num_folds=data.get("num_folds"),  # type: ignore[arg-type]  # checked in __post_init__
        )

    @classmethod
    def of(cls, container: Mapping | None) -> CorpusInfo:
        """The corpus of a manifest, `metrics.json` or model metadata (its `corpus` key);
        CREMA-D for those written before corpora existed (no `corpus` key)."""
        if not container or container.get(CORPUS_KEY) is None:
            return CREMAD_INFO
        return cls.from_dict(container[CORPUS_KEY])


CREMAD_INFO = CorpusInfo(
    name="cremad", class_codes=EMOTIONS, class_names=EMOTION_NAMES, num_folds=NUM_FOLDS
)
