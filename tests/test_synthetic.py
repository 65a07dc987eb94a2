"""The synthetic CREMA-D sample: layout, names, media formats, determinism, face, cues."""

from __future__ import annotations

import dataclasses
import json
import wave

import numpy as np
import pytest

from emotf.cli import make_sample as make_sample_cli
from emotf.corpora import cremad
from emotf.synthetic.media import render_frames
from emotf.synthetic.sample import (
    AUDIO_GROUP,
    VIDEO_GROUP,
    SampleConfig,
    clip_plan,
    load_sample_config,
    make_sample,
    planted_face_boxes,
    sample_actors,
    sample_clip_names,
)

TINY = SampleConfig.tiny()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    return out, make_sample(out, TINY)


def _wav(path):
    with wave.open(str(path)) as f:
        return f.getframerate(), f.getnchannels(), f.getsampwidth(), f.readframes(f.getnframes())


def _decode(path):
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
        return rate, np.stack(frames)


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_names_parse_and_spread_over_folds(sample):
    out, flvs = sample
    assert len(flvs) == TINY.num_actors * TINY.clips_per_actor
    folds = cremad.canonical_folds()
    parsed = [cremad.parse_clip_name(p) for p in flvs]
    assert len({folds[p.actor_id] for p in parsed}) == TINY.num_actors
    assert [p.emotion for p in parsed[: TINY.clips_per_actor]] == list(cremad.EMOTIONS[:3])
    for p in flvs:
        assert (out / "AudioWAV" / f"{p.stem}.wav").is_file()
    meta = json.loads((out / "sample.json").read_text())
    assert [c["clip_id"] for c in meta["clips"]] == [p.stem for p in flvs]
    assert load_sample_config(out) == TINY


def test_default_actors_one_per_fold_and_names_unique():
    folds = cremad.canonical_folds()
    actors = sample_actors(10)
    assert sorted(folds[a] for a in actors) == list(range(10))
    assert actors[0] == min(a for a in folds if folds[a] == 0)
    names = sample_clip_names(SampleConfig(num_actors=3, clips_per_actor=72))
    assert len(set(names)) == len(names) == 3 * 72
    emotions = [cremad.parse_clip_name(n).emotion for n in names]
    # 1008 recorded 11 neutral clips (no WSI): its 72nd clip is another emotion's.
    assert sorted(emotions.count(e) for e in cremad.EMOTIONS) == [35, 36, 36, 36, 36, 37]


@pytest.mark.parametrize(
    "config",
    [
        SampleConfig(),
        SampleConfig.tiny(),
        SampleConfig(num_actors=10, clips_per_actor=36),  # the demo's: had 1002_TIE_NEU_XX, ...
        SampleConfig(num_actors=91, clips_per_actor=72),
    ],
)
def test_every_sample_name_is_a_real_cremad_clip_with_votes_and_an_ogm_split_row(
    config, cremad_tables_dir
):
    """The sample's names are real CREMA-D clips (not e.g. 1008_WSI_SAD_XX: 1008 has no WSI),
    so the demo finds their rater votes and the OGM-GE split keeps them."""
    from pathlib import Path

    from emotf.corpora.splits import read_split_csv
    from emotf.corpora.votes import load_votes

    names = sample_clip_names(config)
    assert len(set(names)) == len(names) == config.num_actors * config.clips_per_actor
    real = set(cremad.load_clip_names(cremad_tables_dir / "SentenceFilenames.csv"))
    assert sorted(set(names) - real) == []
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "ogm-split"
    split = (
        [shared / "train.csv", shared / "test.csv"]
        if shared.is_dir()
        else [cremad.data_path("ogm_train.csv"), cremad.data_path("ogm_test.csv")]
    )
    ogm = {name for path in split for name in read_split_csv(path)}
    assert sorted(set(names) - ogm) == []
    votes = load_votes(cremad_tables_dir / "tabulatedVotes.csv")
    for mode in ("voice", "face", "audio-visual"):
        voted = {c for c, m in zip(votes.clip_ids, votes.modes, strict=True) if m == mode}
        assert sorted(set(names) - voted) == [], mode


def test_wav_format_and_duration(sample):
    _, flvs = sample
    for flv in flvs:
        rate, channels, width, data = _wav(flv.parent.parent / "AudioWAV" / f"{flv.stem}.wav")
        assert (rate, channels, width) == (16000, 1, 2)
        plan = clip_plan(flv, TINY)
        assert len(data) // 2 == plan.num_samples
        assert TINY.min_duration <= plan.duration <= TINY.max_duration


def test_flv_video_and_audio_streams(sample):
    import av

    flv = sample[1][0]
    rate, frames = _decode(flv)
    assert rate == pytest.approx(30.0)
    assert frames.shape == (clip_plan(flv, TINY).num_frames, 360, 480, 3)
    with av.open(str(flv)) as c:
        assert len(c.streams.audio) == 1
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    assert audio.shape[1] / 44100 == pytest.approx(clip_plan(flv, TINY).duration, abs=0.1)
    assert np.abs(audio).max() > 0.1


def test_same_seed_same_bytes_different_seed_differs(sample, tmp_path):
    out, flvs = sample
    first = flvs[0].stem
    # One clip alone: a clip depends on the seed and its name only, not on the sample's size.
    one = make_sample(tmp_path / "a", SampleConfig.tiny(num_actors=1, clips_per_actor=1))
    assert one[0].stem == first
    wav = f"AudioWAV/{first}.wav"
    assert (tmp_path / "a" / wav).read_bytes() == (out / wav).read_bytes()
    make_sample(tmp_path / "b", SampleConfig.tiny(num_actors=1, clips_per_actor=1, seed=1))
    assert (tmp_path / "b" / wav).read_bytes() != (out / wav).read_bytes()
    np.testing.assert_array_equal(_decode(one[0])[1], _decode(flvs[0])[1])


