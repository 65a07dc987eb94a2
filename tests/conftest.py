"""Shared pytest set-up: quiet TensorFlow, CPU only, real CREMA-D tables' location."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

SHARED_CREMAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cremad"


@pytest.fixture(scope="session")
def cremad_tables_dir() -> Path:
    """The real CREMA-D metadata tables: ../shared/data/cremad if present, else the shipped copy."""
    if SHARED_CREMAD.is_dir():
        return SHARED_CREMAD
    return Path(__file__).resolve().parents[1] / "emotf" / "data"
