"""SavedModel export with the evaluation-mode sampling and spectrograms inside the graph.

    export_saved_model(model, sampling_config, out_dir)   -> out_dir/<version>/
    export_run(RUN)                                        -> RUN/export/<version>/

The layout is TensorFlow Serving's: `out_dir/<version>/saved_model.pb` + `variables/`, plus
`assets.extra/emotf.json` (class codes and names, the corpus, sampling and model configs,
emotf/TF versions). The classes are the run's corpus (`emotf.corpora.info.CorpusInfo`: its
`metrics.json`, else its records' manifest, else CREMA-D for runs older than corpora). A
version is written to a hidden temporary folder and renamed into place, so a server watching
`out_dir` never sees half a model. `out_dir` may be on any filesystem `tf.io.gfile` knows
(`gs://bucket/models/emotf`, `ram://`; `emotf.storage`): there, where folders cannot be
renamed, the version is written in place, the metadata first and `saved_model.pb` last.

Signatures (see docs/serving.md; `saved_model_cli show --dir out_dir/1 --all` lists them):

`serving_default` - a padded batch of raw clips:
    frames         uint8   [B, T, S, S, 3]  face crops (S = frame_size, 224), padded in T
    num_frames     int32   [B]              valid frames per clip (>= 1)
    fps            float32 [B]              frame rate per clip, in [1, 1000]
                                            (`serving_metadata.SERVING_FPS_RANGE`)
    waveform       float32 [B, L]           mono audio in [-1, 1], padded in L
    num_samples    int32   [B]              valid samples per clip, at least the shortest clip
                                            the build accepts (min_clip_seconds x rate: 8000)
    sample_rate    int32   [B]              must equal the model's rate (16000)
  Inputs outside these bounds fail with InvalidArgumentError naming the input and showing the
  values received (in-graph Asserts: TF Serving enforces them too).
  runs `emotf.sampling.sample_clip(..., training=False)` on every clip (the very function the
  tf.data pipeline uses: middle frame of each of the N segments, centred audio window) and
  then the Keras model, whose `log_mel` layer computes the log-mel spectrograms (the same
  layer as in training). The model in the graph is its inference twin, each BatchNorm folded
  into the conv before it (`emotf.serving.folding`: the same results up to float32 rounding,
  ~11 % less CPU time per call; `fold_batchnorm=False` exports the layers as they are).
`predict_segments` - already-sampled segments: frames uint8 [B, N, S, S, 3] and audio
  float32 [B, N, L] windows (what `emotf.pipeline.make_dataset` yields; L = window_length).
  A model saved before the spectrogram moved into the model (inputs frames + spectrograms)
  gets `spectrograms` float32 [B, N, time_bins, freq_bins, 1] here instead, and its
  `serving_default` computes them in-graph with `emotf.sampling.spectrogram`.
Both return: probabilities float32 [B, C] (mean of the segment softmaxes), scores float32
  [B, C] (their sum), segment_probabilities float32 [B, N, C], label int64 [B], label_code
  string [B] (the class code: ANG, ... for CREMA-D), label_name string [B] (anger, ...).
`metadata` - no inputs: class_codes string [C], class_names string [C], corpus (the
  `CorpusInfo.to_dict()` JSON), sampling_config, model_config, face_tracker (the records'
  FaceTrackerConfig, "{}" when exported without records), min_clip_seconds and
  emotf_version (JSON / plain strings).

Only core TensorFlow ops end up in the graph (no tensorflow-io, no py_function): the tests
check the op list, and every export is checked against the allowlist `emotf-predict` enforces
(`emotf.serving.graph_ops`, SECURITY.md), with a one-line warning when this TensorFlow's export
uses an op the list lacks.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
import warnings
from collections.abc import Mapping

import keras
import tensorflow as tf

import emotf
from emotf.configs import SAMPLING_SHAPES, ModelConfig, SamplingConfig, model_sampling
from emotf.corpora.info import CORPUS_KEY, CREMAD_INFO, CorpusInfo, CorpusInfoError
from emotf.runs.folder import Run
from emotf.sampling import SPECTROGRAM_FIELDS, sample_clip, spectrogram
from emotf.serving.folding import fold_batch_norm, foldable_pairs
from emotf.serving.graph_ops import UntrustedModelError, check_saved_model_ops
from emotf.serving.metadata import (
    DEFAULT_MIN_CLIP_SECONDS,
    MAX_METADATA_BYTES,
    METADATA_FILE,
    SERVING_FPS_RANGE,
    build_settings,
    metadata_path,
    min_clip_samples,
    model_versions,
    records_corpus,
)
from emotf.storage import StoragePath, as_path, read_json, write_json

# The variable collection of a folded export that holds the trained model's variables.
TRAINING_VARIABLES = "training_variables"


def read_metadata(saved_model_dir) -> dict:
    """The `assets.extra/emotf.json` of an exported model (resolves version folders), read
    with a `MAX_METADATA_BYTES` cap; its values are checked by
    `emotf.serving.metadata.check_metadata`."""
    return read_json(metadata_path(saved_model_dir), expect=None, max_bytes=MAX_METADATA_BYTES)


def audio_input(model: keras.Model) -> str:
    """ "audio" (raw windows [B, N, L]; the model computes the spectrograms) or "spectrograms"
    (a model saved before that change: [B, N, T, F, 1])."""
    names = set(model.input) if isinstance(model.input, dict) else set()
    return "spectrograms" if "spectrograms" in names else "audio"


def run_corpus(run: Run, records_dir=None) -> CorpusInfo:
    """The corpus a run was trained on: its `metrics.json`'s `corpus` block, else its records'
    manifest's (`records_dir`), else CREMA-D (runs and records older than corpora).

    Raises:
        ValueError: a malformed `corpus` block (naming the file).
    """
    if run.finished:
        metrics = run.read_metrics()
        if isinstance(metrics, dict) and metrics.get(CORPUS_KEY) is not None:
            try:
                return CorpusInfo.of(metrics)
            except CorpusInfoError as error:
                raise ValueError(f"{run.metrics_path}: {error}") from None
    return records_corpus(records_dir)


def check_classes(model: keras.Model, corpus: CorpusInfo) -> None:
    """The model's output width must be the corpus's number of classes (one line otherwise)."""
    num_classes = int(model.output["probabilities"].shape[-1])
    if num_classes != corpus.num_classes:
        raise ValueError(
            f"the model has {num_classes} classes but the corpus {corpus.name!r} has "
            f"{corpus.num_classes}. Received: class_codes={list(corpus.class_codes)}"
        )


def _check_model(
    model: keras.Model, config: SamplingConfig, model_config: ModelConfig | Mapping | None = None
) -> None:
    if model_config is not None:
        # The shapes the model config gives its inputs (`emotf.configs.model_sampling`, the
        # one derivation) must be the exported sampling config's.
        built: ModelConfig = (
            model_config
            if isinstance(model_config, ModelConfig)
            else ModelConfig.from_dict(model_config)
        )
        expected = model_sampling(built, config)
        differ = {
            k: (getattr(config, k), getattr(expected, k))
            for k in SAMPLING_SHAPES
            if getattr(config, k) != getattr(expected, k)
        }
        if differ:
            raise ValueError(
                "the sampling config's shapes do not match the model config's. Received "
                f"(sampling config, model config): {differ}"
            )
    inputs = model.input if isinstance(model.input, dict) else {}
    kind = audio_input(model)
    shapes = {k: tuple(inputs[k].shape) if k in inputs else None for k in ("frames", kind)}
    want = {
        "frames": (None, config.num_segments, config.frame_size, config.frame_size, 3),
        "audio": (None, config.num_segments, config.window_length),
        "spectrograms": (None, config.num_segments, config.time_bins, config.freq_bins, 1),
    }
    want = {k: want[k] for k in shapes}
    if shapes != want:
        raise ValueError(
            "the model's inputs do not match the sampling config. Received: model inputs "
            f"{shapes}; sampling config gives {want}"
        )
    # The model's spectrogram layer must compute what the run trained with: the exported
    # config's window length, STFT, mel and normalisation settings.
    names = {layer.name for layer in model.layers}
    if "log_mel" in names:
        trained = model.get_layer("log_mel").sampling
        differ = {
            k: (getattr(trained, k), getattr(config, k))
            for k in SPECTROGRAM_FIELDS
            if getattr(trained, k) != getattr(config, k)
        }
        if differ:
            raise ValueError(
                "the model's log_mel layer was built for other spectrogram settings than the "
                f"exported sampling config. Received (model, export): {differ}"
            )


def _same_batch(first, other, first_name: str, other_name: str):
    return tf.debugging.assert_equal(
        tf.shape(other)[0],
        tf.shape(first)[0],
        message=f"batch size of {other_name} differs from that of {first_name}",
    )


def _assert_all(condition, message: str, value):
    """One Assert whose error names the input and shows the values received."""
    return tf.debugging.Assert(
        tf.reduce_all(condition), [message + ". Received:", value], summarize=16
    )


def strict_clip_checks(
    frames,
    num_frames,
    fps,
    waveform,
    num_samples,
    sample_rate,
    config: SamplingConfig,
    min_samples: int,
) -> list:
    """Run-time refusals of `serving_default` inputs, each naming the input and showing the
    values received: every input's batch size equals `frames`'; `fps` finite and within
    `SERVING_FPS_RANGE`; `num_frames` >= 1; `num_samples` >= `min_samples` (the shortest clip
    the records' build accepts, `serving_metadata.min_clip_samples`); `sample_rate` equal to
    `config.sample_rate`; `waveform` finite.
    Core ops only: Assert, CheckNumerics, IsFinite, comparisons (the allowlist of
    `emotf.serving.graph_ops`). Ranks are checked by `tf.ensure_shape` in the endpoints (a signature
    of a loaded SavedModel accepts a tensor of another rank, and grappler folds an Assert on
    the rank into a constant; EnsureShape names the input)."""
    named = {
        "num_frames": num_frames,
        "fps": fps,
        "waveform": waveform,
        "num_samples": num_samples,
        "sample_rate": sample_rate,
    }
    checks = [_same_batch(frames, value, "frames", name) for name, value in named.items()]
    low, high = SERVING_FPS_RANGE
    finite_fps = tf.debugging.assert_equal(
        tf.reduce_all(tf.math.is_finite(fps)), True, message="fps must be finite (no NaN or inf)"
    )
    with tf.control_dependencies([finite_fps]):  # a NaN is named as such, not as out of range
        fps_in_range = _assert_all(
            (fps >= low) & (fps <= high),
            f"fps must be in [{low:g}, {high:g}] frames per second",
            fps,
        )
    checks += [
        finite_fps,
        fps_in_range,
        _assert_all(
            num_frames >= 1, "num_frames must be >= 1 (a clip needs at least one frame)", num_frames
        ),
        _assert_all(
            num_samples >= min_samples,
            f"num_samples must be >= {min_samples} (the shortest clip the model was built for)",
            num_samples,
        ),
        _assert_all(
            tf.equal(sample_rate, config.sample_rate),
            f"sample_rate must be {config.sample_rate} (the sample rate the model was trained at)",
            sample_rate,
        ),
        tf.debugging.assert_all_finite(waveform, "waveform must be finite (no NaN or inf)"),
    ]
    return checks


def _outputs(model: keras.Model, frames, audio, codes, names) -> dict:
    out = model({"frames": frames, audio_input(model): audio}, training=False)
    probabilities = tf.cast(out["probabilities"], tf.float32)
    label = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return {
        "probabilities": probabilities,
        "scores": tf.cast(out["scores"], tf.float32),
        "segment_probabilities": tf.cast(out["segment_probabilities"], tf.float32),
        "label": label,
        "label_code": tf.gather(codes, label),
        "label_name": tf.gather(names, label),
    }


def build_archive(
    model: keras.Model,
    sampling_config: SamplingConfig,
    corpus: CorpusInfo = CREMAD_INFO,
    model_config: dict | None = None,
    build: dict | None = None,
    fold_batchnorm: bool = True,
) -> keras.export.ExportArchive:
    """The `ExportArchive` with the `serving_default`, `predict_segments` and `metadata`
    endpoints (not yet written; `export_saved_model` writes it). `corpus`: the classes, in
    the model's output order; `build`: `build_settings()` of the training records (face
    tracker config, minimum clip length); `fold_batchnorm`: serve the inference twin with each
    BatchNormalization folded into its convolution (`emotf.serving.folding`; the same results
    up to float32 rounding, ~20 % less time per call on a CPU)."""
    config = sampling_config
    _check_model(model, config, model_config or None)
    check_classes(model, corpus)
    trained = model
    model = fold_batch_norm(model) if fold_batchnorm else model
    n, size = config.num_segments, config.frame_size
    legacy = audio_input(model) == "spectrograms"
    audio_shape = (config.time_bins, config.freq_bins, 1) if legacy else (config.window_length,)
    codes_list, names_list = list(corpus.class_codes), list(corpus.class_names)
    corpus_json = json.dumps(corpus.to_dict(), sort_keys=True)
    sampling_json = json.dumps(config.to_dict(), sort_keys=True)
    model_json = json.dumps(model_config or {}, sort_keys=True)
    build = build or {}
    tracker_json = json.dumps(build.get("face_tracker", {}), sort_keys=True)
    min_clip_seconds = float(build.get("min_clip_seconds", DEFAULT_MIN_CLIP_SECONDS))
    min_samples = min_clip_samples(min_clip_seconds, config.sample_rate)

    archive = keras.export.ExportArchive()
    archive.track(model)
    if model is not trained:
        # The trained layers' own variables too (BatchNorm unfolded), in the model's order:
        # what `emotf-train --init-from EXPORT` loads (emotf.training.finetune).
        archive.add_variable_collection(TRAINING_VARIABLES, list(trained.variables))

    def serve(frames, num_frames, fps, waveform, num_samples, sample_rate):
        # A loaded signature does not check ranks against its TensorSpecs; EnsureShape does,
        # at run time, naming the input.
        frames = tf.ensure_shape(tf.identity(frames, name="frames"), [None, None, size, size, 3])
        num_frames, fps, num_samples, sample_rate = (
            tf.ensure_shape(tf.identity(x, name=name), [None])
            for x, name in (
                (num_frames, "num_frames"),
                (fps, "fps"),
                (num_samples, "num_samples"),
                (sample_rate, "sample_rate"),
            )
        )
        waveform = tf.ensure_shape(tf.identity(waveform, name="waveform"), [None, None])
        codes, names = tf.constant(codes_list), tf.constant(names_list)
        t, s = tf.shape(frames)[1], tf.shape(waveform)[1]
        checks = [
            tf.debugging.assert_less_equal(
                num_frames, t, message="num_frames exceeds the padded frames axis"
            ),
            tf.debugging.assert_less_equal(
                num_samples, s, message="num_samples exceeds the padded waveform axis"
            ),
            *strict_clip_checks(
                frames, num_frames, fps, waveform, num_samples, sample_rate, config, min_samples
            ),
        ]
        with tf.control_dependencies(checks):
            frames, fps, waveform = tf.identity(frames), tf.identity(fps), tf.identity(waveform)

        def one_clip(i):
            # Index the batch inside the loop (map_fn over the tensors themselves would first
            # copy the whole padded frames batch into a TensorList: ~2x slower at batch 16).
            sampled = sample_clip(
                frames[i],
                num_frames[i],
                fps[i],
                waveform[i],
                num_samples[i],
                sample_rate[i],
                config,
                training=False,
            )
            audio = spectrogram(sampled["audio"], config) if legacy else sampled["audio"]
            return sampled["frames"], audio

        seg_frames, seg_audio = tf.map_fn(
            one_clip,
            tf.range(tf.shape(frames)[0]),
            fn_output_signature=(
                tf.TensorSpec([n, size, size, 3], tf.uint8),
                tf.TensorSpec([n, *audio_shape], tf.float32),
            ),
        )
        return _outputs(model, seg_frames, seg_audio, codes, names)

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[
            tf.TensorSpec([None, None, size, size, 3], tf.uint8, name="frames"),
            tf.TensorSpec([None], tf.int32, name="num_frames"),
            tf.TensorSpec([None], tf.float32, name="fps"),
            tf.TensorSpec([None, None], tf.float32, name="waveform"),
            tf.TensorSpec([None], tf.int32, name="num_samples"),
            tf.TensorSpec([None], tf.int32, name="sample_rate"),
        ],
    )

    def segments(frames, audio):
        audio_name = "spectrograms" if legacy else "audio"
        with tf.control_dependencies(
            [
                _same_batch(frames, audio, "frames", audio_name),
                tf.debugging.assert_all_finite(
                    audio, f"{audio_name} must be finite (no NaN or inf)"
                ),
            ]
        ):
            frames, audio = tf.identity(frames), tf.identity(audio)
        audio = tf.ensure_shape(tf.identity(audio, name=audio_name), [None, n, *audio_shape])
        return _outputs(model, frames, audio, tf.constant(codes_list), tf.constant(names_list))

    archive.add_endpoint(
        "predict_segments",
        segments,
        input_signature=[
            tf.TensorSpec([None, n, size, size, 3], tf.uint8, name="frames"),
            tf.TensorSpec(
                [None, n, *audio_shape], tf.float32, name="spectrograms" if legacy else "audio"
            ),
        ],
    )

    def metadata():
        return {
            "class_codes": tf.constant(codes_list),
            "class_names": tf.constant(names_list),
            "corpus": tf.constant(corpus_json),
            "sampling_config": tf.constant(sampling_json),
            "model_config": tf.constant(model_json),
            "face_tracker": tf.constant(tracker_json),
            "min_clip_seconds": tf.constant(min_clip_seconds, tf.float32),
            "emotf_version": tf.constant(emotf.__version__),
        }

    archive.add_endpoint("metadata", metadata, input_signature=[])
    return archive


def export_saved_model(
    model: keras.Model,
    sampling_config: SamplingConfig,
    out_dir,
    version: int | None = None,
    *,
    model_config: dict | None = None,
    extra_metadata: dict | None = None,
    records_dir=None,
    corpus: CorpusInfo | None = None,
    fold_batchnorm: bool = True,
) -> StoragePath:
    """Write `model` with in-graph preprocessing as `out_dir/<version>/` (TF Serving layout).

    Args:
        model: an `emotf.model.build_model` model (dict inputs frames/spectrograms, dict
            outputs probabilities/scores/segment_probabilities).
        sampling_config: the run's `SamplingConfig` (its evaluation-mode sampling is baked in).
        out_dir: the model base folder; created if missing.
        version: integer version; default: one more than the highest existing (1 if none).
            An existing version is never overwritten (FileExistsError).
        model_config: the `ModelConfig.to_dict()` to record in the metadata.
        extra_metadata: more JSON-able entries for `assets.extra/emotf.json`.
        records_dir: the training records folder: its `manifest.json`'s face tracker config
            and minimum clip length are stored (`face_tracker`, `min_clip_seconds`) so that
            `emotf-predict` crops faces exactly as the build did. None or no manifest: the
            build's defaults apply at predict time.
        corpus: the classes the model was trained on (its output order); default: the
            records' manifest's corpus (`records_dir`), CREMA-D without one.
        fold_batchnorm: fold each BatchNormalization into the convolution before it in the
            exported graph (`emotf.serving.folding`; metadata `batch_norm_folded`: how
            many). False exports the model's own layers (the baseline that
            `tools/bench_serving.py --compare` times).

    Returns:
        The version folder (load it with `tf.saved_model.load`).
    """
    out_dir = as_path(out_dir)
    out_dir.mkdir()
    if version is None:
        existing = model_versions(out_dir)
        version = existing[-1] + 1 if existing else 1
    version = int(version)
    if version < 0:
        raise ValueError(f"version must be a non-negative integer. Received: version={version}")
    final = out_dir / str(version)
    if final.exists():
        raise FileExistsError(f"model version {final} already exists. Received: version={version}")
    build = {
        **build_settings(records_dir),
        **{
            k: v
            for k, v in (extra_metadata or {}).items()
            if k in ("face_tracker", "min_clip_seconds", "clip_settings", "timeline")
        },
    }
    corpus = corpus if corpus is not None else records_corpus(records_dir)
    archive = build_archive(
        model,
        sampling_config,
        corpus,
        model_config=model_config,
        build=build,
        fold_batchnorm=fold_batchnorm,
    )
    metadata = {
        "format": "emotf-savedmodel-1",
        "class_codes": list(corpus.class_codes),
        "class_names": list(corpus.class_names),
        CORPUS_KEY: corpus.to_dict(),
        "sampling_config": sampling_config.to_dict(),
        "model_config": model_config or {},
        "signatures": ["serving_default", "predict_segments", "metadata"],
        "emotf_version": emotf.__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "batch_norm_folded": len(foldable_pairs(model)) if fold_batchnorm else 0,
        **build,
        **(extra_metadata or {}),
    }
    if not out_dir.is_local:
        # Object stores (and ram://) cannot rename a folder: write in place. The metadata goes
        # first and TensorFlow writes saved_model.pb last (atomically), so a reader that waits
        # for it (`resolve_saved_model`, TF Serving's retries) sees a whole model.
        try:
            _write_version(archive, final, metadata)
        except BaseException:
            _remove_quietly(final)
            raise
    else:
        tmp = out_dir / f".tmp-{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _write_version(archive, tmp, metadata)
            os.replace(tmp.local_path(), final.local_path())
        finally:
            _remove_quietly(tmp)
    _warn_if_outside_allowlist(final)
    return final


def _warn_if_outside_allowlist(saved_model_dir: StoragePath) -> None:
    """Warn (one line) when this TensorFlow's export uses an op that the allowlist emotf-predict
    enforces lacks (`emotf.serving.graph_ops`): said now, at export, not as a refusal at predict
    time."""
    try:
        check_saved_model_ops(saved_model_dir)
    except UntrustedModelError as error:
        warnings.warn(
            f"{error}. This TensorFlow {tf.__version__} export uses an op that emotf's allowlist "
            "lacks: emotf-predict refuses the model without --trust-model until "
            "emotf/data/serving_ops.json is regenerated (python tests/test_graph_ops.py "
            "--write)",
            stacklevel=3,
        )


def _write_version(archive: keras.export.ExportArchive, folder: StoragePath, metadata: dict):
    """`assets.extra/emotf.json`, then the SavedModel (saved_model.pb last), into `folder`."""
    write_json(folder / "assets.extra" / METADATA_FILE, metadata)
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the path
        archive.write_out(str(folder), verbose=False)


def _remove_quietly(folder: StoragePath) -> None:
    """Remove a half-written folder; a failure to clean up never hides the real outcome."""
    with contextlib.suppress(Exception):
        folder.rmtree()


def export_run(run_dir, out_dir=None, version: int | None = None) -> StoragePath:
    """Export a training run folder (`emotf.runs.folder.Run`: its model, config, temperature
    and corpus: `run_corpus`).

    Args:
        run_dir: an `emotf-train` run folder.
        out_dir: the model base folder (default the run's `export/`).
        version: as in `export_saved_model`.

    Returns:
        The new version folder, e.g. `RUN/export/1`.
    """
    run = finished_run(run_dir)
    train_config = run.train_config()
    model = run.load_model()
    return export_saved_model(
        model,
        train_config.sampling,
        out_dir if out_dir is not None else run.export_dir,
        version,
        model_config=train_config.model.to_dict(),
        extra_metadata={
            "run": str(run.path.resolve()),
            "split": train_config.split,
            "fold": train_config.fold if train_config.split == "actors" else None,
            # clients get calibrated probabilities as p^(1/T) renormalised
            # (`emotf.evaluation.calibration`)
            "temperature": run.temperature(),
        },
        records_dir=train_config.records,
        corpus=run_corpus(run, train_config.records),
    )


def finished_run(run_dir) -> Run:
    """The `Run` of `run_dir`, which must hold a model and a config (FileNotFoundError naming
    the missing file otherwise)."""
    run = Run(run_dir)
    for path in (run.model_path, run.config_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: not a finished emotf-train run. "
                f"Received: run_dir={str(run_dir)!r}"
            )
    return run
