"""Typed, validated configuration: the bottom layer every other module reads.

`ModelConfig` (architecture), `SamplingConfig` (segments, audio windows, spectrograms) and
`TrainConfig` (one `emotf-train` run: the flat union of its sections `TaskConfig`, which holds
the other two, `TrainerConfig` and `RuntimeConfig`) live here, with `model_sampling` (the one
derivation of a model's sampling), and with one generic
`to_dict` / `from_dict` that every config dataclass of emotf uses (`Config`): nested configs
become nested dicts, tuples become lists, and unknown keys are refused with the key named.
Every field declares its valid values once, where it is declared (`emotf.bounds.bounded`:
a range, a set of choices, and the one-line description `--help` shows), and every config checks
them first thing at construction (`check_bounds`: types too, so `"epochs": true` or a NaN rate is
refused), so a typo in a flag or a JSON file fails in one line before anything is written
(docs/configuration.md has the table of every field and its bound).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from emotf.bounds import bounded, check_bounds
from emotf.corpora.base import MAX_FOLDS
from emotf.corpora.info import CREMAD_INFO, MAX_CLASSES
from emotf.corpora.labels import LABEL_SOURCES
from emotf.corpora.splits import ACTORS, OGM, load_clip_split

LR_SCHEDULES = ("paper", "step", "cosine", "constant")  # emotf.training.schedules implements them
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # emotf.training.precision
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")  # emotf.training.distribute
# What `init_from` leaves untrained: no layer, the layers of one branch of `emotf.model`
# (`emotf.model.BRANCH_PREFIXES`), or of both (the fusion and classifier still train).
FREEZE_CHOICES = ("none", "video", "audio", "both-branches")
# Conv blocks recomputed in the backward pass (emotf.training.remat): auto, none, the first two
# of each branch, or all of them.
REMAT_CHOICES = ("auto", "none", "large", "all")
VERBOSITIES = (0, 1, 2)  # Keras's fit verbosity: silent, progress bar, one line per epoch

# Upper limits shared by several configs: far above any sensible run, low enough that a typo
# (an extra zero, a rate given in Hz instead of kHz) is refused instead of allocating for hours.
MAX_SEGMENTS = 64
MAX_REMAT_CHUNKS = 1024
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 4096
MAX_STEPS = 10_000_000
MAX_SEED = 2**32 - 1  # numpy's seeds (keras.utils.set_random_seed seeds numpy too)
MAX_FRAME_SIZE = 1024
MAX_WIDTH = 4096  # channels of one layer, units of the FC layer
MAX_BINS = 4096
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 192_000
MAX_WINDOW_SECONDS = 10.0
MAX_LEARNING_RATE = 10.0
MAX_TIMEOUT_SECONDS = 86_400.0  # one day


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
    """How segments, frames, audio windows and spectrograms are sampled (each field's
    description is its `help`).

    `frame_step` 105 (6.56 ms) gives a 20480-sample window exactly
    1 + (20480 - 420) // 105 = 192 STFT frames, so no time resize is needed; a hop that divides
    the frame length lets tf.signal.frame use a reshape instead of a gather (2.5x faster framing
    than with 400). `normalization` "per_window" needs no dataset statistics and is robust to
    recording gain.
    """

    num_segments: int = bounded(
        10, ge=1, le=MAX_SEGMENTS, help="N, segments per clip (the model's number of twin branches)"
    )
    window_seconds: float = bounded(
        1.28,
        gt=0.0,
        le=MAX_WINDOW_SECONDS,
        help="d, audio window length in seconds (paper: 1.28 s)",
    )
    max_offset_seconds: float = bounded(
        0.01,
        ge=0.0,
        le=MAX_WINDOW_SECONDS,
        help="b: in training the audio centre is drawn uniformly in j/rv +- b",
    )
    sample_rate: int = bounded(
        16000,
        ge=MIN_SAMPLE_RATE,
        le=MAX_SAMPLE_RATE,
        help="audio rate (Hz) the windows are cut at; records of another rate are rejected",
    )
    frame_size: int = bounded(
        224, ge=8, le=MAX_FRAME_SIZE, help="side of the square uint8 face crops (records store 224)"
    )
    frame_length: int = bounded(
        420,
        ge=8,
        le=65536,
        help="STFT window length in samples (420 = 26.25 ms at 16 kHz, Hann window)",
    )
    frame_step: int = bounded(
        105,
        ge=1,
        le=65536,
        help="STFT hop in samples (105 = 6.56 ms: 192 frames per 1.28 s window)",
    )
    fft_length: int = bounded(
        512,
        ge=8,
        le=65536,
        help="FFT size, at least frame_length (512: 257 linear bins, 31.25 Hz apart at 16 kHz)",
    )
    num_mel_bins: int = bounded(
        120,
        ge=1,
        le=MAX_BINS,
        help="mel bands computed before any frequency resize (120 = output bins)",
    )
    lower_edge_hertz: float = bounded(
        20.0, ge=0.0, le=MAX_SAMPLE_RATE / 2, help="lowest frequency of the mel filterbank (Hz)"
    )
    upper_edge_hertz: float | None = bounded(
        None,
        gt=0.0,
        le=MAX_SAMPLE_RATE / 2,
        help="highest frequency of the mel filterbank (Hz), at most sample_rate / 2; "
        "none = the Nyquist frequency",
    )
    log_offset: float = bounded(
        1e-6,
        gt=0.0,
        le=1.0,
        help="added to the mel magnitudes before the log (1e-6: a floor of -13.8 nats)",
    )
    time_bins: int = bounded(
        192, ge=1, le=MAX_BINS, help="time bins of the output spectrogram [time, freq, 1]"
    )
    freq_bins: int = bounded(
        120, ge=1, le=MAX_BINS, help="frequency bins of the output spectrogram [time, freq, 1]"
    )
    normalization: str = bounded(
        "per_window",
        choices=NORMALIZATIONS,
        help="per_window: zero mean, unit variance over each window's spectrogram; none: raw",
    )

    def __post_init__(self):
        check_bounds(self)
        problems = []
        if self.window_length < self.frame_length:
            problems.append(
                f"window_seconds={self.window_seconds} gives a window of {self.window_length} "
                f"samples at sample_rate={self.sample_rate}, shorter than frame_length="
                f"{self.frame_length}"
            )
        if self.fft_length < self.frame_length:
            problems.append(f"fft_length={self.fft_length} < frame_length={self.frame_length}")
        upper = self.sample_rate / 2 if self.upper_edge_hertz is None else self.upper_edge_hertz
        if upper > self.sample_rate / 2:
            problems.append(
                f"upper_edge_hertz={self.upper_edge_hertz} above the Nyquist "
                f"frequency of sample_rate={self.sample_rate}"
            )
        if not self.lower_edge_hertz < upper:
            problems.append(
                f"lower_edge_hertz={self.lower_edge_hertz} not below the upper edge {upper}"
            )
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
MAX_BLOCKS = 8  # convolution blocks of a branch (each halves the feature map)


def min_frame_size(video_blocks: int) -> int:
    """The smallest face side the video branch can take: its stem (stride 2, then a 2x2
    max-pool) and `video_blocks` blocks (a 2x2 max-pool each) must leave at least 1x1:
    ceil(S / 2) >= 2 ** (video_blocks + 1)."""
    return 2 ** (video_blocks + 2) - 1


def min_spectrogram_side(audio_blocks: int) -> int:
    """The smallest spectrogram side the audio branch can take: `audio_blocks` 2x2 max-pools
    must leave at least 1x1."""
    return 2**audio_blocks


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

    num_segments: int = bounded(
        10, ge=1, le=MAX_SEGMENTS, help="N, segments per clip: the number of twin branches"
    )
    num_classes: int | None = bounded(
        None,
        ge=2,
        le=MAX_CLASSES,
        help="classes of the softmax classifier; none = the records' classes (training reads "
        "them from the records' manifest; a model built without records has CREMA-D's 6)",
    )
    frame_size: int = bounded(
        224, ge=8, le=MAX_FRAME_SIZE, help="side of the square face crops the video branch takes"
    )
    spectrogram_shape: tuple[int, int] = bounded(
        (192, 120),
        ge=1,
        le=MAX_BINS,
        help="time bins x frequency bins of the spectrogram the audio branch takes",
    )
    video_stem_width: int = bounded(
        32, ge=1, le=MAX_WIDTH, help="channels of the video branch's strided 5x5 stem"
    )
    video_widths: tuple[int, ...] = bounded(
        (64, 128, 256),
        ge=1,
        le=MAX_WIDTH,
        help="channels of each video block after the stem (one to 8 blocks)",
    )
    audio_widths: tuple[int, ...] = bounded(
        (32, 64, 128, 128),
        ge=1,
        le=MAX_WIDTH,
        help="channels of each audio block (one to 8 blocks)",
    )
    fc_units: int = bounded(
        128,
        ge=0,
        le=MAX_WIDTH * 16,
        help="units of the hidden fusion layer before the classifier (0 = none)",
    )
    dropout: float = bounded(0.5, ge=0.0, lt=1.0, help="dropout rate before the classifier")
    branch_weights: str = bounded(
        "shared",
        choices=BRANCH_WEIGHTS,
        help="shared: one sub-model called N times; independent: N copies",
    )
    modalities: str = bounded(
        "both", choices=MODALITIES, help="the inputs the model uses: both, audio or video"
    )
    spec_augment: bool = bounded(
        False, help="mask one time band and one frequency band of every training spectrogram"
    )

    def __post_init__(self):
        check_bounds(self)
        # Lists (from JSON) become tuples so configs compare and hash equal.
        for name in ("spectrogram_shape", "video_widths", "audio_widths"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.spectrogram_shape) != 2:
            raise ValueError(
                "ModelConfig.spectrogram_shape must be two numbers (time bins, "
                "frequency bins). Received: "
                f"spectrogram_shape={self.spectrogram_shape}"
            )
        for name in ("video_widths", "audio_widths"):
            if not 1 <= len(getattr(self, name)) <= MAX_BLOCKS:
                raise ValueError(
                    f"ModelConfig.{name} must give 1 to {MAX_BLOCKS} widths. "
                    f"Received: {name}={getattr(self, name)}"
                )
        # Every block ends in a 2x2 max-pool (valid padding: floor(n / 2)), the video stem
        # also strides by 2 ("same": ceil(n / 2)): a side that reaches 0 cannot be built.
        if self.uses_video and self.frame_size < min_frame_size(len(self.video_widths)):
            raise ValueError(
                f"ModelConfig.frame_size must be at least {min_frame_size(len(self.video_widths))}"
                f" for the video stem and {len(self.video_widths)} video blocks (each halves the "
                f"face). Received: frame_size={self.frame_size}"
            )
        low = min_spectrogram_side(len(self.audio_widths))
        if self.uses_audio and min(self.spectrogram_shape) < low:
            raise ValueError(
                f"ModelConfig.spectrogram_shape must be at least {low}x{low} for "
                f"{len(self.audio_widths)} audio blocks (each halves both sides). Received: "
                f"spectrogram_shape={self.spectrogram_shape[0]}x{self.spectrogram_shape[1]}"
            )

    @property
    def output_classes(self) -> int:
        """The classifier's size: `num_classes`, else CREMA-D's 6 (a model sized by no records)."""
        return self.num_classes if self.num_classes is not None else CREMAD_INFO.num_classes

    @property
    def uses_video(self) -> bool:
        return self.modalities in ("both", "video")

    @property
    def uses_audio(self) -> bool:
        return self.modalities in ("both", "audio")


# === Model -> sampling (the one derivation) ===


# Fields of `SamplingConfig` that come from the `ModelConfig` (its input shapes).
SAMPLING_SHAPES = ("num_segments", "frame_size", "time_bins", "freq_bins")


def model_shapes(model: ModelConfig) -> dict:
    """{`SAMPLING_SHAPES` field: its value} as `model` takes its inputs."""
    return {
        "num_segments": model.num_segments,
        "frame_size": model.frame_size,
        "time_bins": model.spectrogram_shape[0],
        "freq_bins": model.spectrogram_shape[1],
    }


def model_sampling(
    model: ModelConfig,
    sampling: SamplingConfig | Mapping | None = None,
    name: str = "sampling",
) -> SamplingConfig:
    """The `SamplingConfig` of the inputs `model` takes (the one place that derives it):
    `sampling`'s settings (a config, a dict of its fields, or None for the defaults) with N,
    frame size and spectrogram shape (`SAMPLING_SHAPES`) from `model`. A config's shape fields
    are replaced; a dict's must agree with `model` (flags and JSON may repeat them).

    Raises:
        ValueError: a dict gives a shape field that disagrees with `model`, or an unknown field;
            `sampling` is neither a config, a dict nor None (`name` names it).
    """
    shapes = model_shapes(model)
    if isinstance(sampling, SamplingConfig):
        return replace(sampling, **shapes)
    if sampling is not None and not isinstance(sampling, Mapping):
        raise ValueError(
            f"{name} must be a SamplingConfig or a JSON object of its "
            f"fields. Received: sampling={sampling!r}"
        )
    values = dict(sampling or {})
    conflicts = {k: v for k, v in values.items() if k in shapes and v != shapes[k]}
    if conflicts:
        raise ValueError(
            "sampling shapes come from the model config (--num-segments, --frame-size, "
            f"--spectrogram-shape), which gives {shapes}. Received: sampling={conflicts}"
        )
    return from_dict(SamplingConfig, {**values, **shapes}, name)


def _model_and_sampling(owner: str, model, sampling) -> tuple[ModelConfig, SamplingConfig]:
    """`owner`'s `model` (a config or a dict of its fields) and its `sampling`, whose shapes are
    always the model's (a given SamplingConfig's are replaced, a dict's must agree)."""
    if isinstance(model, Mapping):
        model = ModelConfig.from_dict(model)
    if not isinstance(model, ModelConfig):
        raise ValueError(
            f"{owner}.model must be a ModelConfig or a JSON object of its "
            f"fields. Received: model={model!r}"
        )
    return model, model_sampling(model, sampling, f"{owner}.sampling")


