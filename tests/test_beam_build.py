"""`emotf-build-records --runner beam`: the Apache Beam pipeline writes what the local builder
writes (shards byte for byte, sidecars, manifest, skips), resumes like it, and says what to
install without Beam. The Beam build runs on the DirectRunner in multi_processing mode with 2
worker processes, as on a user's machine."""

import json
import shutil
import sys

import pytest
import tensorflow as tf

from emotf import keys
from emotf.cli.build_records import main
from emotf.records.build import build_records
from emotf.records.config import BuildConfig
from emotf.synthetic.sample import SampleConfig, make_sample

pytest.importorskip("apache_beam")

BROKEN = "1008_DFA_SAD_XX"  # a truncated FLV: skipped with a reason, by both runners


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    data = tmp_path_factory.mktemp("sample")
    make_sample(data, SampleConfig.tiny())  # actors 1008 and 1012, 3 clips each
    good = min((data / "VideoFlash").glob("1008_*.flv"))
    (data / "VideoFlash" / f"{BROKEN}.flv").write_bytes(good.read_bytes()[:300])
    shutil.copy(data / "AudioWAV" / f"{good.stem}.wav", data / "AudioWAV" / f"{BROKEN}.wav")
    return data


def config(sample, out, **kw):
    return BuildConfig(str(sample), str(out), workers=1, clips_per_shard=2, progress=False, **kw)


