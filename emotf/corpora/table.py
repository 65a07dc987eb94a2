"""A user's own corpus: a CSV table of clips, or a folder with one sub-folder per class.

CSV (`open_corpus("csv", "FILE.csv")`): a header row with the columns `video`, `label`, `speaker`
and optionally `audio` (a separate audio file; empty: the video's own track) and `fold`; any
other column is a grouping (e.g. `sex`: accuracy by group). Paths are absolute, URLs, or
relative to the CSV's folder. The clip id is the `video` entry without its extension.

    video,label,speaker,sex
    clips/anna_01.mp4,happy,anna,Female

Folder (`open_corpus("csv", "FOLDER")`): `FOLDER/<class>/<clip>.<video ext>`; the class is the
sub-folder's name, the audio the video's own track. Who speaks is not in that layout, so
`speaker_from` says where it comes from:

    clip         (default) each clip is its own speaker: folds are clip-level, and results are
                 speaker-independent only if no speaker has two clips (the corpus's `notes` say so)
    parent       `FOLDER/<class>/<speaker>/<clip>.mp4`: the folder above the clip
    stem-prefix  the clip's file name up to its first `_` or `-` (`anna_01.mp4`: anna)

Classes are the `classes` option in that order, else the labels found, sorted. Folds: the CSV's
`fold` column when it has one (integers 0..K-1, each used; one fold per speaker), else the
speakers dealt into `folds` balanced folds (`emotf.corpora.base.balanced_speaker_folds`).

A bad row (a missing file, an empty field, a label outside `classes`, a bad fold, a speaker in
two folds, a video listed twice, an unreadable CSV line) is skipped with its row number and the
reason; it never stops the rest. The CSV is read whole under `emotf.storage.MAX_TABLE_BYTES`,
as text: nothing in it is evaluated or run.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from emotf.bounds import bounded, check_bounds
from emotf.corpora.base import (
    MAX_FOLDS,
    Clip,
    Corpus,
    CorpusError,
    Skip,
    balanced_speaker_folds,
    build_options,
    check_num_folds,
)
from emotf.storage import MAX_TABLE_BYTES, StoragePath, as_path, is_url

NAME = "csv"
REQUIRED_COLUMNS = ("video", "label", "speaker")
OPTIONAL_COLUMNS = ("audio", "fold")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".flv", ".m4v", ".mpg", ".mpeg")
SPEAKER_FROM = ("clip", "parent", "stem-prefix")
DEFAULT_FOLDS = 5
MAX_CLASSES = 10_000
MAX_FIELD_CHARS = 4096  # one cell: a path or a name, never more
CLIP_SPEAKER_NOTE = (
    "each clip is its own speaker (speaker_from='clip'): folds are clip-level, so results are "
    "speaker-independent only if no speaker has two clips"
)
_PREFIX = re.compile(r"^([^_-]+)[_-]")


@dataclass(frozen=True)
class TableOptions:
    """Options of `open_corpus("csv", ...)`."""

    classes: tuple[str, ...] | None = bounded(
        None, nonempty=True, help="class names in order (default: the labels found, sorted)"
    )
    folds: int | None = bounded(
        None,
        ge=1,
        le=MAX_FOLDS,
        help=f"speaker folds (default: the CSV's fold column, else {DEFAULT_FOLDS})",
    )
    speaker_from: str = bounded(
        "clip", choices=SPEAKER_FROM, help="the folder form's speaker: clip, parent, stem-prefix"
    )

    def __post_init__(self):
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))
        check_bounds(self)
        if self.classes is not None:
            if not self.classes or len(self.classes) > MAX_CLASSES:
                raise ValueError(
                    f"TableOptions.classes must hold 1 to {MAX_CLASSES} names. "
                    f"Received: {len(self.classes)}"
                )
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"TableOptions.classes repeats a name. Received: {self.classes}")


def open_table(data_dir: str | Path | StoragePath, **options) -> Corpus:
    """A CSV file's corpus, or a class-folder tree's (module docstring).

    Raises:
        CorpusError: no such file or folder; a CSV without the required columns, unreadable
            as UTF-8, or without one usable row; a bad option; too few speakers for the folds.
        FileTooLargeError: a CSV over `MAX_TABLE_BYTES`.
    """
    opts = build_options(TableOptions, options, NAME)
    path = as_path(data_dir)
    if path.is_dir():
        return _folder_corpus(path, opts)
    if not path.is_file():
        raise CorpusError(
            f"{NAME}: {path} is neither a CSV file (columns video,label,speaker[,audio][,fold]) "
            "nor a folder with one sub-folder per class"
        )
    if opts.speaker_from != "clip":
        raise CorpusError(
            f"{NAME}: speaker_from is for the folder form; a CSV has a speaker column"
        )
    data = path.read_bytes(MAX_TABLE_BYTES)
    return table_from_bytes(data, path, opts, check_files=True)


# ---------------------------------------------------------------------------------------------
# CSV


def _exists(path: StoragePath) -> bool:
    if path.is_local:
        return os.path.isfile(path.local_path())
    return path.is_file()


def _resolve(entry: str, base: StoragePath) -> StoragePath:
    if is_url(entry) or os.path.isabs(entry):
        return as_path(entry)
    return base / entry


def _clip_id(entry: str) -> str:
    text = entry.replace("\\", "/")
    head, _, name = text.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    return f"{head}/{stem}" if head else stem


def _rows(text: str, source: str, bad: list[Skip]):
    """(row number, {column: cell}) of the data rows (the header is row 1); unreadable lines go
    into `bad`. Raises CorpusError for a missing header or required column."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise CorpusError(
            f"{NAME}: {source}: the header row is not readable CSV ({error})"
        ) from None
    if header is None:
        raise CorpusError(f"{NAME}: {source} is empty (expected a header row: video,label,speaker)")
    names = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    twice = sorted({n for n in names if names.count(n) > 1})
    if missing or twice or any(not n or len(n) > MAX_FIELD_CHARS for n in names):
        raise CorpusError(
            f"{NAME}: {source}: the header must name the columns video,label,speaker "
            f"(optional: audio, fold, groupings), each once and non-empty. Received: "
            f"{','.join(names)[:200]!r}"
        )
    row = 1
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            bad.append(Skip(source, f"not readable CSV ({error})", row))
            continue
        if not cells or all(not c.strip() for c in cells):
            continue  # a blank line
        if len(cells) != len(names):
            bad.append(
                Skip(source, f"{len(cells)} cells, but the header has {len(names)} columns", row)
            )
            continue
        yield row, dict(zip(names, (c.strip() for c in cells), strict=True))


