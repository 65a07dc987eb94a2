"""Which clips a run trains, validates and tests on.

Two protocols:
    actors   the paper's: K-fold actor-independent cross-validation over the records' folds
             (K from the records' `emotf.corpora.info.CorpusInfo`: CREMA-D's 10, RAVDESS 6 by
             default; test fold K, validation = the next folds, training = the rest). Default.
    clips    a fixed clip-level split read from `train.csv` and `test.csv` (rows
             `<clip name>,<EMO>`): "ogm" is the random split of the OGM-GE family of papers
             (OGM-GE, PMR, AGM, MMPareto, ...; shipped in `emotf/data/ogm_*.csv`), or a folder
             of your own. Every actor is in both parts, so results are **speaker-dependent**
             and not comparable with the actor-independent protocol: offered only to compare
             with numbers reported on that split. The validation clips (for picking the epoch)
             are a seeded, emotion-stratified `validation_fraction` of the training list; the
             test list is looked at once, at the end, as in the fold protocol. The lists hold
             CREMA-D clip names: clip-level splits are CREMA-D's only.

A part of a split is a `Selection`: record folds plus, for clip-level splits, the clip names.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotf.corpora.cremad import data_path, parse_clip_name
from emotf.corpora.info import CREMAD_INFO
from emotf.storage import MAX_TABLE_BYTES, as_path

ACTORS = "actors"
OGM = "ogm"
SPEAKER_DEPENDENT = (
    "speaker-dependent (clip-level random split: every actor is in training "
    "and test; not comparable with actor-independent results)"
)


def actor_independent(num_folds: int) -> str:
    """How a run's summary describes the actor protocol over `num_folds` folds."""
    return f"actor-independent ({num_folds}-fold cross-validation, no actor in two folds)"


ACTOR_INDEPENDENT = actor_independent(CREMAD_INFO.num_folds)


@dataclass(frozen=True)
class Selection:
    """Clips of `folds` (record shards are per fold); with `clips` set, only those names."""

    folds: tuple[int, ...]
    clips: frozenset[str] | None = None

    def __len__(self) -> int:
        return len(self.clips) if self.clips is not None else len(self.folds)


@dataclass(frozen=True)
class RunSplit:
    """The training, validation and test selections of one run, and how to describe them."""

    name: str
    train: Selection
    validation: Selection
    test: Selection
    protocol: str

    @property
    def clip_level(self) -> bool:
        return self.test.clips is not None

    def summary(self) -> dict:
        """JSON-ready: folds for the actor protocol, clip counts for a clip-level split, and
        the `split_fingerprint` of the parts."""
        if not self.clip_level:
            return {
                "name": self.name,
                "protocol": self.protocol,
                "train": list(self.train.folds),
                "validation": list(self.validation.folds),
                "test": self.test.folds[0],
                "fingerprint": split_fingerprint(self),
            }
        # Clip-level: each part's clips (`Selection.__len__`).
        return {
            "name": self.name,
            "protocol": self.protocol,
            "fingerprint": split_fingerprint(self),
            "train_clips": len(self.train),
            "validation_clips": len(self.validation),
            "test_clips": len(self.test),
        }


def split_folds(fold: int, validation_folds: int = 1, num_folds: int = CREMAD_INFO.num_folds):
    """(training folds, validation folds, test fold) of `num_folds` folds: validation = the
    `validation_folds` folds after `fold` (cyclically), training = the rest.

    Raises:
        ValueError: one line, for a fold outside 0..num_folds-1 or validation folds that leave
            no training fold.
    """
    if not 2 < num_folds or not 0 <= fold < num_folds:
        raise ValueError(
            f"fold must be in 0..{num_folds - 1} (the records have {num_folds} folds; the "
            f"actor protocol needs at least 3). Received: fold={fold}"
        )
    if not 1 <= validation_folds <= num_folds - 2:
        raise ValueError(
            f"validation_folds must be in 1..{num_folds - 2} with {num_folds} folds (one tests, "
            f"at least one trains). Received: validation_folds={validation_folds}"
        )
    val = [(fold + 1 + i) % num_folds for i in range(validation_folds)]
    train = [k for k in range(num_folds) if k != fold and k not in val]
    return train, val, fold


def read_split_csv(path: str | Path) -> list[str]:
    """Clip names of a `<clip name>,<EMO>` file; each row is checked (name, emotion, no repeats).

    Raises:
        ValueError: naming the file, the row and the problem.
    """
    names, seen = [], set()
    try:
        text = as_path(path).read_text(MAX_TABLE_BYTES)  # FileTooLargeError names the file
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    for row_number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row or not row[0].strip():
            continue
        name = row[0].strip()
        try:
            clip = parse_clip_name(name)
        except ValueError as error:
            raise ValueError(f"{path}, row {row_number}: {error}") from None
        if name != clip.clip_id:  # records are matched on the bare clip id
            raise ValueError(
                f"{path}, row {row_number}: write the bare clip name "
                f"({clip.clip_id}), not a path or file name. Received: {name!r}"
            )
        if len(row) > 1 and row[1].strip() and row[1].strip() != clip.emotion:
            raise ValueError(
                f"{path}, row {row_number}: emotion {row[1].strip()!r} differs "
                f"from the name's {clip.emotion!r}. Received: {row}"
            )
        if name in seen:
            raise ValueError(f"{path}, row {row_number}: {name} is listed twice")
        seen.add(name)
        names.append(name)
    if not names:
        raise ValueError(f"{path}: no clip names")
    return names


