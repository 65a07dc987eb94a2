"""LiteRT export (issue 22): the float32 flatbuffer answers like the Keras model (the NaN of the
first conversion was its weights left as uninitialised variables), builtin ops only, quantized
variants, and `LiteRTModel` answering like the SavedModel's `Predictor`."""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from emotf import keys
from emotf.cli.export import main as export_main
from emotf.configs import TrainConfig
from emotf.model import build_model
from emotf.pipeline import make_dataset
from emotf.records.example import make_example, parse_example
from emotf.serving.export import export_saved_model
from emotf.serving.litert import (
    LITERT_FILE,
    LiteRTModel,
    NotBuiltinError,
    check_builtin_ops,
    flatbuffer_ops,
    metadata_file,
    read_litert_metadata,
)
from emotf.serving.litert_convert import (
    convert,
    export_litert,
    representative_segments,
    segment_function,
)
from emotf.serving.metadata import MetadataError, check_metadata
from emotf.serving.predict import Predictor
from tests.test_export import SAMPLING, TINY, _clip

pytest.importorskip("ai_edge_litert")
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "tfrecords_spec" / "golden" / "golden.tfrecord"
TOLERANCE = 1e-4  # float32 LiteRT vs Keras, max abs difference of probabilities


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(5)
    return build_model(TINY)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Three synthetic clips (tests/test_export.py's), fold 0."""
    path = tmp_path_factory.mktemp("records") / "fold-0-of-10-00000.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for clip in (_clip(0, 45, 30.0, 1.5), _clip(1, 38, 25.0, 1.6), _clip(2, 60, 29.97, 2.0)):
            writer.write(make_example(clip).SerializeToString())
    return path


@pytest.fixture(scope="module")
def tflite(model, tmp_path_factory):
    return export_litert(
        model, SAMPLING, tmp_path_factory.mktemp("litert"), model_config=TINY.to_dict()
    )


def _segments(path) -> list[dict]:
    """Each clip's evaluation-mode segments, as the pipeline samples them."""
    dataset = make_dataset(
        str(path), list(range(10)), training=False, config=SAMPLING, batch_size=1
    )
    return [{"frames": f["frames"][0].numpy(), "audio": f["audio"][0].numpy()} for f, _ in dataset]


def _clips(path) -> list[dict]:
    """The records' clips as emotf-predict hands them to a model (decoded crops, pcm16)."""
    clips = []
    for raw in tf.data.TFRecordDataset([str(path)]):
        c = parse_example(raw)
        clips.append(
            {
                "frames": np.stack(
                    [
                        tf.io.decode_jpeg(j, channels=3, dct_method="INTEGER_ACCURATE").numpy()
                        for j in c[keys.VIDEO_FRAMES].numpy()
                    ]
                ),
                "fps": float(c[keys.VIDEO_FPS]),
                "pcm16": tf.io.decode_raw(c[keys.AUDIO_PCM16], tf.int16).numpy(),
                "sample_rate": int(c[keys.AUDIO_SAMPLE_RATE]),
            }
        )
    return clips


@pytest.mark.parametrize("source", ["golden", "synthetic"])
def test_float32_litert_equals_keras(model, tflite, records, source):
    # Without frozen weights every probability was NaN (emotf.serving.litert_convert's docstring).
    segments = _segments(GOLDEN if source == "golden" else records)
    runner = Interpreter(model_path=str(tflite)).get_signature_runner()
    worst = 0.0
    for seg in segments:
        expected = model({k: v[None] for k, v in seg.items()}, training=False)
        got = runner(**seg)["segment_probabilities"]
        assert np.isfinite(got).all()
        worst = max(worst, np.abs(got - expected["segment_probabilities"][0].numpy()).max())
    assert worst <= TOLERANCE, worst


def test_weights_left_as_variables_are_refused_and_the_export_has_builtin_ops_only(model, tflite):
    # The cause of the NaN: converted unfrozen, the weights are VAR_HANDLE / READ_VARIABLE ops
    # that a plain interpreter never initialises. check_builtin_ops refuses such a model.
    unfrozen = tf.lite.TFLiteConverter.from_concrete_functions(
        [segment_function(model, SAMPLING)], model
    ).convert()
    assert "READ_VARIABLE" in flatbuffer_ops(unfrozen)
    with pytest.raises(NotBuiltinError, match="READ_VARIABLE"):
        check_builtin_ops(unfrozen)
    # ... and so does LiteRTModel, before any interpreter runs it.
    Path(tflite).with_name("unfrozen.tflite").write_bytes(unfrozen)
    Path(metadata_file(Path(tflite).with_name("unfrozen.tflite"))).write_text(
        Path(metadata_file(tflite)).read_text()
    )
    with pytest.raises(NotBuiltinError, match="unfrozen.tflite holds ops"):
        LiteRTModel(Path(tflite).with_name("unfrozen.tflite"))
    ops = check_builtin_ops(Path(tflite).read_bytes())
    assert {"RFFT2D", "LOG", "CONV_2D", "SOFTMAX"} <= set(ops)
    assert not [op for op in ops if op.startswith("custom:") or "VARIABLE" in op]
    assert read_litert_metadata(tflite)["ops"] == ops
    # A Select TF (Flex) op is refused too.
    flex = tf.function(
        lambda x: {"y": tf.linalg.det(tf.reshape(x, [2, 2]))},
        input_signature=[tf.TensorSpec([4], tf.float32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [flex.get_concrete_function()], tf.Module()
    )
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    with pytest.raises(NotBuiltinError, match="custom:Flex"):
        check_builtin_ops(converter.convert())


@pytest.mark.parametrize("quantize", ["float16", "dynamic", "int8"])
def test_quantized_variants_convert_with_builtin_ops_and_answer(model, records, quantize, tmp_path):
    representative = representative_segments(str(records), [0], SAMPLING, count=3)
    path = export_litert(
        model,
        SAMPLING,
        tmp_path,
        quantize,
        representative=representative if quantize == "int8" else None,
    )
    assert read_litert_metadata(path)["quantize"] == quantize
    check_builtin_ops(Path(path).read_bytes())
    runner = Interpreter(model_path=str(path)).get_signature_runner()
    for seg in _segments(records):
        expected = model({k: v[None] for k, v in seg.items()}, training=False)
        got = runner(**seg)["segment_probabilities"]
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-2)  # int8: steps of 1/256
        # Loose bounds (3 calibration clips, untrained weights); the benchmark measures the
        # accuracy each variant keeps (docs/litert.md).
        bound = 0.05 if quantize == "int8" else 0.02
        assert np.abs(got - expected["segment_probabilities"][0].numpy()).max() < bound
    if quantize == "int8":
        with pytest.raises(ValueError, match="representative"):
            convert(model, SAMPLING, "int8")


def test_litert_model_answers_like_the_savedmodel_predictor(model, tflite, records, tmp_path):
    saved = Predictor(export_saved_model(model, SAMPLING, tmp_path / "export"))
    clips = _clips(records) + _clips(GOLDEN)
    # A clip shorter than the audio window and with fewer frames than segments.
    short = clips[0]
    clips.append({**short, "frames": short["frames"][:2], "pcm16": short["pcm16"][:9000]})
    lite = LiteRTModel(tflite, num_threads=1)
    assert lite.class_codes == saved.class_codes and lite.class_names == saved.class_names
    expected, got = saved.run_model(clips), lite.run_model(clips)
    for e, g in zip(expected, got, strict=True):
        assert g["probabilities"].dtype == np.float64
        assert g["segment_probabilities"].dtype == np.float32
        assert g["segment_probabilities"].shape == e["segment_probabilities"].shape
        np.testing.assert_allclose(g["probabilities"], e["probabilities"], rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(
            g["segment_probabilities"], e["segment_probabilities"], rtol=0, atol=TOLERANCE
        )
        assert g["label"] == e["label"]
    with pytest.raises(ValueError, match="sample_rate must be 16000"):
        lite.run_model([{**short, "sample_rate": 8000}])
    with pytest.raises(ValueError, match="fps must be in"):
        lite.run_model([{**short, "fps": float("nan")}])


def test_export_run_cli_writes_model_and_checked_metadata(model, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    model.save(str(run / "model.keras"))
    config = TrainConfig(records="", out=str(run), model=TINY, sampling={})
    (run / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    assert export_main([str(run), "--format", "litert", "--out", str(tmp_path / "lite")]) == 0
    path = tmp_path / "lite" / LITERT_FILE
    assert capsys.readouterr().out.strip() == str(path)
    meta = check_metadata(json.loads(Path(metadata_file(path)).read_text()), path)
    assert meta["format"] == "litert" and meta["quantize"] == "none"
    assert meta["sampling_config"]["num_segments"] == TINY.num_segments
    assert meta["inputs"]["audio"]["shape"] == [TINY.num_segments, SAMPLING.window_length]
    assert sorted(p.name for p in (tmp_path / "lite").iterdir()) == [
        LITERT_FILE,
        LITERT_FILE + ".json",
    ]
    # int8 needs the run's records; other flag mixes are usage errors.
    assert export_main([str(run), "--format", "litert", "--quantize", "int8"]) == 1
    assert "names no records" in capsys.readouterr().err
    for argv in (["--format", "litert", "--version", "2"], ["--quantize", "float16"]):
        with pytest.raises(SystemExit):
            export_main([str(run), *argv])
    # Tampered metadata: a clear error, not a wrong answer.
    Path(metadata_file(path)).write_text(json.dumps({**meta, "format": "emotf-savedmodel-1"}))
    with pytest.raises(MetadataError, match="not a LiteRT export"):
        LiteRTModel(path)


def test_missing_runtime_is_one_line(tflite, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ImportError, match=r'needs ai-edge-litert: pip install "emotf\[litert\]"'):
        LiteRTModel(tflite)
