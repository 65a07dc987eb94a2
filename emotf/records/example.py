"""Write and parse emotf clip records (one `tf.train.Example` per clip).

The layout is declared once in `emotf.records.schema` (shown in `tfrecords_spec/SPEC.md`; key
strings live in `emotf.keys`).
`make_example` is a pure function (arrays in, Example out); file I/O and sharding live in
`emotf.records.build`. `parse_example` is the one public parser used by the pipeline, the
evaluation and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from emotf import keys
from emotf.records import schema
from emotf.records.schema import FEATURE_SPEC


@dataclass(frozen=True)
class ClipRecord:
    """Everything stored for one clip.

    Attributes:
        frames_jpeg: one JPEG-encoded 224x224x3 face crop per source frame (T items).
        face_boxes: float32 [T, 4] normalised (ymin, xmin, ymax, xmax) crop boxes in the source
            frame (square in pixels, margin included; may extend past [0, 1]).
        face_detected: int [T], 1 where MTCNN detected the face on that frame, 0 where the box
            was interpolated or carried.
        pcm16: int16 [S] mono audio at `sample_rate`.
    """

    clip_id: str
    actor_id: int
    sentence: str
    emotion: str
    label: int
    intensity: str
    fold: int
    fps: float
    frames_jpeg: list[bytes]
    face_boxes: np.ndarray
    face_detected: np.ndarray
    source_size: tuple[int, int]  # (height, width) of the source video
    sample_rate: int
    pcm16: np.ndarray


def make_example(clip: ClipRecord) -> tf.train.Example:
    """Serialise a clip into a `tf.train.Example` following the schema (`emotf.records.schema`)."""
    num_frames = len(clip.frames_jpeg)
    boxes = np.asarray(clip.face_boxes, np.float32).reshape(-1, 4)
    detected = np.asarray(clip.face_detected).reshape(-1)
    if boxes.shape[0] != num_frames or detected.shape[0] != num_frames:
        raise ValueError(
            f"{clip.clip_id}: {num_frames} frames but {boxes.shape[0]} boxes and "
            f"{detected.shape[0]} detection flags"
        )
    pcm = np.asarray(clip.pcm16)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(
            f"{clip.clip_id}: pcm16 must be 1-D int16. Received: dtype={pcm.dtype}, "
            f"shape={pcm.shape}"
        )
    return schema.encode(
        {
            keys.SCHEMA_VERSION_KEY: keys.SCHEMA_VERSION,
            keys.CLIP_ID: clip.clip_id,
            keys.ACTOR_ID: clip.actor_id,
            keys.SENTENCE: clip.sentence,
            keys.EMOTION: clip.emotion,
            keys.LABEL: clip.label,
            keys.INTENSITY: clip.intensity,
            keys.FOLD: clip.fold,
            keys.VIDEO_FPS: clip.fps,
            keys.VIDEO_FRAMES: clip.frames_jpeg,
            keys.VIDEO_FACE_BOXES: boxes,
            keys.VIDEO_FACE_DETECTED: detected,
            keys.VIDEO_SOURCE_SIZE: clip.source_size,
            keys.AUDIO_SAMPLE_RATE: clip.sample_rate,
            keys.AUDIO_PCM16: pcm.astype("<i2").tobytes(),
        }
    )


# Parsed (derived) keys and the stored key each one is computed from.
_DERIVED = {
    keys.PARSED_NUM_FRAMES: keys.VIDEO_FRAMES,
    keys.PARSED_WAVEFORM: keys.AUDIO_PCM16,
    keys.PARSED_NUM_SAMPLES: keys.AUDIO_PCM16,
}


def _parse_spec(wanted) -> dict:
    """FEATURE_SPEC restricted to `wanted` (stored or derived keys) plus the schema version.

    Variable-length lists are parsed as `RaggedFeature`s: for one example that is a dense 1-D
    tensor straight away (no SparseTensor + to_dense copy of the ~75 JPEG strings).
    """
    stored = {_DERIVED.get(k, k) for k in wanted} | {keys.SCHEMA_VERSION_KEY}
    unknown = sorted(k for k in stored if k not in FEATURE_SPEC)
    if unknown:
        raise ValueError(f"unknown record keys. Received: {unknown}")
    spec = {}
    for key in stored:
        feature = FEATURE_SPEC[key]
        if isinstance(feature, tf.io.VarLenFeature):
            feature = tf.io.RaggedFeature(feature.dtype)
        spec[key] = feature
    return spec


def parse_example(serialized: tf.Tensor, keys_to_parse=None) -> dict[str, tf.Tensor]:
    """Parse one serialised clip record (graph-compatible; use inside `tf.data.Dataset.map`).

    Returns a dict with every stored key (scalars as 0-D tensors; `video/frames` as a dense
    string tensor [T] of JPEG bytes; `video/face_boxes` as float32 [T, 4]) plus:
        `video/num_frames` int32 [], `audio/waveform` float32 [S] in [-1, 1),
        `audio/num_samples` int32 [].
    The JPEGs are not decoded here: decoding only the sampled frames is much cheaper.
    Records of another schema version fail with an InvalidArgumentError naming both versions.

    Args:
        serialized: string scalar, one serialised `tf.train.Example`.
        keys_to_parse: optional iterable of the stored and/or derived keys wanted (the
            schema version is always read and checked); None (default) parses everything.
            The input pipeline parses only what sampling needs, which skips e.g. the face
            boxes.
    """
    if keys_to_parse is None:
        wanted = set(FEATURE_SPEC) | set(_DERIVED)
    else:
        wanted = set(keys_to_parse)
    parsed = tf.io.parse_single_example(serialized, _parse_spec(wanted))
    version_ok = tf.debugging.assert_equal(
        parsed[keys.SCHEMA_VERSION_KEY],
        tf.constant(keys.SCHEMA_VERSION, tf.int64),
        message=(
            f"record schema_version differs from the version emotf reads ({keys.SCHEMA_VERSION})"
        ),
    )
    out = {}
    for key, value in parsed.items():
        if isinstance(value, tf.RaggedTensor):  # not expected for one example; be safe
            value = value.to_tensor()
        if key in wanted or key == keys.SCHEMA_VERSION_KEY:
            out[key] = value
    for key in list(out):  # a sequence of items of more than one value: [T, *item_shape]
        feature = schema.BY_KEY.get(key)
        if feature is not None and feature.kind == "sequence" and feature.item_shape:
            out[key] = tf.reshape(out[key], [-1, *feature.item_shape])
    if keys.PARSED_NUM_FRAMES in wanted:
        out[keys.PARSED_NUM_FRAMES] = tf.shape(parsed[keys.VIDEO_FRAMES])[0]
    if keys.PARSED_WAVEFORM in wanted or keys.PARSED_NUM_SAMPLES in wanted:
        with tf.control_dependencies([version_ok]):
            pcm = tf.io.decode_raw(parsed[keys.AUDIO_PCM16], tf.int16, little_endian=True)
        if keys.PARSED_WAVEFORM in wanted:
            out[keys.PARSED_WAVEFORM] = tf.cast(pcm, tf.float32) / 32768.0
        if keys.PARSED_NUM_SAMPLES in wanted:
            out[keys.PARSED_NUM_SAMPLES] = tf.shape(pcm)[0]
    else:
        with tf.control_dependencies([version_ok]):
            out[keys.SCHEMA_VERSION_KEY] = tf.identity(out[keys.SCHEMA_VERSION_KEY])
    return out


def read_records(paths, compression: str | None = None):
    """Eagerly iterate parsed records from TFRecord files (for tools and tests, not training)."""
    dataset = tf.data.TFRecordDataset(list(map(str, paths)), compression_type=compression or "")
    return dataset.map(parse_example)
