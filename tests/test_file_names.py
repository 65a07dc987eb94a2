"""Each file name of a records folder and of a run folder is typed in its owner module only
(`tools/check_file_names.py`)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "check_file_names", ROOT / "tools" / "check_file_names.py"
)
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

RECORDS, RUNS = check.OWNERS


@pytest.mark.parametrize("owner", [RECORDS, RUNS], ids=["records", "runs"])
def test_each_file_name_is_spelled_in_its_owner_only(owner):
    found = check.problems(owners=[owner])
    assert not found, "\n".join(found)


def test_the_owners_declare_the_names_of_their_folders():
    assert {"manifest.json", "build.lock", ".tfrecord"} <= set(check.declared_names(RECORDS))
    assert {"config.json", "metrics.json", "model.keras"} <= set(check.declared_names(RUNS))
    assert ".json" not in check.declared_names(RECORDS)  # a bare extension names no file


def test_the_check_finds_a_name_typed_outside_its_owner(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    owner = package / "folder.py"
    owner.write_text('"""Holds state.json and out.bin."""\nSTATE = "state.json"\nOUT = ".bin"\n')
    (package / "quiet.py").write_text('"""Mentions state.json in a docstring only."""\n')
    (package / "loud.py").write_text('def f(p):\n    return f"{p}: no state.json, no x.bin"\n')
    (package / "near.py").write_text('A = "mystate.json"\nB = "state.jsonl"\n')
    monkeypatch.setattr(check, "ROOT", tmp_path)
    assert check.declared_names(owner) == [".bin", "state.json"]
    found = check.problems(package, [owner])
    assert len(found) == 2 and all("pkg/loud.py" in line for line in found)
    assert "'.bin'" in found[0] and "'state.json'" in found[1]
