"""Run an exported LiteRT (TensorFlow Lite) model: `LiteRTModel`, the runner `emotf-predict`
uses for `--model X.tflite`.

    emotf-export RUN --format litert  ->  DIR/emotf.tflite + DIR/emotf.tflite.json
                                          (`emotf.serving.litert_convert`)

The flatbuffer is the *per-segment* model of one clip, N = `sampling_config.num_segments`:

    frames   uint8   [N, S, S, 3]   the sampled face crops (S = frame_size, 224)
    audio    float32 [N, L]         the audio windows in [-1, 1] (L = window_length, 20480)
    ->
    segment_probabilities float32 [N, C]   the per-segment softmaxes

The log-mel spectrogram is inside (the model's `log_mel` layer, builtin ops RFFT2D, REAL,
IMAG, LOG, ...). The clip's probabilities are the mean of the segment softmaxes, as in the
SavedModel. The host-side sampling (the middle frame of each segment, the audio window centred
on it, zero padding) is `emotf.sampling.sample_clip(..., training=False)`, the function the
tf.data pipeline and the SavedModel's `serving_default` run: one code path.

`emotf.tflite.json` beside the model holds the SavedModel's `emotf.json` metadata (class
codes and names, sampling config with N, window length, sample rate and frame size, clip
settings, tracker, timeline, temperature) plus `format: "litert"` and `quantize`; it is read
with a `MAX_METADATA_BYTES` cap and checked by `emotf.serving.metadata.check_metadata`.
"""

from __future__ import annotations

import math

import numpy as np

from emotf.configs import SamplingConfig
from emotf.serving.metadata import (
    DEFAULT_MIN_CLIP_SECONDS,
    MAX_METADATA_BYTES,
    SERVING_FPS_RANGE,
    MetadataError,
    check_metadata,
    metadata_corpus,
    min_clip_samples,
)
from emotf.storage import as_path, read_json

LITERT_FILE = "emotf.tflite"
LITERT_FORMAT = "litert"
QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
# Signature names inside the flatbuffer (`emotf.serving.litert_convert.segment_function`).
INPUT_FRAMES, INPUT_AUDIO, OUTPUT = "frames", "audio", "segment_probabilities"
MISSING_RUNTIME = 'emotf-predict: --model {path} needs ai-edge-litert: pip install "emotf[litert]"'


def metadata_file(model_path) -> str:
    """`X.tflite.json`, the metadata beside `X.tflite`."""
    return str(model_path) + ".json"


def read_litert_metadata(model_path) -> dict:
    """The checked metadata of a `.tflite` export (`metadata_file`), read with a
    `MAX_METADATA_BYTES` cap.

    Raises:
        FileNotFoundError: no metadata file beside the model.
        MetadataError: malformed, out of range, or not a LiteRT export's metadata.
    """
    path = metadata_file(model_path)
    metadata = check_metadata(read_json(path, expect=None, max_bytes=MAX_METADATA_BYTES), path)
    if metadata.get("format") != LITERT_FORMAT:
        raise MetadataError(
            f"{path}: not a LiteRT export's metadata. Received: format={metadata.get('format')!r}"
        )
    return metadata


# Ops an emotf flatbuffer must not hold: resource variables (never initialised by a plain
# interpreter: the NaN of the first conversion) and anything that is not a builtin kernel
# (custom ops; Select TF ops are custom ops named Flex...).
FORBIDDEN_BUILTINS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


class NotBuiltinError(ValueError):
    """A flatbuffer with a custom, Select TF (Flex) or variable op."""


def flatbuffer_ops(flatbuffer: bytes) -> list[str]:
    """The sorted op names of a `.tflite` flatbuffer: builtin names (CONV_2D, RFFT2D, ...),
    custom ops (Select TF ops are custom ops named Flex...) as `custom:<name>`."""
    try:
        from ai_edge_litert import schema_py_generated as schema  # the optional `emotf[litert]`
    except ImportError:
        # Converting without the runtime: TensorFlow's copy of the schema (lazy, see _sampler).
        from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    ops = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.add(f"custom:{code.CustomCode().decode()}")
        else:
            ops.add(names.get(builtin, str(builtin)))
    return sorted(ops)


