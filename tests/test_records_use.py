"""Using records safely: training refuses incomplete folders, perceived labels, media checks,
known bad clips, notes, workers that die with their parent."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from emotf.records.manifest import RecordsError
from emotf.records.media_checks import DIFFERS, MISSING, UNKNOWN, VERIFIED, check_file, file_sha256
from tests.test_train import config, write_tiny_shards

ROOT = Path(__file__).resolve().parents[1]


def test_labels_perceived_majority_and_tie_rule():
    from emotf.corpora.labels import agreement, label_of, majority, perceived_labels

    assert majority([0, 5, 5, 0, 0, 0], intended=2) == 2  # D and F tie, intended (F=2) wins
    assert majority([0, 5, 5, 0, 0, 0], intended=0) == 1  # tie without the intended: first
    assert majority([1, 0, 0, 9, 0, 0], intended=0) == 3
    table = perceived_labels()
    assert len(table) == 7442
    assert label_of("1001_DFA_ANG_XX", "intended") == 0
    result = agreement(
        ["1001_DFA_ANG_XX", "1001_DFA_ANG_XX", "1001_DFA_SAD_XX"],
        {"1001_DFA_ANG_XX": 0, "1001_DFA_SAD_XX": 4},
    )
    assert result == {"clips": 2, "agree": 1, "rate": 0.5, "without_votes": 0}


def test_training_refuses_an_incomplete_folder_and_records_what_it_read(tmp_path):
    from emotf.configs import ModelConfig
    from emotf.corpora.labels import perceived_labels
    from emotf.training.train import train_fold

    records = tmp_path / "records"
    write_tiny_shards(records)
    model = ModelConfig(
        num_segments=2,
        frame_size=32,
        video_stem_width=4,
        video_widths=(4,),
        audio_widths=(4, 4),
        fc_units=4,
    )
    victim = records / "fold-7-of-10-00000.tfrecord"
    saved = victim.read_bytes()
    victim.write_bytes(saved[:-50])  # a truncated *test*-fold shard... of another fold
    cfg = config(
        tmp_path, records=str(records), epochs=1, batch_size=4, model=model, export=False, fold=7
    )
    with pytest.raises(RecordsError, match=f"{victim}: .*truncated"):
        train_fold(cfg)  # refused before the first epoch
    victim.write_bytes(saved)
    metrics = train_fold(
        config(
            tmp_path,
            records=str(records),
            epochs=1,
            batch_size=4,
            model=model,
            export=False,
            fold=7,
            labels="perceived",
            out=str(tmp_path / "ok"),
        )
    )
    assert metrics["records_verified"] and not metrics["allow_incomplete"]
    assert metrics["labels"] == "perceived"
    assert (
        metrics["clips_read"]
        == metrics["clips_in_manifest"]
        == {"train": 16, "validation": 2, "test": 2}
    )
    # The test clip (1008_DFA_ANG_XX) is labelled by the raters' majority.
    assert metrics["num_clips"] == 2 and "1008_DFA_ANG_XX" in perceived_labels()
    (records / "manifest.json").unlink()
    metrics = train_fold(
        config(
            tmp_path,
            records=str(records),
            epochs=1,
            batch_size=4,
            model=model,
            export=False,
            fold=7,
            allow_incomplete=True,
            out=str(tmp_path / "anyway"),
        )
    )
    assert metrics["allow_incomplete"] and not metrics["records_verified"]
    assert "manifest.json: missing" in metrics["records_problems"][0]


def test_media_check_statuses(tmp_path):
    a, b = tmp_path / "a.flv", tmp_path / "b.flv"
    a.write_bytes(b"official bytes")
    b.write_bytes(b"official bytez")
    table = {"VideoFlash/X.flv": (a.stat().st_size, file_sha256(a))}
    assert check_file(a, "VideoFlash/X.flv", table) == VERIFIED
    assert check_file(b, "VideoFlash/X.flv", table) == DIFFERS
    assert check_file(a, "VideoFlash/Y.flv", table) == UNKNOWN
    assert check_file(tmp_path / "none.flv", "VideoFlash/X.flv", table) == MISSING
    from emotf.records.media_checks import official_checksums

    official = official_checksums()
    assert len(official) == 22326
    assert official["VideoFlash/1076_MTI_NEU_XX.flv"][0] == 35166


def test_build_records_media_checks_known_bad_clips_and_notes(tmp_path, monkeypatch, capsys):
    """One in-process build: media statuses in the manifest and the summary line; known bad
    clips skipped or kept with a note; a cut WAV and a video/audio length mismatch noted."""
    import emotf.records.media_checks as media_checks
    from emotf.cli.build_records import main
    from emotf.synthetic.sample import SampleConfig, make_sample

    sample = tmp_path / "sample"
    make_sample(sample, SampleConfig.tiny(num_actors=1, clips_per_actor=2))
    video, audio = sample / "VideoFlash", sample / "AudioWAV"
    first, second = sorted(p.stem for p in video.glob("*.flv"))
    for known in ("1064_IEO_DIS_MD", "1076_MTI_SAD_XX"):  # skipped before decoding
        shutil.copy(video / f"{first}.flv", video / f"{known}.flv")
        shutil.copy(audio / f"{first}.wav", audio / f"{known}.wav")
    shutil.copy(video / f"{first}.flv", video / "1064_TIE_SAD_XX.flv")  # kept, noted
    pcm, rate = soundfile.read(audio / f"{first}.wav", dtype="int16")
    soundfile.write(audio / "1064_TIE_SAD_XX.wav", np.concatenate([pcm, pcm]), rate)  # 2x long
    data = (audio / f"{second}.wav").read_bytes()
    (audio / f"{second}.wav").write_bytes(data[: len(data) - 2000])  # header promises more
    official = dict(media_checks.official_checksums())
    official[f"VideoFlash/{first}.flv"] = (
        (video / f"{first}.flv").stat().st_size,
        file_sha256(video / f"{first}.flv"),
    )
    monkeypatch.setattr(media_checks, "official_checksums", lambda path=None: official)
    out = tmp_path / "records"
    assert (
        main(["--data-dir", str(sample), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    )
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    checks = manifest["media_checks"]
    assert checks[first] == {"video": VERIFIED, "audio": DIFFERS}  # synthetic WAV: not official
    assert checks["1064_TIE_SAD_XX"]["video"] == DIFFERS
    assert manifest["media_summary"]["video"][VERIFIED] == 1
    assert (
        "media checks against the official CREMA-D checksums: video 1 verified, 4 differ" in printed
    )
    reasons = {s["clip_id"]: s["reason"] for s in manifest["skipped"]}
    assert (
        "one minute" in reasons["1064_IEO_DIS_MD"] and "error picture" in reasons["1076_MTI_SAD_XX"]
    )
    notes = "\n".join(manifest["notes"])
    assert "1064_TIE_SAD_XX.flv: known problem clip" in notes
    assert "1064_TIE_SAD_XX.flv: video" in notes and "differ by more than 0.5 s" in notes
    assert any(
        second in n and "WAV header promises" in n and "(truncated)" in n for n in manifest["notes"]
    ), notes
    assert manifest["clips_written"] == 3


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_build_process_leaves_no_worker_behind(tmp_path, sig):
    script = tmp_path / "pool.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]\n"
        "import helpers_workers\n"
        "from emotf.records.clip_worker import ClipRunner\n"
        "from emotf.media.faces import FaceTrackerConfig\n"
        "if __name__ == '__main__':\n"
        "    runner = ClipRunner(FaceTrackerConfig(), 2, work=helpers_workers.work,\n"
        "                        initializer=helpers_workers.init, ahead=8)\n"
        "    results = runner.run(helpers_workers.tasks({}, 40))\n"
        "    print(next(results).stats['pid'], flush=True)\n"
        "    time.sleep(120)  # the pool is alive, its workers idle\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = set()
    while len(pids) < 1:
        pids.add(int(proc.stdout.readline()))
    children = [
        int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    ]
    assert children, "no worker processes"
    os.kill(proc.pid, sig)
    proc.wait()
    deadline = time.time() + 10
    alive = children
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [p for p in children if _running(p)]
    assert not alive, f"workers {alive} outlived their parent"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
