"""A schema-v1 record written by emotf 0.1.0 on the old stack (TF 2.17, numpy 1.26; the file
as committed at 163381a) still parses, value for value, on the current stack and parser."""

import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from emotf import keys
from emotf.records.example import parse_example

V1 = Path(__file__).resolve().parent / "fixtures" / "golden_v1"


def test_a_v1_record_from_the_previous_release_parses():
    expected = json.loads((V1 / "golden.json").read_text())
    (serialized,) = list(tf.data.TFRecordDataset(str(V1 / "golden.tfrecord")))
    rec = parse_example(serialized)
    assert int(rec[keys.SCHEMA_VERSION_KEY]) == expected["schema_version"] == 1
    assert rec[keys.CLIP_ID].numpy().decode() == expected["clip_id"]
    assert int(rec[keys.LABEL]) == expected["label"] and int(rec[keys.FOLD]) == expected["fold"]
    assert int(rec[keys.PARSED_NUM_FRAMES]) == expected["num_frames"]
    assert int(rec[keys.PARSED_NUM_SAMPLES]) == expected["num_samples"]
    assert float(rec[keys.VIDEO_FPS]) == expected["fps"]
    assert rec[keys.VIDEO_FACE_DETECTED].numpy().tolist() == expected["face_detected"]
    np.testing.assert_allclose(
        rec[keys.VIDEO_FACE_BOXES].numpy()[0], expected["face_boxes_first"], atol=1e-4
    )
    pcm = tf.io.decode_raw(rec[keys.AUDIO_PCM16], tf.int16).numpy()
    assert hashlib.sha256(pcm.astype("<i2").tobytes()).hexdigest() == expected["pcm16_sha256"]
    frames = [tf.io.decode_jpeg(j).numpy() for j in rec[keys.VIDEO_FRAMES].numpy()]
    assert len(frames) == expected["num_frames"]
    assert all(f.shape == (keys.FACE_CROP_SIZE, keys.FACE_CROP_SIZE, 3) for f in frames)
