"""A synthetic RAVDESS sample: MP4s in the public release's layout, with the CREMA-D sample's
real face (`emotf.synthetic.media.render_frames`) and speech-like audio (`render_audio`).

    out_dir/Actor_NN/01-01-EE-II-SS-RR-NN.mp4   full-AV speech: H.264 + AAC 48 kHz mono (input)
    out_dir/Actor_NN/02-01-...-NN.mp4           video only (H.264, no audio track)
    out_dir/Actor_NN/03-01-...-NN.wav           audio only (48 kHz 16-bit mono WAV)
    out_dir/Actor_NN/01-02-...-NN.mp4           song (full-AV)
    out_dir/sample.json                         config, per-clip cues and face boxes

The video-only, audio-only and song files (`extras`: a few per actor) are there so that the
corpus's skip path runs.

The real release is 1280x720 at 29.97 fps (the default); tests use smaller frames (`tiny`).
Actors are spread over RAVDESS's default folds (`emotf.corpora.ravdess.ravdess_folds`): one
per fold first, alternating male and female; each actor's clips cycle through the 8 emotions.

Emotion cues, as in the CREMA-D sample (`emotf.synthetic.sample`): the face's colour tint (video
group) and the voice's pitch, syllable rate and brightness (audio group) each tell a group of
emotions, and the pair tells all eight (a distinct cell of the 3 x 3 grid each):

    emotion      neutral calm happy sad angry fearful disgust surprised
    video group     2     2     1    2    0      1       0        1
    audio group     2     1     2    0    0      1       1        0

A strong intensity scales the clip's cue strength by `strong_gain`. Everything is a function of
`(config, file name)` (each clip has its own seeded generator), and a video-only or audio-only
file shows the same trial as its full-AV twin.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from emotf.bounds import bounded, check_bounds
from emotf.configs import MAX_SEED, Config
from emotf.corpora.ravdess import (
    DEFAULT_FOLDS,
    EMOTIONS,
    LAST_ACTOR,
    SONG_EMOTIONS,
    RavdessName,
    parse_ravdess_name,
    ravdess_folds,
)
from emotf.synthetic.config import ClipPlan, SampleConfig
from emotf.synthetic.media import face_boxes, render_audio, render_frames, write_wav
from emotf.synthetic.writing import SAMPLE_JSON, write_all, write_sample_json

SAMPLE_FORMAT_VERSION = 1
AUDIO_RATE = 48000  # the release's audio rate (AAC in the MP4s, 16-bit PCM in the WAVs)
MAX_SECONDS = 60.0

VIDEO_GROUP: dict[str, int] = {
    "neutral": 2,
    "calm": 2,
    "happy": 1,
    "sad": 2,
    "angry": 0,
    "fearful": 1,
    "disgust": 0,
    "surprised": 1,
}
AUDIO_GROUP: dict[str, int] = {
    "neutral": 2,
    "calm": 1,
    "happy": 2,
    "sad": 0,
    "angry": 0,
    "fearful": 1,
    "disgust": 1,
    "surprised": 0,
}
# Speech trials per actor: neutral 1 intensity x 2 statements x 2 repetitions, the others 2x2x2.
TRIALS_PER_ACTOR = 4 + 8 * (len(EMOTIONS) - 1)


@dataclass(frozen=True)
class RavdessSampleConfig(Config):
    """What to generate (see the module docstring); written into `sample.json`."""

    num_actors: int = bounded(6, ge=1, le=LAST_ACTOR, help="actors, spread over the folds")
    clips_per_actor: int = bounded(
        16, ge=1, le=TRIALS_PER_ACTOR, help="full-AV speech clips per actor (emotions cycle)"
    )
    extras: bool = bounded(
        True, help="also a video-only, an audio-only and a song file per actor (skipped inputs)"
    )
    seed: int = bounded(0, ge=0, le=MAX_SEED, help="master seed: the same seed, the same clips")
    min_duration: float = bounded(2.5, gt=0.0, le=MAX_SECONDS, help="shortest clip (seconds)")
    max_duration: float = bounded(5.0, gt=0.0, le=MAX_SECONDS, help="longest clip (seconds)")
    median_duration: float = bounded(
        3.7, gt=0.0, le=MAX_SECONDS, help="median clip duration (seconds; log-normal around it)"
    )
    duration_log_sd: float = bounded(
        0.15, ge=0.0, le=3.0, help="sd of the clip durations in log space"
    )
    fps: float = bounded(29.97, ge=1.0, le=120.0, help="video frame rate")
    width: int = bounded(1280, ge=64, le=4096, help="video width (px, even; the release: 1280)")
    height: int = bounded(720, ge=64, le=4096, help="video height (px, even; the release: 720)")
    video_bit_rate: int = bounded(
        2_000_000, ge=10_000, le=100_000_000, help="H.264 bit rate (bits/s)"
    )
    head_height: int = bounded(
        360, ge=24, le=4096, help="height of the pasted head (px; the face box is ~0.58 of it)"
    )
    tint: float = bounded(
        28.0, ge=0.0, le=255.0, help="colour tint of the face at cue strength 1 (0..255 scale)"
    )
    cue_jitter: float = bounded(
        0.35, ge=0.0, le=2.0, help="sd of the per-clip cue strength (mean 1)"
    )
    strong_gain: float = bounded(
        1.25, ge=0.0, le=2.0, help="cue strength factor of a strong-intensity clip"
    )
    snr_db: tuple[float, float] = bounded(
        (15.0, 25.0), ge=-20.0, le=80.0, help="(low, high) range of the audio's SNR in dB"
    )

    @classmethod
    def tiny(cls, **overrides) -> RavdessSampleConfig:
        """A preset for tests: 2 actors x 3 clips of 1.3-1.5 s at 320x180 (seconds to make)."""
        fields: dict[str, Any] = dict(
            num_actors=2,
            clips_per_actor=3,
            min_duration=1.3,
            max_duration=1.5,
            median_duration=1.4,
            width=320,
            height=180,
            head_height=120,
            video_bit_rate=300_000,
        )
        fields.update(overrides)
        return cls(**fields)

    def __post_init__(self):
        check_bounds(self)
        self.render_config()  # the renderer's own checks: durations, even sizes, head fits

    def render_config(self) -> SampleConfig:
        """The CREMA-D sample's config for `emotf.synthetic.media`'s renderers."""
        try:
            return SampleConfig(
                num_actors=1,
                clips_per_actor=1,
                seed=self.seed,
                min_duration=self.min_duration,
                max_duration=self.max_duration,
                median_duration=self.median_duration,
                duration_log_sd=self.duration_log_sd,
                fps=self.fps,
                width=self.width,
                height=self.height,
                sample_rate=AUDIO_RATE,
                head_height=self.head_height,
                tint=self.tint,
                cue_jitter=self.cue_jitter,
                snr_db=self.snr_db,
            )
        except ValueError as error:
            raise ValueError(str(error).replace("SampleConfig", "RavdessSampleConfig")) from None


# ---------------------------------------------------------------------------------------------
# Names


def sample_actors(num_actors: int) -> list[int]:
    """Actors spread over the default folds: round r takes, from fold f, its (r + f)-th actor
    (mod its size), so the first round is one actor per fold, alternating male and female."""
    folds = ravdess_folds(DEFAULT_FOLDS)
    by_fold = [sorted(a for a, f in folds.items() if f == k) for k in range(DEFAULT_FOLDS)]
    rounds = max(map(len, by_fold))
    order = [fold[(r + f) % len(fold)] for r in range(rounds) for f, fold in enumerate(by_fold)]
    return list(dict.fromkeys(order))[:num_actors]


def _trials(emotion: int) -> list[tuple[int, int, int]]:
    """(intensity, statement, repetition) of an emotion's speech trials, intensities alternating."""
    intensities = (1,) if emotion == 1 else (1, 2)
    return [(i, s, r) for r in (1, 2) for s in (1, 2) for i in intensities]


