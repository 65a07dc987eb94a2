"""A synthetic CREMA-D sample: FLV videos with a real face and WAV speech-like audio.

The real media cannot be downloaded here, so every test and demo that needs video runs on clips
this module writes, in the real layout and names::

    out_dir/VideoFlash/<Actor>_<SENT>_<EMO>_<LVL>.flv   480x360, 30 fps, FLV1 video + MP3 audio
    out_dir/AudioWAV/<Actor>_<SENT>_<EMO>_<LVL>.wav     16 kHz mono int16 PCM
    out_dir/sample.json                                 config, per-clip cues and face boxes

(Real CREMA-D video is On2 VP6 at 29.97 fps; nothing encodes VP6, so the sample uses the FLV1
codec: readers must not depend on the codec and must read the frame rate from the stream.)

This module picks the clips and draws each one's parameters (`ClipPlan`, defined with
`SampleConfig` in `emotf.synthetic.config`); `emotf.synthetic.media` renders and writes the
media (a moving, tinted astronaut face on a green screen; speech-like audio).

Emotion cues, planted so that neither modality alone suffices and the pair does:

    emotion      ANG DIS FEA HAP NEU SAD
    video group   0   0   1   1   2   2    colour tint of the face: red, green, blue
    audio group   0   1   1   2   2   0    low / mid / high pitch, syllable rate and brightness

Each modality alone can tell at best its group (a pair of emotions: about 1/2 accuracy); the
(video group, audio group) pair identifies all six. Each clip draws its own cue strength
(normal around 1, sd `cue_jitter`) and random nuisances (lighting cast, speaker pitch), so the
groups overlap a little and no modality is perfect. The video cue is in every frame; the audio
cue (pitch, spectral tilt, syllable rate) holds throughout the clip, so any 1.28 s window shows it.

Everything is a function of `(config, clip name)`: each clip draws from its own generator seeded
by the config seed and the clip's name, so `planted_face_boxes` recomputes any clip's face
trajectory without reading a file, and the same seed gives byte-identical WAV files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from emotf.corpora.cremad import (
    EMOTIONS,
    INTENSITIES,
    SENTENCES,
    ClipName,
    canonical_folds,
    load_clip_names,
    parse_clip_name,
)
from emotf.synthetic.config import ClipPlan, SampleConfig
from emotf.synthetic.media import (
    face_boxes,
    render_audio,
    render_frames,
    write_flv,
    write_wav,
)
from emotf.synthetic.writing import SAMPLE_JSON, write_all, write_sample_json

SAMPLE_FORMAT_VERSION = 1
VIDEO_DIR, AUDIO_DIR = "VideoFlash", "AudioWAV"

# Emotion -> cue group per modality (see the module docstring's table).
VIDEO_GROUP: dict[str, int] = {"ANG": 0, "DIS": 0, "FEA": 1, "HAP": 1, "NEU": 2, "SAD": 2}
AUDIO_GROUP: dict[str, int] = {"ANG": 0, "SAD": 0, "DIS": 1, "FEA": 1, "HAP": 2, "NEU": 2}

# ---------------------------------------------------------------------------------------------
# Names


def sample_actors(num_actors: int) -> list[int]:
    """Actor ids spread over the canonical folds: the smallest id of each fold, in fold order,
    then the second smallest of each fold, and so on."""
    folds = canonical_folds()
    num_folds = max(folds.values()) + 1
    by_fold = [sorted(a for a, f in folds.items() if f == k) for k in range(num_folds)]
    order = [fold[r] for r in range(max(map(len, by_fold))) for fold in by_fold if r < len(fold)]
    return order[:num_actors]


def _real_clips_by_actor() -> dict[int, set[str]]:
    """Actor id -> the names of that actor's real CREMA-D clips (`SentenceFilenames.csv`)."""
    by_actor: dict[int, set[str]] = {}
    for name in load_clip_names():
        by_actor.setdefault(parse_clip_name(name).actor_id, set()).add(name)
    return by_actor


def _candidates(actor: int, e: int, real: set[str]) -> list[str]:
    """The real clips of `actor` with emotion `EMOTIONS[e]`, in the order the sample takes them:
    the sentences in a rotation that starts at a different sentence per emotion (IEO at level
    HI, or XX for NEU), then IEO's other levels (MD, LO)."""
    emotion = EMOTIONS[e]
    order = [SENTENCES[(k + 2 * e) % len(SENTENCES)] for k in range(len(SENTENCES))]
    names = [
        f"{actor}_{s}_{emotion}_{'HI' if s == 'IEO' and emotion != 'NEU' else 'XX'}" for s in order
    ]
    if emotion != "NEU":
        names += [f"{actor}_IEO_{emotion}_{level}" for level in ("MD", "LO")]
    return [n for n in names if n in real]


def sample_clip_names(config: SampleConfig) -> list[str]:
    """The sample's clip ids, sorted: every one a real CREMA-D clip (`SentenceFilenames.csv`,
    so each has rater votes and a place in the OGM-GE split).

    Clip i of an actor has emotion `EMOTIONS[i % 6]`, and is that emotion's next real clip of
    the actor in `_candidates`' order: a sentence the actor did not record is skipped (1008 has
    no WSI, 1002 no neutral TIE, ...). Where the actor has no more clips of that emotion (only
    neutral runs out: 11 of 12 for five actors, at 72 clips per actor), the next emotion's next
    clip is taken instead, so every actor still gets `clips_per_actor` distinct clips."""
    real = _real_clips_by_actor()
    names = []
    for actor in sample_actors(config.num_actors):
        left = [_candidates(actor, e, real.get(actor, set())) for e in range(len(EMOTIONS))]
        for i in range(config.clips_per_actor):
            e = next(
                k % len(EMOTIONS) for k in range(i, i + len(EMOTIONS)) if left[k % len(EMOTIONS)]
            )
            names.append(left[e].pop(0))
    return sorted(names)


