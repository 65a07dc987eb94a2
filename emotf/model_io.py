"""Loading saved emotf models without ever running code from the file.

A `.keras` archive is a zip of `config.json` (how to rebuild the model) and
`model.weights.h5` (the arrays). Deserialising `config.json` can import and call arbitrary
Python (advisory GHSA-48g7-3x6r-xfhp: Keras <= 3.8 ran a `Lambda` whose function was
`os.system` even in safe mode). emotf therefore:

1. reads `config.json` as plain JSON first and refuses any archive that names a module
   outside Keras/emotf, or any `Lambda` layer (an emotf model has none);
2. for a run's model, rebuilds it from the run's validated `ModelConfig` (`emotf.run.Run`
   reads it) and loads the weights only (the archive's config is never deserialised);
3. for a bare `.keras` file, loads with `safe_mode=True`, explicitly.

Model files are read through `emotf.storage` (`tf.io.gfile`), so a run on `gs://` or `ram://`
loads: such a file is read once, checked, and the checked bytes are what Keras loads (from a
local temporary copy: Keras reads archives with `zipfile` on local paths).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import zipfile
from pathlib import Path

from emotf.storage import StoragePath, as_path

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
        data = None if path.is_local else path.read_bytes()
    except Exception as error:  # noqa: BLE001 (tf.errors.OpError of the filesystem)
        raise ModelLoadError(f"{path}: cannot read the model file ({_first_line(error)})") from None
    try:
        with zipfile.ZipFile(path.local_path() if data is None else io.BytesIO(data)) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise ModelLoadError(f"{path}: not a Keras model archive ({error})") from None
    found: list[str] = []
    _walk(config, found)
    if found:
        raise ModelLoadError(
            f"{path}: refused to load: its config names {', '.join(found[:3])}"
            f"{f' and {len(found) - 3} more' if len(found) > 3 else ''}, which no emotf model "
            "contains and which could run code; load only models you trained"
        )
    return data


@contextlib.contextmanager
def _checked_local(path: StoragePath):
    """`check_archive(path)`, then a local path Keras can load: the file itself when local,
    else a temporary copy of exactly the bytes that were checked (removed afterwards)."""
    data = _check_bytes(path)
    if data is None:
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="emotf-model-") as folder:
        local = Path(folder) / (path.name if path.suffix == ".keras" else "model.keras")
        local.write_bytes(data)
        yield str(local)


def load_model_file(path):
    """Load a bare `.keras` file (uncompiled) after `check_archive`, with `safe_mode=True`."""
    import keras

    import emotf.model  # noqa: F401  (registers emotf's serialisable layers)

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
    from emotf.model import build_model

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
    folder's layout (where `model_file` and the configs live) is `emotf.run.Run`'s business.
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
