"""`RecordsFolder`: a records folder's file names and paths, in one place."""

from emotf.records.folder import RecordsFolder
from emotf.records.manifest import shard_entry_problem
from emotf.records.resume import clear_outputs, clear_temporary


def _touch(folder, *names):
    for name in names:
        (folder / name).write_bytes(b"x")


def test_a_shard_name_and_its_file_name_round_trip_through_the_pattern():
    name = RecordsFolder.shard_name(3, 12)
    assert name == "fold-3-of-10-00012"
    file = RecordsFolder.shard_file(name)
    assert RecordsFolder.shard_fold(file) == 3 and RecordsFolder.shard_folds(file) == 10
    assert RecordsFolder.shard_fold(f"{file}.gz") == 3  # gzip shards are read too
    for other in (name, f"{name}.json", f"../{file}", f"{file}.abc.tmp", None):
        assert RecordsFolder.shard_fold(other) is None, other
    assert RecordsFolder.SHARD_RE.match(file)


def test_paths_of_a_folder(tmp_path):
    folder = RecordsFolder(str(tmp_path))
    name = RecordsFolder.shard_name(0, 0)
    assert folder.manifest_path == folder.path / RecordsFolder.MANIFEST
    assert folder.lock_path == folder.path / RecordsFolder.LOCK
    assert folder.shard_path(name).name == RecordsFolder.shard_file(name)
    assert folder.sidecar_path(name).name == f"{name}.json"
    first, second = folder.shard_temporary(name), folder.shard_temporary(name)
    assert first != second and first.name.startswith(RecordsFolder.shard_file(name))


def test_what_is_on_disk(tmp_path):
    folder = RecordsFolder(tmp_path)
    shard0, shard1 = (RecordsFolder.shard_file(RecordsFolder.shard_name(k, 0)) for k in (0, 1))
    _touch(tmp_path, shard0, shard1, "fold-0-of-10-00000.json", "notes.txt")
    _touch(tmp_path, f"{shard0}.ab12cd34.tmp", ".fold-0-of-10-00000.json.ff.tmp")
    _touch(tmp_path, ".manifest.json.0a.tmp", "manifest.json.tmp", "manifest.json")
    assert [p.name for p in folder.shards()] == [shard0, shard1]
    assert [p.name for p in folder.shards([1])] == [shard1]
    assert [p.name for p in folder.sidecars()] == ["fold-0-of-10-00000.json"]
    assert sorted(stem for stem, _ in folder.plan_files()) == [
        "fold-0-of-10-00000",
        "fold-0-of-10-00000",
        "fold-1-of-10-00000",
    ]
    assert len(folder.temporaries()) == 4
    assert clear_temporary(tmp_path) == 4 and folder.temporaries() == []
    assert clear_outputs(tmp_path) == 4  # 2 shards, 1 sidecar, the manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_manifest_entry_must_name_a_shard_of_the_folder():
    entry = {"file": "fold-2-of-10-00000.tfrecord", "fold": 2, "clips": 1, "bytes": 3}
    entry["sha256"] = "0" * 64
    assert shard_entry_problem(entry) is None
    problem = shard_entry_problem({**entry, "file": "x.tfrecord"})
    assert "must be a shard name like fold-0-of-10-00000.tfrecord" in problem
    assert "differs from the file name's 2" in shard_entry_problem({**entry, "fold": 3})
    assert "'fold' must be in 0..9" in shard_entry_problem({**entry, "fold": 10})
