"""Loading saved emotf models without ever running code from the file.

A `.keras` archive is a zip of `config.json` (how to rebuild the model) and
`model.weights.h5` (the arrays). Deserialising `config.json` can import and call arbitrary
Python (advisory GHSA-48g7-3x6r-xfhp: Keras <= 3.8 ran a `Lambda` whose function was
`os.system` even in safe mode). emotf therefore:

1. reads `config.json` as plain JSON first and refuses any archive that names a module
   outside Keras/emotf, or any `Lambda` layer (an emotf model has none);
2. for a run's model, rebuilds it from the run's validated `ModelConfig` (`emotf.runs.folder.Run`
   reads it) and loads the weights only (the archive's config is never deserialised);
3. for a bare `.keras` file, loads with `safe_mode=True`, explicitly.

Model files are read through `emotf.storage` (`tf.io.gfile`), so a run on `gs://` or `ram://`
loads: such a file is read once, checked, and the checked bytes are what Keras loads (from a
local temporary copy: Keras reads archives with `zipfile` on local paths).

Every read is capped (SECURITY.md), so a zip bomb (a 3 MB archive whose `config.json`
inflates to gigabytes) is refused in one line, in milliseconds, with flat memory: the archive's
size (`MAX_ARCHIVE_BYTES`), then its end-of-central-directory record (member count
`MAX_ARCHIVE_MEMBERS`, directory size, no zip64) before `zipfile` parses anything, then every
member's declared size (`MAX_MEMBER_BYTES`, all together `MAX_TOTAL_BYTES`, `config.json`
`MAX_CONFIG_BYTES`) and compression ratio (`MAX_COMPRESSION_RATIO`: Keras stores members
uncompressed), and `config.json` is read in chunks that stop at its cap whatever its
header declares. Keras reads the members through `zipfile`, which stops at the declared
sizes checked here.
"""

from __future__ import annotations

import contextlib
import io
import json
import lzma
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import keras

from emotf.model import build_model  # importing emotf.model registers its serialisable layers
from emotf.storage import StoragePath, as_path

# Caps on a model archive (an emotf model.keras is a few MB; its config.json ~100 KB).
MAX_ARCHIVE_BYTES = 1 << 30  # the .keras file itself
MAX_ARCHIVE_MEMBERS = 64  # Keras writes 3 (config.json, metadata.json, model.weights.h5)
MAX_DIRECTORY_BYTES = 1 << 20  # the zip's central directory
MAX_MEMBER_BYTES = 1 << 30  # any member, uncompressed as declared
MAX_TOTAL_BYTES = 2 << 30  # all members together, uncompressed as declared
MAX_CONFIG_BYTES = 16 << 20  # config.json, uncompressed (declared, and as read)
# Keras stores its members uncompressed (ratio 1); float weights barely compress. A member that
# inflates past 1 MiB at more than this ratio is a bomb, whatever the caps above allow.
MAX_COMPRESSION_RATIO = 100
_CHUNK_BYTES = 1 << 20

# Roots of the modules a genuine emotf model's config may name.
ALLOWED_MODULE_ROOTS = frozenset({"keras", "emotf"})
FORBIDDEN_CLASSES = frozenset({"Lambda", "TFSMLayer"})


class ModelLoadError(ValueError):
    """A model file that emotf refuses to load (unsafe, unreadable or not an emotf model)."""


def _walk(node, found: list[str]) -> None:
    if isinstance(node, dict):
        module = node.get("module")
        if isinstance(module, str) and module.split(".")[0] not in ALLOWED_MODULE_ROOTS:
            found.append(f"module {module!r} ({node.get('class_name', node.get('config'))!r})")
        if node.get("class_name") in FORBIDDEN_CLASSES:
            found.append(f"a {node['class_name']} layer ({node.get('name')!r})")
        if node.get("registered_name") == "function" or node.get("class_name") == "function":
            found.append(f"a Python function ({module}.{node.get('config')})")
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def check_archive(path) -> None:
    """Refuse a `.keras` archive whose `config.json` could run code, read as plain JSON.

    Raises:
        ModelLoadError: naming the file and what it contains that no emotf model does.
    """
    _check_bytes(as_path(path))


