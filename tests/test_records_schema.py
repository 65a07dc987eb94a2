"""The record schema is declared once (`emotf.records.schema`): SPEC.md's table shows it, the
writer and the parser are generated from it, and the golden record re-encodes byte for byte."""

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emotf import keys
from emotf.records import schema
from emotf.records.example import ClipRecord, make_example, parse_example

SPEC = Path(__file__).resolve().parents[1] / "tfrecords_spec" / "SPEC.md"
GOLDEN = SPEC.parent / "golden" / "golden.tfrecord"


def _spec_rows() -> dict[str, dict]:
    """The feature table of SPEC.md: {key: {"constant", "kind", "dtype", "shape", "meaning"}}."""
    lines = SPEC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| key (`emotf.keys`)"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    assert header[:5] == ["key (`emotf.keys`)", "kind", "dtype", "shape", "meaning"]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        key, constant = re.fullmatch(r"`([^`]+)` \(`([A-Z_0-9]+)`\)", cells[0]).groups()
        rows[key] = {
            "constant": constant,
            "kind": cells[1],
            "dtype": cells[2],
            "shape": re.match(r"\[[^\]]*\]", cells[3])[0],
            "meaning": cells[4],
        }
    return rows


def _shape_text(shape: tuple) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def test_the_spec_table_is_the_schema():
    rows = _spec_rows()
    assert list(rows) == [f.key for f in schema.FEATURES]  # same keys, same order
    for feature in schema.FEATURES:
        row = rows[feature.key]
        assert getattr(keys, row["constant"]) == feature.key, row["constant"]
        assert row["kind"] == feature.kind, feature.key
        assert row["dtype"] == feature.dtype, feature.key
        assert row["shape"] == _shape_text(feature.shape), feature.key
        assert row["meaning"] == feature.meaning, feature.key


def test_every_stored_key_of_emotf_keys_is_in_the_schema():
    parsed_only = {keys.PARSED_NUM_FRAMES, keys.PARSED_WAVEFORM, keys.PARSED_NUM_SAMPLES}
    stored = {
        value
        for name, value in vars(keys).items()
        if name.isupper() and isinstance(value, str) and value not in parsed_only
    }
    assert stored == set(schema.BY_KEY)


def test_the_parser_spec_is_generated_from_the_schema():
    assert set(schema.FEATURE_SPEC) == set(schema.BY_KEY)
    for feature in schema.FEATURES:
        spec = schema.FEATURE_SPEC[feature.key]
        if feature.kind == "sequence":
            assert isinstance(spec, tf.io.VarLenFeature), feature.key
        else:
            assert isinstance(spec, tf.io.FixedLenFeature), feature.key
            assert tuple(spec.shape) == feature.shape, feature.key
        assert (
            spec.dtype
            == {"int64": tf.int64, "float32": tf.float32, "bytes": tf.string}[feature.dtype]
        ), feature.key


def test_encode_refuses_values_that_do_not_match_the_schema():
    with pytest.raises(ValueError, match=r"missing \['schema_version'"):
        schema.encode({})
    values = {f.key: 0 for f in schema.FEATURES}
    with pytest.raises(ValueError, match=r"unknown \['video/extra'\]"):
        schema.encode({**values, "video/extra": 1})


def test_a_feature_declared_with_a_kind_at_odds_with_its_shape_is_refused():
    with pytest.raises(ValueError, match="sequence"):
        schema.Feature("x", "sequence", "int64", (), "a sequence without T")
    with pytest.raises(ValueError, match="unknown"):
        schema.Feature("x", "context", "int32", (), "no such dtype")


def test_the_golden_record_re_encodes_byte_for_byte():
    """Parsed with the generated spec and written again with the generated writer: the same
    Example as the committed golden shard's record, byte for byte in canonical form (the build
    writes map keys sorted; the golden file predates that, so its own key order differs)."""
    (serialized,) = [r.numpy() for r in tf.data.TFRecordDataset(str(GOLDEN))]
    rec = parse_example(tf.constant(serialized))

    def text(key):
        return rec[key].numpy().decode()

    clip = ClipRecord(
        clip_id=text(keys.CLIP_ID),
        actor_id=int(rec[keys.ACTOR_ID]),
        sentence=text(keys.SENTENCE),
        emotion=text(keys.EMOTION),
        label=int(rec[keys.LABEL]),
        intensity=text(keys.INTENSITY),
        fold=int(rec[keys.FOLD]),
        fps=float(rec[keys.VIDEO_FPS]),
        frames_jpeg=list(rec[keys.VIDEO_FRAMES].numpy()),
        face_boxes=rec[keys.VIDEO_FACE_BOXES].numpy(),
        face_detected=rec[keys.VIDEO_FACE_DETECTED].numpy(),
        source_size=tuple(int(v) for v in rec[keys.VIDEO_SOURCE_SIZE]),
        sample_rate=int(rec[keys.AUDIO_SAMPLE_RATE]),
        pcm16=np.frombuffer(rec[keys.AUDIO_PCM16].numpy(), "<i2").astype(np.int16),
    )
    assert rec[keys.VIDEO_FACE_BOXES].shape == (len(clip.frames_jpeg), 4)  # item_shape (4,)
    golden = tf.train.Example.FromString(serialized)
    written = make_example(clip)
    assert written == golden
    assert written.SerializeToString(deterministic=True) == golden.SerializeToString(
        deterministic=True
    )