# ---------------------------------------------------------------------------------------------
# Per-clip parameters


def _clip_rng(config: SampleConfig, name: ClipName) -> np.random.Generator:
    key = [
        config.seed,
        name.actor_id,
        SENTENCES.index(name.sentence),
        name.label,
        INTENSITIES.index(name.intensity),
    ]
    return np.random.default_rng(key)


def clip_plan(clip: str | Path | ClipName, config: SampleConfig) -> ClipPlan:
    """The random parameters of one clip (a name, a media path or a parsed `ClipName`)."""
    name = clip if isinstance(clip, ClipName) else parse_clip_name(clip)
    rng = _clip_rng(config, name)
    duration = float(
        np.clip(
            np.exp(rng.normal(np.log(config.median_duration), config.duration_log_sd)),
            config.min_duration,
            config.max_duration,
        )
    )
    num_frames = max(1, int(round(duration * config.fps)))
    num_samples = int(round(duration * config.sample_rate))
    strengths = np.clip(rng.normal(1.0, config.cue_jitter, size=2), 0.0, 2.0)
    w, h = config.width, config.height
    motion = (
        rng.uniform(0.42, 0.58) * w,
        rng.uniform(0.42, 0.55) * h,  # centre
        rng.uniform(8, 22),
        rng.uniform(3, 10),  # amplitudes (px)
        rng.uniform(2.5, 4.5),
        rng.uniform(2.0, 4.0),  # periods (s)
        rng.uniform(0, 2 * np.pi),
        rng.uniform(0, 2 * np.pi),  # phases
        rng.uniform(-6, 6),
        rng.uniform(-3, 3),  # drift (px/s)
    )
    light = (float(rng.uniform(0.9, 1.1)), *rng.normal(0.0, 10.0, size=3).tolist())
    audio_group = AUDIO_GROUP[name.emotion]
    u = (audio_group - 1) * strengths[1]
    speaker = rng.normal(0.0, 0.08)
    return ClipPlan(
        name=name,
        duration=duration,
        num_frames=num_frames,
        num_samples=num_samples,
        video_group=VIDEO_GROUP[name.emotion],
        audio_group=audio_group,
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


def planted_face_boxes(clip: str | Path | ClipName, config: SampleConfig) -> np.ndarray:
    """The planted face's box in every frame of a clip: float32 [T, 4], pixels (x0, y0, x1, y1).

    The box is where MTCNN finds the astronaut's face (about 81x81 px at the default head size),
    moved with the head; `clip` is a clip id, a media path or a `ClipName`. The same boxes are
    written into `sample.json` (`clips[i]["face_boxes"]`).
    """
    return face_boxes(clip_plan(clip, config), config)


# ---------------------------------------------------------------------------------------------
# The sample


def _make_clip(args: tuple[str, str, SampleConfig]) -> dict:
    folder, clip_id, config = args
    out_dir = Path(folder)
    plan = clip_plan(clip_id, config)
    pcm = render_audio(plan, config)
    wav = out_dir / AUDIO_DIR / f"{clip_id}.wav"
    flv = out_dir / VIDEO_DIR / f"{clip_id}.flv"
    write_wav(wav, pcm, config.sample_rate)
    write_flv(flv, render_frames(plan, config), pcm, config)
    record = {k: v for k, v in dataclasses.asdict(plan).items() if k != "name"}
    record.update(
        clip_id=clip_id,
        emotion=plan.name.emotion,
        label=plan.name.label,
        fold=canonical_folds()[plan.name.actor_id],
        wav=str(wav.relative_to(out_dir)),
        flv=str(flv.relative_to(out_dir)),
        face_boxes=np.round(planted_face_boxes(plan.name, config), 1).tolist(),
    )
    return record


def make_sample(
    out_dir: str | Path,
    config: SampleConfig = SampleConfig(),
    workers: int | None = None,
    progress: bool | None = None,
) -> list[Path]:
    """Write a synthetic CREMA-D sample into `out_dir` and return the FLV paths, sorted.

    Writes `VideoFlash/*.flv`, `AudioWAV/*.wav` (one pair per clip, names from
    `sample_clip_names`) and `sample.json` (format version, config, emotion -> cue groups, and
    per clip: its plan, fold, paths relative to `out_dir` and `face_boxes` [T][4] as in
    `planted_face_boxes`). Existing files of the same names are overwritten.

    Args:
        out_dir: output folder (created).
        config: what to generate.
        workers: processes to use (default: 1 for fewer than 24 clips, else up to 2 or the CPU
            count); the output does not depend on it.
        progress: show a tqdm bar (default: when making 24 clips or more).
    """
    out_dir = Path(out_dir)
    (out_dir / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    names = sample_clip_names(config)
    jobs = [(str(out_dir), name, config) for name in names]
    records = write_all(_make_clip, jobs, workers, progress)
    meta = {
        "format_version": SAMPLE_FORMAT_VERSION,
        "config": dataclasses.asdict(config),
        "video_group": VIDEO_GROUP,
        "audio_group": AUDIO_GROUP,
        "clips": records,
    }
    write_sample_json(out_dir, meta)
    return [out_dir / r["flv"] for r in records]


def load_sample_config(out_dir: str | Path) -> SampleConfig:
    """The `SampleConfig` recorded in `out_dir/sample.json`."""
    fields = json.loads((Path(out_dir) / SAMPLE_JSON).read_text())["config"]
    fields["snr_db"] = tuple(fields["snr_db"])
    return SampleConfig(**fields)
