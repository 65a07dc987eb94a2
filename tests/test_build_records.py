"""emotf-build-records end to end on a tiny synthetic sample: content, resume, bad inputs."""

import json
import shutil
import threading

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from emotf import keys
from emotf.cli.build_records import main
from emotf.corpora.cremad import canonical_folds, parse_clip_name
from emotf.records.build import build_records
from emotf.records.config import BuildConfig
from emotf.records.example import read_records
from emotf.synthetic.media import render_audio, render_frames
from emotf.synthetic.sample import SampleConfig, clip_plan, make_sample, planted_face_boxes
from tests.test_media import LFS, write_video

TINY = SampleConfig.tiny()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    make_sample(out, TINY)
    return out


def records_by_clip(out_dir):
    recs = list(read_records(sorted(out_dir.glob("*.tfrecord"))))
    ids = [r[keys.CLIP_ID].numpy().decode() for r in recs]
    assert len(ids) == len(set(ids)), f"clip written twice: {ids}"
    return dict(zip(ids, recs, strict=True))


def serialized_by_clip(files) -> dict[str, bytes]:
    """{clip id: the serialised Example} of shards (local paths or URLs), read by tf.data."""
    raws = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files])]
    return {
        tf.train.Example.FromString(raw)
        .features.feature[keys.CLIP_ID]
        .bytes_list.value[0]
        .decode(): raw
        for raw in raws
    }


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("records")
    manifest = build_records(
        BuildConfig(str(sample), str(out), workers=1, clips_per_shard=2, progress=False)
    )
    return out, manifest


def test_every_clip_once_with_labels_folds_frames_audio_and_boxes(sample, built):
    out, manifest = built
    recs = records_by_clip(out)
    names = sorted(p.stem for p in (sample / "VideoFlash").glob("*.flv"))
    assert sorted(recs) == names and manifest["clips_written"] == len(names)
    folds = canonical_folds()
    for clip_id, rec in recs.items():
        name = parse_clip_name(clip_id)
        assert int(rec[keys.LABEL]) == name.label and int(rec[keys.FOLD]) == folds[name.actor_id]
        frames = rec[keys.VIDEO_FRAMES].numpy()
        image = tf.io.decode_jpeg(frames[0]).numpy()
        assert image.shape == (224, 224, 3)
        wav, rate = soundfile.read(sample / "AudioWAV" / f"{clip_id}.wav", dtype="int16")
        assert rate == int(rec[keys.AUDIO_SAMPLE_RATE]) == 16000
        assert int(rec[keys.PARSED_NUM_SAMPLES]) == len(wav)
        # The crop box covers the planted face.
        h, w = rec[keys.VIDEO_SOURCE_SIZE].numpy()
        b = rec[keys.VIDEO_FACE_BOXES].numpy()
        boxes = np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], 1)
        planted = planted_face_boxes(clip_id, TINY)
        assert len(boxes) == len(planted) == len(frames)
        x0 = np.maximum(boxes[:, 0], planted[:, 0])
        x1 = np.minimum(boxes[:, 2], planted[:, 2])
        y0 = np.maximum(boxes[:, 1], planted[:, 1])
        y1 = np.minimum(boxes[:, 3], planted[:, 3])
        covered = (x1 - x0).clip(0) * (y1 - y0).clip(0)
        area = (planted[:, 2] - planted[:, 0]) * (planted[:, 3] - planted[:, 1])
        assert (covered / area).min() > 0.9, clip_id
    # Shards: one fold each, sidecars, manifest counts.
    for side in out.glob("fold-*.json"):
        info = json.loads(side.read_text())
        assert {recs[c["clip_id"]][keys.FOLD].numpy() for c in info["written"]} == {info["fold"]}
    assert sum(f["clips"] for f in manifest["folds"].values()) == len(names)
    assert sum(manifest["classes"].values()) == len(names)
    assert manifest["version"] and manifest["arguments"]["clips_per_shard"] == 2
    assert manifest["detector"]["detection_rate"] < 0.3


def test_resume_after_an_interrupted_build(sample, built, tmp_path):
    out = tmp_path / "out"
    config = BuildConfig(str(sample), str(out), workers=1, clips_per_shard=2, progress=False)
    with pytest.raises(KeyboardInterrupt):
        build_records(config, stop_after_shards=1)
    done = sorted(out.glob("*.json"))
    assert len(done) == 1 and list(out.glob("*.tmp"))  # one shard complete, one half-written
    first = out / done[0].name.replace(".json", ".tfrecord")
    mtime = first.stat().st_mtime_ns
    manifest = build_records(
        BuildConfig(str(sample), str(out), workers=2, clips_per_shard=2, progress=False)
    )
    assert first.stat().st_mtime_ns == mtime  # complete shards are not redone
    assert sorted(records_by_clip(out)) == sorted(records_by_clip(built[0]))
    assert manifest["clips_written"] == built[1]["clips_written"]
    assert not list(out.glob("*.tmp"))


