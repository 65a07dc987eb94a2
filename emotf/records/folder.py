"""The records folder: the one place its file names live (the twin of `emotf.runs.folder.Run`).

A records folder (`emotf-build-records --out OUT`) holds:

    fold-K-of-N-SSSSS.tfrecord     one Example per clip, clips of fold K (of the corpus's N
                                   folds: CREMA-D 10) only (`.tfrecord.gz` is read too);
                                   SSSSS numbers the shards of a fold
    fold-K-of-N-SSSSS.json         the shard's sidecar, written after the shard is in place
    manifest.json                  written last: every shard with its checksum, the settings
    build.lock                     while a local build writes the folder: its pid
    *.tmp                          temporaries an interrupted build left (`temporaries`)

Every other module asks a `RecordsFolder` for these paths instead of typing the names. The
folder may be local, `gs://...` or `ram://...` (`emotf.storage`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import ClassVar

from emotf.corpora.info import CREMAD_INFO
from emotf.storage import StoragePath, as_path

_SHARD_SUFFIX = ".tfrecord"
_SIDECAR_SUFFIX = ".json"
# Every shard and sidecar name starts so (shards, sidecars and a shard's temporary file).
_BUILD_FILES = "fold-*-of-*"
# Folds of a shard name when none is given: CREMA-D's 10 (the records before corpora existed).
DEFAULT_NUM_FOLDS = CREMAD_INFO.num_folds


@dataclass(frozen=True)
class RecordsFolder:
    """One records folder: the names of its files and the paths of those of `path`."""

    path: StoragePath

    MANIFEST: ClassVar[str] = "manifest.json"
    LOCK: ClassVar[str] = "build.lock"
    # A shard file's name: fold K, of N folds, shard number S of the fold, gzip or not.
    SHARD_RE: ClassVar[re.Pattern[str]] = re.compile(
        r"^fold-(\d+)-of-(\d+)-(\d+)\.tfrecord(\.gz)?$"
    )
    # How messages spell a shard's name.
    SHARD_FORM: ClassVar[str] = f"fold-K-of-N-SSSSS{_SHARD_SUFFIX}"
    # Temporaries of a build: a shard's `NAME.tfrecord.<hex>.tmp` (`shard_temporary`) and the
    # `.NAME.<hex>.tmp` of `emotf.storage.write_atomic` (sidecars, the manifest); older
    # versions wrote `manifest.json.tmp`.
    TEMPORARY_PATTERNS: ClassVar[tuple[str, ...]] = (
        f"{_BUILD_FILES}.tmp",
        f".{_BUILD_FILES}.tmp",
        ".manifest.json.*.tmp",
        "manifest.json.tmp",
    )

    def __post_init__(self):
        object.__setattr__(self, "path", as_path(self.path))

    # === Names ===

    @staticmethod
    def shard_name(fold: int, index: int, num_folds: int = DEFAULT_NUM_FOLDS) -> str:
        """The name of shard `index` of fold `fold` of `num_folds` (no suffix):
        `fold-K-of-N-SSSSS`."""
        return f"fold-{int(fold)}-of-{int(num_folds)}-{int(index):05d}"

    @classmethod
    def shard_file(cls, name: str) -> str:
        """The file name of the shard `name` (`shard_name`)."""
        return f"{name}{_SHARD_SUFFIX}"

    @classmethod
    def shard_fold(cls, file_name: str) -> int | None:
        """The fold K of a shard file name `fold-K-of-N-SSSSS.tfrecord[.gz]`, None for any
        other name."""
        match = cls.SHARD_RE.match(file_name) if isinstance(file_name, str) else None
        return None if match is None else int(match[1])

    @classmethod
    def shard_folds(cls, file_name: str) -> int | None:
        """The number of folds N of a shard file name, None for any other name."""
        match = cls.SHARD_RE.match(file_name) if isinstance(file_name, str) else None
        return None if match is None else int(match[2])

    # === Paths ===

    @property
    def manifest_path(self) -> StoragePath:
        return self.path / self.MANIFEST

    @property
    def lock_path(self) -> StoragePath:
        return self.path / self.LOCK

    def shard_path(self, name: str) -> StoragePath:
        return self.path / self.shard_file(name)

    def sidecar_path(self, name: str) -> StoragePath:
        return self.path / f"{name}{_SIDECAR_SUFFIX}"

    def shard_temporary(self, name: str) -> StoragePath:
        """A fresh temporary name for shard `name` (unique per attempt: a retried Beam bundle
        never writes into another attempt's file)."""
        return self.path / f"{self.shard_file(name)}.{uuid.uuid4().hex[:8]}.tmp"

    # === What is on disk ===

    def shards(self, folds=None) -> list[StoragePath]:
        """The shard files in the folder (of `folds` only, when given)."""
        wanted = None if folds is None else {int(k) for k in folds}
        found = []
        for path in self.path.iterdir():
            fold = self.shard_fold(path.name)
            if fold is not None and (wanted is None or fold in wanted):
                found.append(path)
        return found

    def sidecars(self) -> list[StoragePath]:
        return self.path.glob(f"{_BUILD_FILES}{_SIDECAR_SUFFIX}")

    def plan_files(self) -> list[tuple[str, StoragePath]]:
        """(shard name, path) of every shard (`.tfrecord`) and sidecar file in the folder."""
        return [
            (path.name.split(".")[0], path)
            for path in self.path.glob(_BUILD_FILES)
            if path.suffix in (_SHARD_SUFFIX, _SIDECAR_SUFFIX)
        ]

    def build_outputs(self) -> list[StoragePath]:
        """Every file a build wrote: shards, sidecars, their temporaries and the manifest."""
        found = [p for p in self.path.glob(_BUILD_FILES) if p.is_file()]
        return found + [p for p in (self.manifest_path,) if p.is_file()]

    def temporaries(self) -> list[StoragePath]:
        """The temporary files an interrupted build left (`TEMPORARY_PATTERNS`), sorted."""
        found = {p for pattern in self.TEMPORARY_PATTERNS for p in self.path.glob(pattern)}
        return sorted(found, key=str)
