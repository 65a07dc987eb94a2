"""Which video files `emotf-predict` reads: files, folders (searched recursively for
`VIDEO_EXTENSIONS`) and glob patterns, expanded in order (`expand_inputs`).

Folder walks and glob patterns never follow a symbolic link into a loop and never yield one
file twice (compared by real path).
"""

from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path

# Extensions `expand_inputs` picks up in folders (any container PyAV reads; files named
# explicitly are tried whatever their extension).
VIDEO_EXTENSIONS = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".flv",
    ".mpg",
    ".mpeg",
    ".ts",
    ".wmv",
    ".3gp",
    ".ogv",
)

__all__ = ["VIDEO_EXTENSIONS", "expand_inputs"]


def _real(path: str) -> str:
    return os.path.realpath(path)


def _walk_videos(folder: str) -> list[str]:
    """Video files under `folder`, sorted. Symbolic links to folders are followed, but a folder
    (by its real path) is entered once: a link loop ends there."""
    found, entered = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        entered.add(_real(root))
        dirs[:] = sorted(d for d in dirs if _real(os.path.join(root, d)) not in entered)
        entered.update(_real(os.path.join(root, d)) for d in dirs)
        found += [
            os.path.join(root, f)
            for f in files
            if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS
            and os.path.isfile(os.path.join(root, f))
        ]
    return sorted(found)


def _glob_files(pattern: str) -> list[str]:
    """Files matching `pattern` (glob syntax; `**` = any number of folders), sorted. Like
    `glob.glob(recursive=True)` (hidden names only matched by a pattern that starts with a
    dot), but each folder is searched once per pattern part, by real path: link loops end."""
    parts = pattern.split(os.sep)
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = os.sep.join(parts[:fixed]) if fixed else ""
    if fixed == 1 and parts[0] == "":
        root = os.sep
    found, done = [], set()

    def listing(folder: str) -> list[str]:
        try:
            return sorted(os.listdir(folder or os.curdir))
        except OSError:
            return []

    def search(folder: str, rest: list[str]) -> None:
        key = (_real(folder or os.curdir), len(rest))
        if key in done:
            return
        done.add(key)
        head, tail = rest[0], rest[1:]
        if head == "**":
            if tail:
                search(folder, tail)
            for name in listing(folder):
                path = os.path.join(folder, name)
                if not name.startswith(".") and os.path.isdir(path):
                    search(path, rest)
                elif not tail and not name.startswith(".") and os.path.isfile(path):
                    found.append(path)
            return
        for name in listing(folder):
            if name.startswith(".") and not head.startswith("."):
                continue
            if fnmatch.fnmatchcase(name, head):
                path = os.path.join(folder, name)
                if not tail and os.path.isfile(path):
                    found.append(path)
                elif tail and os.path.isdir(path):
                    search(path, tail)

    if os.path.isdir(root or os.curdir):
        search(root, [p for p in parts[fixed:] if p])
    return sorted(found)


def expand_inputs(inputs) -> tuple[list[str], list[str]]:
    """Files, folders (searched recursively for `VIDEO_EXTENSIONS`, sorted) and glob patterns
    -> (video paths in order, without repeats; problems: one line per input that matched
    nothing). A path that does not exist and is no pattern stays in the list: it gets its own
    "file not found" error. A file reached twice (named twice, by a link, through a link to a
    folder) is kept once, where it first appears; symbolic link loops are entered once."""
    videos, problems, seen = [], [], set()

    def add(path: str):
        key = _real(path)
        if key not in seen:
            seen.add(key)
            videos.append(path)

    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            found = _walk_videos(item)
            if not found:
                problems.append(
                    f"{item}: no video files in the folder (looked for "
                    f"{', '.join(VIDEO_EXTENSIONS)})"
                )
            for p in found:
                add(p)
        elif not path.exists() and glob.has_magic(item):
            found = _glob_files(item)
            if not found:
                problems.append(f"{item}: no file matches the pattern")
            for p in found:
                add(p)
        else:
            add(item)
    return videos, problems
