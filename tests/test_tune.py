"""Hyperparameter search (keras-tuner) on fake in-memory folds: protocol, outputs, resume, CLI."""

import json

import pytest

from emotf.cli.train import build_parser as train_parser
from emotf.cli.train import resolve_config
from emotf.cli.tune import main as tune_main
from emotf.tune import TuneConfig, tune
from tests.test_train import MODEL, FakeFactory, config


def tune_config(tmp_path, **overrides) -> TuneConfig:
    values = dict(train=config(tmp_path, epochs=1, fold=3), out=str(tmp_path / "tune"),
                  max_trials=2, search=("learning_rate", "dropout"))
    values.update(overrides)
    return TuneConfig(**values)


def test_search_scores_trials_on_validation_folds_only(tmp_path):
    factory = FakeFactory()
    result = tune(tune_config(tmp_path), factory)
    served_folds = {fold for _, folds, _ in factory.served for fold in folds}
    assert 3 not in served_folds  # the test fold is never read
    assert {tuple(f) for training, f, _ in factory.served if not training} == {(4,)}
    trials = json.loads((tmp_path / "tune" / "trials.json").read_text())
    assert len(trials) == 2 and trials == result["trials"]
    assert trials[0]["val_accuracy"] >= trials[1]["val_accuracy"]
    assert all(set(t["hyperparameters"]) == {"learning_rate", "dropout"} for t in trials)
    assert all(0.0 <= t["val_accuracy"] <= 1.0 for t in trials)


def test_best_config_feeds_emotf_train(tmp_path):
    result = tune(tune_config(tmp_path), FakeFactory())
    best = result["best_hyperparameters"]
    path = tmp_path / "tune" / "best_config.json"
    args = train_parser().parse_args(["--config", str(path)])
    train_config, run_all = resolve_config(args)
    assert not run_all and train_config.fold == 3
    assert train_config.learning_rate == pytest.approx(best["learning_rate"])
    assert train_config.model.dropout == pytest.approx(best["dropout"])
    assert train_config.model.fc_units == MODEL.fc_units  # not searched: the base value


def test_rerun_continues_without_redoing_finished_trials(tmp_path):
    tune(tune_config(tmp_path, max_trials=1), FakeFactory())
    factory = FakeFactory()
    result = tune(tune_config(tmp_path, max_trials=2), factory)
    assert len(result["trials"]) == 2
    # Only the one new trial trained (its training and validation datasets).
    assert sum(1 for training, _, _ in factory.served if training) == 1
    assert sum(1 for training, _, _ in factory.served if not training) == 1
    factory = FakeFactory()
    assert len(tune(tune_config(tmp_path, max_trials=2), factory)["trials"]) == 2
    assert factory.served == []  # everything was done: nothing trains


def test_bad_search_names_and_tuners_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Received: search=\['learning_rat'\]"):
        tune_config(tmp_path, search=("learning_rat",))
    with pytest.raises(ValueError, match="Received: tuner='grid'"):
        tune_config(tmp_path, tuner="grid")


def test_cli(tmp_path, monkeypatch, capsys):
    import emotf.train as train_module

    monkeypatch.setattr(train_module, "records_dataset", FakeFactory())
    monkeypatch.setattr("emotf.tune.records_dataset", FakeFactory())
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"model": MODEL.to_dict(), "verbose": 0, "batch_size": 8,
                                    "lr_schedule": "constant", "early_stopping_patience": 0}))
    out = tmp_path / "cli"
    assert tune_main(["--records", "unused", "--fold", "2", "--out", str(out), "--config",
                      str(cfg_file), "--epochs", "1", "--max-trials", "1",
                      "--search", "momentum,fc_units"]) == 0
    assert "best val_accuracy" in capsys.readouterr().out
    best = json.loads((out / "best_config.json").read_text())
    assert best["config"]["fold"] == 2 and set(best["tuning"]["hyperparameters"]) == {"momentum", "fc_units"}
    with pytest.raises(SystemExit):
        tune_main(["--fold", "all", "--out", str(out)])
    with pytest.raises(SystemExit):
        tune_main(["--fold", "2", "--out", str(out), "--search", "width"])


@pytest.mark.parametrize("tuner", ["bayesian", "hyperband"])
def test_other_tuners_run(tmp_path, tuner):
    factory = FakeFactory()
    result = tune(tune_config(tmp_path, tuner=tuner, max_trials=2, search=("learning_rate",),
                              train=config(tmp_path, epochs=2, fold=3)), factory)
    assert result["trials"] and 3 not in {f for _, folds, _ in factory.served for f in folds}
