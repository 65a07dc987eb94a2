"""Records you can trust: settings fingerprint, manifest checksums, verification, one record per
clip, locks. Builds run in this process (workers=1) on the tiny synthetic sample."""

import json
import shutil
import subprocess
import sys

import pytest

from emotf import keys
from emotf.cli.verify_records import main as verify_main
from emotf.media.faces import FaceTrackerConfig
from emotf.records.build import build_records, plan_build
from emotf.records.config import BuildConfig
from emotf.records.manifest import (
    MANIFEST_VERSION,
    RecordsError,
    check_records,
    scan_shard,
    settings_hash,
    verify_records,
)
from emotf.synthetic.sample import SampleConfig, make_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    make_sample(out, SampleConfig.tiny())
    return out


def cfg(sample, out, **kw):
    return BuildConfig(str(sample), str(out), workers=1, clips_per_shard=2, progress=False, **kw)


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("records") / "r"
    return out, build_records(cfg(sample, out))


@pytest.fixture
def copy(built, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(built[0], out)
    return out


def test_manifest_lists_every_shard_with_clips_bytes_sha256_and_the_settings(built):
    out, manifest = built
    assert manifest["manifest_version"] == MANIFEST_VERSION == 2
    files = sorted(p.name for p in out.glob("*.tfrecord"))
    assert sorted(e["file"] for e in manifest["shards"]) == files and len(files) == 4
    for entry in manifest["shards"]:
        scan = scan_shard(out / entry["file"])
        assert (scan["bytes"], scan["sha256"], scan["records"]) == (
            entry["bytes"],
            entry["sha256"],
            entry["clips"],
        )
    assert sum(e["clips"] for e in manifest["shards"]) == manifest["clips_written"] == 6
    settings = manifest["settings"]
    assert settings["tracker"]["jpeg_quality"] == 90 and settings["sample_rate"] == 16000
    assert settings["schema_version"] == keys.SCHEMA_VERSION
    assert manifest["settings_hash"] == settings_hash(settings)
    for side in out.glob("fold-*.json"):
        assert json.loads(side.read_text())["settings_hash"] == manifest["settings_hash"]
    assert verify_records(out) == [] and not (out / "build.lock").exists()


def test_rerun_with_other_settings_is_refused_naming_each_change(sample, copy):
    before = {p.name: p.stat().st_mtime_ns for p in copy.iterdir()}
    other = cfg(sample, copy, tracker=FaceTrackerConfig(margin=0.6, jpeg_quality=60))
    with pytest.raises(FileExistsError) as error:
        build_records(other)
    message = str(error.value)
    assert "tracker.margin: 0.3 -> 0.6" in message and "tracker.jpeg_quality: 90 -> 60" in message
    assert "--overwrite" in message and "new --out" in message
    assert {p.name: p.stat().st_mtime_ns for p in copy.iterdir()} == before  # nothing touched
    manifest = build_records(
        cfg(sample, copy, overwrite=True, tracker=FaceTrackerConfig(margin=0.6, jpeg_quality=60))
    )
    assert manifest["settings"]["tracker"]["margin"] == 0.6 and verify_records(copy) == []
    assert manifest["clips_written"] == 6


def test_sidecar_of_another_schema_version_is_refused_on_resume_and_on_read(sample, copy):
    side = sorted(copy.glob("fold-*.json"))[0]
    info = json.loads(side.read_text())
    info["schema_version"] = keys.SCHEMA_VERSION + 1
    side.write_text(json.dumps(info))
    with pytest.raises(FileExistsError, match=f"{side.name}: written for record schema version"):
        build_records(cfg(sample, copy))
    problems = verify_records(copy)
    assert [p.file for p in problems] == [str(side)] and "schema version" in problems[0].problem


def damage(out, how):
    shards = sorted(out.glob("*.tfrecord"))
    victim = shards[1]
    if how == "truncated":
        victim.write_bytes(victim.read_bytes()[:-100])
    elif how == "bit flip":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
    elif how == "missing":
        victim.unlink()
    elif how == "unlisted":
        victim = out / "fold-9-of-10-00000.tfrecord"
        shutil.copy(shards[0], victim)
    elif how == "no manifest":
        victim = out / "manifest.json"
        victim.unlink()
    return victim


@pytest.mark.parametrize(
    "how, problem",
    [
        ("truncated", "truncated"),
        ("bit flip", "SHA-256 differs"),
        ("missing", "listed in the manifest but missing"),
        ("unlisted", "not listed in the manifest"),
        ("no manifest", "missing: the build did not finish"),
    ],
)
def test_verify_names_every_bad_shard_and_training_refuses(copy, capsys, how, problem):
    assert verify_main([str(copy)]) == 0
    assert "intact" in capsys.readouterr().out
    victim = damage(copy, how)
    problems = verify_records(copy)
    assert [(p.file, problem in p.problem) for p in problems] == [(str(victim), True)], problems
    assert verify_main([str(copy)]) == 1
    assert f"BAD {victim}: " in capsys.readouterr().out
    with pytest.raises(RecordsError) as error:
        check_records(copy, folds=range(10))
    message = str(error.value)
    assert str(victim) in message and "rerun emotf-build-records" in message
    assert "--allow-incomplete" in message and "\n" not in message
    summary = check_records(copy, folds=range(10), allow_incomplete=True)
    assert summary["allow_incomplete"] and not summary["records_verified"]
    assert summary["records_problems"] == [str(p) for p in problems]


def test_a_rerun_rebuilds_only_the_bad_shards(sample, copy, capsys):
    victim = damage(copy, "bit flip")
    mtimes = {p.name: p.stat().st_mtime_ns for p in copy.glob("*.tfrecord")}
    build_records(cfg(sample, copy))
    assert f"{victim}: SHA-256 differs" in capsys.readouterr().err
    changed = [p.name for p in copy.glob("*.tfrecord") if p.stat().st_mtime_ns != mtimes[p.name]]
    assert changed == [victim.name] and verify_records(copy) == []


def test_only_exact_clip_id_file_names_are_read_the_rest_listed_as_skipped(sample, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(sample, data)
    video = data / "VideoFlash"
    clip = sorted(video.glob("*.flv"))[0].stem
    for junk in (f"{clip}.bak.flv", f"{clip} (1).flv", f"{clip}.mp4", f"{clip}.FLV", "notes.txt"):
        shutil.copy(video / f"{clip}.flv", video / junk)
    (video / "sub").mkdir()
    shards, skipped = plan_build(cfg(data, tmp_path / "o"))
    tasks = [t for s in shards for t in s["clips"]]
    assert len(tasks) == len({t.clip_id for t in tasks}) == 6
    (task,) = [t for t in tasks if t.clip_id == clip]
    assert task.video == str(video / f"{clip}.flv")
    reasons = {item["path"].rsplit("/", 1)[1]: item["reason"] for item in skipped}
    assert f"not exactly {clip}.flv" in reasons[f"{clip}.bak.flv"]
    assert "not a CREMA-D clip name" in reasons[f"{clip} (1).flv"]
    assert "not a .flv file" in reasons[f"{clip}.mp4"] and "not a .flv file" in reasons["notes.txt"]
    assert "not a .flv file" in reasons[f"{clip}.FLV"] and "not a regular file" in reasons["sub"]


def test_a_live_build_holds_the_folder_a_dead_ones_lock_is_taken_over(sample, copy, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (copy / "build.lock").write_text(json.dumps({"pid": sleeper.pid, "host": "h"}))
        with pytest.raises(FileExistsError, match=f"pid {sleeper.pid}"):
            build_records(cfg(sample, copy))
        assert f"pid {sleeper.pid}" in str(verify_records(copy)[0])
    finally:
        sleeper.kill()
        sleeper.wait()
    # The same pid, now dead: a stale lock.
    manifest = build_records(cfg(sample, copy))
    assert f"stale lock of pid {sleeper.pid}" in capsys.readouterr().err
    assert manifest["clips_written"] == 6 and not (copy / "build.lock").exists()


def _contend(folder, results, release):
    from emotf.records.lock import hold

    try:
        with hold(folder):
            results.put("got")
            release.wait(timeout=60)  # held until every contender has tried (a slow start
    except FileExistsError:  # after the build would take a *free* lock, rightly)
        results.put("refused")


def test_builds_racing_for_a_stale_lock_never_both_take_it(tmp_path):
    """Six builds start at once on a folder whose lock a dead process left: exactly one takes
    it over (the old unlink-and-create takeover let two through now and then)."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    for attempt in range(3):
        folder = tmp_path / f"out{attempt}"
        folder.mkdir()
        (folder / "build.lock").write_text(json.dumps({"pid": 2**22 + 7, "host": "h"}))
        results, release = fork.Queue(), fork.Event()
        procs = [fork.Process(target=_contend, args=(folder, results, release)) for _ in range(6)]
        for proc in procs:
            proc.start()
        try:
            outcomes = sorted(results.get(timeout=60) for _ in procs)
        finally:
            release.set()
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
        assert outcomes == ["got"] + ["refused"] * 5
        assert not (folder / "build.lock").exists()


def _sealed_folder(folder):
    """A records folder of one tiny shard (3 framed records) and its manifest, no build."""
    import tensorflow as tf

    from emotf.records.manifest import seal_records

    folder.mkdir()
    with tf.io.TFRecordWriter(str(folder / "fold-0-of-10-00000.tfrecord")) as writer:
        for record in (b"a", b"bc", b"def"):
            writer.write(record)
    return seal_records(folder)


def _entry(**changes):
    entry = {
        "file": "fold-0-of-10-00000.tfrecord",
        "fold": 0,
        "clips": 3,
        "bytes": 54,
        "sha256": "0" * 64,
    }
    return {k: v for k, v in {**entry, **changes}.items() if v is not ...}


@pytest.mark.parametrize(
    "shards, problem",
    [
        ([1, 2], "a shard entry must be a JSON object. Received: 1"),
        ("fold-0-of-10-00000.tfrecord", "'shards' must be a list"),
        (None, "'shards' must be a list of shard entries. Received: shards=null"),
        (..., "'shards' must be a list"),
        ([_entry(sha256=...)], "a shard entry lacks 'sha256'"),
        ([_entry(clips="3")], "'clips' must be a whole number. Received: clips='3'"),
        ([_entry(clips=True)], "'clips' must be a whole number"),
        ([_entry(bytes=10**30)], "'bytes' must be in 0..1125899906842624"),
        ([_entry(clips=-1)], "'clips' must be in 0..1000000000"),
        ([_entry(bytes=1e400)], "'bytes' must be a whole number. Received: bytes=Infinity"),
        ([_entry(fold=12)], "'fold' must be in 0..9"),
        ([_entry(fold=1)], "'fold' 1 differs from the file name's 0"),
        ([_entry(file="../../etc/passwd")], "'file' must be a shard name"),
        ([_entry(file=["x"])], "'file' must be a shard name"),
        ([_entry(sha256="zz")], "'sha256' must be 64 hex digits"),
        ([_entry(), _entry()], "fold-0-of-10-00000.tfrecord is listed twice"),
    ],
)
def test_a_malformed_manifest_is_one_line_naming_it(tmp_path, capsys, shards, problem):
    folder = tmp_path / "records"
    manifest = _sealed_folder(folder)
    assert verify_main([str(folder)]) == 0
    capsys.readouterr()
    if shards is ...:
        del manifest["shards"]
    else:
        manifest["shards"] = shards
    (folder / "manifest.json").write_text(json.dumps(manifest))  # 1e400 is written Infinity
    assert verify_main([str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{folder / 'manifest.json'}: not a valid manifest (" in err and problem in err
    with pytest.raises(RecordsError, match="not a valid manifest"):  # and before training reads it
        check_records(folder)


@pytest.mark.parametrize(
    "text", ["[1, 2]", "null", '"shards"', '{"manifest_version": [2]}', "{", "\xff\xfe"]
)
def test_a_manifest_of_another_json_shape_is_one_line(tmp_path, capsys, text):
    folder = tmp_path / "records"
    _sealed_folder(folder)
    (folder / "manifest.json").write_bytes(text.encode("latin-1"))
    assert verify_main([str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"emotf-verify-records: error: {folder / 'manifest.json'}: ")
