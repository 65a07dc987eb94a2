"""Typed, validated configuration: the bottom layer every other module reads.

`ModelConfig` (architecture), `SamplingConfig` (segments, audio windows, spectrograms) and
`TrainConfig` (one `emotf-train` run, holding the other two) live here, with one generic
`to_dict` / `from_dict` that every config dataclass of emotf uses (`Config`): nested configs
become nested dicts, tuples become lists, and unknown keys are refused with the key named.
Every config validates itself at construction, so a typo in a flag or a JSON file fails
before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from emotf.cremad import NUM_FOLDS
from emotf.labels import LABEL_SOURCES
from emotf.splits import ACTORS, OGM, load_clip_split

LR_SCHEDULES = ("paper", "step", "cosine", "constant")  # emotf.schedules implements them
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # emotf.precision
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")  # emotf.distribute


# === Generic dict round trip ===


def to_dict(config) -> dict:
    """A config dataclass as plain JSON-ready values (nested configs as dicts, tuples as lists)."""
    out = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def from_dict(cls, values, name: str | None = None):
    """`cls(**values)` with unknown keys refused by name (nested config fields accept dicts:
    each config's `__post_init__` builds them, so derived fields are checked there).

    Raises:
        ValueError: `values` is not a mapping, or holds a key `cls` has no field for.
    """
    name = name or cls.__name__
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValueError(f"{name} must be a JSON object. Received: {values!r}")
    types = {f.name: str(f.type) for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in types:
            raise ValueError(f"unknown {name} field {key!r}. Known fields: {sorted(types)}")
        # JSON has no tuples: lists become tuples again where the field is declared a tuple.
        kwargs[key] = _tuples(value) if "tuple[" in types[key] else value
    return cls(**kwargs)


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class Config:
    """Mixin of every emotf config dataclass: `to_dict()` and `from_dict(values)`."""

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, values):
        return from_dict(cls, values)


# === Sampling ===


NORMALIZATIONS = ("per_window", "none")


def window_length_for(sample_rate: float, window_seconds: float) -> int:
    """L = round(ra d) (halves round up), samples per audio window at any rate."""
    return int(math.floor(sample_rate * window_seconds + 0.5))


@dataclass(frozen=True)
class SamplingConfig(Config):
    """How segments, frames, audio windows and spectrograms are sampled.

    Attributes:
        num_segments: N, segments per clip (the model's number of twin branches).
        window_seconds: d, audio window length in seconds (paper: 1.28 s).
        max_offset_seconds: b, the audio centre is drawn uniformly in j/rv +- b when training.
        sample_rate: ra the windows are cut at; records of another rate are rejected.
        frame_size: side of the square uint8 face crops (records store 224).
        frame_length: STFT window length in samples (420 = 26.25 ms at 16 kHz, Hann window).
        frame_step: STFT hop in samples (105 = 6.56 ms: a 20480-sample window gives exactly
            1 + (20480 - 420) // 105 = 192 STFT frames, so no time resize is needed; a hop that
            divides the frame length lets tf.signal.frame use a reshape instead of a gather,
            2.5x faster framing than with 400).
        fft_length: FFT size (512: 257 linear bins, 31.25 Hz apart at 16 kHz).
        num_mel_bins: mel bands computed before any frequency resize (120 = output bins).
        lower_edge_hertz, upper_edge_hertz: mel filterbank range (upper None = Nyquist).
        log_offset: added to mel magnitudes before the log (floor of -13.8 nats).
        time_bins, freq_bins: output spectrogram shape [time_bins, freq_bins, 1].
        normalization: "per_window" (zero mean, unit variance over each window's
            spectrogram; no dataset statistics, robust to recording gain) or "none".
    """

    num_segments: int = 10
    window_seconds: float = 1.28
    max_offset_seconds: float = 0.01
    sample_rate: int = 16000
    frame_size: int = 224
    frame_length: int = 420
    frame_step: int = 105
    fft_length: int = 512
    num_mel_bins: int = 120
    lower_edge_hertz: float = 20.0
    upper_edge_hertz: float | None = None
    log_offset: float = 1e-6
    time_bins: int = 192
    freq_bins: int = 120
    normalization: str = "per_window"

    def __post_init__(self):
        problems = []
        if self.num_segments < 1:
            problems.append(f"num_segments={self.num_segments} (must be >= 1)")
        if self.window_seconds <= 0:
            problems.append(f"window_seconds={self.window_seconds} (must be > 0)")
        if self.max_offset_seconds < 0:
            problems.append(f"max_offset_seconds={self.max_offset_seconds} (must be >= 0)")
        if self.window_length < self.frame_length:
            problems.append(
                f"window of {self.window_length} samples shorter than frame_length="
                f"{self.frame_length}"
            )
        if self.fft_length < self.frame_length:
            problems.append(f"fft_length={self.fft_length} < frame_length={self.frame_length}")
        if self.normalization not in NORMALIZATIONS:
            problems.append(f"normalization={self.normalization!r} (one of {NORMALIZATIONS})")
        if problems:
            raise ValueError("invalid SamplingConfig. Received: " + "; ".join(problems))

    @property
    def window_length(self) -> int:
        """L = round(sample_rate * window_seconds), samples per audio window."""
        return window_length_for(self.sample_rate, self.window_seconds)

    @property
    def stft_frames(self) -> int:
        """STFT frames of one window before the time resize."""
        return 1 + (self.window_length - self.frame_length) // self.frame_step


# === Model ===


MODALITIES = ("both", "audio", "video")
BRANCH_WEIGHTS = ("shared", "independent")


@dataclass(frozen=True)
class ModelConfig(Config):
    """Architecture of the twin-branch model.

    Defaults (full size): a strided 5x5 stem (stride 2, then 2x2 max-pool) brings the 224x224
    face to 56x56, then 3 blocks (64, 128, 256) reach 7x7; the 192x120 spectrogram goes through
    4 blocks (32, 64, 128, 128). About 0.8 GFLOPs per segment forward, 8 GFLOPs per N=10 clip
    (see `docs/training.md` for the measured figures and why these widths).
    `fc_units` > 0 adds one hidden fully connected fusion layer (ReLU) before the softmax
    classifier; 0 makes the classifier itself the one fully connected layer.
    `spec_augment` masks one time band (<= 24 bins) and one frequency band (<= 16 bins) of
    every spectrogram in training (the `SpecAugment` layer; off by default).
    """

    num_segments: int = 10
    num_classes: int = 6
    frame_size: int = 224
    spectrogram_shape: tuple[int, int] = (192, 120)
    video_stem_width: int = 32
    video_widths: tuple[int, ...] = (64, 128, 256)
    audio_widths: tuple[int, ...] = (32, 64, 128, 128)
    fc_units: int = 128
    dropout: float = 0.5
    branch_weights: str = "shared"
    modalities: str = "both"
    spec_augment: bool = False

    def __post_init__(self):
        if self.branch_weights not in BRANCH_WEIGHTS:
            raise ValueError(
                f"branch_weights must be one of {BRANCH_WEIGHTS}. "
                f"Received: branch_weights={self.branch_weights!r}"
            )
        if self.modalities not in MODALITIES:
            raise ValueError(
                f"modalities must be one of {MODALITIES}. Received: modalities={self.modalities!r}"
            )
        if self.num_segments < 1:
            raise ValueError(f"num_segments must be >= 1. Received: num_segments={self.num_segments}")
        # Normalise lists (from JSON) to tuples so configs compare and hash equal.
        for name in ("spectrogram_shape", "video_widths", "audio_widths"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))

    @property
    def uses_video(self) -> bool:
        return self.modalities in ("both", "video")

    @property
    def uses_audio(self) -> bool:
        return self.modalities in ("both", "audio")


def run_sampling(model: ModelConfig, sampling) -> SamplingConfig:
    """The `SamplingConfig` of a run: `sampling` (a dict of fields, or a config) with N, frame
    size and spectrogram shape taken from `model` (one source of truth for the shapes).

    Raises:
        ValueError: a dict gives a shape field that disagrees with `model`.
    """
    shapes = {
        "num_segments": model.num_segments,
        "frame_size": model.frame_size,
        "time_bins": model.spectrogram_shape[0],
        "freq_bins": model.spectrogram_shape[1],
    }
    if isinstance(sampling, SamplingConfig):
        return replace(sampling, **shapes)
    values = dict(sampling or {})
    conflicts = {k: v for k, v in values.items() if k in shapes and int(v) != shapes[k]}
    if conflicts:
        raise ValueError(
            "sampling shapes come from the model config (--num-segments, --frame-size, "
            f"--spectrogram-shape), which gives {shapes}. Received: sampling={conflicts}"
        )
    return from_dict(SamplingConfig, {**values, **shapes}, "TrainConfig.sampling")


# === One training run ===


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything one `emotf-train` run depends on (flags map onto these fields).

    `lr_schedule`:
        `paper`    learning_rate * decay_rate ** floor(s / decay_steps) with s the step *within the
                   epoch* (the paper's literal schedule: restarts at 1e-3 every epoch);
        `step`     the same staircase on the global step (no restart);
        `cosine`   cosine decay from learning_rate to 0 over all training steps (the saner
                   alternative: no dead tail after the first 100-150 steps of each epoch);
        `constant` learning_rate throughout.
    `sampling`: the run's `SamplingConfig`; given as a dict (flags, JSON) its shape fields
    (`num_segments`, `frame_size`, `time_bins`, `freq_bins`) are derived from `model`, and a
    given one that disagrees is refused at construction.
    `cache_records` keeps the serialised records in memory after the first epoch (about 0.7 MB
    per CREMA-D clip, ~4.5 GB for the training folds): later epochs skip reading and the page
    faults of a large shuffle buffer (~1 ms of CPU per clip less, docs/sampling.md). The first
    epoch is the same with and without it; later epochs read the records in the first epoch's
    file order (the shuffle buffer still reshuffles them).
    `jit_compile`: XLA-compile the training step (`model.compile(jit_compile=...)`); None =
    the measured default of the device (`emotf.precision.resolve_jit_compile`: off on the CPU,
    where it was measured slower; docs/training.md).
    `strategy`: the tf.distribute strategy (`emotf.distribute`): "auto", "one_device",
    "mirrored" (the GPUs of one machine) or "multi_worker" (TF_CONFIG). `batch_size` is per
    replica: a step consumes `batch_size` x replicas clips; `learning_rate` is used as given.
    `split`: "actors" (the paper's 10-fold actor-independent protocol, test fold `fold`), "ogm"
    (the OGM-GE papers' random clip-level split, speaker-dependent) or a folder holding
    train.csv and test.csv; a clip-level split validates on a seeded, emotion-stratified
    `validation_fraction` of its training clips and ignores `fold` and `validation_folds`.
    """

    records: str = ""
    out: str = "runs/emotf"
    fold: int = 0
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    momentum: float = 0.9
    lr_schedule: str = "paper"
    decay_steps: int = 50
    decay_rate: float = 0.1
    validation_folds: int = 1
    split: str = ACTORS
    validation_fraction: float = 0.1
    early_stopping_patience: int = 10
    seed: int = 0
    precision: str = "auto"
    strategy: str = "auto"
    jit_compile: bool | None = None
    deterministic: bool = True
    steps_per_epoch: int | None = None
    cache_records: bool = False
    allow_incomplete: bool = False
    labels: str = "intended"
    verbose: int = 1
    export: bool = True
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()

    def __post_init__(self):
        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))
        object.__setattr__(self, "sampling", run_sampling(self.model, self.sampling))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}. Received: lr_schedule={self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}. Received: precision={self.precision!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}. Received: strategy={self.strategy!r}")
        if not (0 <= int(self.fold) < NUM_FOLDS):
            raise ValueError(f"fold must be in 0..{NUM_FOLDS - 1}. Received: fold={self.fold}")
        if not (1 <= self.validation_folds <= NUM_FOLDS - 2):
            raise ValueError(f"validation_folds must be in 1..{NUM_FOLDS - 2}. Received: validation_folds={self.validation_folds}")
        if self.split not in (ACTORS, OGM):  # a folder: kept absolute, so runs find it again
            object.__setattr__(self, "split", str(Path(self.split).resolve()))
        if self.split != ACTORS:
            load_clip_split(self.split)  # a ValueError naming the file and the problem
        for name in ("epochs", "batch_size", "decay_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        if self.steps_per_epoch is not None and int(self.steps_per_epoch) < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 (or unset). Received: steps_per_epoch={self.steps_per_epoch}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate}")
        if self.labels not in LABEL_SOURCES:
            raise ValueError(f"labels must be one of {LABEL_SOURCES}. Received: labels={self.labels!r}")  # "intended" or "perceived" (emotf.labels)
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1). Received: validation_fraction={self.validation_fraction}")