@pytest.fixture(scope="module")
def local(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "records"
    return out, build_records(config(sample, out))


@pytest.fixture(scope="module")
def beam(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("beam") / "records"
    code = main(
        [
            "--data-dir",
            str(sample),
            "--out",
            str(out),
            "--runner",
            "beam",
            "--workers",
            "2",
            "--clips-per-shard",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    return out, json.loads((out / "manifest.json").read_text())


def comparable(manifest: dict) -> dict:
    """The manifest less what differs between any two runs (timing, the command's arguments)."""
    return {k: v for k, v in manifest.items() if k not in ("seconds_last_run", "arguments")}


def examples_by_clip(out) -> dict[str, bytes]:
    found = {}
    for path in sorted(out.glob("*.tfrecord")):
        for raw in tf.data.TFRecordDataset(str(path)):
            example = tf.train.Example.FromString(raw.numpy())
            found[example.features.feature[keys.CLIP_ID].bytes_list.value[0].decode()] = raw.numpy()
    return found


def test_beam_build_writes_what_the_local_build_writes(local, beam):
    (local_out, local_manifest), (beam_out, beam_manifest) = local, beam
    names = sorted(p.name for p in local_out.glob("fold-*"))
    assert names == sorted(p.name for p in beam_out.glob("fold-*")) and len(names) == 8
    for name in names:  # shards (same clips, same order, same Example bytes) and sidecars
        assert (local_out / name).read_bytes() == (beam_out / name).read_bytes(), name
    clips = examples_by_clip(beam_out)
    assert clips == examples_by_clip(local_out) and len(clips) == 6 and BROKEN not in clips
    assert comparable(beam_manifest) == comparable(local_manifest)
    assert beam_manifest["clips_written"] == 6 and beam_manifest["clips_skipped"] == 1
    (skip,) = beam_manifest["skipped"]
    assert skip["clip_id"] == BROKEN and "video" in skip["reason"], skip
    assert (beam_manifest["arguments"]["runner"], local_manifest["arguments"]["runner"]) == (
        "beam",
        "local",
    )
    assert beam_manifest["settings_hash"] == local_manifest["settings_hash"]


def test_a_beam_rerun_writes_only_what_is_missing_and_either_runner_resumes(
    sample, beam, tmp_path, capsys
):
    out = tmp_path / "records"
    shutil.copytree(beam[0], out)
    # The other runner finishes (here: finds finished) a Beam folder: runner is no setting.
    assert comparable(build_records(config(sample, out))) == comparable(beam[1])
    # The shard of the broken clip: its skip must come back too.
    (doomed,) = [
        p.stem
        for p in out.glob("fold-*.json")
        if any(s["clip_id"] == BROKEN for s in json.loads(p.read_text())["skipped"])
    ]
    original = (out / f"{doomed}.tfrecord").read_bytes()
    (out / f"{doomed}.tfrecord").unlink()
    (out / f"{doomed}.json").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("fold-*")}
    capsys.readouterr()
    # In memory: the driver's resume logic is what is tested; 2 processes were tested above.
    manifest = build_records(
        config(sample, out, runner="beam", beam_options="--direct_running_mode=in_memory")
    )
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("fold-*") if p.name in kept} == kept
    assert (out / f"{doomed}.tfrecord").read_bytes() == original
    assert comparable(manifest) == comparable(beam[1])
    err = capsys.readouterr().err
    assert f"{BROKEN}.flv" in err and "-> skipped" in err  # the driver reports the shard's skip


def test_a_sidecar_missing_after_the_pipeline_is_an_error_naming_it(sample, tmp_path, monkeypatch):
    from emotf.records import beam_build

    monkeypatch.setattr(beam_build, "run_pipeline", lambda *args: None)  # a worker wrote nothing
    out = tmp_path / "records"
    with pytest.raises(
        RuntimeError,
        match=r"fold-\d+-of-10-00000\.json: missing after the Beam "
        r"pipeline finished",
    ):
        build_records(config(sample, out, runner="beam", limit=1))
    assert not (out / "manifest.json").exists()


def test_without_apache_beam_the_build_says_what_to_install(sample, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam -> ImportError
    out = tmp_path / "records"
    assert (
        main(["--data-dir", str(sample), "--out", str(out), "--runner", "beam", "--no-progress"])
        == 1
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'pip install "emotf[beam]"' in lines[0], lines
    assert not out.exists()


def test_runner_and_beam_options_are_flags_and_no_record_setting():
    from emotf.cli.build_records import parse_args
    from emotf.records.config import record_settings

    parsed = parse_args(
        [
            "--data-dir",
            "d",
            "--out",
            "o",
            "--runner",
            "beam",
            "--beam-options=--runner=DataflowRunner --project=p",
        ]
    )
    assert (parsed.runner, parsed.beam_options) == ("beam", "--runner=DataflowRunner --project=p")
    assert (
        parse_args(
            ["--data-dir", "d", "--out", "o", "--build.beam_options", "--a=1 --b=2"]
        ).beam_options
        == "--a=1 --b=2"
    )
    assert record_settings(parsed) == record_settings(BuildConfig("d", "o"))
    with pytest.raises(SystemExit):
        parse_args(["--data-dir", "d", "--out", "o", "--runner", "spark"])


@pytest.mark.parametrize(
    "data, out, options, flag",
    [
        ("SAMPLE", "gs://bucket/records", "--runner=DataflowRunner --project=p", "--data-dir"),
        (
            "gs://bucket/data",
            "OUT",
            "--runner apache_beam.runners.dataflow.DataflowRunner",
            "--out",
        ),
    ],
)
def test_a_remote_runner_with_a_local_folder_is_refused_in_one_line(
    sample, tmp_path, capsys, data, out, options, flag
):
    data, out = (
        (str(sample) if data == "SAMPLE" else data),
        (str(tmp_path / "records") if out == "OUT" else out),
    )
    assert (
        main(
            [
                "--data-dir",
                data,
                "--out",
                out,
                "--runner",
                "beam",
                "--no-progress",
                f"--beam-options={options}",
            ]
        )
        == 1
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    folder = data if flag == "--data-dir" else out
    assert line.startswith(
        f"emotf-build-records: error: {flag} {folder}: workers of "
        f"DataflowRunner (--beam-options) cannot read the local folder"
    ), line
    assert "gs://" in line, line
    assert not (tmp_path / "records").exists()  # refused before anything was written


def test_local_runners_may_use_local_folders(sample, tmp_path):
    from emotf.records.beam_build import check_options

    for options in ("", "--runner=PrismRunner", "--runner direct --direct_num_workers=1"):
        check_options(config(sample, tmp_path / "records", beam_options=options))
    assert not (tmp_path / "records").exists()


def test_unknown_beam_options_are_refused_in_one_line(sample, tmp_path, capsys):
    out = tmp_path / "records"
    assert (
        main(
            [
                "--data-dir",
                str(sample),
                "--out",
                str(out),
                "--runner",
                "beam",
                "--no-progress",
                "--beam-options=--runer=DataflowRunner --direct_num_workers=1 --projet p",
            ]
        )
        == 1
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "emotf-build-records: error: --beam-options: unknown Beam options "
        "--projet, --runer (a typo?)"
    ), line
    assert not out.exists()


def test_temporary_files_of_retried_bundles_are_removed_before_the_manifest(
    sample, tmp_path, monkeypatch
):
    """A bundle that failed or was retried leaves its temporary shard and sidecar behind; the
    driver clears them once the pipeline is done (the shards were redone by the retry)."""
    from emotf.records import beam_build
    from emotf.records.clip_worker import process_clip
    from emotf.records.shards import write_shard

    out = tmp_path / "records"
    strays = []

    def pipeline(config, out_dir, todo, settings, digest):  # the workers' side, in process
        for shard in todo:
            name = shard["name"]
            strays.extend(
                [out / f"{name}.tfrecord.0badf00d.tmp", out / f".{name}.json.1f2e3d4c.tmp"]
            )
            for stray in strays[-2:]:
                stray.write_bytes(b"half a shard")
            write_shard(
                out_dir,
                shard,
                map(process_clip, shard["clips"]),
                settings,
                digest,
                verify_media=config.verify_media,
            )

    monkeypatch.setattr(beam_build, "run_pipeline", pipeline)
    manifest = build_records(config(sample, out, runner="beam", limit=2))  # BROKEN and one
    assert strays and not [p for p in strays if p.exists()]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert (manifest["clips_written"], manifest["clips_skipped"]) == (1, 1)
    assert json.loads((out / "manifest.json").read_text())["clips_written"] == 1


def test_bench_beam_removes_its_temporary_folder_and_keeps_a_work_dir(
    tmp_path, monkeypatch, capsys
):
    import importlib.util
    import tempfile
    from pathlib import Path

    import emotf.synthetic.sample

    tool = Path(__file__).resolve().parents[1] / "tools" / "bench_beam.py"
    spec = importlib.util.spec_from_file_location("bench_beam", tool)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    folders = []

    def sample(folder, _config):  # no clips, no builds: only the folders are looked at
        folders.append(folder.parent)
        folder.mkdir(parents=True)

    monkeypatch.setattr(emotf.synthetic.sample, "make_sample", sample)
    monkeypatch.setattr(
        bench,
        "_build",
        lambda *args: (1.0, {"frames_written": 10, "clips_written": 2, "shards": [{}]}),
    )
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    assert bench.main(["--clips", "2"])["same_shards"]
    assert len(folders) == 1 and not folders[0].exists() and not list((tmp_path / "temp").iterdir())
    assert bench.main(["--clips", "2", "--work-dir", str(tmp_path / "kept")])
    assert (tmp_path / "kept" / "data").is_dir()  # --work-dir is kept
    capsys.readouterr()


@pytest.mark.parametrize(
    "options, problem",
    [
        ("--direct_num_workers=abc", "argument --direct_num_workers: invalid int value: 'abc'"),
        ("--direct_running_mode=fast", "argument --direct_running_mode: invalid choice: 'fast'"),
    ],
)
def test_a_bad_beam_option_value_is_one_line_naming_the_option(
    sample, tmp_path, capsys, options, problem
):
    out = tmp_path / "records"
    assert (
        main(
            [
                "--data-dir",
                str(sample),
                "--out",
                str(out),
                "--runner",
                "beam",
                "--no-progress",
                f"--beam-options={options}",
            ]
        )
        == 1
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"emotf-build-records: error: --beam-options: {problem}"), line
    assert line.endswith(f"Received: {options!r}") and not out.exists()


def test_a_bundle_past_its_deadline_fails_naming_the_shard(tmp_path, monkeypatch):
    """A clip stuck in its decoder: the bundle (one shard) fails at the deadline with one line
    naming the shard, instead of holding the Beam worker for ever."""
    import threading

    from emotf.media.faces import FaceTrackerConfig
    from emotf.records import beam_build

    stuck = threading.Event()
    monkeypatch.setattr(beam_build, "process_clip", lambda clip: stuck.wait(60))
    shard = {"name": "fold-0-of-10-00000", "clips": ["c0", "c1"]}
    write = beam_build.WriteShard(
        {shard["name"]: shard},
        str(tmp_path),
        {},
        "d",
        FaceTrackerConfig(),
        False,
        deadline_seconds=0.5,
    )
    try:
        with pytest.raises(TimeoutError) as error:
            list(write.process(shard["name"]))
    finally:
        stuck.set()
    assert str(error.value) == (
        "shard fold-0-of-10-00000: its 2 clips were not written within "
        "0.5 s (--worker_timeout_seconds)"
    )
