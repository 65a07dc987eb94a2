"""The Task seam (issue 20): one object builds a run's datasets, model, loss, metrics and
optimiser, and emotf-train and every emotf-tune trial build through it."""

import dataclasses
import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import emotf.training.task
from emotf.configs import ModelConfig, TrainConfig
from emotf.corpora.cremad import EMOTIONS
from emotf.corpora.splits import OGM
from emotf.training.task import Task
from emotf.training.train import train_fold
from emotf.tuning.config import TuneConfig
from emotf.tuning.search import EmotfHyperModel

N, CLIPS_PER_FOLD, WINDOW = 2, 6, 800  # 800 samples: a 0.05 s window at 16 kHz
MODEL = ModelConfig(
    num_segments=N,
    frame_size=16,
    spectrogram_shape=(8, 8),
    video_stem_width=2,
    video_widths=(4,),
    audio_widths=(4,),
    fc_units=0,
    dropout=0.0,
)


class Factory:
    """Random clips, CLIPS_PER_FOLD per fold; records every call as (folds, training, batch)."""

    def __init__(self):
        self.calls = []

    def __call__(self, part, training, config, epoch):
        self.calls.append((tuple(part.folds), training, config.batch_size))
        n = CLIPS_PER_FOLD * len(part.folds)
        rng = np.random.default_rng(len(self.calls))
        inputs = {
            "frames": rng.integers(0, 255, (n, N, 16, 16, 3)).astype("uint8"),
            "audio": rng.normal(0, 0.1, (n, N, WINDOW)).astype("float32"),
        }
        labels = (np.arange(n) % 6).astype("int32")
        return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(config.batch_size)


def train_config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        out=str(tmp_path / "run"),
        fold=3,
        epochs=1,
        batch_size=4,
        momentum=0.5,
        lr_schedule="constant",
        verbose=0,
        export=False,
        early_stopping_patience=0,
        model=MODEL,
        sampling={"window_seconds": 0.05},
    )
    return TrainConfig(**{**values, **overrides})


def test_the_task_builds_the_datasets_of_its_split(tmp_path):
    factory = Factory()
    task = Task(train_config(tmp_path), factory)
    assert task.split.test.folds == (3,) and task.split.validation.folds == (4,)
    train_ds, val_ds, steps = task.fit_datasets(batch_size=2)
    training_folds = tuple(sorted(set(range(10)) - {3, 4}))
    assert steps == len(training_folds) * CLIPS_PER_FOLD // 2
    assert factory.calls == [(training_folds, True, 2), ((4,), False, 2)]
    inputs, labels = next(iter(train_ds))
    assert inputs["audio"].shape == (2, N, WINDOW) and labels.shape == (2,)
    assert task.all_validation_data(val_ds, 2) is val_ds  # one worker: the same data
    task.all_validation_data(val_ds, 2, workers=2)  # several: every validation clip again
    task.test_data()
    assert factory.calls[2:] == [((4,), False, 2), ((3,), False, 4)]
    assert task.count_steps() == len(training_folds) * CLIPS_PER_FOLD // 4


def test_the_task_builds_and_compiles_the_model(tmp_path):
    task = Task(train_config(tmp_path, learning_rate=0.02), Factory())
    model = task.build_model()
    assert set(model.output) == {"probabilities", "scores", "segment_probabilities"}
    assert model.input["audio"].shape == (None, N, WINDOW)
    trainer = task.compile(task.training_model(model), steps_per_epoch=3)
    assert isinstance(trainer.optimizer, keras.optimizers.SGD)
    assert trainer.optimizer.momentum == 0.5
    assert float(trainer.optimizer.learning_rate) == pytest.approx(0.02)
    assert isinstance(trainer.loss, keras.losses.SparseCategoricalCrossentropy)
    train_ds, _, _ = task.fit_datasets()
    logs = trainer.fit(train_ds.take(1), epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and 0 <= logs["accuracy"][0] <= 1
    assert task.class_names() == list(EMOTIONS)
    three = Task(train_config(tmp_path, model=dataclasses.replace(MODEL, num_classes=3)))
    assert three.class_names() == ["0", "1", "2"]


def test_the_task_says_what_the_split_and_data_were(tmp_path):
    fold_task = Task(train_config(tmp_path, fold=5, validation_folds=2), Factory())
    assert fold_task.folds_record() == {
        "train": [0, 1, 2, 3, 4, 8, 9],
        "validation": [6, 7],
        "test": 5,
    }
    assert fold_task.split_metrics() == {
        "fold": 5,
        "split": "actors",
        "protocol": fold_task.split.protocol,
        "validation_folds": [6, 7],
        "training_folds": [0, 1, 2, 3, 4, 8, 9],
    }
    # No records folder (a custom factory's data): the labels only, nothing read from files.
    assert fold_task.check_records() == {}
    assert fold_task.data_metrics(12, None, {}) == {"labels": "intended"}
    clip_task = Task(train_config(tmp_path, split=OGM), Factory())
    assert clip_task.folds_record() is None
    metrics = clip_task.split_metrics()
    assert metrics["fold"] is None and metrics["split"] == OGM
    assert {"train_clips", "validation_clips", "test_clips"} <= set(metrics)


def test_train_and_tune_take_their_metrics_from_the_task(tmp_path, monkeypatch):
    """A metric added to `Task.metrics` shows in emotf-train's log and in a tuning trial."""
    real = Task.metrics

    def with_top2(self):
        return [*real(self), keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")]

    monkeypatch.setattr(emotf.training.task.Task, "metrics", with_top2)
    factory = Factory()
    train_fold(train_config(tmp_path), factory)
    header = (tmp_path / "run" / "training_log.csv").read_text().splitlines()[0].split(",")
    assert {"top2", "val_top2", "accuracy"} <= set(header)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["fold"] == 3 and metrics["labels"] == "intended"

    tune = TuneConfig(
        train=train_config(tmp_path), out=str(tmp_path / "tune"), search=("momentum",)
    )
    hypermodel = EmotfHyperModel(tune, factory)
    hp = keras_tuner.HyperParameters()
    trainer = hypermodel.build(hp)
    history = hypermodel.fit(hp, trainer, callbacks=[], epochs=1)
    assert {"top2", "val_top2"} <= set(history.history)
    assert trainer.optimizer.momentum == hp.get("momentum")
