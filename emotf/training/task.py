"""The Task of a run: the one object that builds what a run trains on and with.

`Task(config, dataset_fn)` turns a `TrainConfig` into the run's split, its datasets (all through
one `emotf.runs.data.DatasetFactory`), the model and its training view, the loss, the metrics
and the compiled optimiser (`config.trainer`). `emotf-train` (`emotf.training.train`, the chief
and the workers of a multi-worker run alike) and every `emotf-tune` trial
(`emotf.tuning.search`) build through it, so a trial trains exactly as a run does.

The corpus comes from the records (`emotf.training.corpus`): `Task.corpus` sizes the classifier
(`config.model.num_classes` is resolved to its class count), names the classes
(`class_names`), bounds the folds and is copied into metrics.json (`corpus_metrics`).
`init_from` (fine-tuning, `emotf.training.finetune`) starts the model from another's weights.

The branches on the kind of split (test folds, or a clip-level test list) and on the data
source (a records folder, or a custom factory) live here: `check_records` before anything is
written, and the data side of metrics.json (`split_metrics`, `data_metrics`).
"""

from __future__ import annotations

from dataclasses import replace

import keras
import tensorflow as tf

from emotf.configs import TrainConfig
from emotf.corpora.info import CORPUS_KEY, CorpusInfo
from emotf.corpora.labels import agreement
from emotf.corpora.splits import RunSplit
from emotf.model import build_model, training_model
from emotf.runs.data import (
    DatasetFactory,
    check_clip_split_records,
    check_run_records,
    clip_ids,
    clips_read,
    count_clips,
    fit_datasets,
    is_records_folder,
    num_batches,
    records_dataset,
)
from emotf.training import finetune
from emotf.training.corpus import (
    check_folds,
    check_labels,
    corpus_split,
    run_corpus,
    sized_config,
)
from emotf.training.precision import resolve_jit_compile
from emotf.training.remat import apply_remat
from emotf.training.schedules import make_schedule


