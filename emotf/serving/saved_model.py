"""Load a SavedModel's `serving_default` (`load_serving`); a model TensorFlow cannot load is
one line naming the folder and the problem (`load_problem`), not TensorFlow's raw message.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf
from google.protobuf.message import DecodeError

__all__ = ["load_problem", "load_serving", "tf_error_line"]


def load_serving(model_dir):
    """`serving_default` of the SavedModel in `model_dir`. A damaged SavedModel (a flipped byte
    or a truncated variables file, a broken graph) raises one ValueError naming the folder and
    the problem (`load_problem`), not TensorFlow's raw message."""
    try:
        loaded = tf.saved_model.load(str(model_dir))
    except tf.errors.ResourceExhaustedError:
        raise  # out of memory: emotf.cli.command says so
    except (
        tf.errors.OpError,
        ValueError,
        LookupError,
        TypeError,
        OSError,
        RuntimeError,
        DecodeError,
    ) as error:
        raise ValueError(
            f"{model_dir}: cannot load the SavedModel: {load_problem(error, model_dir)}"
        ) from error
    signatures = getattr(loaded, "signatures", None) or {}
    if "serving_default" not in signatures:
        raise ValueError(
            f"{model_dir}: cannot load the SavedModel: it has no serving_default "
            f"signature (signatures: {', '.join(sorted(signatures)) or 'none'})"
        )
    return signatures["serving_default"]


_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_OP_SUFFIX = re.compile(r"\s*\[Op:[\w:]+\]\s*$")


def load_problem(error: BaseException, model_dir=None) -> str:
    """The first meaningful line of a TensorFlow error raised while loading a SavedModel:
    `{{function_node ...}}` prefixes and `[Op:...]` suffixes stripped; a checksum mismatch or
    a short read named by the variables file (relative to `model_dir`)."""
    line = tf_error_line(error)
    shard = re.search(r"variables shard (\d+)", line)
    if "checksum does not match" in line.lower() and shard:
        return f"checksum does not match in {_variables_file(model_dir, int(shard.group(1)))}"
    if "checksum does not match" in line.lower() or "checksum mismatch" in line.lower():
        where = "variables/variables.index" if "variables.index" in line else "variables/"
        return f"checksum does not match in {where} (a damaged file)"
    if "read less bytes than requested" in line.lower():
        return f"{_variables_file(model_dir, 0)} is truncated (read less bytes than requested)"
    if "too short to be an sstable" in line:
        return "variables/variables.index is truncated (too short to be an sstable)"
    if line.startswith("Cannot parse file") and "saved_model.pb" in line:
        return "saved_model.pb is not a SavedModel protobuf (damaged or another file)"
    if re.search(r"there are 0 MetaGraphs", line):
        return "saved_model.pb holds no MetaGraph (empty or damaged)"
    if model_dir is not None:
        line = line.replace(f"{model_dir}/", "")
    return line


def tf_error_line(error: BaseException) -> str:
    """The first non-empty line of a (TensorFlow) error without `{{function_node ...}}`
    prefixes and `[Op:...]` suffixes; the error type's name when there is none."""
    text = getattr(error, "message", None) or str(error)
    lines = [
        _OP_SUFFIX.sub("", _FUNCTION_NODE.sub("", line)).strip() for line in str(text).splitlines()
    ]
    lines = [line for line in lines if line]
    return lines[0] if lines else type(error).__name__


def _variables_file(model_dir, shard: int) -> str:
    """`variables/variables.data-<shard>-of-<n>`, as found in `model_dir` (n unknown: *)."""
    name = f"variables.data-{shard:05d}-of-"
    try:
        found = sorted(tf.io.gfile.glob(f"{model_dir}/variables/{name}*")) if model_dir else []
    except Exception:  # noqa: BLE001 - only a name for the message
        found = []
    return f"variables/{os.path.basename(found[0])}" if found else f"variables/{name}*"
