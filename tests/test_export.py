"""SavedModel export: no train/serve skew, core ops only, loadable without emotf."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from emotf import keys
from emotf.cli.export import main as export_main
from emotf.configs import ModelConfig, SamplingConfig, TrainConfig
from emotf.corpora.cremad import EMOTION_NAMES, EMOTIONS
from emotf.media.faces import FaceTrackerConfig
from emotf.model import build_model
from emotf.pipeline import make_dataset
from emotf.records.example import ClipRecord, make_example, parse_example
from emotf.serving.export import export_run, export_saved_model, read_metadata
from emotf.serving.graph_ops import check_saved_model_ops
from emotf.serving.metadata import resolve_saved_model

N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)
SAMPLING = SamplingConfig(num_segments=N)
RATE = 16000


def _clip(i: int, num_frames: int, fps: float, seconds: float) -> ClipRecord:
    rng = np.random.default_rng(i)
    base = rng.integers(0, 256, [28, 28, 3]).astype(np.uint8)
    frames = []
    for k in range(num_frames):  # smooth-ish images that change frame to frame
        image = np.kron(np.roll(base, k, axis=0), np.ones([8, 8, 1], np.uint8))
        frames.append(tf.io.encode_jpeg(image, quality=90).numpy())
    pcm = (rng.normal(0, 0.1, int(seconds * RATE)) * 32767).clip(-32768, 32767).astype(np.int16)
    return ClipRecord(
        clip_id=f"{1001 + i}_DFA_ANG_XX",
        actor_id=1001 + i,
        sentence="DFA",
        emotion="ANG",
        label=i % 6,
        intensity="XX",
        fold=0,
        fps=fps,
        frames_jpeg=frames,
        face_boxes=np.zeros([num_frames, 4], np.float32),
        face_detected=np.ones([num_frames], np.int64),
        source_size=(224, 224),
        sample_rate=RATE,
        pcm16=pcm,
    )


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("records") / "fold-0-of-10-00000.tfrecord"
    clips = [_clip(0, 45, 30.0, 1.5), _clip(1, 38, 25.0, 1.6), _clip(2, 60, 29.97, 2.0)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for clip in clips:
            writer.write(make_example(clip).SerializeToString())
    return path


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return build_model(TINY)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return export_saved_model(
        model, SAMPLING, tmp_path_factory.mktemp("export") / "emotf", model_config=TINY.to_dict()
    )


def _serving_inputs(records_path) -> dict:
    """Padded batch of the records' clips as a client would send it: decoded uint8 crops."""
    clips = [parse_example(raw) for raw in tf.data.TFRecordDataset([str(records_path)])]
    t_max = max(int(c[keys.PARSED_NUM_FRAMES]) for c in clips)
    s_max = max(int(c[keys.PARSED_NUM_SAMPLES]) for c in clips)
    frames = np.zeros([len(clips), t_max, 224, 224, 3], np.uint8)
    waves = np.full([len(clips), s_max], 0.7, np.float32)  # padding must not leak in
    for i, c in enumerate(clips):
        jpegs = c[keys.VIDEO_FRAMES].numpy()
        frames[i, : len(jpegs)] = [
            tf.io.decode_jpeg(j, channels=3, dct_method="INTEGER_ACCURATE").numpy() for j in jpegs
        ]
        waves[i, : int(c[keys.PARSED_NUM_SAMPLES])] = c[keys.PARSED_WAVEFORM].numpy()
    return {
        "frames": tf.constant(frames),
        "num_frames": tf.constant([int(c[keys.PARSED_NUM_FRAMES]) for c in clips], tf.int32),
        "fps": tf.constant([float(c[keys.VIDEO_FPS]) for c in clips], tf.float32),
        "waveform": tf.constant(waves),
        "num_samples": tf.constant([int(c[keys.PARSED_NUM_SAMPLES]) for c in clips], tf.int32),
        "sample_rate": tf.constant([RATE] * len(clips), tf.int32),
    }