# === One training run: what it learns (task), how (trainer), where and how it runs (runtime) ===


@dataclass(frozen=True)
class TaskConfig(Config):
    """What a run learns from and into: the records, labels and split, the model and its
    sampling (`emotf.training.task.Task` builds the datasets, model, loss and metrics of it).

    `split`: "actors" (the paper's 10-fold actor-independent protocol, test fold `fold`), "ogm"
    (the OGM-GE papers' random clip-level split, speaker-dependent) or a folder holding
    train.csv and test.csv; a clip-level split validates on a seeded, emotion-stratified
    `validation_fraction` of its training clips and ignores `fold` and `validation_folds`.
    `sampling`: given as a dict (flags, JSON) its shape fields (`num_segments`, `frame_size`,
    `time_bins`, `freq_bins`) are derived from `model` (`model_sampling`), and a given one that
    disagrees is refused at construction.
    `cache_records` keeps the serialised records in memory after the first epoch (about 0.7 MB
    per CREMA-D clip, ~4.5 GB for the training folds): later epochs skip reading and the page
    faults of a large shuffle buffer (~1 ms of CPU per clip less, docs/sampling.md). The first
    epoch is the same with and without it; later epochs read the records in the first epoch's
    file order (the shuffle buffer still reshuffles them).
    `model.num_classes` none (the default) takes the records' class count (their manifest's
    corpus, `emotf.corpora.info.CorpusInfo`); `fold` and `validation_folds` are checked against
    the records' folds when the run starts (`emotf.training.corpus`).
    `init_from` fine-tunes: the model starts from the weights of a run or an exported model
    (`emotf.training.finetune`), `freeze` keeps some of its branch layers as loaded.
    """

    records: str = bounded("", help="the records folder (emotf-build-records' output)")
    fold: int = bounded(
        0,
        ge=0,
        le=MAX_FOLDS - 1,
        help="the test fold K of the actor protocol, below the records' fold count (checked when "
        "the run starts; emotf-train also takes all)",
    )
    validation_folds: int = bounded(
        1,
        ge=1,
        le=MAX_FOLDS - 2,
        help="folds after the test fold that validate (actor protocol; at most the records' "
        "fold count less 2)",
    )
    split: str = bounded(
        ACTORS, nonempty=True, help="actors, ogm, or a folder holding train.csv and test.csv"
    )
    validation_fraction: float = bounded(
        0.1,
        gt=0.0,
        lt=1.0,
        help="share of a clip-level split's training clips that validate (emotion-stratified)",
    )
    seed: int = bounded(0, ge=0, le=MAX_SEED, help="seed of the weights and of the data order")
    cache_records: bool = bounded(
        False, help="keep the serialised records in memory after the first epoch (~0.7 MB a clip)"
    )
    allow_incomplete: bool = bounded(
        False, help="train on records whose build skipped clips or shards"
    )
    labels: str = bounded(
        "intended",
        choices=LABEL_SOURCES,
        help="intended (the actor's emotion) or perceived (the raters' majority)",
    )
    model: ModelConfig = bounded(ModelConfig(), help="the architecture (ModelConfig)")
    sampling: SamplingConfig = bounded(
        SamplingConfig(), help="the sampling (SamplingConfig; its shapes come from model)"
    )
    init_from: str = bounded(
        "",
        help="fine-tune: a run folder (its model, else its best checkpoint) or an "
        "emotf-export SavedModel folder whose weights start the model (layers of the same name "
        "and shapes; the classifier only for the same class list); '' = random weights",
    )
    freeze: str = bounded(
        "none",
        choices=FREEZE_CHOICES,
        help="with init_from: branch layers left untrained (video, audio or both-branches: "
        "the fusion and classifier still train); refused without init_from",
    )

    def __post_init__(self):
        check_bounds(self)
        model, sampling = _model_and_sampling("TaskConfig", self.model, self.sampling)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "sampling", sampling)
        if self.split not in (ACTORS, OGM):  # a folder: kept absolute, so runs find it again
            object.__setattr__(self, "split", str(Path(self.split).resolve()))
        if self.split != ACTORS:
            load_clip_split(self.split)  # a ValueError naming the file and the problem


