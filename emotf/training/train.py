"""Train and evaluate the twin-branch model on one cross-validation fold, or on all of them.

Protocol (user-independent cross-validation over the records' folds, 10 for CREMA-D; folds never
share an actor):
    test fold  K                 evaluated once, at the end, with the chosen weights;
    validation folds             `validation_folds` of the other folds (the next ones after K,
                                 cyclically): their actors are held out of training and pick the
                                 best epoch and drive early stopping;
    training folds               the rest.
Nothing (epoch, model, hyper-parameter) is selected on fold K. `split` = "ogm" (or a folder of
train.csv/test.csv) runs a clip-level split instead, speaker-dependent, for comparison with
papers that report on it (`emotf.corpora.splits`).

The run folder (`emotf.runs.folder.Run`) holds the resolved config, the resumable state (backup/,
the CSV log, the best weights), the chosen model, the validation temperature and the test
metrics; `--fold all` writes `fold-K/` runs and one CV summary (`emotf.runs.folder.CrossValidation`,
`emotf.evaluation.reports.cv_report`).
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import replace

import keras
import numpy as np
import tensorflow as tf

import emotf
from emotf.configs import TrainConfig
from emotf.corpora.splits import ACTORS, check_fingerprint
from emotf.evaluation.calibration import apply_temperature, calibration_summary, temperature_record
from emotf.evaluation.metrics import clip_metrics, predict_clips
from emotf.evaluation.reports import cv_report
from emotf.runs import data as run_data
from emotf.runs.data import DatasetFactory, check_records_folder, records_dataset
from emotf.runs.folder import CrossValidation, Run
from emotf.serving.export import export_run
from emotf.storage import read_json
from emotf.system import trim_heap
from emotf.training.corpus import run_corpus
from emotf.training.distribute import (
    agree_with_chief,
    build_for_fit,
    config_digest,
    global_batch_size,
    is_chief,
    make_strategy,
    num_workers,
    strategy_name,
    worker_index,
    worker_scratch,
)
from emotf.training.precision import precision_policy
from emotf.training.run_state import (
    check_resume_config,
    check_resume_distribution,
    read_log,
    repair_resume_files,
    save_model,
    training_callbacks,
)
from emotf.training.task import Task

# === Training ===


def environment(distribution: dict | None = None) -> dict:
    """Versions and devices for config.json; `distribution`: the run's replicas and global batch
    (read back by `check_resume_distribution` on a resume)."""
    return {
        "emotf": emotf.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
        **({"distribution": distribution} if distribution is not None else {}),
    }


def fit_verbose(verbose, stream=None) -> int:
    """The `verbose` for `keras.Model.fit`: a progress bar (1) on a terminal, one line per epoch
    (2) when the output goes to a file or a pipe, where the bar's carriage returns and ANSI
    codes would fill the log. `verbose` None or "auto" asks for that choice; 0, 1 or 2 given
    explicitly are kept. `stream`: where Keras prints (default sys.stdout)."""
    if verbose is None or verbose == "auto":
        stream = stream if stream is not None else sys.stdout
        try:
            return 1 if stream.isatty() else 2
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            return 2
    return int(verbose)


def train_fold(
    config: TrainConfig,
    dataset_fn: DatasetFactory | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Train on the training folds, pick the epoch on the validation folds, test on `config.fold`.

    Resumes from the run's backup when present. Returns (and writes to the run's metrics) the
    test-fold metrics (`emotf.evaluation.metrics.clip_metrics`, over the records' classes) plus
    the records' corpus (`corpus`), parameter count, wall time, the chosen epoch, the labels
    used, how often intended and perceived labels agree on the test clips (CREMA-D) and, when
    the model started from another's weights (`config.init_from`,
    `emotf.training.finetune`), where they came from (`init_from`).

    Trains under `strategy` (default: `emotf.training.distribute.make_strategy(config.strategy,
    config.worker_timeout_seconds)`, made before any other TensorFlow op), with batches of
    `config.batch_size` clips per replica. In a multi-worker run only the chief writes the run
    folder and returns the metrics; another worker trains in step with it, writes into a scratch
    folder it deletes, and returns {"chief": False, "task": "worker:I", "epochs_run": ...}.
    Before anything else the workers compare their completed epochs and configuration with the
    chief's and all refuse in one line when one differs
    (`emotf.training.distribute.agree_with_chief`).
    """
    strategy = strategy or make_strategy(config.strategy, config.worker_timeout_seconds)
    if is_chief(strategy) and Run(config.out).resumable:
        repair_resume_files(Run(config.out))  # before its epoch count is read
    agree_with_chief(
        strategy,
        {"config": _config_digest(config), "completed_epochs": Run(config.out).completed_epochs()},
        config.out,
    )
    if is_chief(strategy):
        return _train_fold(config, dataset_fn or records_dataset, strategy, None)
    scratch = worker_scratch(strategy, config.out)
    try:
        return _train_fold(config, dataset_fn or records_dataset, strategy, scratch)
    finally:
        scratch.rmtree()