def _clip(name, fps=30.0, seconds=1.4, face=True):
    config = SampleConfig.tiny(
        fps=fps, min_duration=seconds, max_duration=seconds, median_duration=seconds
    )
    plan = clip_plan(name, config)
    frames = render_frames(plan, config)
    if not face:
        frames[:] = frames[0, 0, 0]
    return frames, render_audio(plan, config), config.fps


@pytest.fixture(scope="module")
def bad_build(sample, tmp_path_factory):
    data = tmp_path_factory.mktemp("bad")
    (data / "VideoFlash").mkdir()
    (data / "AudioWAV").mkdir()
    good = sorted((sample / "VideoFlash").glob("*.flv"))[0].stem
    v, a = data / "VideoFlash", data / "AudioWAV"

    def copy_good(name, wav=True):
        shutil.copy(sample / "VideoFlash" / f"{good}.flv", v / f"{name}.flv")
        if wav:
            shutil.copy(sample / "AudioWAV" / f"{good}.wav", a / f"{name}.wav")

    copy_good("1001_DFA_ANG_XX")  # fine
    copy_good("1001_DFA_DIS_XX", wav=False)  # missing WAV -> the video's track
    copy_good("1001_DFA_FEA_XX", wav=False)
    soundfile.write(a / "1001_DFA_FEA_XX.wav", np.zeros(0, np.int16), 16000)  # empty WAV
    copy_good("1001_DFA_HAP_XX", wav=False)  # stereo 44.1 kHz WAV
    pcm, _ = soundfile.read(sample / "AudioWAV" / f"{good}.wav", dtype="int16")
    import soxr

    pcm44 = soxr.resample(pcm.astype(np.float32) / 32768, 16000, 44100)
    soundfile.write(a / "1001_DFA_HAP_XX.wav", np.stack([pcm44, pcm44], 1), 44100, subtype="PCM_16")
    data_good = (v / "1001_DFA_ANG_XX.flv").read_bytes()
    (v / "1001_DFA_NEU_XX.flv").write_bytes(data_good[:300])  # truncated to nothing
    shutil.copy(a / "1001_DFA_ANG_XX.wav", a / "1001_DFA_NEU_XX.wav")
    (v / "1001_DFA_SAD_XX.flv").write_bytes(b"")  # empty video
    (v / "1001_IEO_ANG_HI.flv").write_text(LFS)  # LFS pointer
    shutil.copy(a / "1001_DFA_ANG_XX.wav", a / "1001_IEO_ANG_HI.wav")
    copy_good("bad_name")  # unparseable
    for name, kw in [
        ("1001_IEO_DIS_HI", dict(fps=25.0)),
        ("1001_IEO_FEA_HI", dict(seconds=1.0)),
        ("1001_IEO_HAP_HI", dict(seconds=0.3)),
        ("1001_IEO_SAD_HI", dict(face=False)),
    ]:
        frames, audio, fps = _clip(name, **kw)
        write_video(v / f"{name}.flv", frames, fps)
        soundfile.write(a / f"{name}.wav", audio, 16000, subtype="PCM_16")
    copy_good("1002_DFA_ANG_XX", wav=False)  # no audio anywhere: video without a track
    frames, _, _ = _clip("1002_DFA_ANG_XX")
    write_video(v / "1002_DFA_ANG_XX.flv", frames, 30.0)
    out = data / "out"
    code = main(["--data-dir", str(data), "--out", str(out), "--workers", "1", "--no-progress"])
    return out, json.loads((out / "manifest.json").read_text()), code


@pytest.mark.parametrize(
    "path_part, reason",
    [
        ("1001_DFA_NEU_XX", "video"),
        ("1001_DFA_SAD_XX", "empty file"),
        ("1001_IEO_ANG_HI", "Git LFS pointer"),
        ("bad_name", "not a CREMA-D clip name"),
        ("1001_IEO_HAP_HI", "too short"),
        ("1001_IEO_SAD_HI", "no face"),
        ("1002_DFA_ANG_XX", "no usable audio"),
    ],
)
def test_bad_inputs_are_skipped_with_a_reason(bad_build, path_part, reason):
    _, manifest, _ = bad_build
    hits = [
        s
        for s in manifest["skipped"]
        if path_part in s["path"] and not (s["clip_id"] is None and "AudioWAV" in s["path"])
    ]  # bad_name.wav too
    assert len(hits) == 1 and reason in hits[0]["reason"], manifest["skipped"]