def check_builtin_ops(flatbuffer: bytes, where: str = "the converted model") -> list[str]:
    """The flatbuffer's ops (`flatbuffer_ops`), refusing custom, Flex and variable ops.

    Raises:
        NotBuiltinError: naming the ops.
    """
    ops = flatbuffer_ops(flatbuffer)
    bad = [op for op in ops if op.startswith("custom:") or op in FORBIDDEN_BUILTINS]
    if bad:
        raise NotBuiltinError(
            f"{where} holds ops that are not builtin kernels or are "
            f"variables: {bad}. Received ops: {ops}"
        )
    return ops


def _interpreter_class(path):
    try:
        from ai_edge_litert.interpreter import Interpreter  # the optional `emotf[litert]` extra
    except ImportError:
        raise ImportError(MISSING_RUNTIME.format(path=path)) from None
    return Interpreter


class LiteRTModel:
    """An `emotf.tflite` export and its metadata, answering like `emotf.serving.predict.Predictor`'s
    SavedModel (float32 export: within 1e-4 of the Keras model; tests/test_litert.py).

    Args:
        path: the `.tflite` file, local or any `tf.io.gfile` URL (its metadata is
            `path + ".json"`); read with `emotf.storage`'s 1 GiB cap.
        num_threads: interpreter threads (None: LiteRT's default).

    Attributes:
        metadata: the checked metadata dict; `corpus` (`CorpusInfo`), `class_codes`,
            `class_names`: its classes, in the model's output order.
        sampling: the `SamplingConfig` the model was trained with (N, window length, rate).

    Raises:
        ImportError: ai-edge-litert is not installed (one line saying how to install it).
        FileNotFoundError, MetadataError: the model or its metadata is missing or malformed.
        NotBuiltinError: the flatbuffer holds a custom, Select TF (Flex) or variable op.
    """

    def __init__(self, path, num_threads: int | None = None):
        interpreter_class = _interpreter_class(path)
        self.path = str(path)
        if not as_path(self.path).is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        self.metadata = read_litert_metadata(self.path)
        self.corpus = metadata_corpus(self.metadata, metadata_file(self.path))
        self.class_codes = list(self.corpus.class_codes)
        self.class_names = list(self.corpus.class_names)
        self.sampling = SamplingConfig.from_dict(self.metadata["sampling_config"])
        min_seconds = self.metadata.get("min_clip_seconds")
        self.min_samples = min_clip_samples(
            DEFAULT_MIN_CLIP_SECONDS if min_seconds is None else min_seconds,
            self.sampling.sample_rate,
        )
        # Read through emotf.storage (local, gs://, ram://; size-capped) rather than by path.
        self._flatbuffer = as_path(self.path).read_bytes()
        check_builtin_ops(self._flatbuffer, self.path)  # what emotf-export writes, nothing else
        self._interpreter = interpreter_class(
            model_content=self._flatbuffer, num_threads=num_threads
        )
        self._runner = self._interpreter.get_signature_runner()
        n, size, length = (
            self.sampling.num_segments,
            self.sampling.frame_size,
            self.sampling.window_length,
        )
        want = {
            INPUT_FRAMES: ((n, size, size, 3), np.uint8),
            INPUT_AUDIO: ((n, length), np.float32),
        }
        got = {
            name: (tuple(int(d) for d in detail["shape"]), detail["dtype"])
            for name, detail in self._runner.get_input_details().items()
        }
        if got != want:
            raise MetadataError(
                f"{self.path}: the model's inputs do not match its metadata. "
                f"Received: {got}; the metadata gives {want}"
            )
        output = tuple(int(d) for d in self._runner.get_output_details()[OUTPUT]["shape"])
        if output != (n, len(self.class_codes)):
            raise MetadataError(
                f"{self.path}: the model's output does not match its metadata's "
                f"{len(self.class_codes)} classes. Received: {OUTPUT} shape {list(output)}; the "
                f"metadata gives {[n, len(self.class_codes)]}"
            )
        self._sample = None

    def _sampler(self):
        """`emotf.sampling.sample_clip(..., training=False)` as a tf.function (traced once)."""
        if self._sample is None:
            # TensorFlow (emotf.sampling imports it) only when a clip is sampled: emotf-export
            # imports this module for its --help, which stays fast without TensorFlow.
            import tensorflow as tf

            from emotf.sampling import sample_clip  # (imports TensorFlow: lazy, as above)

            config = self.sampling

            @tf.function(reduce_retracing=True)
            def sample(frames, num_frames, fps, waveform, num_samples, sample_rate):
                out = sample_clip(
                    frames,
                    num_frames,
                    fps,
                    waveform,
                    num_samples,
                    sample_rate,
                    config,
                    training=False,
                )
                return out["frames"], out["audio"]

            self._sample = sample
        return self._sample

    def _check_clip(self, i: int, clip: dict) -> None:
        """The bounds the SavedModel's `serving_default` enforces in its graph."""
        config, frames = self.sampling, clip["frames"]
        size = config.frame_size
        if (
            frames.dtype != np.uint8
            or frames.ndim != 4
            or frames.shape[1:] != (size, size, 3)
            or len(frames) < 1
        ):
            raise ValueError(
                f"clip {i}: frames must be uint8 [T>=1, {size}, {size}, 3]. "
                f"Received: {frames.dtype} {frames.shape}"
            )
        low, high = SERVING_FPS_RANGE
        fps = float(np.float32(clip["fps"]))
        if not math.isfinite(fps) or not low <= fps <= high:
            raise ValueError(
                f"clip {i}: fps must be in [{low:g}, {high:g}] frames per second. "
                f"Received: fps={clip['fps']!r}"
            )
        if int(clip["sample_rate"]) != config.sample_rate:
            raise ValueError(
                f"clip {i}: sample_rate must be {config.sample_rate} (the sample "
                f"rate the model was trained at). Received: {clip['sample_rate']}"
            )
        if len(clip["pcm16"]) < self.min_samples:
            raise ValueError(
                f"clip {i}: num_samples must be >= {self.min_samples} (the "
                f"shortest clip the model was built for). Received: "
                f"{len(clip['pcm16'])}"
            )

    def run_model(self, clips: list[dict]) -> list[dict]:
        """Probabilities, segment probabilities and label per clip.

        Args:
            clips: {"frames": uint8 [T, S, S, 3], "fps": float, "pcm16": int16 [samples],
                "sample_rate": int} each.

        Returns:
            {"label": int, "probabilities": float64 [C] (mean of the segment softmaxes),
             "segment_probabilities": float32 [N, C]} per clip, like `Predictor.run_model`.
        """
        import tensorflow as tf  # lazy: see _sampler

        sample = self._sampler()
        results = []
        for i, clip in enumerate(clips):
            self._check_clip(i, clip)
            pcm = np.asarray(clip["pcm16"])
            # The SavedModel's inputs, as emotf.serving.predict.pad_batch builds them: float32 fps,
            # pcm16 / 32768 as float32 (emotf.records.parse_example).
            frames, audio = sample(
                tf.constant(clip["frames"]),
                tf.constant(len(clip["frames"]), tf.int32),
                tf.constant(clip["fps"], tf.float32),
                tf.constant(pcm.astype(np.float32) / 32768.0),
                tf.constant(len(pcm), tf.int32),
                tf.constant(clip["sample_rate"], tf.int32),
            )
            out = self._runner(**{INPUT_FRAMES: frames.numpy(), INPUT_AUDIO: audio.numpy()})
            segments = np.asarray(out[OUTPUT], np.float32)
            probabilities = segments.mean(axis=0, dtype=np.float32)
            results.append(
                {
                    "label": int(np.argmax(probabilities)),
                    "probabilities": probabilities.astype(np.float64),
                    "segment_probabilities": segments,
                }
            )
        return results
