"""The one prediction loop and the one metrics dict, shared by training and evaluation.

`predict_clips(model, dataset)` runs a model over a dataset of (inputs, labels) or
(inputs, labels, metadata) batches; `clip_metrics(labels, probabilities)` is what
`emotf-train` writes into `metrics.json` and `emotf-evaluate` into `evaluation.json`
(`classification_report_dict` of the argmax predictions). Class names are always given by
the caller: the run's `emotf.corpora.info.CorpusInfo.class_codes`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from emotf.system import trim_heap

MODEL_INPUTS = ("frames", "audio", "spectrograms")


@dataclass(frozen=True)
class Predictions:
    """A model's predictions on M clips.

    Attributes:
        labels: int64 [M], indices into the class names.
        probabilities: float32 [M, C], the model's `probabilities` output (mean of the N
            segment softmaxes).
        clip_ids: M clip names when the dataset carries them (metadata), else None.
        actor_ids: int64 [M], the records' actor (speaker) ids when the metadata carries them
            (`emotf.pipeline.make_dataset(..., with_metadata=True)`), else None.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    clip_ids: list[str] | None = None
    actor_ids: np.ndarray | None = None

    @property
    def predicted(self) -> np.ndarray:
        return np.argmax(self.probabilities, axis=-1)


def _split_element(element):
    """(model inputs, labels [B], clip ids or None, actor ids or None) of a dataset element:
    (inputs, labels) or (inputs, labels, metadata), the metadata a clip-id string tensor or a
    dict with "clip_id" (and "actor_id")."""
    inputs, labels, *rest = element
    ids = actors = None
    if rest:
        meta = rest[0]
        if isinstance(meta, dict):
            if "clip_id" not in meta:
                raise ValueError(f"dataset metadata has no clip_id. Received keys: {sorted(meta)}")
            if "actor_id" in meta:
                actors = np.asarray(meta["actor_id"], np.int64).reshape(-1)
            meta = meta["clip_id"]
        ids = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(meta).reshape(-1)]
    model_inputs = {k: v for k, v in inputs.items() if k in MODEL_INPUTS}
    return model_inputs, np.asarray(labels).reshape(-1), ids, actors


def inference_function(model):
    """`model(inputs, training=False)` as one tf.function for every batch (`reduce_retracing`:
    a last, smaller batch reuses the graph instead of tracing another).

    Memory: an eager call of a Keras functional model keeps every intermediate tensor of the
    graph until the call returns, so a batch of 16 clips of the default N=10 model at 224x224
    peaked at ~5.3 GB of RSS eagerly, against ~1.8 GB in a graph, where TensorFlow frees each
    tensor after its last use (`tools/bench_train_memory.py`, docs/evaluation.md).
    """
    # A partial, not a lambda: TensorFlow counts traces per Python code object, so every
    # model's lambda would share one count and a loop over models (accuracy vs N, --fold all)
    # would print the "frequent retracing" warning although each model traces once.
    return tf.function(functools.partial(_infer, model), reduce_retracing=True)


def _infer(model, inputs):
    return model(inputs, training=False)


# Clips per model call when predicting: a batch of the dataset is cut into calls of this many
# clips. Each clip's probabilities are the same (inference mode: no batch statistics), and the
# memory is not a batch of 16's activations (~1 GB for the default model, whose peak depended
# on how the two branches' largest maps happened to overlap in time, so it crept up over the
# first tens of batches) but a quarter of it (tools/bench_train_memory.py predict-trace-C).
PREDICT_CHUNK_CLIPS = 4


def _probabilities(out) -> np.ndarray:
    return np.asarray(out["probabilities"] if isinstance(out, dict) else out, np.float32)


def predict_batch(infer, inputs: dict, chunk: int = PREDICT_CHUNK_CLIPS) -> np.ndarray:
    """float32 [B, C]: `infer` (an `inference_function`) on a batch of model inputs, `chunk`
    clips per call."""
    size = int(next(iter(inputs.values())).shape[0])
    if size <= chunk:
        return _probabilities(infer(inputs))
    return np.concatenate(
        [
            _probabilities(infer({k: v[start : start + chunk] for k, v in inputs.items()}))
            for start in range(0, size, chunk)
        ]
    )


