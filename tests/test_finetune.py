"""Fine-tuning across corpora (issue 21): a model trained on the synthetic CREMA-D sample starts a
run on the synthetic RAVDESS sample (`--init-from`): the branch weights are the source's, the
classifier is re-initialised for 8 classes instead of 6, a frozen branch keeps its weights
through training, and metrics.json says where the weights came from. The records size the
classifier and bound the folds (6 RAVDESS folds here), for emotf-train and emotf-tune alike.

tools/bench_finetune.py measures what fine-tuning gains over training from scratch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from emotf.configs import FREEZE_CHOICES, ModelConfig, TrainConfig
from emotf.corpora.ravdess import EMOTIONS as RAVDESS_CODES
from emotf.media.faces import FaceTrackerConfig
from emotf.model import branch_layers, build_model, named_layers
from emotf.records.build import build_records
from emotf.records.config import BuildConfig
from emotf.runs.folder import Run
from emotf.runs.model_io import ModelLoadError
from emotf.synthetic.ravdess import RavdessSampleConfig, make_ravdess_sample
from emotf.synthetic.sample import SampleConfig, make_sample
from emotf.training.finetune import FROZEN_BRANCHES, freeze_branches
from emotf.training.task import Task
from emotf.training.train import train_all_folds, train_fold

CROP = 32
MODEL = ModelConfig(
    num_segments=2,
    frame_size=CROP,
    spectrogram_shape=(16, 8),
    video_stem_width=4,
    video_widths=(8,),
    audio_widths=(4, 8),
    fc_units=8,
    dropout=0.0,
)
VIDEO, AUDIO = "core/video_stem_conv", "core/audio_block1_conv"


def build(data, out, corpus: str):
    return build_records(
        BuildConfig(
            str(data),
            str(out),
            corpus=corpus,
            workers=1,
            clips_per_shard=8,
            progress=False,
            tracker=FaceTrackerConfig(crop_size=CROP),
        )
    )


@pytest.fixture(scope="module")
def cremad_records(tmp_path_factory):
    """3 actors (folds 0, 1, 2) x 6 clips: every emotion once per actor."""
    root = tmp_path_factory.mktemp("cremad")
    make_sample(root / "data", SampleConfig.tiny(num_actors=3, clips_per_actor=6))
    build(root / "data", root / "records", "cremad")
    return root / "records"


@pytest.fixture(scope="module")
def ravdess_records(tmp_path_factory):
    """3 actors (folds 0, 1, 2 of 6) x 8 clips: every emotion once per actor."""
    root = tmp_path_factory.mktemp("ravdess")
    make_ravdess_sample(
        root / "data", RavdessSampleConfig.tiny(num_actors=3, clips_per_actor=8), workers=1
    )
    manifest = build(root / "data", root / "records", "ravdess")
    assert manifest["corpus"]["num_folds"] == 6 and manifest["clips_written"] == 24
    return root / "records"


def config(records, out, **overrides) -> TrainConfig:
    values = dict(
        records=str(records),
        out=str(out),
        fold=0,
        epochs=1,
        batch_size=4,
        learning_rate=0.05,
        lr_schedule="constant",
        verbose=0,
        model=MODEL,
        sampling={"window_seconds": 0.5},
        early_stopping_patience=0,
        export=False,
    )
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def source(cremad_records, tmp_path_factory):
    """A run trained (1 epoch) on the CREMA-D records, exported."""
    out = tmp_path_factory.mktemp("source") / "run"
    metrics = train_fold(config(cremad_records, out, export=True))
    assert metrics["corpus"]["name"] == "cremad" and "init_from" not in metrics
    return out


def weights(model, path):
    return named_layers(model)[path].get_weights()


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_the_records_size_the_classifier_and_bound_the_folds(ravdess_records, tmp_path):
    task = Task(config(ravdess_records, tmp_path / "run"))
    assert task.corpus.name == "ravdess" and task.class_names() == list(RAVDESS_CODES)
    assert task.config.model.num_classes == 8
    assert task.build_model().output["probabilities"].shape[-1] == 8
    assert task.split.train.folds == (2, 3, 4, 5) and task.split.validation.folds == (1,)
    with pytest.raises(ValueError, match=r"num_classes=6, but .* hold 8 classes \(neutral"):
        Task(config(ravdess_records, tmp_path / "run", model={**MODEL.to_dict(), "num_classes": 6}))
    with pytest.raises(ValueError, match=r"TrainConfig.fold must be in \[0, 5\] .*fold=6"):
        Task(config(ravdess_records, tmp_path / "run", fold=6))
    with pytest.raises(ValueError, match=r"validation_folds must be in \[1, 4\]"):
        Task(config(ravdess_records, tmp_path / "run", validation_folds=5))
    with pytest.raises(ValueError, match="labels='perceived' takes CREMA-D's rater votes"):
        Task(config(ravdess_records, tmp_path / "run", labels="perceived"))


def test_fold_all_runs_every_fold_of_the_records(ravdess_records, tmp_path, monkeypatch):
    import emotf.training.train as train_module

    trained = []

    def fake_fold(cfg, dataset_fn=None, strategy=None):
        trained.append(cfg.fold)
        return {}

    monkeypatch.setattr(train_module, "train_fold", fake_fold)
    monkeypatch.setattr(train_module, "cv_report", lambda path, config: (None, summary))
    summary = tmp_path / "summary.json"
    summary.write_text("{}")
    train_all_folds(config(ravdess_records, tmp_path / "cv"))
    assert trained == [0, 1, 2, 3, 4, 5]


def test_init_from_loads_the_branches_and_reinitialises_the_classifier(
    source, ravdess_records, tmp_path, capsys
):
    task = Task(config(ravdess_records, tmp_path / "run", init_from=str(source)))
    init = task.init_source()
    assert init.kind == "run" and init.corpus.name == "cremad"
    model = task.build_model()
    fresh = weights(model, VIDEO)
    record = task.initialise(model, init)
    line = capsys.readouterr().out.strip()
    assert line == (
        "classifier re-initialised: 6 classes (ANG, DIS, FEA, ...) -> "
        "8 classes (neutral, calm, happy, ...)"
    )
    for path in (VIDEO, AUDIO, "core/video_stem_bn", "core/fc"):
        assert same(weights(model, path), weights(init.model, path)), path
    assert not same(fresh, weights(model, VIDEO))  # the load changed them
    classifier = weights(model, "core/classifier")
    assert classifier[0].shape == (8, 8) and weights(init.model, "core/classifier")[0].shape[1] == 6
    assert record["reinitialised"] == ["core/classifier"]
    assert (
        record["loaded_layers"] == len([w for w in named_layers(model).values() if w.weights]) - 1
    )


def test_a_frozen_branch_keeps_the_source_weights_through_training(
    source, ravdess_records, tmp_path
):
    out = tmp_path / "run"
    metrics = train_fold(config(ravdess_records, out, init_from=str(source), freeze="video"))
    trained, original = Run(out).load_model(), Run(source).load_model()
    video = [layer.name for layer in branch_layers(trained, "video") if layer.weights]
    assert video and all(
        same(weights(trained, f"core/{name}"), weights(original, f"core/{name}")) for name in video
    )
    # The audio branch (not frozen) trained on: its weights moved.
    assert not same(weights(trained, AUDIO), weights(original, AUDIO))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["init_from"] == {
        "path": str(source),
        "kind": "run",
        "source_corpus": "cremad",
        "source_class_codes": ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"],
        "loaded_layers": metrics["init_from"]["loaded_layers"],
        "reinitialised": ["core/classifier"],
        "frozen": "video",
    }
    assert saved["init_from"]["loaded_layers"] >= 6
    assert saved["corpus"]["name"] == "ravdess" and saved["corpus"]["num_folds"] == 6
    assert np.shape(saved["confusion_matrix"]) == (8, 8)
    assert json.loads((out / "config.json").read_text())["config"]["model"]["num_classes"] == 8


def test_init_from_an_exported_saved_model(source, ravdess_records, tmp_path):
    task = Task(config(ravdess_records, tmp_path / "run", init_from=str(source / "export")))
    init = task.init_source()
    assert init.kind == "saved_model" and init.corpus.name == "cremad"
    model = task.build_model()
    task.initialise(model, init)
    original = Run(source).load_model()
    for path in (VIDEO, AUDIO, "core/audio_block2_bn", "core/fc"):
        assert same(weights(model, path), weights(original, path)), path


def test_init_from_an_unfinished_run_takes_its_best_checkpoint(source, ravdess_records, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for name in ("config.json", "best.weights.h5"):  # no model.keras, no metrics.json yet
        shutil.copy(source / name, unfinished / name)
    task = Task(config(ravdess_records, tmp_path / "run", init_from=str(unfinished)))
    init = task.init_source()
    assert init.kind == "checkpoint" and init.corpus.name == "cremad"  # the records' corpus
    model = task.build_model()
    task.initialise(model, init)
    original = Run(source).load_model()  # model.keras holds the best epoch's weights
    for path in (VIDEO, AUDIO, "core/fc"):
        assert same(weights(model, path), weights(original, path)), path


def test_init_from_refuses_in_one_line(ravdess_records, tmp_path):
    with pytest.raises(ModelLoadError, match="no such run or SavedModel folder"):
        Task(
            config(ravdess_records, tmp_path / "r", init_from=str(tmp_path / "nope"))
        ).init_source()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="neither a run folder"):
        Task(
            config(ravdess_records, tmp_path / "r", init_from=str(tmp_path / "empty"))
        ).init_source()
    with pytest.raises(ValueError, match="give init_from"):
        Task(config(ravdess_records, tmp_path / "r", freeze="audio"))
    audio_only = build_model(ModelConfig(**{**MODEL.to_dict(), "modalities": "audio"}))
    with pytest.raises(ValueError, match="no video branch"):
        freeze_branches(audio_only, "both-branches")
    both = build_model(MODEL)
    assert set(FROZEN_BRANCHES) == set(FREEZE_CHOICES)
    assert freeze_branches(both, "both-branches") == ["video", "audio"]
    assert {layer.name for layer in named_layers(both).values() if not layer.trainable} == {
        layer.name for b in ("video", "audio") for layer in branch_layers(both, b)
    }


def test_tune_on_records_of_another_corpus(ravdess_records, tmp_path):
    from emotf.tuning.config import TuneConfig
    from emotf.tuning.search import tune

    base = config(ravdess_records, tmp_path / "unused")
    result = tune(TuneConfig(train=base, out=str(tmp_path / "tune"), max_trials=1))
    assert result["best_config"]["model"]["num_classes"] == 8
    saved = json.loads((tmp_path / "tune" / "best_config.json").read_text())
    assert saved["tuning"]["corpus"]["name"] == "ravdess"
