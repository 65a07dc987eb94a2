"""Storage paths: every read and write of records, runs and exports goes through `tf.io.gfile`.

`StoragePath` is a small pathlib-like path whose I/O is `tf.io.gfile`, so the same code reads and
writes a local folder, `gs://bucket/...` (where TensorFlow's GCS filesystem is available),
`s3://`/`hdfs://` (with the tensorflow-io plugins) or TensorFlow's in-memory `ram://` filesystem
(the tests). `as_path` turns a str / os.PathLike into one. Local paths stay plain local paths
(`is_local`), so what needs the OS (a lock file, fsync) can ask for `local_path()`.

JSON files have one writer here (`write_json`: to a temporary name, then renamed into place,
so a reader never sees half a file) and one reader (`read_json`: one clear line on a bad file).

Every whole-file read is size-capped (SECURITY.md): `read_bytes`/`read_text` refuse a file
larger than `max_bytes` (default `MAX_READ_BYTES`, 1 GiB), `read_json` one larger than
`MAX_JSON_BYTES` (64 MiB), with one `FileTooLargeError` (a ValueError) line naming the file.
The size is checked before reading (`stat`) and again while reading in chunks (a file that
grows, or a filesystem whose `stat` is wrong, is cut off at the cap, never read whole).
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import uuid
from pathlib import Path
from typing import Any

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

MAX_READ_BYTES = 1 << 30  # 1 GiB: any whole-file read (an emotf model.keras is a few MB)
MAX_JSON_BYTES = 64 << 20  # 64 MiB: a JSON file (configs, manifests, metadata: KB to a few MB)
MAX_TABLE_BYTES = 64 << 20  # 64 MiB: a CSV table a user passes (CREMA-D's largest is ~1 MB)
_CHUNK_BYTES = 1 << 20


class FileTooLargeError(ValueError):
    """A file larger than the cap its reader allows (one line naming the file and the cap)."""


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _gfile():
    """`tf.io.gfile`."""
    # TensorFlow imported on first I/O only: emotf.configs imports this module (through
    # emotf.corpora.splits), and the records build's worker processes import emotf.configs
    # without needing TensorFlow (seconds per worker).
    import tensorflow as tf

    return tf.io.gfile


class StoragePath:
    """A path on any filesystem `tf.io.gfile` knows; the parts of pathlib emotf uses."""

    __slots__ = ("_path",)
    _path: str

    def __init__(self, path: str | os.PathLike | StoragePath):
        text = path._path if isinstance(path, StoragePath) else os.fspath(path)
        if not isinstance(text, str):
            raise TypeError(f"a storage path must be text. Received: {text!r}")
        if _SCHEME.match(text):
            scheme, rest = text.split("://", 1)
            rest = rest.rstrip("/") or rest
            text = f"{scheme}://{rest}"
        else:
            text = str(Path(text))
        self._path = text

    # === Names ===

    def __str__(self) -> str:
        return self._path

    def __fspath__(self) -> str:
        return self._path

    def __repr__(self) -> str:
        return f"StoragePath({self._path!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, StoragePath | str | Path) and str(other) == self._path

    def __hash__(self) -> int:
        return hash(self._path)

    def __lt__(self, other: StoragePath | str) -> bool:  # sorted() of paths: by their text
        return self._path < str(other)

    def __truediv__(self, name: str | os.PathLike) -> StoragePath:
        return StoragePath(posixpath.join(self._path, os.fspath(name)))

    @property
    def scheme(self) -> str | None:
        """'gs', 'ram', ... for a URL; None for a local path."""
        match = _SCHEME.match(self._path)
        return match[1] if match else None

    @property
    def is_local(self) -> bool:
        return self.scheme is None

    def local_path(self) -> Path:
        """The pathlib.Path of a local path (ValueError for a URL)."""
        if not self.is_local:
            raise ValueError(f"{self}: not a local path")
        return Path(self._path)

    @property
    def name(self) -> str:
        return posixpath.basename(self._path)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    @property
    def parent(self) -> StoragePath:
        head = posixpath.dirname(self._path)
        if self.scheme and head.rstrip("/") == self.scheme + ":":  # the root of a URL: 'ram://'
            head = self.scheme + "://"
        return StoragePath(head or ".")

    def with_name(self, name: str) -> StoragePath:
        return self.parent / name

    def resolve(self) -> StoragePath:
        """The absolute path of a local path; a URL as it is."""
        return StoragePath(Path(self._path).resolve()) if self.is_local else self

    def relative_to(self, other: str | os.PathLike | StoragePath) -> str:
        """This path relative to `other` (a folder above it), in '/' form."""
        base = str(as_path(other)).rstrip("/") + "/"
        if not self._path.startswith(base):
            raise ValueError(f"{self} is not inside {other}")
        return self._path[len(base) :]

    # === Queries ===

    def exists(self) -> bool:
        return _gfile().exists(self._path)

    def is_dir(self) -> bool:
        return _gfile().isdir(self._path)

    def is_file(self) -> bool:
        return self.exists() and not self.is_dir()

    def size(self) -> int:
        """The file's size in bytes."""
        return int(_gfile().stat(self._path).length)

    def iterdir(self) -> list[StoragePath]:
        """The folder's entries, sorted by name."""
        return [self / name.rstrip("/") for name in sorted(_gfile().listdir(self._path))]

    def glob(self, pattern: str) -> list[StoragePath]:
        """Entries of this folder whose name matches `pattern` (one level, fnmatch), sorted."""
        if not self.is_dir():
            return []
        return [p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern)]

    # === Changes ===

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        if self.is_dir():
            if not exist_ok:
                raise FileExistsError(f"{self} exists")
            return
        (_gfile().makedirs if parents else _gfile().mkdir)(self._path)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            _gfile().remove(self._path)
        except Exception as error:  # tf.errors.NotFoundError
            if missing_ok and not self.exists():
                return
            raise FileNotFoundError(f"{self}: {error}") from None

    def rmtree(self) -> None:
        """Delete the folder and everything under it (nothing when it does not exist)."""
        for _ in range(3):  # ram:// lists phantom entries ('assets' shows '.extra' of
            if not self.exists():  # 'assets.extra'): deleting them fails once, then it is gone
                return
            try:
                _gfile().rmtree(self._path)
            except Exception:  # tf.errors.NotFoundError of such an entry
                continue
        if self.exists():
            _gfile().rmtree(self._path)

    def replace(self, target: str | os.PathLike | StoragePath) -> StoragePath:
        """Rename onto `target` (overwriting it)."""
        target = StoragePath(target)
        _gfile().rename(self._path, str(target), overwrite=True)
        return target

    def copy(self, target: str | os.PathLike | StoragePath) -> StoragePath:
        """Copy this file onto `target` (its folder created first: on ram:// a file copied into
        a missing folder is never listed)."""
        target = StoragePath(target)
        target.parent.mkdir()
        _gfile().copy(self._path, str(target), overwrite=True)
        return target

    def copy_tree(self, target: str | os.PathLike | StoragePath) -> StoragePath:
        """Copy this folder and everything under it to `target` (across filesystems too:
        a local folder into ram:// or gs://)."""
        target = StoragePath(target)
        target.mkdir()
        for entry in self.iterdir():
            if not entry.exists():  # ram://'s phantom entries (see rmtree)
                continue
            if entry.is_dir():
                entry.copy_tree(target / entry.name)
            else:
                entry.copy(target / entry.name)
        return target

    # === Content ===

    def open(self, mode: str = "r"):
        """A `tf.io.gfile.GFile` (a file object: read/write/seek/close, a context manager)."""
        return _gfile().GFile(self._path, mode)

    def read_bytes(self, max_bytes: int | None = MAX_READ_BYTES) -> bytes:
        """The file's content; at most `max_bytes` (None: no cap, for files emotf wrote).

        Raises:
            FileTooLargeError: the file is larger than `max_bytes` (checked before reading and
                while reading: nothing beyond the cap is ever held in memory).
        """
        if max_bytes is None:
            with self.open("rb") as f:
                return f.read()
        size = self.size()
        if size > max_bytes:
            raise self._too_large(size, max_bytes)
        chunks, total = [], 0
        with self.open("rb") as f:
            while True:
                chunk = f.read(min(_CHUNK_BYTES, max_bytes + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise self._too_large(total, max_bytes, "at least ")
                chunks.append(chunk)
        return b"".join(chunks)

    def read_text(self, max_bytes: int | None = MAX_READ_BYTES) -> str:
        """The file's content decoded as UTF-8 (`read_bytes`' cap)."""
        return self.read_bytes(max_bytes).decode("utf-8")

    def _too_large(self, size: int, cap: int, prefix: str = "") -> FileTooLargeError:
        return FileTooLargeError(
            f"{self}: refused to read a file of {prefix}{_mib(size)}, over the {_mib(cap)} cap "
            f"for this file (SECURITY.md). Received: {size} bytes"
        )

    def write_bytes(self, data: bytes) -> int:
        """Replace the file's content with `data`."""
        if not self.is_local and self.exists():  # ram:// appends to an existing file
            self.unlink()
        with self.open("wb") as f:
            f.write(data)
        return len(data)

    def write_text(self, text: str) -> int:
        return self.write_bytes(text.encode("utf-8"))


def as_path(path: str | os.PathLike | StoragePath) -> StoragePath:
    """`path` as a `StoragePath` (local paths, `gs://...`, `ram://...`)."""
    return path if isinstance(path, StoragePath) else StoragePath(path)


def is_url(path: str | os.PathLike | StoragePath) -> bool:
    return not as_path(path).is_local


def write_atomic(path: str | os.PathLike | StoragePath, data: bytes) -> StoragePath:
    """Write `data` to a temporary name beside `path`, then rename it into place: readers see
    the old file or the new one, never half of one. Local files are fsynced first."""
    path = as_path(path)
    path.parent.mkdir()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if path.is_local:
            local = tmp.local_path()
            with open(local, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(local, path.local_path())
            return path
        tmp.write_bytes(data)
        return tmp.replace(path)
    except BaseException:  # a full disk, an interrupt: no temporary file left behind
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def write_json(path: str | os.PathLike | StoragePath, value: Any) -> StoragePath:
    """Write `value` as indented JSON, atomically (`write_atomic`); values JSON does not know
    are written as their str()."""
    return write_atomic(path, (json.dumps(value, indent=2, default=str) + "\n").encode("utf-8"))


def read_json(
    path: str | os.PathLike | StoragePath,
    expect: type | None = dict,
    max_bytes: int = MAX_JSON_BYTES,
):
    """The JSON value of `path`, a file of at most `max_bytes` (default `MAX_JSON_BYTES`).

    Raises:
        FileNotFoundError: no such file (naming it).
        FileTooLargeError: larger than `max_bytes` (a ValueError naming the file).
        ValueError: not readable JSON (also nested too deep to parse), or not of type
            `expect` (naming the file).
    """
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_text(max_bytes)
    except FileTooLargeError:
        raise
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"{path}: not readable JSON ({error})") from None
    except Exception as error:  # noqa: BLE001 (tf.errors.OpError of the filesystem)
        raise ValueError(f"{path}: cannot read the file ({type(error).__name__})") from None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path}: not readable JSON ({error})") from None
    except RecursionError:  # '[[[[...' : Python's parser gives up on deep nesting
        raise ValueError(f"{path}: not readable JSON (nested too deep)") from None
    if expect is not None and not isinstance(value, expect):
        raise ValueError(
            f"{path}: expected a JSON {expect.__name__}. "  # noqa: TRY004 (file content)
            f"Received: {type(value).__name__}"
        )
    return value