def predict_clips(model, dataset) -> Predictions:
    """Run `model` (inference mode, in a graph: `inference_function`) over every batch of
    `dataset`, `PREDICT_CHUNK_CLIPS` clips per call; only the probabilities, labels and ids
    of each batch are kept.

    Raises:
        ValueError: the dataset is empty, or only some of its batches carry clip ids.
    """
    clip_ids: list[str] = []
    labels: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    actors: list[np.ndarray] = []
    with_ids = with_actors = None
    infer = inference_function(model)
    for element in dataset:
        inputs, y, ids, batch_actors = _split_element(element)
        if with_ids is None:
            with_ids, with_actors = ids is not None, batch_actors is not None
        elif with_ids != (ids is not None) or with_actors != (batch_actors is not None):
            raise ValueError("some dataset batches carry clip (or actor) ids and others do not")
        if batch_actors is not None:
            actors.append(batch_actors)
        probs.append(predict_batch(infer, inputs))
        trim_heap()  # without it RSS crept up ~0.5 MB a clip (freed record buffers kept)
        labels.append(y)
        clip_ids += ids or []
    if not labels:
        raise ValueError("the evaluation dataset is empty (no clips of these folds?)")
    return Predictions(
        np.concatenate(labels).astype(np.int64),
        np.concatenate(probs),
        clip_ids if with_ids else None,
        np.concatenate(actors) if with_actors else None,
    )


def clip_metrics(labels, probabilities, class_names: Sequence[str] | None = None) -> dict:
    """The metrics dict of `metrics.json` and `evaluation.json`: `classification_report_dict`
    of the argmax of `probabilities` (float [M, C]) against `labels` (int [M]).

    class_names: the C class codes (`CorpusInfo.class_codes`); None names the classes by their
        index ("0", "1", ...).
    """
    probabilities = np.asarray(probabilities)
    if class_names is None:
        class_names = [str(k) for k in range(probabilities.shape[-1])]
    return classification_report_dict(labels, np.argmax(probabilities, -1), class_names)


def classification_report_dict(y_true, y_pred, class_names: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        y_true, y_pred: int [M] class indices into `class_names`.
        class_names: C names; every class gets a row even when absent from `y_true`
            (precision/recall of an empty class are 0, as scikit-learn's `zero_division=0`).

    Returns:
        {"num_examples", "accuracy", "per_class": {name: {"precision", "recall", "f1",
        "support"}}, "macro_avg": {...}, "weighted_avg": {...}, "class_names": [...],
        "confusion_matrix": C x C list of ints (rows true, columns predicted)}.
    """
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred differ in length. Received: {y_true.shape[0]} and {y_pred.shape[0]}"
        )
    if y_true.size == 0:
        raise ValueError("nothing to evaluate. Received: 0 examples")
    labels = list(range(len(class_names)))
    bad = sorted(set(np.concatenate([y_true, y_pred]).tolist()) - set(labels))
    if bad:
        raise ValueError(f"class indices outside 0..{len(labels) - 1}. Received: {bad[:5]}")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        name: {
            "precision": float(p[k]),
            "recall": float(r[k]),
            "f1": float(f[k]),
            "support": int(s[k]),
        }
        for k, name in enumerate(class_names)
    }

    def average(kind):
        pa, ra, fa, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=kind, zero_division=0
        )
        return {"precision": float(pa), "recall": float(ra), "f1": float(fa)}

    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "num_examples": int(y_true.size),
        "accuracy": float(np.mean(y_true == y_pred)),
        "per_class": per_class,
        "macro_avg": average("macro"),
        "weighted_avg": average("weighted"),
        "class_names": list(class_names),
        "confusion_matrix": cm.astype(int).tolist(),
    }


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as `emotf.training.train`'s CV summary) of the
    finite values; std is 0 for one value, both NaN for none."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