@dataclass(frozen=True)
class TrainerConfig(Config):
    """How a run trains: optimiser, learning-rate schedule, epochs, batch and precision.

    `lr_schedule`:
        `paper`    learning_rate * decay_rate ** floor(s / decay_steps) with s the step *within the
                   epoch* (the paper's literal schedule: restarts at 1e-3 every epoch);
        `step`     the same staircase on the global step (no restart);
        `cosine`   cosine decay from learning_rate to 0 over all training steps (the saner
                   alternative: no dead tail after the first 100-150 steps of each epoch);
        `constant` learning_rate throughout.
    `batch_size` is per replica: a step consumes `batch_size` x replicas clips; `learning_rate`
    is used as given.
    `jit_compile`: XLA-compile the training step (`model.compile(jit_compile=...)`); None = the
    measured default of the device (`emotf.training.precision.resolve_jit_compile`: off on the
    CPU, where it was measured slower; docs/training.md).
    `remat`: conv blocks whose activations are recomputed in the backward pass instead of kept
    (`emotf.training.remat`): the same gradients, less memory, a ~1.2x slower step on the CPU
    (docs/training.md, "Memory"); `auto` = `large` on a CPU with under 8 GiB of memory
    available, else `none`. It changes nothing of the model, its files or its export.
    `remat_chunks`: each recomputed block's backward pass runs over that many slices of the
    batch (`emotf.training.chunked_block`): at batch 16 the step's peak drops from ~4.8 to
    ~2.7 GB with 16, for about the same step time; gradients equal up to float32 rounding.
    """

    epochs: int = bounded(30, ge=1, le=MAX_EPOCHS, help="epochs to train (at most)")
    batch_size: int = bounded(16, ge=1, le=MAX_BATCH_SIZE, help="clips per batch, per replica")
    learning_rate: float = bounded(
        1e-3, gt=0.0, le=MAX_LEARNING_RATE, help="SGD's (initial) learning rate"
    )
    momentum: float = bounded(0.9, ge=0.0, lt=1.0, help="SGD's momentum (0 = plain SGD)")
    lr_schedule: str = bounded(
        "paper", choices=LR_SCHEDULES, help="the learning-rate schedule (see the class docstring)"
    )
    decay_steps: int = bounded(
        50, ge=1, le=MAX_STEPS, help="steps between two decays of the paper and step schedules"
    )
    decay_rate: float = bounded(
        0.1, gt=0.0, le=1.0, help="factor of each decay of the paper and step schedules"
    )
    early_stopping_patience: int = bounded(
        10,
        ge=0,
        le=MAX_EPOCHS,
        help="epochs without a better val_accuracy before training stops (0 = never stop early)",
    )
    steps_per_epoch: int | None = bounded(
        None, ge=1, le=MAX_STEPS, help="training batches per epoch (none = all the training clips)"
    )
    precision: str = bounded(
        "auto", choices=PRECISIONS, help="float32 or mixed precision (auto: by the device)"
    )
    jit_compile: bool | None = bounded(
        None, help="XLA-compile the training step (none = the device's measured default)"
    )
    remat: str = bounded(
        "auto",
        choices=REMAT_CHOICES,
        help="conv blocks recomputed in the backward pass to save memory: none, large (the "
        "first two of each branch), all; auto: large on a CPU with < 8 GiB available, else none",
    )
    remat_chunks: int = bounded(
        16,
        ge=1,
        le=MAX_REMAT_CHUNKS,
        help="slices of the batch in which each recomputed block's backward pass runs (1: all "
        "at once); more slices, less memory, the same gradients up to float32 rounding",
    )

    def __post_init__(self):
        check_bounds(self)


