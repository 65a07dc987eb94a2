"""The synthetic RAVDESS sample: the release's names and layout, H.264 + AAC 48 kHz MP4s, the
extras the corpus skips, label-dependent cues, and `emotf-make-sample --corpus ravdess`."""

from __future__ import annotations

import dataclasses
import json
import wave

import av
import numpy as np
import pytest

from emotf.cli import make_sample as make_sample_cli
from emotf.corpora.ravdess import EMOTIONS, parse_ravdess_name, ravdess_folds
from emotf.corpora.registry import open_corpus
from emotf.synthetic.media import render_frames
from emotf.synthetic.ravdess import (
    AUDIO_GROUP,
    TRIALS_PER_ACTOR,
    VIDEO_GROUP,
    RavdessSampleConfig,
    clip_plan,
    load_sample_config,
    make_ravdess_sample,
    sample_actors,
    sample_names,
)
from emotf.synthetic.sample import SampleConfig

TINY = RavdessSampleConfig.tiny()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("ravdess")
    return out, make_ravdess_sample(out, TINY)


def test_names_and_layout(sample):
    out, paths = sample
    assert [p.relative_to(out).as_posix() for p in paths] == [
        "Actor_01/01-01-01-01-01-01-01.mp4",
        "Actor_01/01-01-02-01-01-01-01.mp4",
        "Actor_01/01-01-03-01-01-01-01.mp4",
        "Actor_06/01-01-01-01-01-01-06.mp4",
        "Actor_06/01-01-02-01-01-01-06.mp4",
        "Actor_06/01-01-03-01-01-01-06.mp4",
    ]
    extras = sorted(
        p.relative_to(out).as_posix() for p in out.glob("Actor_*/*") if p not in set(paths)
    )
    assert extras == [
        "Actor_01/01-02-01-01-01-01-01.mp4",
        "Actor_01/02-01-01-01-01-01-01.mp4",
        "Actor_01/03-01-01-01-01-01-01.wav",
        "Actor_06/01-02-01-01-01-01-06.mp4",
        "Actor_06/02-01-01-01-01-01-06.mp4",
        "Actor_06/03-01-01-01-01-01-06.wav",
    ]
    for path in out.glob("Actor_*/*"):
        assert parse_ravdess_name(path.name).actor == int(path.parent.name[-2:])


def test_the_corpus_reads_the_speech_clips_and_skips_the_extras(sample):
    out, paths = sample
    corpus = open_corpus("ravdess", out)
    assert [c.video for c in corpus.clips] == [str(p) for p in paths]
    assert [c.label for c in corpus.clips] == ["neutral", "calm", "happy"] * 2
    assert [corpus.fold_of(c) for c in corpus.clips] == [0, 0, 0, 1, 1, 1]
    reasons = sorted(s.reason.split(" ")[0] for s in corpus.skipped)
    assert reasons == ["audio-only"] * 2 + ["not"] + ["song"] * 2 + ["video-only"] * 2
    assert load_sample_config(out) == TINY


