"""The clip record's schema, declared once: every feature of the `tf.train.Example` of a clip.

Each `Feature` names its key (`emotf.keys`), its kind, its dtype, its shape and its meaning, in
the manner of a TFDS `FeaturesDict`. Both sides of the record are generated from `FEATURES`:

    encode(values)   the writer's `tf.train.Example` (`emotf.records.example.make_example`)
    FEATURE_SPEC     the parser's `tf.io` spec (`emotf.records.example.parse_example`)

Kinds: a "context" feature holds one value (or a fixed-size list) per clip; a "sequence"
feature holds one item per video frame (T items, each of `Feature.item_shape`), stored flat.
`tfrecords_spec/SPEC.md` shows the same table (tests/test_record_schema.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from emotf import keys

KINDS = ("context", "sequence")
# Spec dtype name -> (tf dtype, tf.train.Feature field, its list type, how a value is stored).
_DTYPES: dict[str, tuple[tf.DType, str, Any, Callable[[Any], Any]]] = {
    "int64": (tf.int64, "int64_list", tf.train.Int64List, int),
    "float32": (tf.float32, "float_list", tf.train.FloatList, float),
    "bytes": (
        tf.string,
        "bytes_list",
        tf.train.BytesList,
        lambda v: v.encode() if isinstance(v, str) else bytes(v),
    ),
}


@dataclass(frozen=True)
class Feature:
    """One feature of the clip record.

    Attributes:
        key: the key string (a constant of `emotf.keys`).
        kind: "context" (per clip) or "sequence" (per video frame).
        dtype: "int64", "float32" or "bytes".
        shape: the parsed shape: () a scalar, (n,) a fixed list; a sequence ("T", ...) with T
            the frame count (stored flat: T items times the rest of the shape).
        meaning: what it holds (the SPEC.md table's "meaning").
    """

    key: str
    kind: str
    dtype: str
    shape: tuple
    meaning: str

    def __post_init__(self):
        if self.kind not in KINDS or self.dtype not in _DTYPES:
            raise ValueError(f"{self.key}: kind {self.kind!r} or dtype {self.dtype!r} unknown")
        if (self.kind == "sequence") != (self.shape[:1] == ("T",)):
            raise ValueError(f"{self.key}: a sequence's shape starts with T, a context's not")

    @property
    def item_shape(self) -> tuple[int, ...]:
        """The shape of one frame's item (sequence) or of the whole value (context)."""
        return tuple(self.shape[1:]) if self.kind == "sequence" else tuple(self.shape)

    @property
    def tf_dtype(self) -> tf.DType:
        return _DTYPES[self.dtype][0]

    def parse_spec(self) -> tf.io.FixedLenFeature | tf.io.VarLenFeature:
        """How `tf.io.parse_single_example` reads it: a fixed-length context, a variable-length
        sequence."""
        if self.kind == "sequence":
            return tf.io.VarLenFeature(self.tf_dtype)
        return tf.io.FixedLenFeature(list(self.shape), self.tf_dtype)

    def encode(self, value) -> tf.train.Feature:
        """`value` as a `tf.train.Feature`: a scalar context value, or a sequence of values
        (an array of any shape is stored flat)."""
        _, field, list_type, cast = _DTYPES[self.dtype]
        if self.shape == ():
            values = [value]
        elif hasattr(value, "reshape"):
            values = value.reshape(-1)
        else:
            values = value
        return tf.train.Feature(**{field: list_type(value=[cast(v) for v in values])})


FEATURES: tuple[Feature, ...] = (
    # --- clip identity and labels ---
    Feature(keys.SCHEMA_VERSION_KEY, "context", "int64", (), "record layout version"),
    Feature(
        keys.CLIP_ID,
        "context",
        "bytes",
        (),
        "the corpus's clip id, e.g. `1001_DFA_ANG_XX` (CREMA-D)",
    ),
    Feature(
        keys.ACTOR_ID,
        "context",
        "int64",
        (),
        "speaker number: CREMA-D 1001..1091, RAVDESS 1..24, csv 1 + index in sorted speakers",
    ),
    Feature(
        keys.SENTENCE,
        "context",
        "bytes",
        (),
        "sentence code (CREMA-D: 12), statement (RAVDESS: kids, dogs), or empty",
    ),
    Feature(
        keys.EMOTION,
        "context",
        "bytes",
        (),
        "class code, one of the manifest's `corpus.class_codes` (CREMA-D: ANG DIS FEA HAP NEU SAD)",
    ),
    Feature(
        keys.LABEL,
        "context",
        "int64",
        (),
        "index of `emotion` in the manifest's `corpus.class_codes`",
    ),
    Feature(
        keys.INTENSITY,
        "context",
        "bytes",
        (),
        "intensity group (CREMA-D: LO MD HI XX; RAVDESS: normal, strong), or empty",
    ),
    Feature(keys.FOLD, "context", "int64", (), "speaker-independent cross-validation fold"),
    # --- video: face crops, one per source frame ---
    Feature(keys.VIDEO_FPS, "context", "float32", (), "frame rate read from the source stream"),
    Feature(
        keys.VIDEO_FRAMES,
        "sequence",
        "bytes",
        ("T",),
        "JPEG face crops, RGB, one per source frame, in order",
    ),
    Feature(
        keys.VIDEO_FACE_BOXES,
        "sequence",
        "float32",
        ("T", 4),
        "crop box per frame, normalised (ymin, xmin, ymax, xmax) in the source frame",
    ),
    Feature(
        keys.VIDEO_FACE_DETECTED,
        "sequence",
        "int64",
        ("T",),
        "1 where MTCNN detected the face on that frame, 0 where the box was interpolated/carried",
    ),
    Feature(
        keys.VIDEO_SOURCE_SIZE, "context", "int64", (2,), "(height, width) of the source video"
    ),
    # --- audio ---
    Feature(keys.AUDIO_SAMPLE_RATE, "context", "int64", (), "audio rate in Hz"),
    Feature(
        keys.AUDIO_PCM16,
        "context",
        "bytes",
        (),
        "mono audio, little-endian int16 PCM (2*S bytes)",
    ),
)

BY_KEY: dict[str, Feature] = {feature.key: feature for feature in FEATURES}
# The parser's spec of every stored key.
FEATURE_SPEC: dict[str, tf.io.FixedLenFeature | tf.io.VarLenFeature] = {
    feature.key: feature.parse_spec() for feature in FEATURES
}


def encode(values: Mapping[str, object]) -> tf.train.Example:
    """The `tf.train.Example` of one clip from {key: value} of every feature of the schema.

    Raises:
        ValueError: a key of the schema missing from `values`, or a key it does not declare.
    """
    missing = [f.key for f in FEATURES if f.key not in values]
    unknown = sorted(k for k in values if k not in BY_KEY)
    if missing or unknown:
        raise ValueError(
            f"record values do not match the schema: missing {missing}, unknown {unknown}"
        )
    feature = {f.key: f.encode(values[f.key]) for f in FEATURES}
    return tf.train.Example(features=tf.train.Features(feature=feature))
