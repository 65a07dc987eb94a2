"""The SavedModel op check: emotf's own exports pass at every configuration, a model whose graph
writes a file is refused naming WriteFile and writes nothing, and the allowlist cannot rot.

Regenerate the allowlist (after a TensorFlow/Keras upgrade or an export change) with

    .venv/bin/python tests/test_graph_ops.py --write
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from emotf.configs import ModelConfig, SamplingConfig
from emotf.configs import model_sampling as run_sampling
from emotf.model import build_model
from emotf.serving import graph_ops
from emotf.serving.export import export_saved_model
from emotf.serving.graph_ops import (
    ALLOWLIST_FILE,
    MAX_SAVED_MODEL_PB_BYTES,
    UntrustedModelError,
    check_saved_model_ops,
    graph_op_sets,
    load_allowlist,
    read_saved_model,
)

N = 2


def _tiny(**fields) -> ModelConfig:
    return ModelConfig(
        **{
            **dict(
                num_segments=N,
                video_stem_width=4,
                video_widths=(8,),
                audio_widths=(4, 8),
                fc_units=8,
            ),
            **fields,
        }
    )


# Every modality, both branch weightings, both normalisations, SpecAugment on and off, one and
# several segments, with and without the hidden layer, a window whose spectrogram is resized,
# a model exported under a mixed-precision policy, and a model whose input is spectrograms
# (saved before the spectrogram moved into the model: the export computes them in-graph):
# together they cover every op the export uses. (model fields, sampling fields, policy)
CONFIGURATIONS = [
    (dict(modalities="both", branch_weights="shared"), {}, None),
    (
        dict(modalities="audio", branch_weights="independent", spec_augment=True),
        dict(normalization="none"),
        None,
    ),
    (dict(modalities="video", branch_weights="independent", fc_units=0), {}, None),
    (
        dict(modalities="both", branch_weights="independent", spec_augment=True, num_segments=1),
        dict(normalization="none", window_seconds=1.0, upper_edge_hertz=7000.0),
        None,
    ),
    (
        dict(modalities="audio", branch_weights="shared", num_segments=1),
        dict(window_seconds=0.5),
        "mixed_float16",
    ),
    (
        dict(modalities="video", branch_weights="shared", spec_augment=True),
        dict(normalization="none"),
        None,
    ),
    ("spectrograms", {}, None),
    ("spectrograms", dict(window_seconds=1.0, normalization="none"), None),
]


@contextlib.contextmanager
def _policy(name):
    if name is None:
        yield
        return
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def _spectrogram_input_model(sampling: SamplingConfig) -> keras.Model:
    """A model of the earlier kind: inputs frames + spectrograms [B, N, T, F, 1]."""
    n, t, f = sampling.num_segments, sampling.time_bins, sampling.freq_bins
    frames = keras.Input(
        (n, sampling.frame_size, sampling.frame_size, 3), dtype="uint8", name="frames"
    )
    spectrograms = keras.Input((n, t, f, 1), name="spectrograms")
    pixels = keras.layers.Reshape((n, -1))(keras.layers.Rescaling(1 / 255)(frames))
    sound = keras.layers.Reshape((n, t * f))(spectrograms)
    joined = keras.layers.Concatenate()([pixels, sound])
    segments = keras.layers.Dense(6, activation="softmax", name="segment_probabilities")(joined)
    mean = keras.layers.GlobalAveragePooling1D(name="probabilities")(segments)
    return keras.Model(
        {"frames": frames, "spectrograms": spectrograms},
        {
            "probabilities": mean,
            "scores": keras.layers.Rescaling(n)(mean),
            "segment_probabilities": segments,
        },
    )


def export_tiny(out_dir, fields, sampling_fields=None, policy=None) -> Path:
    """A tiny emotf export at one configuration (`fields` of `ModelConfig`, or
    "spectrograms" for a model of the earlier kind; `sampling_fields` of `SamplingConfig`)."""
    keras.utils.set_random_seed(0)
    legacy = fields == "spectrograms"
    config = _tiny() if legacy else _tiny(**fields)
    sampling = run_sampling(config, SamplingConfig(**(sampling_fields or {})))
    with _policy(policy):
        model = _spectrogram_input_model(sampling) if legacy else build_model(config, sampling)
    return Path(str(export_saved_model(model, sampling, out_dir)))


def generate_allowlist() -> dict:
    """The ops of emotf's export at every one of `CONFIGURATIONS` (the allowlist's content)."""
    strict, saver = set(), set()
    with tempfile.TemporaryDirectory(prefix="emotf-ops-") as folder:
        for i, (fields, sampling_fields, policy) in enumerate(CONFIGURATIONS):
            saved = export_tiny(Path(folder) / str(i), fields, sampling_fields, policy)
            s, v = graph_op_sets(read_saved_model(saved))
            strict |= s
            saver |= v
    return {
        "about": "Ops of emotf's own SavedModel export (emotf.serving.graph_ops); regenerate with "
        "`python tests/test_graph_ops.py --write`",
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "serving": sorted(strict),
        "saver": sorted(saver),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("export"), dict(modalities="both"))


def test_a_fresh_export_passes_and_uses_only_allowlisted_ops(exported):
    check_saved_model_ops(exported)
    strict, saver = graph_op_sets(read_saved_model(exported))
    allowed = load_allowlist()
    assert strict <= allowed["serving"], sorted(strict - allowed["serving"])
    assert saver <= allowed["saver"], sorted(saver - allowed["saver"])
    assert "RFFT" in strict and ("StatelessWhile" in strict or "While" in strict)


def test_checkpoint_ops_appear_only_in_the_saver(exported):
    strict, saver = graph_op_sets(read_saved_model(exported))
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= saver
    allowed = load_allowlist()
    file_ops = {
        "SaveV2",
        "RestoreV2",
        "MergeV2Checkpoints",
        "WriteFile",
        "ReadFile",
        "MatchingFiles",
        "PyFunc",
        "EagerPyFunc",
        "PyFuncStateless",
        "DeleteFile",
    }
    assert not strict & file_ops and not allowed["serving"] & file_ops


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CONFIGURATIONS)))
def test_every_configuration_passes(tmp_path, index):
    fields, sampling_fields, policy = CONFIGURATIONS[index]
    check_saved_model_ops(export_tiny(tmp_path, fields, sampling_fields, policy))


def test_the_allowlist_file_is_sorted_and_ships_with_the_package():
    data = json.loads((resources.files("emotf") / "data" / ALLOWLIST_FILE).read_text())
    assert data["serving"] == sorted(set(data["serving"]))
    assert data["saver"] == sorted(set(data["saver"]))


def test_an_export_outside_the_allowlist_warns_at_export_time(tmp_path, monkeypatch):
    """A TensorFlow whose export uses an op the list lacks: said at export, in one line."""
    allowed = load_allowlist()
    monkeypatch.setattr(
        graph_ops, "load_allowlist", lambda: {**allowed, "serving": allowed["serving"] - {"RFFT"}}
    )
    with pytest.warns(UserWarning, match=r"uses RFFT, .*--trust-model.*--write") as caught:
        export_tiny(tmp_path, dict(modalities="audio"))
    assert "\n" not in str(caught[0].message)


class _Writer(tf.Module):
    """emotf's serving_default signature, whose graph also writes a file."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.bias = tf.Variable(tf.zeros([6]))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 224, 224, 3], tf.uint8, name="frames"),
            tf.TensorSpec([None], tf.int32, name="num_frames"),
            tf.TensorSpec([None], tf.float32, name="fps"),
            tf.TensorSpec([None, None], tf.float32, name="waveform"),
            tf.TensorSpec([None], tf.int32, name="num_samples"),
            tf.TensorSpec([None], tf.int32, name="sample_rate"),
        ]
    )
    def serve(self, frames, num_frames, fps, waveform, num_samples, sample_rate):
        written = tf.io.write_file(self.target, "pwned")
        with tf.control_dependencies([written]):
            batch = tf.shape(frames)[0]
            probabilities = tf.one_hot(tf.fill([batch], 1), 6) + self.bias
        label = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "scores": probabilities, "label": label}


