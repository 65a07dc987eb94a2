"""What a synthetic sample is: its `SampleConfig`, one clip's `ClipPlan`, the head's geometry.

Shared by `emotf.synthetic.sample` (which draws the plans) and `emotf.synthetic.media` (which
renders them), so neither imports the other's types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emotf.bounds import bounded, check_bounds
from emotf.configs import MAX_SEED, Config
from emotf.corpora.cremad import EMOTIONS, FIRST_ACTOR, LAST_ACTOR, SENTENCES, ClipName

# The head region in skimage's astronaut (rows, cols); the box MTCNN finds there (x0, y0, x1, y1).
HEAD_ROWS, HEAD_COLS = slice(8, 208), slice(148, 308)
FACE_IN_SOURCE = np.array([167.0, 57.0, 283.0, 173.0])
# Width / height of the pasted head (the head region's shape).
HEAD_ASPECT = (HEAD_COLS.stop - HEAD_COLS.start) / (HEAD_ROWS.stop - HEAD_ROWS.start)

MAX_CLIPS_PER_ACTOR = len(EMOTIONS) * len(SENTENCES)  # 72: each emotion's 12 sentences
MAX_SECONDS = 60.0  # the longest real CREMA-D clip is about a minute


@dataclass(frozen=True)
class SampleConfig(Config):
    """What to generate. Frozen; `dataclasses.asdict` of it is written into `sample.json`.

    Attributes:
        num_actors: actors (1..91), spread over the canonical folds (one per fold first).
        clips_per_actor: clips per actor (1..72); emotions cycle ANG, DIS, ... so they balance.
        seed: master seed; the same seed gives the same clips.
        min_duration, max_duration, median_duration: clip durations in seconds, log-normal
            around the median (sd `duration_log_sd` in log space), clipped to [min, max].
        fps, width, height: video frame rate and size.
        sample_rate: WAV sample rate; `flv_audio_rate` is the FLV's own audio track's rate.
        video_bit_rate: FLV1 bit rate (bits/s); about the real data's ~1 Mb/s.
        head_height: height in px of the pasted head (the face box is ~0.58 of it).
        tint: colour tint amplitude (0..255 scale) of the face at cue strength 1.
        cue_jitter: sd of the per-clip cue strength (mean 1), each modality drawn separately.
        snr_db: (low, high) range of the audio's signal-to-noise ratio in dB.
    """

    num_actors: int = bounded(
        10, ge=1, le=LAST_ACTOR - FIRST_ACTOR + 1, help="actors, spread over the canonical folds"
    )
    clips_per_actor: int = bounded(
        12, ge=1, le=MAX_CLIPS_PER_ACTOR, help="clips per actor (emotions cycle so they balance)"
    )
    seed: int = bounded(0, ge=0, le=MAX_SEED, help="master seed: the same seed, the same clips")
    min_duration: float = bounded(1.3, gt=0.0, le=MAX_SECONDS, help="shortest clip (seconds)")
    max_duration: float = bounded(5.0, gt=0.0, le=MAX_SECONDS, help="longest clip (seconds)")
    median_duration: float = bounded(
        2.5, gt=0.0, le=MAX_SECONDS, help="median clip duration (seconds; log-normal around it)"
    )
    duration_log_sd: float = bounded(
        0.25, ge=0.0, le=3.0, help="sd of the clip durations in log space"
    )
    fps: float = bounded(30.0, ge=1.0, le=120.0, help="video frame rate")
    width: int = bounded(480, ge=64, le=4096, help="video width (px, even)")
    height: int = bounded(360, ge=64, le=4096, help="video height (px, even)")
    sample_rate: int = bounded(16000, ge=8000, le=96000, help="WAV sample rate (Hz)")
    flv_audio_rate: int = bounded(
        44100, choices=(11025, 22050, 44100), help="the FLV's own MP3 track's rate (Hz)"
    )
    video_bit_rate: int = bounded(
        1_000_000, ge=10_000, le=100_000_000, help="FLV1 bit rate (bits/s)"
    )
    head_height: int = bounded(
        140, ge=24, le=4096, help="height of the pasted head (px; the face box is ~0.58 of it)"
    )
    tint: float = bounded(
        28.0, ge=0.0, le=255.0, help="colour tint of the face at cue strength 1 (0..255 scale)"
    )
    cue_jitter: float = bounded(
        0.35, ge=0.0, le=2.0, help="sd of the per-clip cue strength (mean 1)"
    )
    snr_db: tuple[float, float] = bounded(
        (15.0, 25.0), ge=-20.0, le=80.0, help="(low, high) range of the audio's SNR in dB"
    )

    @classmethod
    def tiny(cls, **overrides) -> SampleConfig:
        """A preset for tests: 2 actors x 3 clips of 1.3-1.5 s (about a second to make)."""
        fields: dict[str, Any] = dict(
            num_actors=2, clips_per_actor=3, min_duration=1.3, max_duration=1.5, median_duration=1.4
        )
        fields.update(overrides)
        return cls(**fields)

    def __post_init__(self):
        check_bounds(self)
        if not self.min_duration <= self.max_duration:
            raise ValueError(
                "SampleConfig.min_duration must be at most max_duration. Received: "
                f"min_duration={self.min_duration}, max_duration={self.max_duration}"
            )
        if len(self.snr_db) != 2 or not self.snr_db[0] <= self.snr_db[1]:
            raise ValueError(
                "SampleConfig.snr_db must be (low, high) with low <= high. "
                f"Received: snr_db={self.snr_db!r}"
            )
        if self.width % 2 or self.height % 2:
            raise ValueError(
                "SampleConfig.width and height must be even (yuv420p). Received: "
                f"width={self.width}, height={self.height}"
            )
        head_width = round(self.head_height * HEAD_ASPECT)
        if self.head_height > self.height or head_width > self.width:
            raise ValueError(
                f"SampleConfig.head_height must fit the frame: a {head_width}x{self.head_height} "
                f"head in {self.width}x{self.height}. Received: head_height={self.head_height}"
            )


@dataclass(frozen=True)
class ClipPlan:
    """Everything random about one clip, drawn from its own generator
    (`emotf.synthetic.sample.clip_plan`)."""

    name: ClipName
    duration: float
    num_frames: int
    num_samples: int
    video_group: int
    audio_group: int
    video_strength: float
    audio_strength: float
    motion: tuple[float, ...]  # cx, cy, ax, ay, px, py, phx, phy, vx, vy
    light: tuple[float, float, float, float]  # gain, cast r, g, b
    f0_hz: float
    syllable_rate_hz: float
    tilt: float
    snr_db: float
    noise_seed: int
