"""Convert a trained model to LiteRT (TensorFlow Lite): `emotf-export RUN --format litert`.

    export_litert(model, sampling_config, out_dir, quantize=...) -> out_dir/emotf.tflite
    export_run_litert(RUN, out_dir=None, quantize="none")        -> RUN/litert/emotf.tflite

The flatbuffer is the per-segment model of one clip (inputs and outputs: `emotf.serving.litert`);
`emotf.tflite.json` beside it is the SavedModel's metadata plus `format` and `quantize`.

Why the weights are frozen first: a Keras 3 model's weights are resource variables. Converted
as they are (`from_concrete_functions` with the model as the trackable object), they become
VAR_HANDLE / READ_VARIABLE ops, and a plain interpreter never initialises those variables:
the XNNPACK delegate reads uninitialised memory (the NaN for every class of the first attempt,
DESIGN.md 2026-12) and the reference kernels refuse ("read_variable.cc: variable != nullptr").
`convert_variables_to_constants_v2` folds the weights into constants first;
`emotf.serving.litert.check_builtin_ops` then refuses any variable op, custom op or Select TF (Flex)
op in the result.

Quantization (`quantize`):
    none     float32 (equals the Keras model within 1e-4)
    float16  float16 weights, float32 compute
    dynamic  int8 weights, activations quantized on the fly (dynamic range)
    int8     int8 weights and activations of the network, calibrated on a representative
             dataset of sampled segments from the run's records; the log-mel spectrogram stays
             float32 (quantized too, it moved held-out probabilities by up to 0.33); inputs
             and outputs keep their types (uint8 frames, float32 audio and probabilities).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import uuid

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

import emotf
from emotf import pipeline
from emotf.configs import SamplingConfig
from emotf.corpora.info import CORPUS_KEY, CorpusInfo
from emotf.corpora.splits import ACTORS
from emotf.serving.export import audio_input, check_classes, finished_run, run_corpus
from emotf.serving.litert import (
    INPUT_AUDIO,
    INPUT_FRAMES,
    LITERT_FILE,
    LITERT_FORMAT,
    OUTPUT,
    QUANTIZE_MODES,
    check_builtin_ops,
    metadata_file,
    read_litert_metadata,
)
from emotf.serving.metadata import build_settings, records_corpus
from emotf.storage import as_path, write_json

REPRESENTATIVE_CLIPS = 64


def segment_function(model: keras.Model, config: SamplingConfig):
    """The per-segment model of one clip as a concrete function with fixed input specs:
    frames uint8 [N, S, S, 3], audio float32 [N, L] -> {"segment_probabilities": float32
    [N, C]} (the Keras model on a batch of one clip; shared or independent branch weights)."""
    if audio_input(model) != "audio":
        raise ValueError(
            "LiteRT export needs a model whose input is raw audio windows (the "
            "log_mel layer inside). Received: a model with spectrogram inputs"
        )
    n, size, length = config.num_segments, config.frame_size, config.window_length

    @tf.function(
        input_signature=[
            tf.TensorSpec([n, size, size, 3], tf.uint8, name=INPUT_FRAMES),
            tf.TensorSpec([n, length], tf.float32, name=INPUT_AUDIO),
        ]
    )
    def segments(frames, audio):
        out = model({"frames": frames[None], "audio": audio[None]}, training=False)
        return {OUTPUT: tf.cast(out["segment_probabilities"][0], tf.float32)}

    return segments.get_concrete_function()


def representative_segments(
    records, folds, config: SamplingConfig, count: int = REPRESENTATIVE_CLIPS
):
    """A representative dataset for int8 calibration: a callable yielding
    {"frames": uint8 [N, S, S, 3], "audio": float32 [N, L]} for the first `count` clips of
    `records` in `folds` (evaluation-mode sampling, `emotf.pipeline.make_dataset`)."""

    def generate():
        dataset = pipeline.make_dataset(records, folds, training=False, config=config, batch_size=1)
        for features, _ in dataset.take(count):
            yield {
                INPUT_FRAMES: features["frames"][0].numpy(),
                INPUT_AUDIO: features["audio"][0].numpy(),
            }

    return generate


def convert(
    model: keras.Model, config: SamplingConfig, quantize: str = "none", representative=None
) -> bytes:
    """The `.tflite` flatbuffer of `segment_function(model, config)`, builtin ops only.

    Args:
        quantize: one of `emotf.serving.litert.QUANTIZE_MODES`.
        representative: for int8, a callable yielding input dicts (`representative_segments`).

    Raises:
        ValueError: an unknown `quantize`, or int8 without a representative dataset.
        NotBuiltinError: the result holds a non-builtin or variable op (`check_builtin_ops`).
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}. Received: {quantize!r}")
    if quantize == "int8" and representative is None:
        raise ValueError("quantize='int8' needs a representative dataset (the run's records)")
    # The fix for the NaN: weights as constants, never as uninitialised variables.
    function = segment_function(model, config)
    frozen = convert_variables_to_constants_v2(function)

    # Freezing drops the output's name: call the frozen graph under the original signature.
    @tf.function(input_signature=function.structured_input_signature[0])
    def named(frames, audio):
        return {OUTPUT: frozen(frames, audio)[0]}

    def converter(optimize: bool):
        result = tf.lite.TFLiteConverter.from_concrete_functions(
            [named.get_concrete_function()], tf.Module()
        )
        result.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if optimize:
            result.optimizations = [tf.lite.Optimize.DEFAULT]
        return result

    with contextlib.redirect_stdout(io.StringIO()):
        if quantize == "none":
            flatbuffer = converter(False).convert()
        elif quantize == "float16":
            half = converter(True)
            half.target_spec.supported_types = [tf.float16]
            flatbuffer = half.convert()
        elif quantize == "dynamic":
            flatbuffer = converter(True).convert()
        else:
            flatbuffer = _int8_float_spectrogram(converter, representative)
    check_builtin_ops(flatbuffer)
    return flatbuffer