def _fold(text: str) -> int | None:
    if not re.fullmatch(r"[0-9]{1,4}", text):
        return None
    fold = int(text)
    return fold if fold < MAX_FOLDS else None


def _row_clip(
    row: Mapping[str, str], base: StoragePath, opts: TableOptions, check_files: bool
) -> tuple[Clip | None, str]:
    for column in REQUIRED_COLUMNS:
        if not row[column]:
            return None, f"empty {column}"
        if len(row[column]) > MAX_FIELD_CHARS:
            return None, f"{column} longer than {MAX_FIELD_CHARS} characters"
    if opts.classes is not None and row["label"] not in opts.classes:
        return None, f"label {row['label']!r:.80} is not one of the classes {list(opts.classes)}"
    video = _resolve(row["video"], base)
    audio = _resolve(row["audio"], base) if row.get("audio") else None
    if check_files:
        for what, path in (("video", video), ("audio", audio)):
            if path is not None and not _exists(path):
                return None, f"{what} file not found: {str(path)!r:.300}"
    groups = {k: v for k, v in row.items() if k not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    try:
        clip = Clip(
            clip_id=_clip_id(row["video"]),
            video=str(video),
            audio=None if audio is None else str(audio),
            label=row["label"],
            speaker=row["speaker"],
            groups=groups,
        )
    except CorpusError as error:
        return None, str(error)
    return clip, ""


def table_from_bytes(
    data: bytes,
    source: str | Path | StoragePath,
    options: TableOptions | None = None,
    check_files: bool = True,
) -> Corpus:
    """The corpus of a CSV's bytes; `source` is the CSV's path (relative paths start at its
    folder; it names the rows in `skipped`). `check_files` False: no file is looked at.

    Raises:
        CorpusError: see `open_table` (never for one bad row: that is skipped).
    """
    opts = options if options is not None else TableOptions()
    source_path = as_path(source)
    name = str(source_path)
    if len(data) > MAX_TABLE_BYTES:
        raise CorpusError(f"{NAME}: {name}: over the {MAX_TABLE_BYTES} byte cap for a table")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{NAME}: {name} is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    bad: list[Skip] = []
    clips: list[tuple[int, Clip, int | None]] = []
    seen: dict[str, int] = {}
    base = source_path.parent
    with_folds = False
    for row, cells in _rows(text, name, bad):
        with_folds = "fold" in cells
        clip, reason = _row_clip(cells, base, opts, check_files)
        fold = _fold(cells["fold"]) if with_folds else None
        if clip is not None and with_folds and fold is None:
            reason = f"fold {cells['fold']!r:.40} is not an integer in [0, {MAX_FOLDS})"
        elif clip is not None and clip.clip_id in seen:
            reason = f"clip id {clip.clip_id!r:.80} already in row {seen[clip.clip_id]}"
        if clip is None or reason:
            bad.append(Skip(name, reason, row))
            continue
        seen[clip.clip_id] = row
        clips.append((row, clip, fold))
    if with_folds:
        clips, speaker_folds = _given_folds(clips, name, bad)
    if not clips:
        first = f"; first: row {bad[0].row}: {bad[0].reason}" if bad else ""
        raise CorpusError(f"{NAME}: {name} has no usable row ({len(bad)} rows skipped{first})")
    bad.sort(key=lambda s: s.row or 0)
    only = [c for _, c, _ in clips]
    if with_folds:
        num_folds = max(speaker_folds.values()) + 1
        used = sorted(set(speaker_folds.values()))
        if used != list(range(num_folds)):
            raise CorpusError(
                f"{NAME}: {name}: the fold column must number its folds 0..K-1, each used. "
                f"Received: folds {used[:20]}"
            )
        if opts.folds is not None and opts.folds != num_folds:
            raise CorpusError(
                f"{NAME}: {name}: the fold column has {num_folds} folds; folds={opts.folds} given"
            )
    else:
        num_folds = opts.folds or DEFAULT_FOLDS
        check_num_folds(num_folds, len({c.speaker for c in only}), f"{NAME}: {name}")
        speaker_folds = balanced_speaker_folds([c.speaker for c in only], num_folds)
    return Corpus(
        name=NAME,
        root=name,
        class_names=opts.classes or tuple(sorted({c.label for c in only})),
        clips=tuple(only),
        speaker_folds=speaker_folds,
        num_folds=num_folds,
        skipped=tuple(bad),
    )


def _given_folds(clips, name: str, bad: list[Skip]):
    """The clips whose fold agrees with their speaker's first row; the others into `bad`."""
    speaker_folds: dict[str, int] = {}
    first_row: dict[str, int] = {}
    kept = []
    for row, clip, fold in clips:
        if clip.speaker not in speaker_folds:
            speaker_folds[clip.speaker], first_row[clip.speaker] = fold, row
        elif speaker_folds[clip.speaker] != fold:
            bad.append(
                Skip(
                    name,
                    f"speaker {clip.speaker!r:.80} is in fold {speaker_folds[clip.speaker]} "
                    f"(row {first_row[clip.speaker]}); a speaker's clips share one fold",
                    row,
                )
            )
            continue
        kept.append((row, clip, fold))
    return kept, speaker_folds


# ---------------------------------------------------------------------------------------------
# Class folders


def _speaker(path: StoragePath, opts: TableOptions) -> str | None:
    if opts.speaker_from == "parent":
        return path.parent.name
    if opts.speaker_from == "stem-prefix":
        match = _PREFIX.match(path.name)
        return match[1] if match else None
    return None


def _folder_corpus(root: StoragePath, opts: TableOptions) -> Corpus:
    skipped: list[Skip] = []
    clips: list[Clip] = []
    class_dirs = 0
    for entry in root.iterdir():
        if not entry.is_dir():
            skipped.append(Skip(str(entry), "not a class folder (the layout is CLASS/clip files)"))
            continue
        if opts.classes is not None and entry.name not in opts.classes:
            skipped.append(Skip(str(entry), f"not one of the classes {list(opts.classes)}"))
            continue
        class_dirs += 1
        if opts.speaker_from == "parent":
            files = []
            for sub in entry.iterdir():
                if sub.is_dir():
                    files += sub.iterdir()
                else:
                    reason = "not in a speaker folder (speaker_from='parent': CLASS/SPEAKER/clip)"
                    skipped.append(Skip(str(sub), reason))
        else:
            files = entry.iterdir()
        for path in files:
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                skipped.append(Skip(str(path), f"not a video file ({', '.join(VIDEO_EXTENSIONS)})"))
                continue
            if path.is_local and not path.local_path().is_file():
                skipped.append(Skip(str(path), "not a regular file"))
                continue
            clip_id = path.relative_to(root).rsplit(".", 1)[0]
            speaker = _speaker(path, opts)
            if speaker is None and opts.speaker_from == "stem-prefix":
                reason = "no speaker prefix in the file name (SPEAKER_ or SPEAKER- first)"
                skipped.append(Skip(str(path), reason))
                continue
            clips.append(Clip(clip_id, str(path), None, entry.name, speaker or clip_id))
    if not class_dirs or not clips:
        layout = "CLASS/SPEAKER/clip.mp4" if opts.speaker_from == "parent" else "CLASS/clip.mp4"
        raise CorpusError(
            f"{NAME}: no clip in {root} (expected one sub-folder per class holding videos: "
            f"{layout}); {len(skipped)} entries passed over"
        )
    num_folds = opts.folds or DEFAULT_FOLDS
    check_num_folds(num_folds, len({c.speaker for c in clips}), f"{NAME}: {root}")
    return Corpus(
        name=NAME,
        root=str(root),
        class_names=opts.classes or tuple(sorted({c.label for c in clips})),
        clips=tuple(clips),
        speaker_folds=balanced_speaker_folds([c.speaker for c in clips], num_folds),
        num_folds=num_folds,
        skipped=tuple(skipped),
        notes=(CLIP_SPEAKER_NOTE,) if opts.speaker_from == "clip" else (),
    )
