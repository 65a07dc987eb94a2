"""Fine-tuning (`TrainConfig.init_from`, `freeze`): a run's model starts from another's weights.

The source is
    a run folder      its `model.keras` (`emotf.runs.folder.Run.load_model`: rebuilt from the
                      run's validated config, the archive's weights only), else, for a run that
                      has not finished, its best checkpoint (`best.weights.h5`, arrays only, into
                      the model its config.json describes);
    a SavedModel      an `emotf-export` folder (or its folder of versions): the model is rebuilt
                      from the export's metadata (`model_config`, `sampling_config`) and its
                      variables are read from the SavedModel's checkpoint as plain arrays, each
                      checked against the rebuilt model's (no graph is loaded, nothing runs).

Layers are matched by their path in the model (`core/video_stem_conv`, `core_03/fc`:
`emotf.model.named_layers`): a layer of the same path whose weights have the same shapes is
loaded, any other keeps its fresh initialisation. The classifier is loaded only when the source
was trained on the same class list (`emotf.corpora.info.CorpusInfo.class_codes`, from the
source's metrics.json or export metadata); otherwise it is re-initialised, and said in one line.
`freeze` then makes the layers of the video branch, the audio branch or both
(`emotf.model.branch_layers`) non-trainable: they keep the loaded weights (BatchNorm statistics
included: a frozen BatchNorm runs in inference mode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import keras
import tensorflow as tf

from emotf.configs import ModelConfig, SamplingConfig, TrainConfig
from emotf.corpora.info import CorpusInfo
from emotf.model import CLASSIFIER, branch_layers, build_model, named_layers, training_model
from emotf.runs.folder import CONFIG_FILE, MODEL_FILE, Run
from emotf.runs.model_io import ModelLoadError
from emotf.serving.export import TRAINING_VARIABLES, read_metadata
from emotf.serving.metadata import resolve_saved_model
from emotf.storage import as_path
from emotf.training.corpus import describe_classes

RUN, CHECKPOINT, SAVED_MODEL = "run", "checkpoint", "saved_model"
# What each `freeze` choice (`emotf.configs.FREEZE_CHOICES`) keeps untrained.
FROZEN_BRANCHES = {
    "none": (),
    "video": ("video",),
    "audio": ("audio",),
    "both-branches": ("video", "audio"),
}


@dataclass(frozen=True)
class Source:
    """The model fine-tuning starts from: where it is, what kind, the model, its classes."""

    path: str
    kind: str
    model: keras.Model
    corpus: CorpusInfo


def open_source(path) -> Source:
    """The model of a run folder (or its `model.keras`) or of an `emotf-export` folder.

    Raises:
        ModelLoadError: one line naming `path` and what it lacks or holds wrongly.
    """
    where = as_path(path)
    if not where.exists():
        raise ModelLoadError(f"{where}: no such run or SavedModel folder (--init-from)")
    if where.is_dir() and not (Run(where).has_config() or Run(where).model_path.is_file()):
        try:
            saved_model = resolve_saved_model(where)
        except FileNotFoundError:
            raise ModelLoadError(
                f"{where}: neither a run folder ({CONFIG_FILE}, {MODEL_FILE}) nor an emotf-export "
                f"SavedModel folder (saved_model.pb): nothing to fine-tune from (--init-from)"
            ) from None
        return _saved_model_source(str(where), saved_model)
    return _run_source(str(where))


def _run_source(path: str) -> Source:
    run = Run.of(path)
    model_file = as_path(path) if as_path(path).is_file() else run.model_path
    if model_file.is_file():
        model, kind = run.load_model(model_file), RUN
    elif run.has_config() and run.best_weights_path.is_file():
        config = _run_config(run)
        model, kind = build_model(config.model, config.sampling), CHECKPOINT
        try:  # the arrays of an HDF5 weights file, into the model config.json describes
            training_model(model).load_weights(str(run.best_weights_path))
        except Exception as error:  # noqa: BLE001 (h5py and Keras raise many types)
            raise ModelLoadError(
                f"{run.best_weights_path}: cannot load the checkpoint into the model of "
                f"{run.config_path} ({type(error).__name__}: {_first_line(error)})"
            ) from None
    else:
        raise ModelLoadError(
            f"{run.path}: no {run.model_path.name} and no {run.best_weights_path.name} "
            f"checkpoint: not a trained emotf run (--init-from)"
        )
    return Source(path, kind, model, _run_classes(run))


def _run_config(run: Run) -> TrainConfig:
    try:
        return run.train_config()
    except ValueError as error:
        raise ModelLoadError(str(error)) from None


def _run_classes(run: Run) -> CorpusInfo:
    """The classes a run was trained on (`emotf.runs.folder.Run.corpus`: its metrics.json's,
    else its records', else CREMA-D's)."""
    try:
        return run.corpus()
    except (ValueError, OSError) as error:
        raise ModelLoadError(f"{run.path}: cannot tell its classes ({error})") from None


def _json_object(value) -> dict:
    """A metadata entry that is a JSON object, or its JSON text."""
    value = json.loads(value) if isinstance(value, str) else value
    if not isinstance(value, dict) or not value:
        raise ValueError(f"expected a non-empty JSON object. Received: {str(value)[:80]!r}")
    return value


def _saved_model_source(path: str, folder) -> Source:
    """An export's model: rebuilt from its metadata, its variables read as arrays."""
    try:
        metadata = read_metadata(folder)
        model_config = ModelConfig.from_dict(_json_object(metadata.get("model_config")))
        sampling = SamplingConfig.from_dict(_json_object(metadata.get("sampling_config")))
        corpus = CorpusInfo.of(metadata)
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise ModelLoadError(
            f"{folder}: its emotf metadata does not describe the model ({_first_line(error)})"
        ) from None
    model = build_model(model_config, sampling)
    prefix = str(as_path(folder) / "variables" / "variables")
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise ModelLoadError(
            f"{folder}: cannot read its variables ({_first_line(error)})"
        ) from None
    # A folded export (BatchNorm folded into the convs for serving) keeps the trained model's
    # own variables in a collection of their own; an unfolded one serves them as they are.
    collection = "variables"
    if f"{TRAINING_VARIABLES}/0/.ATTRIBUTES/VARIABLE_VALUE" in shapes:
        collection = TRAINING_VARIABLES
    keys = [f"{collection}/{i}/.ATTRIBUTES/VARIABLE_VALUE" for i in range(len(model.variables))]
    wrong = [
        k
        for k, v in zip(keys, model.variables, strict=True)
        if tuple(shapes.get(k, ())) != tuple(v.shape)
    ]
    if wrong or f"{collection}/{len(keys)}/.ATTRIBUTES/VARIABLE_VALUE" in shapes:
        raise ModelLoadError(
            f"{folder}: its variables do not match the model of its metadata's model_config "
            f"(exported by another emotf or Keras?): fine-tune from the run folder instead"
        )
    for key, variable in zip(keys, model.variables, strict=True):
        variable.assign(reader.get_tensor(key))
    return Source(path, SAVED_MODEL, model, corpus)