def sample_names(config: RavdessSampleConfig) -> list[RavdessName]:
    """The full-AV speech clips, sorted by file name: clip i of an actor has the next emotion in
    turn (neutral runs out after its 4 trials; then the next emotion goes on)."""
    names = []
    for actor in sample_actors(config.num_actors):
        left = [_trials(e) for e in range(1, len(EMOTIONS) + 1)]
        for i in range(config.clips_per_actor):
            e = next(k % len(left) for k in range(i, i + len(left)) if left[k % len(left)])
            intensity, statement, repetition = left[e].pop(0)
            names.append(RavdessName(1, 1, e + 1, intensity, statement, repetition, actor))
    return sorted(names, key=lambda n: (n.actor, n.stem))


def extra_names(speech: list[RavdessName]) -> list[RavdessName]:
    """Per actor: the video-only and audio-only twins of its first clip, and one song."""
    extras = []
    for actor in sorted({n.actor for n in speech}):
        first = next(n for n in speech if n.actor == actor)
        extras += [dataclasses.replace(first, modality=m) for m in (2, 3)]
        emotion = first.emotion if first.emotion <= len(SONG_EMOTIONS) else 1
        extras.append(RavdessName(1, 2, emotion, 1, 1, 1, actor))
    return extras


# ---------------------------------------------------------------------------------------------
# Per-clip parameters