def test_streams_are_h264_and_aac_48k_at_the_configured_size(sample):
    out, paths = sample
    meta = {c["clip_id"]: c for c in json.loads((out / "sample.json").read_text())["clips"]}
    for path in paths:
        with av.open(str(path)) as f:
            assert f.format.name.startswith("mov,mp4")
            (video,) = f.streams.video
            (audio,) = f.streams.audio
            assert video.codec_context.name == "h264"
            assert (video.codec_context.width, video.codec_context.height) == (320, 180)
            assert float(video.average_rate) == pytest.approx(29.97, abs=0.01)
            assert audio.codec_context.name == "aac" and audio.codec_context.sample_rate == 48000
            assert audio.codec_context.channels == 1
            duration = meta[path.stem]["duration"]
            frames = sum(1 for _ in f.decode(video=0))
        assert frames == meta[path.stem]["num_frames"] == round(duration * 29.97)
        assert 1.3 <= duration <= 1.5
    with av.open(str(out / "Actor_01" / "02-01-01-01-01-01-01.mp4")) as f:
        assert len(f.streams.video) == 1 and not f.streams.audio
    with wave.open(str(out / "Actor_01" / "03-01-01-01-01-01-01.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48000, 1, 2)


def test_every_emotion_has_its_own_pair_of_cues():
    pairs = {(VIDEO_GROUP[e], AUDIO_GROUP[e]) for e in EMOTIONS}
    assert len(pairs) == len(EMOTIONS) == 8
    for groups in (VIDEO_GROUP, AUDIO_GROUP):  # one modality alone tells only a group
        assert len(set(groups.values())) == 3


def test_the_face_is_tinted_by_the_video_group(sample):
    """In the decoded MP4, the face differs from the same clip rendered untinted by the
    group's tint: up in the group's channel, down in the other two."""
    out, paths = sample
    meta = {c["clip_id"]: c for c in json.loads((out / "sample.json").read_text())["clips"]}
    untinted = dataclasses.replace(TINY, tint=0.0).render_config()
    for path in paths:
        record = meta[path.stem]
        plan = clip_plan(path, TINY)
        assert record["video_group"] == plan.video_group == VIDEO_GROUP[plan.name.emotion_name]
        with av.open(str(path)) as f:
            frame = next(f.decode(video=0)).to_ndarray(format="rgb24").astype(float)
        plain = render_frames(plan, untinted)[0].astype(float)
        x0, y0, x1, y1 = np.round(record["face_boxes"][0]).astype(int)
        inner = (slice(y0 + 8, y1 - 8), slice(x0 + 8, x1 - 8))
        shift = (frame[inner] - plain[inner]).reshape(-1, 3).mean(0)
        expected = np.full(3, -0.5 * TINY.tint * plan.video_strength)
        expected[plan.video_group] = TINY.tint * plan.video_strength
        assert np.abs(shift - expected).max() < 6.0, (path.name, shift, expected)


def test_pitch_follows_the_audio_group_and_strong_intensity_is_stronger():
    config = RavdessSampleConfig(cue_jitter=0.0)
    actor = 3
    plans = {
        e: clip_plan(f"01-01-{EMOTIONS.index(e) + 1:02d}-01-01-01-{actor:02d}.mp4", config)
        for e in EMOTIONS
    }
    low = [plans[e].f0_hz for e in EMOTIONS if AUDIO_GROUP[e] == 0]
    high = [plans[e].f0_hz for e in EMOTIONS if AUDIO_GROUP[e] == 2]
    assert max(low) < min(high)
    strong = clip_plan(f"01-01-05-02-01-01-{actor:02d}.mp4", config)
    assert strong.video_strength == pytest.approx(1.25 * plans["angry"].video_strength)
    twin = clip_plan(f"02-01-05-02-01-01-{actor:02d}.mp4", config)
    assert twin == dataclasses.replace(strong, name=twin.name)  # the same trial, no audio


def test_actors_spread_over_folds_and_clips_cycle_emotions():
    actors = sample_actors(24)
    assert sorted(actors) == list(range(1, 25))
    folds = ravdess_folds()
    assert [folds[a] for a in actors[:6]] == [0, 1, 2, 3, 4, 5]
    assert [a % 2 for a in actors[:6]] == [1, 0, 1, 0, 1, 0]  # male, female, ...
    names = sample_names(RavdessSampleConfig(num_actors=1, clips_per_actor=TRIALS_PER_ACTOR))
    assert len({n.stem for n in names}) == 60  # every speech trial of the actor, once
    first = sample_names(RavdessSampleConfig(num_actors=1, clips_per_actor=8))
    assert sorted(n.emotion for n in first) == list(range(1, 9))


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"clips_per_actor": 61}, "clips_per_actor"),
        ({"num_actors": 25}, "num_actors"),
        ({"width": 321}, "RavdessSampleConfig.width and height must be even"),
        ({"head_height": 400, "height": 360}, "RavdessSampleConfig.head_height must fit"),
        ({"min_duration": 3.0, "max_duration": 2.0}, "min_duration must be at most"),
    ],
)
def test_config_refuses_bad_values_in_one_line(overrides, problem):
    with pytest.raises(ValueError) as error:
        RavdessSampleConfig(**overrides)
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_cli_writes_a_ravdess_sample(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--corpus", "ravdess", "--tiny", "--actors", "1"]
    argv += ["--clips-per-actor", "2", "--extras", "false", "--seed", "5"]
    assert make_sample_cli.main(argv) == 0
    assert "wrote 2 RAVDESS clips (1 actors)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "Actor_01").iterdir()) == [
        "01-01-01-01-01-01-01.mp4",
        "01-01-02-01-01-01-01.mp4",
    ]
    assert load_sample_config(tmp_path).seed == 5


def test_cli_keeps_cremad_the_default_and_refuses_an_unknown_corpus(capsys):
    config, args = make_sample_cli.parse_config(["--out", "o", "--tiny"])
    assert isinstance(config, SampleConfig) and args.corpus == "cremad"
    config, _ = make_sample_cli.parse_config(["--out", "o", "--corpus=ravdess", "--width", "640"])
    assert isinstance(config, RavdessSampleConfig) and config.width == 640
    with pytest.raises(SystemExit) as exit_:
        make_sample_cli.parse_config(["--out", "o", "--corpus", "iemocap"])
    assert exit_.value.code == 2 and "invalid choice: 'iemocap'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a RAVDESS field is no flag of the CREMA-D sample
        make_sample_cli.parse_config(["--out", "o", "--extras", "false"])