# Tensors of the model's log_mel layer (emotf.model.LogMelSpectrogram), by their graph names.
_LOG_MEL_TENSOR = re.compile(r"(^|/)log_mel(_\d+)?/")


def _int8_float_spectrogram(converter, representative) -> bytes:
    """int8 with the log-mel spectrogram kept float32 (`QuantizationDebugOptions`'s
    denylisted nodes): quantizing the STFT magnitudes, log and per-window normalisation too
    moved held-out clip probabilities by up to 0.33 (tools/bench_export.py, docs/litert.md);
    with the spectrogram in float32, by 0.006."""
    from ai_edge_litert.interpreter import Interpreter  # the optional `emotf[litert]` extra

    names = [
        t["name"]
        for t in Interpreter(model_content=converter(False).convert()).get_tensor_details()
    ]
    spectrogram = [name for name in names if _LOG_MEL_TENSOR.search(name)]
    int8 = converter(True)
    int8.representative_dataset = representative
    if not spectrogram:  # a video-only model
        return int8.convert()
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=spectrogram)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=int8, debug_dataset=representative, debug_options=options
    )
    return debugger.get_nondebug_quantized_model()


def litert_metadata(
    sampling_config: SamplingConfig,
    quantize: str,
    *,
    model_config=None,
    records_dir=None,
    extra_metadata=None,
    ops=(),
    corpus: CorpusInfo | None = None,
) -> dict:
    """`emotf.tflite.json`: the keys of the SavedModel's `assets.extra/emotf.json`
    (`emotf.serving.export.export_saved_model`) with `format: "litert"`, `quantize`, the
    flatbuffer's inputs / output and its ops. `corpus`: the model's classes (default: the
    records' manifest's corpus, CREMA-D without one)."""
    corpus = corpus if corpus is not None else records_corpus(records_dir)
    n, size = sampling_config.num_segments, sampling_config.frame_size
    build = {
        **build_settings(records_dir),
        **{
            k: v
            for k, v in (extra_metadata or {}).items()
            if k in ("face_tracker", "min_clip_seconds", "clip_settings", "timeline")
        },
    }
    return {
        "format": LITERT_FORMAT,
        "quantize": quantize,
        "class_codes": list(corpus.class_codes),
        "class_names": list(corpus.class_names),
        CORPUS_KEY: corpus.to_dict(),
        "sampling_config": sampling_config.to_dict(),
        "model_config": model_config or {},
        "inputs": {
            INPUT_FRAMES: {"dtype": "uint8", "shape": [n, size, size, 3]},
            INPUT_AUDIO: {"dtype": "float32", "shape": [n, sampling_config.window_length]},
        },
        "outputs": {OUTPUT: {"dtype": "float32", "shape": [n, corpus.num_classes]}},
        "ops": list(ops),
        "emotf_version": emotf.__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        **build,
        **(extra_metadata or {}),
    }