@pytest.mark.parametrize(
    "clip_id, note",
    [
        ("1001_DFA_DIS_XX", "audio taken from the video's own track"),
        ("1001_DFA_FEA_XX", "empty audio"),
        ("1001_DFA_HAP_XX", "downmixed"),
        ("1001_DFA_HAP_XX", "44100 Hz -> 16000 Hz"),
        ("1001_IEO_DIS_HI", "25 fps"),
        ("1001_IEO_FEA_HI", "shorter than the 1.28 s window"),
    ],
)
def test_usable_odd_inputs_are_kept_with_a_note(bad_build, clip_id, note):
    out, manifest, code = bad_build
    assert code == 0
    assert any(clip_id in n and note in n for n in manifest["notes"]), manifest["notes"]
    recs = records_by_clip(out)
    assert clip_id in recs
    if clip_id == "1001_IEO_DIS_HI":
        assert float(recs[clip_id][keys.VIDEO_FPS]) == pytest.approx(25.0)
    if clip_id in ("1001_DFA_HAP_XX", "1001_DFA_DIS_XX"):
        good = int(recs["1001_DFA_ANG_XX"][keys.PARSED_NUM_SAMPLES])
        assert abs(int(recs[clip_id][keys.PARSED_NUM_SAMPLES]) - good) < 2000


