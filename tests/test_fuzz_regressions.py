"""Regression tests of the defects the fuzz harness found (issue 19; docs/fuzzing.md): each
fails without its fix. The end-to-end cases are in tests/test_fuzz.py."""

from __future__ import annotations

import types

import pytest

from emotf.configs import ModelConfig, TrainConfig, min_frame_size, min_spectrogram_side

# === 1. An empty path is refused, not taken for the current folder ===


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda v: TrainConfig(out=v), "TrainConfig.out"),
        (lambda v: TrainConfig(split=v), "TrainConfig.split"),
        (
            lambda v: __import__("emotf.tuning.config", fromlist=["TuneConfig"]).TuneConfig(out=v),
            "TuneConfig.out",
        ),
        (
            lambda v: __import__("emotf.demo", fromlist=["DemoConfig"]).DemoConfig(out=v),
            "DemoConfig.out",
        ),
        (
            lambda v: __import__("emotf.records.config", fromlist=["BuildConfig"]).BuildConfig(
                data_dir=v, out_dir="x"
            ),
            "BuildConfig.data_dir",
        ),
        (
            lambda v: __import__("emotf.records.config", fromlist=["BuildConfig"]).BuildConfig(
                data_dir="x", out_dir=v
            ),
            "BuildConfig.out_dir",
        ),
    ],
)
@pytest.mark.parametrize("value", ["", "  "])
def test_empty_output_and_input_paths_are_refused(make, field, value):
    with pytest.raises(ValueError, match=field.replace(".", r"\.") + " must be a non-empty"):
        make(value)


def test_build_records_empty_data_dir_flag_is_one_line(capsys, tmp_path):
    from emotf.cli.build_records import main

    with pytest.raises(SystemExit) as stop:
        main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "x"), "--build.data_dir", ""])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "BuildConfig.data_dir" in err[0], err
    assert not (tmp_path / "x").exists()


# === 3a. Shapes the network's pooling would shrink to nothing ===


def test_spectrogram_too_small_for_the_audio_blocks_is_refused():
    with pytest.raises(ValueError, match=r"spectrogram_shape must be at least 16x16"):
        ModelConfig(spectrogram_shape=(1, 1))
    with pytest.raises(ValueError, match=r"at least 4x4"):
        ModelConfig(audio_widths=(4, 4), spectrogram_shape=(3, 8))
    ModelConfig(audio_widths=(4, 4), spectrogram_shape=(4, 4))
    ModelConfig(modalities="video", spectrogram_shape=(1, 1))  # no audio branch


def test_frame_size_too_small_for_the_video_blocks_is_refused():
    assert min_frame_size(3) == 31
    with pytest.raises(ValueError, match=r"frame_size must be at least 31"):
        ModelConfig(frame_size=30)
    ModelConfig(frame_size=30, modalities="audio")


@pytest.mark.parametrize("video_blocks, audio_blocks", [(1, 1), (2, 3)])
def test_the_smallest_accepted_shapes_build(video_blocks, audio_blocks):
    from emotf.model import build_core

    side = min_spectrogram_side(audio_blocks)
    config = ModelConfig(
        frame_size=max(8, min_frame_size(video_blocks)),
        spectrogram_shape=(side, side),
        video_stem_width=2,
        video_widths=(2,) * video_blocks,
        audio_widths=(2,) * audio_blocks,
        fc_units=0,
    )
    core = build_core(config)
    assert core.output_shape[-1] == config.output_classes
    with pytest.raises(ValueError):  # one less: the pooling runs out of pixels
        ModelConfig(**{**config.to_dict(), "spectrogram_shape": (side - 1, side)})


# === 3b. A failed tuning trial is one warning line, not a traceback ===


def test_a_failed_trial_is_one_warning_line(capsys):
    import keras_tuner

    from emotf.tuning.search import _EmotfTuner

    def boom(*_args, **_kwargs):
        raise ValueError("first line of the problem\nsecond line\n  File ...")

    tuner = types.SimpleNamespace(_run_and_update_trial=boom)
    trial = types.SimpleNamespace(trial_id="07", status=None, message=None)
    _EmotfTuner._try_run_and_update_trial(tuner, trial)
    assert trial.status == keras_tuner.engine.trial.TrialStatus.INVALID
    assert trial.message == "ValueError: first line of the problem"
    err = capsys.readouterr().err.splitlines()
    assert err == ["emotf-tune: warning: trial 07 failed: ValueError: first line of the problem"]