def export_litert(
    model: keras.Model,
    sampling_config: SamplingConfig,
    out_dir,
    quantize: str = "none",
    *,
    model_config: dict | None = None,
    extra_metadata: dict | None = None,
    records_dir=None,
    representative=None,
    corpus: CorpusInfo | None = None,
):
    """Write `out_dir/emotf.tflite` and `out_dir/emotf.tflite.json` (each to a temporary name,
    then renamed into place; the model first, so a reader that waits for the metadata sees a
    whole pair). An existing pair is replaced. Returns the `.tflite` path (a StoragePath).

    Args: as `emotf.serving.export.export_saved_model`, plus `quantize` and `representative`
        (`convert`).
    """
    corpus = corpus if corpus is not None else records_corpus(records_dir)
    check_classes(model, corpus)
    flatbuffer = convert(model, sampling_config, quantize, representative)
    metadata = litert_metadata(
        sampling_config,
        quantize,
        model_config=model_config,
        records_dir=records_dir,
        extra_metadata=extra_metadata,
        ops=check_builtin_ops(flatbuffer),
        corpus=corpus,
    )
    out_dir = as_path(out_dir)
    out_dir.mkdir()
    final = out_dir / LITERT_FILE
    tmp = out_dir / f".{LITERT_FILE}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tf.io.gfile.GFile(str(tmp), "wb").write(flatbuffer)
        tf.io.gfile.rename(str(tmp), str(final), overwrite=True)
    finally:
        if tf.io.gfile.exists(str(tmp)):
            tf.io.gfile.remove(str(tmp))
    write_json(metadata_file(final), metadata)
    read_litert_metadata(final)  # what LiteRTModel will check, checked now
    return final


def export_run_litert(
    run_dir, out_dir=None, quantize: str = "none", representative_clips: int = REPRESENTATIVE_CLIPS
):
    """Export a training run folder as LiteRT (its model, config, temperature, records and
    corpus: `emotf.serving.export.run_corpus`).

    Args:
        run_dir: an `emotf-train` run folder.
        out_dir: where `emotf.tflite` goes (default `RUN/litert`).
        quantize: one of `emotf.serving.litert.QUANTIZE_MODES`; int8 calibrates on the first
            `representative_clips` clips of the run's records outside its test fold (a
            clip-level split's test clips are not excluded: they are not a fold).

    Returns:
        The `.tflite` path.
    """
    run = finished_run(run_dir)
    train_config = run.train_config()
    corpus = run_corpus(run, train_config.records)
    model = run.load_model()
    representative = None
    if quantize == "int8":
        if not train_config.records:
            raise ValueError(f"{run.config_path}: names no records: int8 calibration needs them")
        # Calibrate on clips the run may train on: never the actor protocol's test fold.
        test_fold = run.test_fold()
        if test_fold is None and train_config.split == ACTORS:
            test_fold = train_config.fold
        folds = [k for k in range(corpus.num_folds) if k != test_fold]
        representative = representative_segments(
            train_config.records, folds, train_config.sampling, representative_clips
        )
    return export_litert(
        model,
        train_config.sampling,
        out_dir if out_dir is not None else run.path / "litert",
        quantize,
        model_config=train_config.model.to_dict(),
        extra_metadata={
            "run": str(run.path.resolve()),
            "split": train_config.split,
            "fold": train_config.fold if train_config.split == "actors" else None,
            "temperature": run.temperature(),
        },
        records_dir=train_config.records,
        representative=representative,
        corpus=corpus,
    )