def craft_writer_model(folder: Path, target: Path, metadata_from: Path | None) -> Path:
    """A SavedModel with emotf's signature (+ a copied `assets.extra/emotf.json`) that writes
    `target` when served."""
    module = _Writer(str(target))
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    if metadata_from is not None:
        (folder / "assets.extra").mkdir()
        shutil.copy(
            metadata_from / "assets.extra" / "emotf.json", folder / "assets.extra" / "emotf.json"
        )
    return folder


def test_a_model_that_writes_a_file_is_refused_naming_writefile(exported, tmp_path):
    target = tmp_path / "written-by-the-model.txt"
    crafted = craft_writer_model(tmp_path / "crafted" / "1", target, exported)
    with pytest.raises(UntrustedModelError) as caught:
        check_saved_model_ops(crafted)
    message = str(caught.value)
    assert "WriteFile (writes files)" in message and str(crafted) in message
    assert "--trust-model" in message and "\n" not in message
    assert not target.exists()
    # What the check prevents: served without it, the model writes its file.
    served = tf.saved_model.load(str(crafted)).signatures["serving_default"]
    served(
        frames=tf.zeros([1, 1, 224, 224, 3], tf.uint8),
        num_frames=tf.constant([1]),
        fps=tf.constant([30.0]),
        waveform=tf.zeros([1, 8000]),
        num_samples=tf.constant([8000]),
        sample_rate=tf.constant([16000]),
    )
    assert target.read_text() == "pwned"