@dataclass(frozen=True)
class RavdessClipPlan:
    """Everything random about one trial: the fields `emotf.synthetic.media`'s renderers read
    (as `emotf.synthetic.sample.ClipPlan`'s), with the RAVDESS name."""

    name: RavdessName
    duration: float
    num_frames: int
    num_samples: int
    video_group: int
    audio_group: int
    video_strength: float
    audio_strength: float
    motion: tuple[float, ...]
    light: tuple[float, float, float, float]
    f0_hz: float
    syllable_rate_hz: float
    tilt: float
    snr_db: float
    noise_seed: int


def clip_plan(name: str | Path | RavdessName, config: RavdessSampleConfig) -> RavdessClipPlan:
    """The random parameters of one trial (a file name, path or `RavdessName`); the modality is
    not part of the trial: a video-only file shows its full-AV twin's frames."""
    name = name if isinstance(name, RavdessName) else parse_ravdess_name(name)
    key = [config.seed, name.actor, name.vocal_channel, name.emotion, name.intensity]
    rng = np.random.default_rng([*key, name.statement, name.repetition])
    duration = float(
        np.clip(
            np.exp(rng.normal(np.log(config.median_duration), config.duration_log_sd)),
            config.min_duration,
            config.max_duration,
        )
    )
    gain = config.strong_gain if name.intensity == 2 else 1.0
    strengths = np.clip(rng.normal(1.0, config.cue_jitter, size=2) * gain, 0.0, 2.0)
    w, h = config.width, config.height
    motion = (
        rng.uniform(0.42, 0.58) * w,
        rng.uniform(0.42, 0.55) * h,
        *(rng.uniform(0.01, 0.03, size=2) * (w, h)),  # amplitudes (px)
        rng.uniform(2.5, 4.5),
        rng.uniform(2.0, 4.0),  # periods (s)
        *rng.uniform(0, 2 * np.pi, size=2),  # phases
        rng.uniform(-0.01, 0.01) * w,
        rng.uniform(-0.005, 0.005) * h,  # drift (px/s)
    )
    light = (float(rng.uniform(0.9, 1.1)), *rng.normal(0.0, 10.0, size=3).tolist())
    emotion = name.emotion_name
    u = (AUDIO_GROUP[emotion] - 1) * strengths[1]
    speaker = rng.normal(0.0, 0.08) + (0.25 if name.sex == "Female" else 0.0)
    return RavdessClipPlan(
        name=name,
        duration=duration,
        num_frames=max(1, int(round(duration * config.fps))),
        num_samples=int(round(duration * AUDIO_RATE)),
        video_group=VIDEO_GROUP[emotion],
        audio_group=AUDIO_GROUP[emotion],
        video_strength=float(strengths[0]),
        audio_strength=float(strengths[1]),
        motion=tuple(float(m) for m in motion),
        light=light,
        f0_hz=float(150.0 * np.exp(0.4 * u + speaker)),
        syllable_rate_hz=float(4.0 * np.exp(0.2 * u + rng.normal(0.0, 0.05))),
        tilt=float(1.1 - 0.4 * u),
        snr_db=float(rng.uniform(*config.snr_db)),
        noise_seed=int(rng.integers(2**31)),
    )


def _render_plan(plan: RavdessClipPlan) -> ClipPlan:
    # The renderers read only the fields both plans share (see RavdessClipPlan).
    return cast(ClipPlan, plan)


