"""Write and parse emotf clip records (one `tf.train.Example` per clip).

The layout is documented in `tfrecords_spec/SPEC.md`; key strings live in `emotf.keys`.
`make_example` is a pure function (arrays in, Example out); file I/O and sharding live in
`emotf.records.build`. `parse_example` is the one public parser used by the pipeline, the
evaluation and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from emotf import keys


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


def _bytes(values) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def make_example(clip: ClipRecord) -> tf.train.Example:
    """Serialise a clip into a `tf.train.Example` following the spec."""
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
    feature = {
        keys.SCHEMA_VERSION_KEY: _ints([keys.SCHEMA_VERSION]),
        keys.CLIP_ID: _bytes([clip.clip_id.encode()]),
        keys.ACTOR_ID: _ints([clip.actor_id]),
        keys.SENTENCE: _bytes([clip.sentence.encode()]),
        keys.EMOTION: _bytes([clip.emotion.encode()]),
        keys.LABEL: _ints([clip.label]),
        keys.INTENSITY: _bytes([clip.intensity.encode()]),
        keys.FOLD: _ints([clip.fold]),
        keys.VIDEO_FPS: _floats([clip.fps]),
        keys.VIDEO_FRAMES: _bytes(clip.frames_jpeg),
        keys.VIDEO_FACE_BOXES: _floats(boxes.reshape(-1)),
        keys.VIDEO_FACE_DETECTED: _ints(detected),
        keys.VIDEO_SOURCE_SIZE: _ints(clip.source_size),
        keys.AUDIO_SAMPLE_RATE: _ints([clip.sample_rate]),
        keys.AUDIO_PCM16: _bytes([pcm.astype("<i2").tobytes()]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


FEATURE_SPEC = {
    keys.SCHEMA_VERSION_KEY: tf.io.FixedLenFeature([], tf.int64),
    keys.CLIP_ID: tf.io.FixedLenFeature([], tf.string),
    keys.ACTOR_ID: tf.io.FixedLenFeature([], tf.int64),
    keys.SENTENCE: tf.io.FixedLenFeature([], tf.string),
    keys.EMOTION: tf.io.FixedLenFeature([], tf.string),
    keys.LABEL: tf.io.FixedLenFeature([], tf.int64),
    keys.INTENSITY: tf.io.FixedLenFeature([], tf.string),
    keys.FOLD: tf.io.FixedLenFeature([], tf.int64),
    keys.VIDEO_FPS: tf.io.FixedLenFeature([], tf.float32),
    keys.VIDEO_FRAMES: tf.io.VarLenFeature(tf.string),
    keys.VIDEO_FACE_BOXES: tf.io.VarLenFeature(tf.float32),
    keys.VIDEO_FACE_DETECTED: tf.io.VarLenFeature(tf.int64),
    keys.VIDEO_SOURCE_SIZE: tf.io.FixedLenFeature([2], tf.int64),
    keys.AUDIO_SAMPLE_RATE: tf.io.FixedLenFeature([], tf.int64),
    keys.AUDIO_PCM16: tf.io.FixedLenFeature([], tf.string),
}


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
        message=f"record schema_version differs from the version emotf reads ({keys.SCHEMA_VERSION})",
    )
    out = {}
    for key, value in parsed.items():
        if isinstance(value, tf.RaggedTensor):  # not expected for one example; be safe
            value = value.to_tensor()
        if key in wanted or key == keys.SCHEMA_VERSION_KEY:
            out[key] = value
    if keys.VIDEO_FACE_BOXES in out:
        out[keys.VIDEO_FACE_BOXES] = tf.reshape(out[keys.VIDEO_FACE_BOXES], [-1, 4])
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
