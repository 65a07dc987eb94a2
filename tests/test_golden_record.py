"""The golden record in tfrecords_spec/ parses with the package's own parser."""

import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from emotf import keys
from emotf.records.example import parse_example

GOLDEN = Path(__file__).resolve().parents[1] / "tfrecords_spec" / "golden"


def test_golden_record_parses_to_the_expected_values():
    expected = json.loads((GOLDEN / "golden.json").read_text())
    (serialized,) = list(tf.data.TFRecordDataset(str(GOLDEN / "golden.tfrecord")))
    rec = parse_example(serialized)
    assert int(rec[keys.SCHEMA_VERSION_KEY]) == expected["schema_version"] == keys.SCHEMA_VERSION
    for key, name in [
        (keys.CLIP_ID, "clip_id"),
        (keys.SENTENCE, "sentence"),
        (keys.EMOTION, "emotion"),
        (keys.INTENSITY, "intensity"),
    ]:
        assert rec[key].numpy().decode() == expected[name]
    for key, name in [
        (keys.ACTOR_ID, "actor_id"),
        (keys.LABEL, "label"),
        (keys.FOLD, "fold"),
        (keys.AUDIO_SAMPLE_RATE, "sample_rate"),
        (keys.PARSED_NUM_FRAMES, "num_frames"),
        (keys.PARSED_NUM_SAMPLES, "num_samples"),
    ]:
        assert int(rec[key]) == expected[name]
    assert float(rec[keys.VIDEO_FPS]) == expected["fps"]
    assert rec[keys.VIDEO_SOURCE_SIZE].numpy().tolist() == expected["source_size"]
    assert rec[keys.VIDEO_FACE_DETECTED].numpy().tolist() == expected["face_detected"]
    boxes = rec[keys.VIDEO_FACE_BOXES].numpy()
    assert boxes.shape == (expected["num_frames"], 4)
    np.testing.assert_allclose(boxes[0], expected["face_boxes_first"], atol=1e-4)
    pcm = tf.io.decode_raw(rec[keys.AUDIO_PCM16], tf.int16).numpy()
    assert hashlib.sha256(pcm.astype("<i2").tobytes()).hexdigest() == expected["pcm16_sha256"]
    np.testing.assert_allclose(rec[keys.PARSED_WAVEFORM].numpy(), pcm / 32768.0)
    frames = [tf.io.decode_jpeg(j).numpy() for j in rec[keys.VIDEO_FRAMES].numpy()]
    assert all(f.shape == (keys.FACE_CROP_SIZE, keys.FACE_CROP_SIZE, 3) for f in frames)