# Fields the workers of one run may set differently: they change nothing the others compute
# (`strategy`: auto and multi_worker are the same under a TF_CONFIG of several workers, and
# one_device/mirrored are refused there).
WORKER_LOCAL_FIELDS = ("verbose", "export", "strategy")


def _config_digest(config: TrainConfig) -> int:
    """`config_digest` of the fields every worker must share (all but `WORKER_LOCAL_FIELDS`)."""
    return config_digest(
        {k: v for k, v in config.to_dict().items() if k not in WORKER_LOCAL_FIELDS}
    )


def _train_fold(config: TrainConfig, dataset_fn: DatasetFactory, strategy, scratch) -> dict:
    chief = scratch is None
    run = Run(config.out)
    start = time.time()
    task = Task(config, dataset_fn)
    config = task.config  # model.num_classes: the corpus's (config.json records it)
    # Every shard this run reads (train, validation, test) against the records' manifest, and a
    # clip-level split's lists against the records, before anything is written or trained
    # (emotf.records.manifest; --allow-incomplete opts out of the first).
    records_check = task.check_records()
    check_resume_config(run, config)
    workers = num_workers(strategy)
    # Batches of the global batch: tf.distribute splits each across the replicas.
    global_batch = global_batch_size(config.batch_size, strategy)
    distribution = {
        "replicas": int(strategy.num_replicas_in_sync),
        "global_batch_size": global_batch,
    }
    check_resume_distribution(run, **distribution)
    if run.has_config():
        check_fingerprint(task.split, run.recorded_split(), str(run.path))
    if chief:
        run.path.mkdir()
        run.write_config(
            config, task.split.summary(), environment(distribution), task.folds_record()
        )

    keras.utils.set_random_seed(config.seed)
    if config.deterministic and not tf.config.list_physical_devices("GPU"):
        # Process-wide and not undoable in TF 2.17; on a GPU it slows training and the runs are
        # not bit-repeatable anyway (cuDNN autotuning), so it only applies on the CPU.
        tf.config.experimental.enable_op_determinism()

    with precision_policy(config.precision) as policy:
        first_epoch = run.completed_epochs()
        train_ds, val_ds, steps = task.fit_datasets(
            first_epoch, global_batch, workers=workers, worker=worker_index(strategy)
        )
        source = task.init_source()  # fine-tuning: read before the run's model is built
        with strategy.scope():
            model = task.build_model()
            init_from = task.initialise(model, source)
            trainer = task.compile(task.training_model(model), steps)
        del source
        build_for_fit(trainer, train_ds)
        trainer.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            shuffle=False,  # the tf.data pipeline shuffles (emotf.pipeline); Keras would warn
            steps_per_epoch=steps if config.steps_per_epoch or workers > 1 else None,
            callbacks=training_callbacks(run, config, scratch),
            verbose=fit_verbose(config.verbose),
        )
        if not chief:
            task_id = strategy.cluster_resolver
            return {
                "chief": False,
                "task": f"{task_id.task_type}:{task_id.task_id}",
                "epochs_run": len(read_log(run.log_path)),
            }
        log = read_log(run.log_path)
        if run.best_weights_path.exists():
            trainer.load_weights(str(run.best_weights_path))
        save_model(model, run.model_path)
        # Temperature scaling for the served probabilities, fitted on the validation clips.
        validation = predict_clips(
            model, task.all_validation_data(val_ds, global_batch, first_epoch, workers)
        )
        calibration = temperature_record(validation.labels, validation.probabilities)
        run.write_calibration(calibration)
        # The one look at the test fold (or test list).
        test = predict_clips(model, task.test_data())
        y_true, probs = test.labels, test.probabilities

    val_acc = [row.get("val_accuracy", float("nan")) for row in log]
    metrics = {
        **task.split_metrics(),
        **task.corpus_metrics(),
        **clip_metrics(y_true, probs, task.class_names()),
        "num_clips": int(len(y_true)),
        "best_epoch": int(log[int(np.nanargmax(val_acc))]["epoch"]) + 1 if val_acc else None,
        "best_validation_accuracy": float(np.nanmax(val_acc)) if val_acc else None,
        "epochs_run": len(log),
        "steps_per_epoch": int(steps),
        **_distribution(strategy, config, global_batch),
        "parameters": int(model.count_params()),
        "precision": policy,
        "wall_time_s": round(time.time() - start, 2),
        **task.data_metrics(len(y_true), test.clip_ids, records_check),
        **_test_calibration(y_true, probs, calibration.get("temperature")),
        **({"init_from": init_from} if init_from is not None else {}),
    }
    if config.export:
        metrics["saved_model"] = str(export_run(run.path))
    run.write_metrics(metrics)
    return metrics


