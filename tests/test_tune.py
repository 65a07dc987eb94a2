"""Hyperparameter search (keras-tuner) on fake in-memory folds: protocol, outputs, resume, CLI."""

import csv
import json

import keras
import pytest

from emotf.cli.train import build_parser as train_parser
from emotf.cli.train import resolve_config
from emotf.cli.tune import main as tune_main
from emotf.configs import ModelConfig
from emotf.tuning.config import TuneConfig
from emotf.tuning.search import EmotfHyperModel, make_tuner, trial_config, tune
from tests.test_train import MODEL, FakeFactory, config, write_tiny_shards

TEST_FOLD, VALIDATION_FOLD = 3, 4


class SpyFactory(FakeFactory):
    """FakeFactory that also keeps the trial config of every dataset it served."""

    def __init__(self):
        super().__init__()
        self.configs = []  # (training, TrainConfig)

    def __call__(self, part, training, config, epoch):
        self.configs.append((training, config))
        return super().__call__(part, training, config, epoch)


class InterruptedFactory(SpyFactory):
    """Stops the process (as Ctrl-C would) when the first trial that trains asks for data."""

    def __call__(self, part, training, config, epoch):
        if not training:  # validation data is built only by HyperModel.fit
            self.configs.append((training, config))
            raise KeyboardInterrupt
        return super().__call__(part, training, config, epoch)


def tune_config(path, **overrides) -> TuneConfig:
    values = {
        "train": config(path, epochs=1, fold=TEST_FOLD),
        "out": str(path / "tune"),
        "max_trials": 2,
        "search": ("learning_rate", "dropout"),
    }
    return TuneConfig(**{**values, **overrides})


def fits(factory) -> list:
    """Trial configs that were trained (one validation dataset per fit)."""
    return [cfg for training, cfg in factory.configs if not training]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One random search: 2 trials x 1 epoch, test fold 3."""
    path = tmp_path_factory.mktemp("search")
    factory = SpyFactory()
    return path / "tune", factory, tune(tune_config(path), factory)


def test_search_never_reads_the_test_fold(searched):
    _, factory, _ = searched
    served = {fold for _, folds, _ in factory.served for fold in folds}
    assert TEST_FOLD not in served
    assert {tuple(folds) for training, folds, _ in factory.served if not training} == {
        (VALIDATION_FOLD,)
    }
    assert {tuple(folds) for training, folds, _ in factory.served if training} == {
        tuple(k for k in range(10) if k not in (TEST_FOLD, VALIDATION_FOLD))
    }
    actors = set().union(*(a for _, _, a in factory.served))
    assert 1000 + TEST_FOLD not in actors


def test_every_trial_is_recorded_best_first(searched):
    out, factory, result = searched
    trials = json.loads((out / "trials.json").read_text())
    assert trials == result["trials"] and len(trials) == 2
    assert [t["status"] for t in trials] == ["COMPLETED"] * 2
    assert trials[0]["val_accuracy"] >= trials[1]["val_accuracy"]
    assert all(0.0 <= t["val_accuracy"] <= 1.0 and t["best_epoch"] == 1 for t in trials)
    assert all(set(t["hyperparameters"]) == {"learning_rate", "dropout"} for t in trials)
    # The two trials trained with the hyperparameters they report.
    trained = sorted(cfg.learning_rate for cfg in fits(factory))
    assert trained == pytest.approx(sorted(t["hyperparameters"]["learning_rate"] for t in trials))
    with (out / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["trial_id"] for r in rows] == [t["trial_id"] for t in trials]
    assert float(rows[0]["learning_rate"]) == pytest.approx(
        trials[0]["hyperparameters"]["learning_rate"]
    )
    assert {p.name for p in (out / "tensorboard").iterdir()} == {t["trial_id"] for t in trials}


@pytest.mark.parametrize("seed", [0, 7])
def test_the_same_seed_proposes_the_same_trials(tmp_path, seed):
    """Seed 0 included: keras-tuner itself reads seed 0 as "pick one at random"."""
    proposals = []
    for name in ("a", "b"):
        train = config(tmp_path, epochs=1, fold=TEST_FOLD, seed=seed)
        result = tune(tune_config(tmp_path, train=train, out=str(tmp_path / name)), FakeFactory())
        proposals.append(
            sorted(json.dumps(t["hyperparameters"], sort_keys=True) for t in result["trials"])
        )
    assert proposals[0] == proposals[1]


def test_best_config_feeds_emotf_train(searched):
    out, _, result = searched
    args = train_parser().parse_args(["--config", str(out / "best_config.json")])
    train_config, run_all = resolve_config(args)
    best = result["trials"][0]["hyperparameters"]
    assert not run_all and train_config.fold == TEST_FOLD
    assert train_config.learning_rate == pytest.approx(best["learning_rate"])
    assert train_config.model.dropout == pytest.approx(best["dropout"])
    assert train_config.model.fc_units == MODEL.fc_units  # not searched: the base value
    assert train_config.out == str(out / "best-run")
    assert train_config.to_dict() == result["best_config"]
    tuning = json.loads((out / "best_config.json").read_text())["tuning"]
    assert (
        tuning["validation_folds"] == [VALIDATION_FOLD]
        and tuning["test_fold_never_read"] == TEST_FOLD
    )


def test_a_search_under_another_configuration_is_refused(searched):
    out, _, _ = searched
    with pytest.raises(
        ValueError, match=r"search: \['learning_rate', 'dropout'\] -> \['learning_rate'\]"
    ):
        tune(tune_config(out.parent, search=("learning_rate",)), SpyFactory())


def test_interrupted_search_continues_without_redoing_finished_trials(tmp_path):
    first = tune(tune_config(tmp_path, max_trials=1), SpyFactory())["trials"]
    interrupted = InterruptedFactory()
    with pytest.raises(KeyboardInterrupt):  # killed in trial 2, before it trained
        tune(tune_config(tmp_path, max_trials=2), interrupted)
    (killed,) = fits(interrupted)
    factory = SpyFactory()
    trials = tune(tune_config(tmp_path, max_trials=2), factory)["trials"]
    # Only the interrupted trial ran, with its own hyperparameters; trial 1 kept its score.
    (rerun,) = fits(factory)
    assert (rerun.learning_rate, rerun.model.dropout) == (
        killed.learning_rate,
        killed.model.dropout,
    )
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    assert [t for t in trials if t["trial_id"] == first[0]["trial_id"]] == first
    factory = SpyFactory()
    assert tune(tune_config(tmp_path, max_trials=2), factory)["trials"] == trials
    assert factory.served == []  # the search is complete: nothing is read or trained


def test_default_factory_reads_no_test_fold_file(tmp_path, monkeypatch):
    """Through emotf.training.train.records_dataset: every record file opened is a training or
    validation fold's (make_dataset and the clip counts go through record_files)."""
    import emotf.pipeline

    records = tmp_path / "records"
    write_tiny_shards(records)
    real_record_files = emotf.pipeline.record_files
    asked = []

    def spy(records_dir, folds):
        asked.extend(folds)
        return real_record_files(records_dir, folds)

    monkeypatch.setattr(emotf.pipeline, "record_files", spy)
    model = ModelConfig(
        num_segments=2,
        frame_size=32,
        video_stem_width=4,
        video_widths=(4,),
        audio_widths=(4, 4),
        fc_units=4,
    )
    train = config(
        tmp_path, records=str(records), epochs=1, batch_size=4, model=model, fold=TEST_FOLD
    )
    result = tune(
        TuneConfig(train=train, out=str(tmp_path / "tune"), max_trials=1, search=("momentum",))
    )
    assert asked and TEST_FOLD not in asked and VALIDATION_FOLD in asked
    assert result["trials"][0]["status"] == "COMPLETED"