def test_serving_default_equals_keras_evaluation_on_records(model, exported, records):
    ((features, labels),) = list(
        make_dataset(records, [0], training=False, config=SAMPLING, batch_size=8)
    )
    expected = model(features, training=False)
    # Segments differ visibly, so a shifted frame or audio window would show.
    assert np.ptp(expected["segment_probabilities"].numpy().reshape(-1, 6), axis=0).max() > 1e-3
    served = tf.saved_model.load(str(exported)).signatures["serving_default"](
        **_serving_inputs(records)
    )
    np.testing.assert_allclose(
        served["probabilities"], expected["probabilities"], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(
        served["segment_probabilities"], expected["segment_probabilities"], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(served["scores"], expected["scores"], rtol=0, atol=1e-5)
    label = np.argmax(expected["probabilities"], -1)
    np.testing.assert_array_equal(served["label"], label)
    assert [s.decode() for s in served["label_code"].numpy()] == [EMOTIONS[k] for k in label]
    assert [s.decode() for s in served["label_name"].numpy()] == [EMOTION_NAMES[k] for k in label]
    # The segment signature on the pipeline's own sampled segments gives the same again.
    segments = tf.saved_model.load(str(exported)).signatures["predict_segments"](**features)
    np.testing.assert_allclose(
        segments["probabilities"], expected["probabilities"], rtol=0, atol=1e-6
    )


def test_wrong_sample_rate_and_bad_lengths_are_clear_errors(exported, records):
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    inputs = _serving_inputs(records)
    with pytest.raises(tf.errors.InvalidArgumentError, match="sample_rate must be 16000"):
        serve(**{**inputs, "sample_rate": tf.constant([RATE, 44100, RATE], tf.int32)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_frames exceeds"):
        serve(**{**inputs, "num_frames": inputs["num_frames"] + 1000})
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one frame"):
        serve(**{**inputs, "num_frames": tf.constant([0, 1, 1], tf.int32)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be >= 8000"):
        serve(**{**inputs, "num_samples": tf.constant([0, 24000, 24000], tf.int32)})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"fps must be in \[1, 1000\]"):
        serve(**{**inputs, "fps": tf.constant([1e-30, 25.0, 30.0], tf.float32)})


def test_metadata_signature_and_assets_extra(exported):
    meta = tf.saved_model.load(str(exported)).signatures["metadata"]()
    assert [c.decode() for c in meta["class_codes"].numpy()] == list(EMOTIONS)
    assert [c.decode() for c in meta["class_names"].numpy()] == list(EMOTION_NAMES)
    assert SamplingConfig.from_dict(json.loads(meta["sampling_config"].numpy())) == SAMPLING
    assert ModelConfig.from_dict(json.loads(meta["model_config"].numpy())) == TINY
    on_disk = read_metadata(exported.parent)  # base folder resolves to the latest version
    assert SamplingConfig.from_dict(on_disk["sampling_config"]) == SAMPLING
    assert on_disk["class_codes"] == list(EMOTIONS)
    # Exported without records: no tracker settings (emotf-predict uses the build's defaults).
    assert json.loads(meta["face_tracker"].numpy()) == {} and "face_tracker" not in on_disk
    assert float(meta["min_clip_seconds"].numpy()) == pytest.approx(0.5)


def _graph_ops(saved_model_dir) -> set[str]:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops


def test_graph_uses_core_tensorflow_ops_only(exported):
    ops = _graph_ops(exported)
    assert "StatelessWhile" in ops or "While" in ops  # the per-clip map is in the graph
    assert "RFFT" in ops  # so is the STFT
    assert not [op for op in ops if op.startswith("IO>")], "tensorflow-io op in the graph"
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    # Every op is registered by core TensorFlow (tensorflow_io is never imported in tests).
    assert "tensorflow_io" not in sys.modules
    assert [op for op in ops if op_def_registry.get(op) is None] == []
    check_saved_model_ops(exported)  # and within the allowlist emotf-predict enforces


def test_loads_and_runs_in_a_fresh_process_without_emotf(exported, tmp_path):
    script = f"""
import sys
import numpy as np
import tensorflow as tf
m = tf.saved_model.load({str(exported)!r})
names = set(m.signatures)
assert names == {{"serving_default", "predict_segments", "metadata"}}, names
out = m.signatures["serving_default"](
    frames=tf.zeros([2, 50, 224, 224, 3], tf.uint8), num_frames=tf.constant([50, 40]),
    fps=tf.constant([30.0, 25.0]), waveform=tf.random.normal([2, 30000]) * 0.1,
    num_samples=tf.constant([30000, 25000]), sample_rate=tf.constant([16000, 16000]))
p = out["probabilities"].numpy()
assert p.shape == (2, 6) and np.allclose(p.sum(-1), 1, atol=1e-5), p
assert out["segment_probabilities"].shape == (2, {N}, 6)
assert out["label_name"].dtype == tf.string
assert not [m for m in sys.modules if m == "emotf" or m.startswith("emotf.")]
assert "tensorflow_io" not in sys.modules
print("OK")
"""
    env = {**os.environ, "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_saved_model_cli_lists_the_signatures(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli not installed next to the interpreter")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [cli, "show", "--dir", str(exported), "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in (
        "serving_default",
        "predict_segments",
        "metadata",
        "num_frames",
        "sample_rate",
        "label_name",
        "segment_probabilities",
    ):
        assert name in result.stdout


def test_versions_and_export_run(model, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    model.save(str(run / "model.keras"))
    # The records' build settings (manifest.json) travel with the model for emotf-predict.
    records = tmp_path / "records"
    records.mkdir()
    tracker = FaceTrackerConfig(margin=0.45, jpeg_quality=75, keyframe_interval=5)
    (records / "manifest.json").write_text(
        json.dumps({"arguments": {"tracker": dataclasses.asdict(tracker), "min_duration_s": 0.7}})
    )
    train_config = TrainConfig(
        records=str(records), out=str(run), model=TINY, sampling={"max_offset_seconds": 0.02}
    )
    (run / "config.json").write_text(json.dumps({"config": train_config.to_dict()}))
    first = export_run(run)
    on_disk = read_metadata(first)
    assert FaceTrackerConfig(**on_disk["face_tracker"]) == tracker
    assert on_disk["min_clip_seconds"] == 0.7
    signature = tf.saved_model.load(str(first)).signatures["metadata"]()
    assert FaceTrackerConfig(**json.loads(signature["face_tracker"].numpy())) == tracker
    assert float(signature["min_clip_seconds"].numpy()) == pytest.approx(0.7)
    assert first == run / "export" / "1"
    assert (first / "saved_model.pb").is_file() and (
        first / "assets.extra" / "emotf.json"
    ).is_file()
    assert not [p for p in (run / "export").iterdir() if p.name.startswith(".")]  # no temp left
    meta = read_metadata(run / "export")
    assert meta["sampling_config"]["max_offset_seconds"] == 0.02  # the run's sampling travels
    assert meta["sampling_config"]["num_segments"] == N
    assert export_run(run, version=7) == run / "export" / "7"
    assert export_run(run) == run / "export" / "8"
    assert resolve_saved_model(run / "export") == run / "export" / "8"
    assert read_metadata(run / "export" / "8")["temperature"] is None  # no calibration.json
    (run / "calibration.json").write_text(json.dumps({"temperature": 1.7}))
    assert read_metadata(export_run(run))["temperature"] == 1.7
    with pytest.raises(FileExistsError):
        export_run(run, version=7)
    with pytest.raises(FileNotFoundError, match="not a finished emotf-train run"):
        export_run(tmp_path / "nothing")
    # The console script: prints the version folder; a bad run is a one-line error, status 1.
    assert export_main([str(run), "--out", str(tmp_path / "served")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "served" / "1")
    assert export_main([str(tmp_path / "nothing")]) == 1
    assert "not a finished emotf-train run" in capsys.readouterr().err


def test_mismatched_sampling_config_is_rejected(model, tmp_path):
    with pytest.raises(ValueError, match="do not match the sampling config"):
        export_saved_model(model, SamplingConfig(num_segments=N + 1), tmp_path)


def test_a_sampling_config_other_than_the_model_configs_is_refused(model, tmp_path):
    """The expected shapes come from the model config (`emotf.configs.model_sampling`)."""
    with pytest.raises(ValueError, match="do not match the model config's.*'num_segments'"):
        export_saved_model(
            model, SamplingConfig(num_segments=N + 1), tmp_path, model_config=TINY.to_dict()
        )
    assert not list(tmp_path.iterdir())  # refused before anything is written