@dataclass(frozen=True)
class RuntimeConfig(Config):
    """Where and how a run executes: its folder, the tf.distribute strategy, determinism,
    verbosity, the export at the end and the multi-worker deadlines.

    `strategy`: the tf.distribute strategy (`emotf.training.distribute`): "auto", "one_device",
    "mirrored" (the GPUs of one machine) or "multi_worker" (TF_CONFIG).
    """

    out: str = bounded(
        "runs/emotf",
        nonempty=True,
        help="the run folder (the cross-validation folder with --fold all)",
    )
    strategy: str = bounded(
        "auto", choices=STRATEGIES, help="the tf.distribute strategy (multi_worker reads TF_CONFIG)"
    )
    deterministic: bool = bounded(True, help="deterministic TensorFlow ops and data order")
    verbose: int | None = bounded(
        None,
        choices=VERBOSITIES,
        help="Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch; none: 1 on a "
        "terminal, 2 when the output is redirected (no progress-bar codes in logs)",
    )
    export: bool = bounded(True, help="export a SavedModel at the end of the run")
    worker_timeout_seconds: float = bounded(
        300.0,
        gt=0.0,
        le=MAX_TIMEOUT_SECONDS,
        help="deadline for multi-worker start-up and each collective; on expiry one line names "
        "the workers that did not answer",
    )

    def __post_init__(self):
        check_bounds(self)