def test_hyperband_continuation_fits_from_its_initial_epoch(tmp_path):
    """Hyperband passes epochs/initial_epoch to fit; the factory gets epoch=initial_epoch."""
    cfg = tune_config(tmp_path, tuner="hyperband", train=config(tmp_path, epochs=2, fold=TEST_FOLD))
    factory = SpyFactory()
    hypermodel = EmotfHyperModel(cfg, factory)
    hp = make_tuner(cfg, factory).oracle.get_space()
    history = hypermodel.fit(hp, hypermodel.build(hp), callbacks=[], epochs=2, initial_epoch=1)
    assert len(history.history["val_accuracy"]) == 1
    assert (True, 1) in factory.epochs and (False, 1) in factory.epochs
    assert isinstance(
        make_tuner(tune_config(tmp_path, tuner="bayesian", out=str(tmp_path / "b")), factory),
        __import__("keras_tuner").BayesianOptimization,
    )


def test_cli_runs_in_process_with_mixed_precision(tmp_path, monkeypatch, capsys):
    import emotf.training.task
    import emotf.tuning.search

    factory = SpyFactory()
    monkeypatch.setattr(emotf.tuning.search, "records_dataset", factory)
    real_build_model = emotf.training.task.build_model
    policies = []

    def spy(model_config, *args):  # the policy in force when a trial's model is built
        policies.append(keras.mixed_precision.global_policy().name)
        return real_build_model(model_config, *args)

    monkeypatch.setattr(emotf.training.task, "build_model", spy)
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(
        json.dumps(
            {
                "model": MODEL.to_dict(),
                "verbose": 0,
                "batch_size": 8,
                "lr_schedule": "constant",
                "early_stopping_patience": 0,
            }
        )
    )
    out = tmp_path / "cli"
    assert (
        tune_main(
            [
                "--records",
                "unused",
                "--fold",
                "2",
                "--out",
                str(out),
                "--config",
                str(cfg_file),
                "--epochs",
                "1",
                "--max-trials",
                "1",
                "--search",
                "momentum,fc_units",
                "--precision",
                "mixed_bfloat16",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "best val_accuracy" in printed and str(out / "best_config.json") in printed
    best = json.loads((out / "best_config.json").read_text())
    assert best["config"]["fold"] == 2 and best["config"]["precision"] == "mixed_bfloat16"
    assert set(best["tuning"]["hyperparameters"]) == {"momentum", "fc_units"}
    # keras-tuner clears the Keras session (and so the dtype policy) before every build.
    assert policies and set(policies) == {"mixed_bfloat16"}
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    assert 2 not in {f for _, folds, _ in factory.served for f in folds}


@pytest.mark.parametrize(
    "argv, received",
    [
        (["--search", "learning_rate,width"], "Received: search=('learning_rate', 'width')"),
        (["--tuner", "grid"], "invalid choice: 'grid'"),
        (["--fold", "all"], "Received: --fold all"),
        (["--strategy", "mirrored"], "one worker per device (--tuner-id"),
    ],
)
def test_cli_refuses_bad_arguments_naming_them(tmp_path, capsys, argv, received):
    with pytest.raises(SystemExit):
        tune_main(["--out", str(tmp_path / "cli"), *argv])
    assert received in capsys.readouterr().err


def test_config_refuses_bad_names():
    with pytest.raises(ValueError, match=r"Received: search=\('learning_rat',\)"):
        TuneConfig(search=("learning_rat",))
    with pytest.raises(ValueError, match="Received: tuner='grid'"):
        TuneConfig(tuner="grid")
    with pytest.raises(ValueError, match="Received: max_trials=0"):
        TuneConfig(max_trials=0)


def test_trial_config_sets_train_and_model_fields():
    import keras_tuner

    cfg = TuneConfig(search=("batch_size", "fc_units", "lr_schedule"))
    hp = keras_tuner.HyperParameters()
    trial = trial_config(cfg, hp)
    assert set(hp.values) == {"batch_size", "fc_units", "lr_schedule"}
    assert (
        trial.batch_size == hp.values["batch_size"]
        and trial.model.fc_units == hp.values["fc_units"]
    )
    assert trial.lr_schedule == hp.values["lr_schedule"] and trial.fold == cfg.train.fold
    assert TuneConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_cli_refuses_to_mix_two_searches(searched, capsys):
    out, _, _ = searched
    with pytest.raises(SystemExit):
        tune_main(["--out", str(out), "--fold", str(TEST_FOLD), "--search", "momentum"])
    assert "holds a search with another configuration" in capsys.readouterr().err


def test_a_search_on_a_gfile_url_writes_nothing_locally(tmp_path, monkeypatch):
    """OUT on TensorFlow's in-memory filesystem, as gs:// would be: keras-tuner's project, the
    TensorBoard runs and emotf's outputs are written there (through tf.io.gfile) and no local
    file is made. (Not continued there: ram:// appends when a file is opened for writing again,
    and keras-tuner rewrites oracle.json and trial.json in place; gs:// replaces them.)"""
    from emotf.storage import as_path, read_json

    monkeypatch.chdir(tmp_path)
    out = as_path(f"ram://tune-{tmp_path.name}/out")
    first = tune(tune_config(tmp_path, out=str(out), max_trials=1), SpyFactory())
    assert first["trials_run"] == ["0"] and first["trials"][0]["status"] == "COMPLETED"
    assert read_json(out / "trials.json", list) == first["trials"]
    assert "trial_id,status" in (out / "trials.csv").read_text()
    assert read_json(out / "best_config.json")["config"]["out"] == str(out / "best-run")
    assert (out / "search" / "oracle.json").is_file()
    assert (out / "search" / "trial_0" / "checkpoint.weights.h5").is_file()
    assert (out / "tensorboard" / "0").is_dir()
    assert list(tmp_path.iterdir()) == []


class BrokenFactory(SpyFactory):
    """Fails every trial when it fits (the validation data is built only by HyperModel.fit)."""

    def __call__(self, part, training, config, epoch):
        if not training:
            raise ValueError("broken validation data\n  File ...\n    more of a traceback")
        return super().__call__(part, training, config, epoch)


@pytest.mark.parametrize("max_trials", [1, 3])
def test_failed_trials_are_warning_lines_and_no_finished_trial_one_error(
    tmp_path, capsys, max_trials
):
    """A failed trial is one `emotf-tune: warning: trial N failed: ...` line (keras-tuner's own
    handling prints or keeps the whole traceback); a search where no trial finished (or too
    many failed in a row) ends in one RuntimeError line."""
    with pytest.raises(RuntimeError) as error:
        tune(tune_config(tmp_path, max_trials=max_trials), BrokenFactory())
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value), error.value
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("emotf-tune: warning: trial ") for line in err), err
    assert all(line.endswith("failed: ValueError: broken validation data") for line in err), err
