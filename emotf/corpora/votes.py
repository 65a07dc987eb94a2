"""CREMA-D's crowd-sourced votes (`tabulatedVotes.csv`), read into a `VoteTable`.

The table has one row per clip and presentation mode. The row id's first digit is the mode
(1 voice only, 2 face only, 3 audio-visual); columns `A D F H N S` count the raters' responses
for each emotion. The intended emotion is the one in the clip's file name. Used by the
perceived labels (`emotf.corpora.labels`) and the human baseline (`emotf.evaluation.human`).

The table is CREMA-D's, licensed under the Open Database License 1.0 (see
`emotf/data/README.md` for the attribution); emotf ships an unchanged copy.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotf.corpora.cremad import EMOTIONS, VOTE_LETTERS, data_path, parse_clip_name

MODES: tuple[str, ...] = ("voice", "face", "audio-visual")
_MODE_OF_DIGIT = {"1": "voice", "2": "face", "3": "audio-visual"}
MAX_VOTES_BYTES = 64 << 20  # a votes table a user passes: CREMA-D's is about 1 MB


@dataclass(frozen=True)
class VoteTable:
    """Per-(clip, mode) response counts.

    Attributes:
        clip_ids: R clip ids (`1001_DFA_ANG_XX`), one per row.
        modes: R strings from `MODES`.
        labels: int64 [R], intended emotion (index into `EMOTIONS`, from the file name).
        counts: int64 [R, 6], responses per emotion in `EMOTIONS` order.
    """

    clip_ids: tuple[str, ...]
    modes: tuple[str, ...]
    labels: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def clip_set(self) -> frozenset[str]:
        return frozenset(self.clip_ids)

    def select(self, clip_ids) -> VoteTable:
        """Rows of exactly these clips (all modes).

        Raises:
            KeyError: a clip id has no votes in the table (the first few are named).
        """
        wanted = {str(c) for c in clip_ids}
        missing = sorted(wanted - self.clip_set)
        if missing:
            raise KeyError(
                f"{len(missing)} clip(s) have no votes in the table. "
                f"Received: clip_ids including {missing[:5]}"
            )
        keep = np.array([c in wanted for c in self.clip_ids], dtype=bool)
        idx = np.flatnonzero(keep)
        return VoteTable(
            tuple(self.clip_ids[i] for i in idx),
            tuple(self.modes[i] for i in idx),
            self.labels[idx],
            self.counts[idx],
        )


def load_votes(path: str | Path | None = None) -> VoteTable:
    """Read `tabulatedVotes.csv` (the shipped copy by default).

    Raises:
        ValueError: a row id does not start with 1, 2 or 3, or the counts do not add up to
            `numResponses`.
    """
    path = Path(path) if path else data_path("tabulatedVotes.csv")
    text = _read_capped(path)
    try:
        return _parse_votes(path, text)
    except csv.Error as error:
        raise ValueError(f"{path}: not a CSV table of votes ({error})") from None
    except (KeyError, IndexError) as error:
        raise ValueError(
            f"{path}: not CREMA-D's tabulatedVotes.csv: no column {error} "
            f"(columns: '', fileName, numResponses, "
            f"{', '.join(VOTE_LETTERS)})"
        ) from None
    except (TypeError, ValueError) as error:
        if str(error).startswith(f"{path}: "):
            raise
        raise ValueError(
            f"{path}: not CREMA-D's tabulatedVotes.csv: "
            f"{str(error).splitlines()[0] if str(error) else error!r}"
        ) from None


def _read_capped(path: Path) -> str:
    """The text of `path`, refused in one line naming it when it holds more than
    `MAX_VOTES_BYTES` (checked before reading and while reading: a pipe or /dev/zero has no
    size) or is not text."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ValueError(
            f"{path}: cannot read the votes table ({error.strerror or error})"
        ) from None
    if size > MAX_VOTES_BYTES:
        raise ValueError(
            f"{path}: {size} bytes, more than a votes table may hold "
            f"({MAX_VOTES_BYTES >> 20} MiB); CREMA-D's is about 1 MB"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_VOTES_BYTES + 1)
    except OSError as error:
        raise ValueError(
            f"{path}: cannot read the votes table ({error.strerror or error})"
        ) from None
    if len(data) > MAX_VOTES_BYTES:
        raise ValueError(
            f"{path}: more than {MAX_VOTES_BYTES >> 20} MiB, more than a votes "
            f"table may hold; CREMA-D's is about 1 MB"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (UTF-8) CSV table of votes") from None


def _parse_votes(path: Path, text: str) -> VoteTable:
    clip_ids, modes, labels, counts = [], [], [], []
    if "\0" in text:
        raise ValueError(f"{path}: not a text CSV table of votes (holds NUL bytes)")
    for row in csv.DictReader(io.StringIO(text, newline="")):
        row_id = row[""]
        if not isinstance(row_id, str):
            raise ValueError(f"{path}: a row with too few columns")
        mode = _MODE_OF_DIGIT.get(row_id[:1])
        if mode is None:
            raise ValueError(f"{path}: row id must start with 1, 2 or 3. Received: {row_id!r}")
        name = parse_clip_name(row["fileName"])
        row_counts = [int(row[letter]) for letter in VOTE_LETTERS]
        if sum(row_counts) != int(row["numResponses"]):
            raise ValueError(
                f"{path}: row {row_id} counts sum to {sum(row_counts)}, "
                f"numResponses={row['numResponses']}"
            )
        clip_ids.append(name.clip_id)
        modes.append(mode)
        labels.append(name.label)
        counts.append(row_counts)
    return VoteTable(
        tuple(clip_ids),
        tuple(modes),
        np.asarray(labels, np.int64),
        np.asarray(counts, np.int64).reshape(-1, len(EMOTIONS)),
    )