# ---------------------------------------------------------------------------------------------
# Files


def write_mp4(
    path: Path, frames: np.ndarray, pcm: np.ndarray | None, config: RavdessSampleConfig
) -> None:
    """MP4 with H.264 video at `config.fps` and, when `pcm` is given, AAC mono at 48 kHz."""
    rate = Fraction(config.fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = config.width, config.height, "yuv420p"
        video.bit_rate = config.video_bit_rate
        video.options = {"preset": "ultrafast"}
        audio = None
        if pcm is not None:
            audio = out.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if audio is not None and pcm is not None:
            chunk = AUDIO_RATE // 10
            for start in range(0, len(pcm), chunk):
                sound = av.AudioFrame.from_ndarray(
                    pcm[None, start : start + chunk], format="s16", layout="mono"
                )
                sound.sample_rate = AUDIO_RATE
                sound.pts = start
                sound.time_base = Fraction(1, AUDIO_RATE)
                out.mux(audio.encode(sound))
            out.mux(audio.encode())


def _make_file(args: tuple[str, RavdessName, RavdessSampleConfig]) -> dict:
    out_dir, name, config = args
    path = Path(out_dir) / f"Actor_{name.actor:02d}" / (name.stem + name.extension)
    plan = clip_plan(name, config)
    render = config.render_config()
    if name.modality == 3:
        write_wav(path, render_audio(_render_plan(plan), render), AUDIO_RATE)
    else:
        pcm = render_audio(_render_plan(plan), render) if name.modality == 1 else None
        write_mp4(path, render_frames(_render_plan(plan), render), pcm, config)
    record = {k: v for k, v in dataclasses.asdict(plan).items() if k != "name"}
    record.update(
        clip_id=name.stem,
        file=str(path.relative_to(out_dir)),
        emotion=name.emotion_name,
        label=EMOTIONS.index(name.emotion_name),
        actor=name.actor,
        modality=name.modality,
        vocal_channel=name.vocal_channel,
        fold=ravdess_folds(DEFAULT_FOLDS)[name.actor],
    )
    if name.modality != 3:
        boxes = face_boxes(_render_plan(plan), render)
        record["face_boxes"] = np.round(boxes, 1).tolist()
    return record


def make_ravdess_sample(
    out_dir: str | Path,
    config: RavdessSampleConfig = RavdessSampleConfig(),
    workers: int | None = None,
    progress: bool | None = None,
) -> list[Path]:
    """Write a synthetic RAVDESS sample into `out_dir`; return the full-AV speech MP4s, sorted.

    Also writes the extras (`config.extras`) and `sample.json` (format version, config, emotion
    -> cue groups, and per file: its plan, fold under the default 6 folds, path relative to
    `out_dir`, and the face boxes [T][4] of a video). Existing files of those names are
    overwritten.

    Args:
        out_dir: output folder (created).
        config: what to generate.
        workers: processes (default: 1 for fewer than 24 files, else up to 2 or the CPU count);
            the output does not depend on it.
        progress: show a tqdm bar (default: when writing 24 files or more).
    """
    out_dir = Path(out_dir)
    speech = sample_names(config)
    names = speech + (extra_names(speech) if config.extras else [])
    for actor in sorted({n.actor for n in names}):
        (out_dir / f"Actor_{actor:02d}").mkdir(parents=True, exist_ok=True)
    jobs = [(str(out_dir), name, config) for name in names]
    records = write_all(_make_file, jobs, workers, progress, unit="file")
    meta = {
        "format_version": SAMPLE_FORMAT_VERSION,
        "corpus": "ravdess",
        "config": config.to_dict(),
        "video_group": VIDEO_GROUP,
        "audio_group": AUDIO_GROUP,
        "clips": records,
    }
    write_sample_json(out_dir, meta)
    return [out_dir / f"Actor_{n.actor:02d}" / f"{n.stem}.mp4" for n in speech]


def load_sample_config(out_dir: str | Path) -> RavdessSampleConfig:
    """The `RavdessSampleConfig` recorded in `out_dir/sample.json`."""
    fields = json.loads((Path(out_dir) / SAMPLE_JSON).read_text())["config"]
    fields["snr_db"] = tuple(fields["snr_db"])
    return RavdessSampleConfig(**fields)