def test_exit_status_strict_and_nothing_written(bad_build, tmp_path, capsys):
    out, manifest, _ = bad_build
    data = out.parent
    assert (
        main(
            [
                "--data-dir",
                str(data),
                "--out",
                str(out),
                "--workers",
                "1",
                "--strict",
                "--no-progress",
            ]
        )
        == 1
    )  # resumed: nothing to redo, but clips were skipped
    empty = tmp_path / "empty"
    (empty / "VideoFlash").mkdir(parents=True)
    (empty / "VideoFlash" / "1001_DFA_ANG_XX.flv").write_text(LFS)
    assert (
        main(
            [
                "--data-dir",
                str(empty),
                "--out",
                str(tmp_path / "o"),
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "1001_DFA_ANG_XX.flv: Git LFS pointer" in err and "-> skipped" in err
    # Every line the console script writes is prefixed (issue 19): skips as warnings, the
    # failure as one error line naming the count and the first skip.
    lines = err.splitlines()
    assert all(line.startswith("emotf-build-records: ") for line in lines), lines
    assert any(
        line.startswith("emotf-build-records: warning: ") and "-> skipped" in line for line in lines
    ), lines
    errors = [line for line in lines if line.startswith("emotf-build-records: error: ")]
    assert errors[0].startswith("emotf-build-records: error: --strict: "), lines
    failure = [line for line in errors if "nothing usable" in line]
    assert (
        len(failure) == 1
        and failure[0].startswith(
            "emotf-build-records: error: nothing usable was written: 1 clips skipped (first: "
        )
        and "1001_DFA_ANG_XX.flv: Git LFS pointer" in failure[0]
    ), lines


def test_a_dying_worker_skips_its_clip_and_the_build_goes_on(sample, built, tmp_path, monkeypatch):
    """A worker killed mid-clip (segfault, OOM killer) must not hang or stop the build."""
    from emotf.records.clip_worker import CRASH_ENV

    names = sorted(p.stem for p in (sample / "VideoFlash").glob("*.flv"))
    victim = names[1]
    monkeypatch.setenv(CRASH_ENV, victim)  # that clip's worker calls os._exit(1)
    out = tmp_path / "out"
    config = BuildConfig(str(sample), str(out), workers=2, clips_per_shard=2, progress=False)
    done = {}
    thread = threading.Thread(target=lambda: done.update(m=build_records(config)), daemon=True)
    thread.start()
    thread.join(timeout=300)  # multiprocessing.Pool.imap used to block here forever
    assert "m" in done, "the build hung (or failed) after a worker died"
    manifest = done["m"]
    hits = [s for s in manifest["skipped"] if s["clip_id"] == victim]
    assert len(hits) == 1, manifest["skipped"]
    assert "worker process died while processing" in hits[0]["reason"]
    assert victim in hits[0]["reason"] and "exit code 1" in hits[0]["reason"]
    assert manifest["clips_skipped"] == 1
    recs = records_by_clip(out)  # asserts that no clip was written twice
    assert sorted(recs) == [n for n in names if n != victim]
    assert manifest["clips_written"] == len(names) - 1 and not list(out.glob("*.tmp"))


def test_workers_default_follows_cpu_affinity(monkeypatch):
    import os

    from emotf.cli.build_records import parse_args

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert BuildConfig("data", "out").workers == 3
    assert parse_args(["--data-dir", "d", "--out", "o"]).workers == 3
    monkeypatch.delattr(os, "sched_getaffinity")
    assert BuildConfig("data", "out").workers == 64
    assert parse_args(["--data-dir", "d", "--out", "o"]).workers == 64


def test_short_clip_note_uses_the_samplers_window(sample, monkeypatch):
    """The 'shorter than the window' threshold is SamplingConfig's default, not a copy."""
    from emotf.configs import SamplingConfig
    from emotf.records.build import plan_build
    from emotf.records.clip_worker import process_clip

    monkeypatch.setattr(SamplingConfig, "window_seconds", 2.0)  # the tiny clips are ~1.4 s
    shards, _ = plan_build(BuildConfig(str(sample), "unused", workers=1, limit=1))
    result = process_clip(shards[0]["clips"][0])
    assert result.ok and result.clip_id == shards[0]["clips"][0].clip_id
    assert any("shorter than the 2 s window" in n for n in result.notes), result.notes


def copy_clips(sample, names, data) -> None:
    """The FLV and WAV of the clips `names` from the local `sample` into `data` (a URL)."""
    from emotf.storage import as_path

    for name in names:
        for folder, ext in (("VideoFlash", ".flv"), ("AudioWAV", ".wav")):
            as_path(sample / folder / f"{name}{ext}").copy(data / folder / f"{name}{ext}")


def test_build_from_and_to_tensorflows_ram_filesystem(sample, built):
    """DATA and OUT as URLs (emotf.storage over tf.io.gfile): media staged to local files for
    decoding, shards, sidecars and the manifest written there, readable by tf.data."""
    import uuid

    from emotf.cli.verify_records import main as verify_main
    from emotf.records.manifest import verify_records
    from emotf.storage import as_path, read_json

    root = as_path(f"ram://emotf-test-{uuid.uuid4().hex[:8]}")
    names = sorted(p.stem for p in (sample / "VideoFlash").glob("*.flv"))[:3]
    copy_clips(sample, names, root / "data")
    out = root / "records"
    try:
        code = main(
            [
                "--data-dir",
                str(root / "data"),
                "--out",
                str(out),
                "--workers",
                "1",
                "--clips-per-shard",
                "2",
                "--no-progress",
            ]
        )
        assert code == 0
        manifest = read_json(out / "manifest.json")
        assert manifest["clips_written"] == 3 and not manifest["skipped"]
        shards = [str(out / e["file"]) for e in manifest["shards"]]
        assert all(s.startswith("ram://") for s in shards) and len(shards) == 2
        assert verify_records(out) == [] and verify_main([str(out)]) == 0
        from_ram = serialized_by_clip(shards)
        from_disk = serialized_by_clip(sorted(built[0].glob("*.tfrecord")))
        assert sorted(from_ram) == names
        assert all(from_ram[name] == from_disk[name] for name in names)  # byte for byte
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    finally:
        root.rmtree()


def test_a_storage_error_while_staging_fails_the_shard_and_a_rerun_resumes(
    sample, monkeypatch, capsys
):
    """Only a missing URL is a clip's skip; a transient storage error (GCS 503) stops the build
    in one line naming the clip, keeps the finished shards, and the rerun writes the rest."""
    import uuid

    from emotf.records.build import plan_build
    from emotf.storage import StoragePath, as_path, read_json

    root = as_path(f"ram://emotf-test-{uuid.uuid4().hex[:8]}")
    names = sorted(p.stem for p in (sample / "VideoFlash").glob("*.flv"))[:2]
    copy_clips(sample, names, root / "data")
    out = root / "records"
    argv = [
        "--data-dir",
        str(root / "data"),
        "--out",
        str(out),
        "--workers",
        "1",
        "--clips-per-shard",
        "1",
        "--no-progress",
        "--no-verify-media",
    ]
    first, last = plan_build(BuildConfig(str(root / "data"), str(out), clips_per_shard=1))[0]
    doomed = last["clips"][0].clip_id
    real_copy, staged = StoragePath.copy, []

    def copy(self, target):
        staged.append(self.name)
        if self.name.startswith(doomed):
            raise tf.errors.UnavailableError(None, None, "503 Service Unavailable\nretry later")
        return real_copy(self, target)

    try:
        monkeypatch.setattr(StoragePath, "copy", copy)
        capsys.readouterr()
        assert main(argv) == 1
        (line,) = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
        assert f"{doomed}.flv: cannot copy" in line and "UnavailableError: 503" in line, line
        assert "rerun the same command" in line, line
        assert (out / f"{first['name']}.json").is_file()  # the finished shard is kept
        assert not (out / f"{last['name']}.json").exists() and not (out / "manifest.json").exists()
        staged.clear()
        monkeypatch.setattr(
            StoragePath,
            "copy",
            lambda self, target: (staged.append(self.name), real_copy(self, target))[1],
        )
        assert main(argv) == 0
        assert sorted(staged) == [f"{doomed}.flv", f"{doomed}.wav"]  # only the failed shard
        manifest = read_json(out / "manifest.json")
        assert manifest["clips_written"] == 2 and not manifest["skipped"]
    finally:
        root.rmtree()