def test_mtcnn_finds_the_planted_face(sample):
    mtcnn = pytest.importorskip("mtcnn")
    detector = mtcnn.MTCNN(stages="face_detection_only")
    flv = sample[1][-1]
    _, frames = _decode(flv)
    boxes = planted_face_boxes(flv, TINY)
    assert boxes.shape == (len(frames), 4)
    for j in (0, len(frames) // 2):
        faces = detector.detect_faces(frames[j])
        best = max(faces, key=lambda f: f["confidence"])
        x, y, w, h = best["box"]
        assert _iou((x, y, x + w, y + h), boxes[j]) > 0.5


def test_face_moves_smoothly():
    boxes = planted_face_boxes("1001_DFA_ANG_XX", SampleConfig())
    steps = np.abs(np.diff(boxes, axis=0))
    assert steps.max() <= 4 and np.ptp(boxes[:, 0]) > 2


@pytest.mark.parametrize("group", [0, 1, 2])
def test_video_cue_tints_the_face_by_group(group):
    plan = dataclasses.replace(
        clip_plan("1001_DFA_ANG_XX", TINY), num_frames=1, light=(1.0, 0.0, 0.0, 0.0)
    )
    plain = render_frames(dataclasses.replace(plan, video_strength=0.0), TINY)[0]
    tinted = render_frames(dataclasses.replace(plan, video_group=group, video_strength=1.0), TINY)[
        0
    ]
    x0, y0, x1, y1 = planted_face_boxes(plan.name, TINY)[0].astype(int)
    diff = (tinted[y0:y1, x0:x1].astype(float) - plain[y0:y1, x0:x1]).reshape(-1, 3).mean(0)
    assert np.argmax(diff) == group


def test_cue_groups_identify_emotions_only_together():
    pairs = {(VIDEO_GROUP[e], AUDIO_GROUP[e]) for e in cremad.EMOTIONS}
    assert len(pairs) == 6
    assert len(set(VIDEO_GROUP.values())) == len(set(AUDIO_GROUP.values())) == 3


def test_audio_cue_pitch_follows_group(sample):
    plans = [clip_plan(n, SampleConfig()) for n in sample_clip_names(SampleConfig())]
    logf0 = np.log([p.f0_hz for p in plans])
    groups = np.array([p.audio_group for p in plans])
    means = [logf0[groups == g].mean() for g in range(3)]
    assert means[0] < means[1] < means[2]
    # ... and the WAV really has that pitch (autocorrelation peak).
    _, flvs = sample
    for flv in flvs:
        plan = clip_plan(flv, TINY)
        _, _, _, data = _wav(flv.parent.parent / "AudioWAV" / f"{flv.stem}.wav")
        x = np.frombuffer(data, "<i2").astype(float)
        ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)
        lo, hi = 16000 // 400, 16000 // 60
        lag = lo + np.argmax(ac[lo:hi])
        assert 16000 / lag == pytest.approx(plan.f0_hz, rel=0.15)


def test_cli_tiny(tmp_path, capsys):
    assert (
        make_sample_cli.main(
            [
                "--out",
                str(tmp_path),
                "--tiny",
                "--actors",
                "1",
                "--clips-per-actor",
                "2",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert "wrote 2 clips" in capsys.readouterr().out
    assert len(list((tmp_path / "VideoFlash").glob("*.flv"))) == 2
    assert load_sample_config(tmp_path).seed == 5


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_actors", 0),
        ("num_actors", 92),
        ("clips_per_actor", 73),
        ("seed", -1),
        ("min_duration", 0.0),
        ("max_duration", 1e9),
        ("fps", 1e-30),
        ("fps", float("nan")),
        ("width", 10),
        ("height", 10**6),
        ("sample_rate", 0),
        ("flv_audio_rate", 16000),
        ("video_bit_rate", 0),
        ("head_height", 0),
        ("tint", -1.0),
        ("cue_jitter", 5.0),
        ("snr_db", (15.0, 1e9)),
        ("duration_log_sd", -0.1),
        ("num_actors", True),
        ("fps", "30"),
    ],
)
def test_sample_config_refuses_out_of_range_values_in_one_line(field, value):
    with pytest.raises(ValueError, match=rf"^SampleConfig\.{field} ") as error:
        SampleConfig(**{field: value})
    assert "\n" not in str(error.value) and f"{field}=" in str(error.value)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(min_duration=3.0, max_duration=2.0), "min_duration"),
        (dict(snr_db=(30.0, 10.0)), "snr_db"),
        (dict(width=481), "width"),
        (dict(head_height=400), "head_height"),
    ],
)
def test_sample_config_refuses_inconsistent_fields(overrides, field):
    with pytest.raises(ValueError, match=rf"^SampleConfig\.{field} "):
        SampleConfig(**overrides)


def test_every_sample_config_field_declares_its_bound():
    from emotf.bounds import bound_of

    for f in dataclasses.fields(SampleConfig):
        assert bound_of(f) is not None and bound_of(f).help, f.name


def test_cli_refuses_a_bad_value_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        make_sample_cli.main(["--out", str(tmp_path / "s"), "--fps", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "SampleConfig.fps must be in [1, 120]" in err[-1]
    assert not (tmp_path / "s").exists()