def test_the_op_in_a_nested_function_is_found(tmp_path):
    """A WriteFile hidden in a tf.cond branch inside the signature is still found."""

    class Hidden(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.bool)])
        def serve(self, flag):
            return tf.cond(flag, lambda: tf.io.matching_files("/*"), lambda: tf.constant([""]))

    module = Hidden()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    with pytest.raises(UntrustedModelError, match=r"MatchingFiles \(lists files\)"):
        check_saved_model_ops(tmp_path / "m")


def test_a_writefile_in_the_saver_functions_is_refused_too(exported, tmp_path):
    """Checkpoint ops are allowed in the saver only; any other file op there is refused."""
    saved = read_saved_model(exported)
    for function in saved.meta_graphs[0].graph_def.library.function:
        if "traced_restore" in function.signature.name:
            node = function.node_def.add()
            node.name, node.op = "sneaky", "WriteFile"
    folder = tmp_path / "m"
    shutil.copytree(exported, folder)
    (folder / "saved_model.pb").write_bytes(saved.SerializeToString())
    with pytest.raises(UntrustedModelError, match=r"WriteFile \(writes files\)"):
        check_saved_model_ops(folder)


def test_a_signature_passed_off_as_the_saver_is_checked_strictly(exported, tmp_path):
    """A saver_def naming the serving call as its restore op does not make the serving
    function a saver function (where SaveV2 would be allowed)."""
    saved = read_saved_model(exported)
    graph = saved.meta_graphs[0].graph_def
    serve = next(
        f for f in graph.library.function if f.signature.name.startswith("__inference_serve_")
    )
    node = serve.node_def.add()
    node.name, node.op = "sneaky", "SaveV2"
    meta = saved.meta_graphs[0]
    call = meta.signature_def["serving_default"].outputs["label"].name.split(":")[0]
    meta.saver_def.restore_op_name = call
    folder = tmp_path / "m"
    shutil.copytree(exported, folder)
    (folder / "saved_model.pb").write_bytes(saved.SerializeToString())
    with pytest.raises(UntrustedModelError, match=r"SaveV2 \(writes files\)"):
        check_saved_model_ops(folder)


@pytest.mark.parametrize("content", [b"not a protobuf \xff\xff\xff", None])
def test_a_missing_or_garbled_graph_is_one_line(tmp_path, content):
    if content is not None:
        (tmp_path / "saved_model.pb").write_bytes(content)
    with pytest.raises(UntrustedModelError) as caught:
        check_saved_model_ops(tmp_path)
    assert "saved_model.pb" in str(caught.value) and "\n" not in str(caught.value)


def test_an_oversize_graph_is_refused_before_reading(tmp_path):
    with open(tmp_path / "saved_model.pb", "wb") as f:  # sparse: no disk, no memory
        f.truncate(MAX_SAVED_MODEL_PB_BYTES + 1)
    with pytest.raises(UntrustedModelError, match="cap"):
        check_saved_model_ops(tmp_path)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_graph_ops.py --write")
    path = Path(__file__).resolve().parents[1] / "emotf" / "data" / ALLOWLIST_FILE
    path.write_text(json.dumps(generate_allowlist(), indent=1) + "\n")
    print(path)
