"""Issue 14, storage paths: build -> train one epoch -> export -> load, every file on
TensorFlow's in-memory `ram://` filesystem (what `gs://` gets through the same tf.io.gfile
calls). Only the synthetic media are local (media are decoded from local files)."""

import uuid

import numpy as np
import pytest
import tensorflow as tf

from emotf.cli import build_records, train
from emotf.runs.folder import Run
from emotf.storage import as_path, read_json
from emotf.synthetic.sample import SampleConfig, make_sample
from tests.helpers_cli import TINY_MODEL_FLAGS
from tests.test_export import _serving_inputs

# Three actors: one each in folds 0 (test), 1 (validation) and 2 (training).
SAMPLE = SampleConfig.tiny(num_actors=3, clips_per_actor=2)


@pytest.fixture
def ram_root():
    root = as_path(f"ram://emotf-e2e-{uuid.uuid4().hex[:8]}")
    yield root
    root.rmtree()


def test_build_train_export_load_on_ram(tmp_path, ram_root):
    make_sample(tmp_path / "sample", SAMPLE)
    records, run_dir = ram_root / "records", ram_root / "run"
    assert (
        build_records.main(
            [
                "--data-dir",
                str(tmp_path / "sample"),
                "--out",
                str(records),
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    manifest = read_json(records / "manifest.json")
    assert manifest["clips_written"] == 6 and sorted(manifest["folds"]) == ["0", "1", "2"]

    assert (
        train.main(
            [
                "--records",
                str(records),
                "--fold",
                "0",
                "--out",
                str(run_dir),
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--export",
                "true",
                "--verbose",
                "0",
                *TINY_MODEL_FLAGS,
            ]
        )
        == 0
    )
    run = Run(run_dir)
    metrics = run.read_metrics()
    assert metrics["num_clips"] == 2 and metrics["epochs_run"] == 1
    for path in (run.config_path, run.model_path, run.log_path, run.calibration_path):
        assert path.is_file(), path
    exported = as_path(metrics["saved_model"])
    assert str(exported).startswith(str(run_dir)) and (exported / "saved_model.pb").is_file()
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("*.tfrecord"))

    # The SavedModel loads from ram:// and serves the test fold's clips; a local copy of the
    # same folder serves the same probabilities (the export on ram:// is complete).
    test_shard = next(str(records / e["file"]) for e in manifest["shards"] if e["fold"] == 0)
    inputs = _serving_inputs(test_shard)
    served = tf.saved_model.load(str(exported)).signatures["serving_default"](**inputs)
    probabilities = served["probabilities"].numpy()
    assert probabilities.shape == (2, 6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    local = exported.copy_tree(tmp_path / "export-copy")
    again = tf.saved_model.load(str(local)).signatures["serving_default"](**inputs)
    np.testing.assert_array_equal(again["probabilities"].numpy(), probabilities)
    # The run's Keras model loads from ram:// too (weights only, never code from the file).
    assert run.load_model().count_params() == metrics["parameters"]