# TrainConfig's sections: each of its fields is declared once, in one of them.
SECTIONS = {"task": TaskConfig, "trainer": TrainerConfig, "runtime": RuntimeConfig}


def _declared_in(section: type, name: str):
    """A field of `TrainConfig` as `section` declares it (the same default, bound and help)."""
    f = {f.name: f for f in fields(section)}[name]
    if f.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
    return dataclasses.field(default=f.default, metadata=f.metadata)


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything one `emotf-train` run depends on: the flat, user-facing union of its three
    sections, `task` (`TaskConfig`: records, labels, split, model, sampling), `trainer`
    (`TrainerConfig`: optimiser, schedule, epochs, batch, precision) and `runtime`
    (`RuntimeConfig`: folder, strategy, verbosity, deadlines).

    Every field is declared (default, bound, help) once, in its section; here it keeps its flat
    name, so flags (`--epochs`, `--model.fc_units`), JSON files and `RUN/config.json` stay one
    flat object (`to_dict()` / `from_dict()`), and `config.epochs` reads as
    `config.trainer.epochs`. `from_sections(task, trainer, runtime)` builds one from its parts.
    """

    SECTIONS = SECTIONS  # a class attribute, not a field: {section name: its config class}

    records: str = _declared_in(TaskConfig, "records")
    out: str = _declared_in(RuntimeConfig, "out")
    fold: int = _declared_in(TaskConfig, "fold")
    epochs: int = _declared_in(TrainerConfig, "epochs")
    batch_size: int = _declared_in(TrainerConfig, "batch_size")
    learning_rate: float = _declared_in(TrainerConfig, "learning_rate")
    momentum: float = _declared_in(TrainerConfig, "momentum")
    lr_schedule: str = _declared_in(TrainerConfig, "lr_schedule")
    decay_steps: int = _declared_in(TrainerConfig, "decay_steps")
    decay_rate: float = _declared_in(TrainerConfig, "decay_rate")
    validation_folds: int = _declared_in(TaskConfig, "validation_folds")
    split: str = _declared_in(TaskConfig, "split")
    validation_fraction: float = _declared_in(TaskConfig, "validation_fraction")
    early_stopping_patience: int = _declared_in(TrainerConfig, "early_stopping_patience")
    seed: int = _declared_in(TaskConfig, "seed")
    precision: str = _declared_in(TrainerConfig, "precision")
    strategy: str = _declared_in(RuntimeConfig, "strategy")
    jit_compile: bool | None = _declared_in(TrainerConfig, "jit_compile")
    remat: str = _declared_in(TrainerConfig, "remat")
    remat_chunks: int = _declared_in(TrainerConfig, "remat_chunks")
    deterministic: bool = _declared_in(RuntimeConfig, "deterministic")
    steps_per_epoch: int | None = _declared_in(TrainerConfig, "steps_per_epoch")
    cache_records: bool = _declared_in(TaskConfig, "cache_records")
    allow_incomplete: bool = _declared_in(TaskConfig, "allow_incomplete")
    labels: str = _declared_in(TaskConfig, "labels")
    verbose: int | None = _declared_in(RuntimeConfig, "verbose")
    export: bool = _declared_in(RuntimeConfig, "export")
    worker_timeout_seconds: float = _declared_in(RuntimeConfig, "worker_timeout_seconds")
    model: ModelConfig = _declared_in(TaskConfig, "model")
    sampling: SamplingConfig = _declared_in(TaskConfig, "sampling")
    init_from: str = _declared_in(TaskConfig, "init_from")
    freeze: str = _declared_in(TaskConfig, "freeze")

    def __post_init__(self):
        check_bounds(self)  # errors name TrainConfig.FIELD, as the flags and files give them
        model, sampling = _model_and_sampling("TrainConfig", self.model, self.sampling)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "sampling", sampling)
        # The task section checks the split (a folder made absolute): made now, kept.
        object.__setattr__(self, "split", self.task.split)

    def _section(self, cls):
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})

    @functools.cached_property
    def task(self) -> TaskConfig:
        """What the run learns from and into (records, labels, split, model, sampling)."""
        return self._section(TaskConfig)

    @functools.cached_property
    def trainer(self) -> TrainerConfig:
        """How it trains (optimiser, schedule, epochs, batch, precision)."""
        return self._section(TrainerConfig)

    @functools.cached_property
    def runtime(self) -> RuntimeConfig:
        """Where and how it runs (folder, strategy, verbosity, deadlines)."""
        return self._section(RuntimeConfig)

    @classmethod
    def from_sections(
        cls,
        task: TaskConfig | None = None,
        trainer: TrainerConfig | None = None,
        runtime: RuntimeConfig | None = None,
    ) -> TrainConfig:
        """The TrainConfig of three sections (each defaults to its class's defaults)."""
        values = {}
        for part in (task or TaskConfig(), trainer or TrainerConfig(), runtime or RuntimeConfig()):
            values.update({f.name: getattr(part, f.name) for f in fields(part)})
        return cls(**values)