class Task:
    """The split, datasets, model, loss, metrics and optimiser of one `TrainConfig`.

    Args:
        config: the run's (or the trial's) `TrainConfig`; the factory receives it (with the
            batch size of the call and `model.num_classes` set to the corpus's) for every
            dataset.
        dataset_fn: where the data comes from (default `emotf.runs.data.records_dataset`).
        split: the run's split, when already made (else made over the corpus's folds): a
            search's trials share their base config's.
        corpus: the run's corpus, when already read (else `emotf.training.corpus.run_corpus`:
            the records' manifest).

    Raises:
        ValueError: one line: a `model.num_classes` other than the records' class count, a fold
            or validation fold count the records' folds cannot give, perceived labels for a
            corpus without rater votes, `freeze` without `init_from`.
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset_fn: DatasetFactory | None = None,
        split: RunSplit | None = None,
        corpus: CorpusInfo | None = None,
    ):
        if config.freeze != "none" and not config.init_from:
            raise ValueError(
                f"TrainConfig.freeze={config.freeze!r} keeps branch layers as init_from loaded "
                "them: give init_from (a run or SavedModel folder) too"
            )
        self.corpus = corpus if corpus is not None else run_corpus(config)
        self.config = sized_config(config, self.corpus)
        check_folds(self.config, self.corpus)
        check_labels(self.config, self.corpus)
        self.dataset_fn = dataset_fn or records_dataset
        self.split = split if split is not None else corpus_split(self.config, self.corpus)

    def with_config(self, config: TrainConfig) -> Task:
        """The same data source, corpus and split under another config (a tuning trial's)."""
        return Task(config, self.dataset_fn, self.split, self.corpus)

    @property
    def reads_records(self) -> bool:
        """Are the datasets over a records folder (not only a custom factory's data)?"""
        return is_records_folder(self.config.records)

    # === Inputs ===

    def check_records(self, clip_lists: bool = True) -> dict:
        """Before anything is written or trained: every shard the run reads (training,
        validation and test parts) against the records' manifest (`allow_incomplete` opts
        out) and, with `clip_lists`, that each list of a clip-level split has clips in the
        records (this reads the record files, the test part's included: a search, which never
        reads the test part, passes False). Returns the manifest's entries for metrics.json
        ({} without a records folder)."""
        checked = check_run_records(self.config, self.split, self.dataset_fn)
        if clip_lists and self.split.clip_level and self.reads_records:
            check_clip_split_records(self.config.records, self.split)
        return checked

    def _batched(self, batch_size: int | None) -> TrainConfig:
        if batch_size is None or batch_size == self.config.batch_size:
            return self.config
        return replace(self.config, batch_size=int(batch_size))

    def fit_datasets(
        self,
        first_epoch: int = 0,
        batch_size: int | None = None,
        workers: int = 1,
        worker: int = 0,
    ) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
        """(training data, validation data, steps per epoch) for `keras.Model.fit`, from
        `first_epoch` (a resumed run's), in batches of `batch_size` clips (default the
        config's; a distributed run gives its global batch), this worker's share of them
        (`emotf.runs.data.fit_datasets`)."""
        return fit_datasets(
            self.dataset_fn,
            self._batched(batch_size),
            self.split.train,
            self.split.validation,
            first_epoch,
            workers=workers,
            worker=worker,
        )

    def all_validation_data(
        self,
        val_ds: tf.data.Dataset,
        batch_size: int | None = None,
        first_epoch: int = 0,
        workers: int = 1,
    ) -> tf.data.Dataset:
        """Every validation clip (the temperature is fitted on them): `val_ds` itself in a
        one-worker run; a multi-worker `val_ds` holds this worker's share, so a new one."""
        if workers <= 1:
            return val_ds
        return self.dataset_fn(self.split.validation, False, self._batched(batch_size), first_epoch)

    def test_data(self) -> tf.data.Dataset:
        """The test part (test fold or test list): read once, at the end of a run."""
        return self.dataset_fn(self.split.test, False, self.config, 0)

    def count_steps(self) -> int:
        """Training batches per epoch: `steps_per_epoch`, else counted in the training part."""
        if self.config.steps_per_epoch:
            return self.config.steps_per_epoch
        dataset = self.dataset_fn(self.split.train, True, self.config, 0)
        return num_batches(dataset, self.config, self.split.train)

    # === Model, loss, metrics, optimiser ===

    def build_model(self) -> keras.Model:
        """The twin-branch model of `config.model` and `config.sampling` (its dict outputs),
        with the corpus's classes."""
        return build_model(self.config.model, self.config.sampling)

    def init_source(self) -> finetune.Source | None:
        """The model `config.init_from` names (None without one): read before the run's model
        is built (`emotf.training.finetune.open_source`)."""
        return finetune.open_source(self.config.init_from) if self.config.init_from else None

    def initialise(self, model: keras.Model, source: finetune.Source | None) -> dict | None:
        """Start `model` from `source`'s matching layers and freeze `config.freeze`'s branches
        (before compiling); metrics.json's "init_from" record (None without a source)."""
        if source is None:
            return None
        return finetune.initialise(model, source, self.corpus, self.config.freeze)

    def training_model(self, model: keras.Model) -> keras.Model:
        """The view of `model` that is fitted: its `probabilities` output only, with
        `config.remat`'s conv blocks recomputed in the backward pass, `config.remat_chunks`
        slices at a time unless the step is XLA-compiled (`emotf.training.remat`:
        the model itself, its files and its inference calls are unchanged)."""
        trainer = training_model(model)
        apply_remat(
            trainer,
            self.config.remat,
            self.config.remat_chunks,
            jit_compile=resolve_jit_compile(self.config.jit_compile),
        )
        return trainer

    def loss(self) -> keras.losses.Loss:
        """Sparse cross-entropy on the mean of the segment softmaxes."""
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        """The metrics of every epoch: `accuracy` (val_accuracy picks the epoch)."""
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def optimizer(self, steps_per_epoch: int) -> keras.optimizers.Optimizer:
        """SGD with momentum on `config.trainer`'s learning-rate schedule."""
        trainer = self.config.trainer
        return keras.optimizers.SGD(
            make_schedule(trainer, steps_per_epoch), momentum=trainer.momentum
        )

    def compile(self, trainer: keras.Model, steps_per_epoch: int) -> keras.Model:
        """Compile the training model with the loss, metrics and optimiser above (XLA per
        `config.jit_compile`, `emotf.training.precision.resolve_jit_compile`)."""
        trainer.compile(
            optimizer=self.optimizer(steps_per_epoch),
            loss=self.loss(),
            metrics=self.metrics(),
            jit_compile=resolve_jit_compile(self.config.jit_compile),
        )
        return trainer

    def class_names(self) -> list[str]:
        """The corpus's class codes, in label order (the metrics' and reports' names)."""
        return list(self.corpus.class_codes)

    def corpus_metrics(self) -> dict:
        """metrics.json's "corpus" (`CorpusInfo.to_dict`): export, evaluation and predict read
        the class names from it."""
        return {CORPUS_KEY: self.corpus.to_dict()}

    # === What metrics.json and config.json say of the data ===

    def folds_record(self) -> dict | None:
        """config.json's "folds" (where `emotf-evaluate` finds the test fold); None for a
        clip-level split."""
        if self.split.clip_level:
            return None
        summary = self.split.summary()
        return {key: summary[key] for key in ("train", "validation", "test")}

    def split_metrics(self) -> dict:
        """metrics.json's test fold (None for a test list), split, protocol and parts."""
        summary = self.split.summary()
        parts = (
            {key: summary[key] for key in ("train_clips", "validation_clips", "test_clips")}
            if self.split.clip_level
            else {"validation_folds": summary["validation"], "training_folds": summary["train"]}
        )
        return {
            "fold": None if self.split.clip_level else summary["test"],
            "split": self.split.name,
            "protocol": self.split.protocol,
            **parts,
        }

    def data_metrics(self, test_clips: int, test_clip_ids, records_check: dict) -> dict:
        """metrics.json's labels and their agreement on the test clips, the manifest's check
        (`check_records`) and the clips read from a records folder."""
        config, split = self.config, self.split
        out = {
            "labels": config.labels,
            **self._label_agreement(test_clip_ids),
            **{k: v for k, v in records_check.items() if k != "clips_in_manifest"},
            **clips_read(config, split, test_clips, records_check),
        }
        if split.clip_level and self.reads_records:
            out["clips_in_records"] = {  # the lists' clips that were built (the rest: skipped)
                name: count_clips(config.records, part)
                for name, part in (
                    ("train", split.train),
                    ("validation", split.validation),
                    ("test", split.test),
                )
            }
        return out

    def _label_agreement(self, test_clip_ids) -> dict:
        """ "label_agreement" (`emotf.corpora.labels.agreement`) on the test clips: their ids
        from the factory's metadata, else read from the records; {} without either, and for a
        corpus without rater votes (CREMA-D's only)."""
        if not self.corpus.has_rater_votes:
            return {}
        if test_clip_ids is None and self.reads_records:
            test_clip_ids = clip_ids(self.config.records, self.split.test)
        return {} if test_clip_ids is None else {"label_agreement": agreement(test_clip_ids)}