def clip_split_files(split: str) -> tuple[Path, Path]:
    """(train.csv, test.csv) of a clip-level split: "ogm" or a folder holding both files."""
    if split == OGM:
        return data_path("ogm_train.csv"), data_path("ogm_test.csv")
    folder = Path(split)
    files = folder / "train.csv", folder / "test.csv"
    try:
        missing = [f.name for f in files if not f.is_file()]
    except OSError as error:  # a name too long for the filesystem, ...
        raise ValueError(f"split: {error.strerror or error}. Received: split={split!r}") from None
    if missing:  # the folder as repr: one line whatever characters it holds
        raise ValueError(
            f"split must be {ACTORS!r}, {OGM!r} or a folder with train.csv and "
            f"test.csv; missing {' and '.join(missing)}. Received: split={split!r}"
        )
    return files


def load_clip_split(split: str) -> tuple[list[str], list[str]]:
    """(training names, test names) of a clip-level split; refuses a clip in both lists.

    Read once per process and file version (configs are rebuilt often, e.g. per tuning trial).
    """
    files = clip_split_files(split)
    train, test = _read_split(*(str(f) for f in files), *(f.stat().st_mtime_ns for f in files))
    return list(train), list(test)


@functools.lru_cache(maxsize=8)
def _read_split(train_file: str, test_file: str, *_mtimes) -> tuple[tuple, tuple]:
    train, test = read_split_csv(train_file), read_split_csv(test_file)
    both = sorted(set(train) & set(test))
    if both:
        raise ValueError(
            f"{len(both)} clips are in both {train_file} (row "
            f"{train.index(both[0]) + 1}) and {test_file} (row "
            f"{test.index(both[0]) + 1}), e.g. {both[:3]}"
        )
    return tuple(train), tuple(test)


def hold_out_validation(
    names: list[str], fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(training, validation): a seeded `fraction` of `names`, stratified by emotion.

    round(fraction * len(names)) clips (at least 1, at most all but 1), shared among the
    emotions by largest remainder, drawn per emotion with numpy's PCG64 generator: the same
    names and seed give the same split on any machine and library version.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1). Received: {fraction}")
    if len(names) < 2:
        raise ValueError(
            f"a validation hold-out needs at least 2 training clips. Received: {names}"
        )
    by_emotion: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        by_emotion.setdefault(parse_clip_name(name).emotion, []).append(name)
    emotions = sorted(by_emotion)
    total = min(max(1, round(fraction * len(names))), len(names) - 1)
    shares = [fraction * len(by_emotion[e]) for e in emotions]
    quota = [int(share) for share in shares]
    by_remainder = sorted(range(len(emotions)), key=lambda i: (quota[i] - shares[i], i))
    for i in by_remainder[: max(0, total - sum(quota))]:
        quota[i] += 1
    rng = np.random.default_rng(seed)
    val = []
    for emotion, count in zip(emotions, quota, strict=True):
        members = by_emotion[emotion]
        val += [members[k] for k in rng.permutation(len(members))[:count]]
    val_set = set(val)
    return sorted(n for n in set(names) if n not in val_set), sorted(val)


def split_fingerprint(split: RunSplit) -> str:
    """sha256 over the sorted clip names of the three parts (folds, for the actor protocol):
    stored in a run's config.json so a resume or an evaluation sees the lists it was run on."""
    digest = hashlib.sha256()
    for part in (split.train, split.validation, split.test):
        items = sorted(part.clips) if part.clips is not None else [str(k) for k in part.folds]
        digest.update(("\n".join(items) + "\f").encode())
    return digest.hexdigest()


def run_split(
    split: str,
    fold: int = 0,
    validation_folds: int = 1,
    validation_fraction: float = 0.1,
    seed: int = 0,
    num_folds: int = CREMAD_INFO.num_folds,
) -> RunSplit:
    """The selections of one run under protocol `split` ("actors", "ogm" or a folder), over
    records of `num_folds` folds (the records' `CorpusInfo.num_folds`; CREMA-D's 10 by
    default). Clip-level splits list CREMA-D clip names: refused for records of other folds."""
    if split == ACTORS:
        train, val, test = split_folds(fold, validation_folds, num_folds)
        return RunSplit(
            ACTORS,
            Selection(tuple(train)),
            Selection(tuple(val)),
            Selection((test,)),
            actor_independent(num_folds),
        )
    if num_folds != CREMAD_INFO.num_folds:
        raise ValueError(
            f"split {split!r} is a clip-level split of CREMA-D clip names; these records have "
            f"{num_folds} folds (another corpus): use split={ACTORS!r}"
        )
    train_names, test_names = load_clip_split(split)
    train_names, val_names = hold_out_validation(train_names, validation_fraction, seed)
    every_fold = tuple(range(num_folds))
    return RunSplit(
        split,
        Selection(every_fold, frozenset(train_names)),
        Selection(every_fold, frozenset(val_names)),
        Selection(every_fold, frozenset(test_names)),
        SPEAKER_DEPENDENT,
    )


def check_fingerprint(split: RunSplit, recorded: dict | None, where: str) -> None:
    """Refuse to go on when a run folder's recorded split (config.json "split") has other clips
    than `split` now (a split file edited between a kill and a resume, say)."""
    if recorded and recorded.get("fingerprint") not in (None, split_fingerprint(split)):
        raise ValueError(
            f"the clips of split {split.name!r} differ from the ones {where} was "
            f"run on (the fingerprint its run folder recorded); were train.csv/test.csv "
            f"edited? Restore them, or use another run folder"
        )