def _distribution(strategy: tf.distribute.Strategy, config: TrainConfig, global_batch: int) -> dict:
    """metrics.json's record of how the run was distributed (the learning rate is never scaled)."""
    return {
        "strategy": strategy_name(strategy),
        "replicas": int(strategy.num_replicas_in_sync),
        "workers": num_workers(strategy),
        "batch_size_per_replica": int(config.batch_size),
        "global_batch_size": int(global_batch),
        "learning_rate": float(config.learning_rate),
    }


def _test_calibration(y_true, probs, temperature) -> dict:
    """The test clips' ECE with the raw probabilities and with the validation temperature."""
    try:
        out = {"temperature": temperature, "test_ece": calibration_summary(y_true, probs)["ece"]}
    except ValueError:  # non-finite probabilities
        return {"temperature": temperature, "test_ece": None}
    if temperature is not None:
        scaled = apply_temperature(probs, temperature)
        out["test_ece_scaled"] = calibration_summary(y_true, scaled)["ece"]
    return out


def _free_fold() -> None:
    """Between the folds of `train_all_folds`: drop what Keras still holds of the fold just
    trained (its global state, TensorFlow's kernel cache; a garbage collection frees the model,
    its tf.functions and datasets), so every fold starts as a fresh process would (the same
    auto-generated layer names too). The global dtype policy is kept. (TensorFlow still warns
    once a few folds have traced their new train and test functions: its retracing counter is
    keyed by the functions' code, shared by every fold's model.)"""
    policy = keras.config.dtype_policy()
    keras.backend.clear_session(free_memory=True)
    keras.config.set_dtype_policy(policy)
    trim_heap()


def train_all_folds(
    config: TrainConfig,
    dataset_fn: DatasetFactory | None = None,
    folds=None,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Run `train_fold` for each fold of the records (`folds`: default all of the corpus's,
    `emotf.training.corpus.run_corpus`) into the `fold-K/` runs of `config.out`
    (`emotf.runs.folder.CrossValidation`), then write the one CV summary (`cv_report.json` / `.md`,
    `emotf.evaluation.reports.cv_report`) from what the folds hold.

    Folds that have finished (their metrics exist) are not retrained (a killed sweep resumes).
    Returns the summary dict written to `cv_report.json` (a non-chief worker of a multi-worker
    run writes nothing and returns {"chief": False, "folds": [...]}).
    """
    if config.split != ACTORS:
        raise ValueError(
            f"--fold all is the actor-independent cross-validation; a clip-level "
            f"split has one test list: run one fold. Received: split={config.split!r}"
        )
    strategy = strategy or make_strategy(config.strategy, config.worker_timeout_seconds)
    chief = is_chief(strategy)
    cv = CrossValidation(config.out)
    if (dataset_fn or records_dataset) is run_data.records_dataset:
        check_records_folder(config.records)  # before its corpus is read
    num_folds = run_corpus(config).num_folds
    # Every worker must skip the same folds (else they wait on each other): a bit mask of them.
    finished = sum(1 << k for k in range(num_folds) if cv.fold(k).finished)
    agree_with_chief(
        strategy, {"config": _config_digest(config), "finished_folds": finished}, cv.path
    )
    if chief:
        cv.path.mkdir()  # after the records folder is checked
    trained = []
    for k in folds if folds is not None else range(num_folds):
        run = cv.fold(k)
        if not run.finished:
            train_fold(replace(config, fold=k, out=str(run.path)), dataset_fn, strategy)
            trained.append(k)
            _free_fold()
    if not chief:
        return {"chief": False, "folds": trained}
    _, json_path = cv_report(cv.path, config=config.to_dict())
    return read_json(json_path)