# === 3/7. Records of another audio rate or crop size: refused up front ===


@pytest.fixture
def fake_records(tmp_path, monkeypatch):
    import emotf.records.manifest as manifest

    (tmp_path / "manifest.json").write_text("{}")
    settings = {"sample_rate": 16000, "tracker": {"crop_size": 224}}
    monkeypatch.setattr(manifest, "read_manifest", lambda folder: {"settings": settings})
    return tmp_path


def test_records_of_another_sample_rate_are_refused(fake_records):
    from emotf.runs.data import check_records_settings

    check_records_settings(TrainConfig(records=str(fake_records)))
    config = TrainConfig(records=str(fake_records), sampling={"sample_rate": 8000})
    with pytest.raises(ValueError, match=r"sample_rate=16000 Hz.*sampling\.sample_rate=8000"):
        check_records_settings(config)


def test_records_of_another_crop_size_are_refused(fake_records):
    from emotf.runs.data import check_records_settings

    config = TrainConfig(records=str(fake_records), model={"frame_size": 1023})
    with pytest.raises(ValueError, match=r"224x224 face crops.*model\.frame_size=1023"):
        check_records_settings(config)
    # An audio-only model reads no frames: any frame_size.
    check_records_settings(
        TrainConfig(records=str(fake_records), model={"frame_size": 1023, "modalities": "audio"})
    )


# === 4. emotf-evaluate checks its paths up front ===


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--run", "{tmp}/no run"], "--run"),
        (["--run", "{tmp}", "--records", "{tmp}/missing folder"], "missing folder"),
        (["--run", "{tmp}", "--votes", "{tmp}/no.csv"], "--votes"),
        (["--compare", "{tmp}/a", "{tmp}"], "--compare"),
    ],
)
def test_evaluate_refuses_missing_paths_in_one_line(argv, named, tmp_path, capsys):
    from emotf.cli.evaluate import main

    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert err[0].startswith("emotf-evaluate: error: ") and named in err[0], err
    assert "NotFoundError" not in err[0]


# === 5. Hand-written numeric flags are bounded ===


@pytest.mark.parametrize("workers", ["1000000000000000000", "0", "-1", "x", "1e3"])
def test_make_sample_workers_is_bounded(workers, tmp_path, capsys):
    from emotf.cli.make_sample import parse_config

    with pytest.raises(SystemExit) as stop:
        parse_config(["--out", str(tmp_path / "s"), "--tiny", "--workers", workers])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workers" in err[0], err


def test_make_sample_empty_out_is_refused(capsys):
    from emotf.cli.make_sample import parse_config

    with pytest.raises(SystemExit):
        parse_config(["--out", "", "--tiny"])
    assert "--out" in capsys.readouterr().err


# === 6. The votes table is size-capped ===


def test_votes_from_an_endless_file_are_refused():
    from emotf.corpora.votes import load_votes

    with pytest.raises(ValueError, match=r"/dev/zero: more than 64 MiB"):
        load_votes("/dev/zero")


def test_votes_over_the_cap_are_refused_before_reading(tmp_path, monkeypatch):
    import emotf.corpora.votes as votes

    path = tmp_path / "votes.csv"
    path.write_text(",fileName,numResponses,A,D,F,H,N,S\n" * 10)
    monkeypatch.setattr(votes, "MAX_VOTES_BYTES", 64)
    with pytest.raises(ValueError, match=r"votes\.csv: \d+ bytes, more than"):
        votes.load_votes(path)


@pytest.mark.parametrize("text", ["\x00\x01\x02", "a,b\n1,2\n", ",fileName\n1,x\n"])
def test_votes_that_are_not_a_votes_table_are_one_value_error(text, tmp_path):
    from emotf.corpora.votes import load_votes

    path = tmp_path / "votes.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"votes\.csv: "):
        load_votes(path)
