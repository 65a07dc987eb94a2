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


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-profile",
        choices=("ci", "long"),
        default=None,
        help="tests/test_fuzz.py: 'ci' (default; a few derandomized examples per field and "
        "file) or 'long' (many random examples, shrunk on failure); also EMOTF_FUZZ=long. "
        "See docs/fuzzing.md.",
    )


def pytest_configure(config):
    # Before tests/test_fuzz.py is imported: its hypothesis settings are read at import.
    profile = config.getoption("--fuzz-profile")
    if profile:
        os.environ["EMOTF_FUZZ"] = profile