def _check_bytes(path: StoragePath) -> bytes | None:
    """`check_archive`; returns the checked bytes of a file that is not local (None for a
    local one, which Keras reads itself)."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    try:
        size = path.size()
        if size > MAX_ARCHIVE_BYTES:
            raise ModelLoadError(
                f"{path}: refused to load a model file of {_mib(size)}, over "
                f"the {_mib(MAX_ARCHIVE_BYTES)} cap (SECURITY.md)"
            )
        data = None if path.is_local else path.read_bytes(MAX_ARCHIVE_BYTES)
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001 (tf.errors.OpError of the filesystem, too large)
        raise ModelLoadError(f"{path}: cannot read the model file ({_first_line(error)})") from None
    try:
        with open(path.local_path(), "rb") if data is None else io.BytesIO(data) as file:
            _check_directory(path, file)
            with zipfile.ZipFile(file) as archive:
                _check_members(path, archive)
                config = json.loads(_read_member(path, archive, "config.json", MAX_CONFIG_BYTES))
    except ModelLoadError:
        raise
    except RecursionError:  # '[[[[...': nested deeper than Python's parser goes
        raise ModelLoadError(
            f"{path}: not a Keras model archive (config.json nested too deep)"
        ) from None
    except (
        zipfile.BadZipFile,
        KeyError,
        OSError,
        ValueError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        zlib.error,
        lzma.LZMAError,
    ) as error:  # a corrupt or
        # encrypted member, an unsupported compression method
        raise ModelLoadError(f"{path}: not a Keras model archive ({_first_line(error)})") from None
    found: list[str] = []
    try:
        _walk(config, found)
    except RecursionError:
        raise ModelLoadError(
            f"{path}: refused to load: its config.json is nested deeper than any Keras model's"
        ) from None
    if found:
        raise ModelLoadError(
            f"{path}: refused to load: its config names {', '.join(found[:3])}"
            f"{f' and {len(found) - 3} more' if len(found) > 3 else ''}, which no emotf model "
            "contains and which could run code; load only models you trained"
        )
    return data


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (22 bytes + comment)
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


def _check_directory(path: StoragePath, file) -> None:
    """Refuse, from the end-of-central-directory record alone (found as `zipfile` finds it),
    an archive with too many members, an oversize directory or zip64 records, before
    `zipfile` parses the directory (millions of entries would be millions of objects)."""
    file.seek(0, io.SEEK_END)
    size = file.tell()
    tail_size = min(size, _EOCD.size + 0xFFFF)
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    at = len(tail) - _EOCD.size
    if tail[at : at + 4] != _EOCD_SIGNATURE:
        at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or len(tail) - at < _EOCD.size:
        raise ModelLoadError(f"{path}: not a Keras model archive (no zip directory)")
    _, _, _, _, entries, directory, _, _ = _EOCD.unpack(tail[at : at + _EOCD.size])
    if at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR:
        raise ModelLoadError(
            f"{path}: refused to load: a zip64 archive (over 2 GiB or 65535 "
            "members), which no emotf model is"
        )
    if entries > MAX_ARCHIVE_MEMBERS or directory > MAX_DIRECTORY_BYTES:
        raise ModelLoadError(
            f"{path}: refused to load: its zip directory lists {entries} members in "
            f"{directory} bytes, over the caps of {MAX_ARCHIVE_MEMBERS} members and "
            f"{_mib(MAX_DIRECTORY_BYTES)} (SECURITY.md)"
        )
    file.seek(0)


def _check_members(path: StoragePath, archive: zipfile.ZipFile) -> None:
    """Refuse an archive whose members declare more than the caps, before reading any."""
    members = archive.infolist()
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise ModelLoadError(
            f"{path}: refused to load: {len(members)} archive members, over "
            f"the cap of {MAX_ARCHIVE_MEMBERS} (SECURITY.md)"
        )
    total = 0
    for member in members:
        cap = MAX_CONFIG_BYTES if member.filename == "config.json" else MAX_MEMBER_BYTES
        total += member.file_size
        if member.file_size > cap:
            raise ModelLoadError(
                f"{path}: refused to load: member {member.filename!r} inflates to "
                f"{_mib(member.file_size)} from {_mib(member.compress_size)}, over its "
                f"{_mib(cap)} cap (a zip bomb? SECURITY.md)"
            )
        if member.file_size > max(1 << 20, MAX_COMPRESSION_RATIO * member.compress_size):
            raise ModelLoadError(
                f"{path}: refused to load: member {member.filename!r} inflates to "
                f"{_mib(member.file_size)} from {_mib(member.compress_size)}, more than "
                f"{MAX_COMPRESSION_RATIO}:1 (a zip bomb? SECURITY.md)"
            )
        if total > MAX_TOTAL_BYTES:
            raise ModelLoadError(
                f"{path}: refused to load: its members inflate to {_mib(total)} or more (at "
                f"member {member.filename!r}), over the {_mib(MAX_TOTAL_BYTES)} cap in all "
                "(a zip bomb? SECURITY.md)"
            )


def _read_member(path: StoragePath, archive: zipfile.ZipFile, name: str, cap: int) -> bytes:
    """The member's bytes, read in chunks that stop past `cap` whatever its header says."""
    chunks, total = [], 0
    with archive.open(name) as member:
        while chunk := member.read(min(_CHUNK_BYTES, cap + 1 - total)):
            total += len(chunk)
            if total > cap:
                raise ModelLoadError(
                    f"{path}: refused to load: member {name!r} inflates past "
                    f"the {_mib(cap)} cap (SECURITY.md)"
                )
            chunks.append(chunk)
    return b"".join(chunks)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


