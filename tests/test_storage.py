"""emotf.storage: pathlib-like paths over tf.io.gfile, local and on TensorFlow's ram://
filesystem."""

import uuid

import pytest

from emotf.storage import as_path, is_url, read_json, write_atomic, write_json


@pytest.fixture(params=["local", "ram"])
def folder(request, tmp_path):
    if request.param == "local":
        return as_path(tmp_path / "store")
    return as_path(f"ram://emotf-test-{uuid.uuid4().hex}/store")


def test_names_and_joins():
    p = as_path("gs://bucket/runs/fold-0/") / "model.keras"
    assert str(p) == "gs://bucket/runs/fold-0/model.keras"
    assert (p.name, p.stem, p.suffix) == ("model.keras", "model", ".keras")
    assert str(p.parent) == "gs://bucket/runs/fold-0"
    assert str(as_path("ram://a").parent) == "ram://"
    assert is_url(p) and not is_url("/tmp/x") and as_path("/tmp/x").is_local
    assert p.relative_to("gs://bucket/runs") == "fold-0/model.keras"
    assert [str(q) for q in sorted([as_path("ram://b"), as_path("ram://a")])] == [
        "ram://a",
        "ram://b",
    ]
    with pytest.raises(ValueError, match="not inside"):
        p.relative_to("gs://other")
    with pytest.raises(ValueError, match="not a local path"):
        p.local_path()


def test_files_round_trip(folder):
    assert not folder.exists()
    folder.mkdir()
    assert folder.is_dir() and not folder.is_file()
    write_json(folder / "b.json", {"x": [1, 2]})
    write_atomic(folder / "a.bin", b"\x00\x01")
    assert read_json(folder / "b.json") == {"x": [1, 2]}
    assert (folder / "a.bin").read_bytes() == b"\x00\x01"
    assert (folder / "a.bin").size() == 2
    assert [p.name for p in folder.iterdir()] == ["a.bin", "b.json"]  # no temporary left
    assert [p.name for p in folder.glob("*.json")] == ["b.json"]
    (folder / "a.bin").replace(folder / "c.bin")
    assert not (folder / "a.bin").exists() and (folder / "c.bin").is_file()
    (folder / "c.bin").unlink()
    (folder / "c.bin").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="c.bin"):
        (folder / "c.bin").unlink()
    folder.rmtree()
    assert not folder.exists()


def test_read_json_names_the_file_and_the_problem(folder):
    folder.mkdir()
    (folder / "bad.json").write_text("{not json")
    (folder / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"bad\.json: not readable JSON"):
        read_json(folder / "bad.json")
    with pytest.raises(ValueError, match=r"list\.json: expected a JSON dict"):
        read_json(folder / "list.json")
    with pytest.raises(FileNotFoundError, match=r"missing\.json: no such file"):
        read_json(folder / "missing.json")
    assert read_json(folder / "list.json", list) == [1]


def test_copy_tree_between_filesystems(tmp_path):
    src = tmp_path / "run"
    (src / "export" / "1").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "export" / "1" / "saved_model.pb").write_bytes(b"pb")
    target = as_path(f"ram://emotf-test-{uuid.uuid4().hex}/run")
    as_path(src).copy_tree(target)
    assert (target / "config.json").read_text() == "{}"
    assert (target / "export" / "1" / "saved_model.pb").read_bytes() == b"pb"
    back = as_path(tmp_path / "back")
    target.copy_tree(back)
    assert (tmp_path / "back" / "export" / "1" / "saved_model.pb").read_bytes() == b"pb"
    target.rmtree()
    assert not target.exists()


def test_write_replaces_the_content(folder):
    folder.mkdir()
    (folder / "f.txt").write_bytes(b"0123456789")
    (folder / "f.txt").write_text("ab")
    assert (folder / "f.txt").read_text() == "ab"


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(folder, monkeypatch):
    import emotf.storage as storage

    folder.mkdir()
    write_json(folder / "m.json", {"v": 1})

    def broken_replace(self, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.StoragePath, "replace", broken_replace)
    monkeypatch.setattr(storage.os, "replace", lambda a, b: broken_replace(None, b))
    with pytest.raises(OSError, match="No space left"):
        write_json(folder / "m.json", {"v": 2})
    assert read_json(folder / "m.json") == {"v": 1}
    assert [p.name for p in folder.iterdir()] == ["m.json"]