def load_matching(
    target: keras.Model, source: keras.Model, same_classes: bool
) -> tuple[list[str], list[str]]:
    """Copy into `target` the weights of every layer of `source` with the same path and weight
    shapes (the classifier only when `same_classes`). Returns (loaded, re-initialised) layer
    paths of `target` (layers with weights only)."""
    available = named_layers(source)
    loaded, fresh = [], []
    for path, layer in named_layers(target).items():
        if not layer.weights:
            continue
        other = available.get(path)
        is_classifier = path.rpartition("/")[2] == CLASSIFIER
        if (
            other is None
            or (is_classifier and not same_classes)
            or [tuple(w.shape) for w in other.weights] != [tuple(w.shape) for w in layer.weights]
        ):
            fresh.append(path)
            continue
        layer.set_weights(other.get_weights())
        loaded.append(path)
    return loaded, fresh


def freeze_branches(model: keras.Model, freeze: str) -> list[str]:
    """Make the layers of the branches `freeze` names non-trainable; returns the branches.

    Raises:
        ValueError: `freeze` names a branch the model does not have (an audio-only model's
            video branch).
    """
    branches = FROZEN_BRANCHES[freeze]
    for branch in branches:
        layers = branch_layers(model, branch)
        if not layers:
            raise ValueError(
                f"TrainConfig.freeze={freeze!r}: the model has no {branch} branch "
                f"(model.modalities decides which it builds)"
            )
        for layer in layers:
            layer.trainable = False
    return list(branches)


def initialise(model: keras.Model, source: Source, corpus: CorpusInfo, freeze: str) -> dict:
    """Start `model` (built for `corpus`) from `source`'s weights, then freeze; print one line
    when the classifier is re-initialised for another class list. Returns metrics.json's
    "init_from" record."""
    same_classes = source.corpus.class_codes == corpus.class_codes
    loaded, fresh = load_matching(model, source.model, same_classes)
    if not loaded:
        raise ValueError(
            f"{source.path}: no layer of its model has the name and weight shapes of this "
            f"run's model (another architecture?): nothing to fine-tune from"
        )
    freeze_branches(model, freeze)
    if not same_classes:
        print(
            f"classifier re-initialised: {describe_classes(source.corpus)} -> "
            f"{describe_classes(corpus)}",
            flush=True,
        )
    return {
        "path": source.path,
        "kind": source.kind,
        "source_corpus": source.corpus.name,
        "source_class_codes": list(source.corpus.class_codes),
        "loaded_layers": len(loaded),
        "reinitialised": fresh,
        "frozen": freeze,
    }


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