@contextlib.contextmanager
def _checked_local(path: StoragePath):
    """`check_archive(path)`, then a local path Keras can load: the file itself when local,
    else a temporary copy of exactly the bytes that were checked (removed afterwards)."""
    data = _check_bytes(path)
    if data is None:
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="emotf-model-") as folder:
        # Keras loads a `.keras` name only: a copy of another name gets one.
        local = Path(folder) / (path.name if path.suffix == ".keras" else "checked.keras")
        local.write_bytes(data)
        yield str(local)


def load_model_file(path):
    """Load a bare `.keras` file (uncompiled) after `check_archive`, with `safe_mode=True`."""
    path = as_path(path)
    with _checked_local(path) as local:
        try:
            return keras.saving.load_model(local, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for a bad archive
            raise ModelLoadError(f"{path}: cannot load the model ({_first_line(error)})") from None


def load_weights_into(model_config, path, sampling=None):
    """Rebuild `build_model(model_config, sampling)` and load the weights of the `.keras` at
    `path` (`sampling`: the run's `SamplingConfig`, whose STFT/mel settings the model's
    spectrogram layer uses; default `SamplingConfig()`).

    The archive's `config.json` is checked (`check_archive`) but never deserialised: the
    architecture comes from the validated `ModelConfig`, the file gives arrays only.
    """
    path = as_path(path)
    with _checked_local(path) as local:
        model = build_model(model_config, sampling)
        try:
            model.load_weights(local)
        except Exception as error:
            raise ModelLoadError(
                f"{path}: its weights do not fit the run's model config ({_first_line(error)})"
            ) from None
    return model


def load_run_model(model_file, model_config=None, sampling=None):
    """A saved emotf model: rebuilt from `model_config` (+ the run's `SamplingConfig`) with the
    file's weights only, or, without a config, the bare file with `safe_mode=True`. The run
    folder's layout (where `model_file` and the configs live) is `emotf.runs.folder.Run`'s business.
    """
    path = as_path(model_file)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file (not a finished emotf-train run)")
    if model_config is None:
        return load_model_file(path)
    return load_weights_into(model_config, path, sampling)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
