"""Training loop on an in-memory dataset: loss decreases, resume, fold protocol, CLI."""

import json

import numpy as np
import pytest
import tensorflow as tf

from emotf.cli.train import main as train_main
from emotf.configs import ModelConfig, TrainConfig
from emotf.corpora.splits import Selection, split_folds
from emotf.training.schedules import StaircaseDecay
from emotf.training.train import train_all_folds, train_fold

N, CLIPS_PER_FOLD = 2, 12
WINDOW = 20480  # samples per audio window of the default SamplingConfig (1.28 s at 16 kHz)
MODEL = ModelConfig(
    num_segments=N,
    frame_size=16,
    spectrogram_shape=(16, 8),
    video_stem_width=4,
    video_widths=(8,),
    audio_widths=(4, 8),
    fc_units=8,
    dropout=0.0,
)


def fake_data(num_folds=10, seed=0):
    """One actor per fold (actor 1000 + fold); class signal in both modalities."""
    rng = np.random.default_rng(seed)
    n = num_folds * CLIPS_PER_FOLD
    labels = np.tile(np.arange(6), n // 6 + 1)[:n].astype("int32")
    folds = np.repeat(np.arange(num_folds), CLIPS_PER_FOLD)
    # Raw audio windows (the model computes the spectrograms): a tone whose pitch is the class.
    t = np.arange(WINDOW) / 16000.0
    tone = np.sin(2 * np.pi * (300 + 400 * labels[:, None, None]) * t[None, None, :])
    audio = (0.3 * tone + rng.normal(0, 0.05, (n, N, WINDOW))).astype("float32")
    frames = np.clip(
        rng.normal(40 * labels[:, None, None, None, None], 20, (n, N, 16, 16, 3)), 0, 255
    )
    return {
        "frames": frames.astype("uint8"),
        "audio": audio,
        "labels": labels,
        "folds": folds,
        "actors": 1000 + folds,
    }


class FakeFactory:
    """A dataset factory over fake_data that records which actors it served, and for what."""

    def __init__(self):
        self.data = fake_data()
        self.served = []  # (training, folds, actors)
        self.epochs = []  # (training, first epoch served)

    def __call__(self, part, training, config, epoch):
        d = self.data
        folds = list(part.folds)
        idx = np.flatnonzero(np.isin(d["folds"], folds))
        self.served.append((training, folds, set(d["actors"][idx].tolist())))
        self.epochs.append((training, epoch))
        ds = tf.data.Dataset.from_tensor_slices(
            ({"frames": d["frames"][idx], "audio": d["audio"][idx]}, d["labels"][idx])
        )
        if training:
            ds = ds.shuffle(len(idx), seed=config.seed)
        return ds.batch(config.batch_size)


def config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        out=str(tmp_path / "run"),
        fold=3,
        epochs=3,
        batch_size=8,
        learning_rate=0.05,
        lr_schedule="constant",
        verbose=0,
        model=MODEL,
        early_stopping_patience=0,
        export=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_split_folds_never_reuses_the_reported_fold():
    for k in range(10):
        train, val, test = split_folds(k, validation_folds=2)
        assert test == k and k not in train and k not in val and not set(train) & set(val)
        assert sorted(train + val + [test]) == list(range(10))


def test_training_reduces_loss_and_writes_run(tmp_path):
    factory = FakeFactory()
    metrics = train_fold(config(tmp_path, epochs=4), factory)
    run = tmp_path / "run"
    log = [line.split(",") for line in (run / "training_log.csv").read_text().splitlines()]
    loss = [float(row[log[0].index("loss")]) for row in log[1:]]
    assert len(loss) == 4 and loss[-1] < loss[0]
    for name in ("config.json", "metrics.json", "best.weights.h5", "model.keras", "tensorboard"):
        assert (run / name).exists(), name
    assert set(metrics) >= {
        "accuracy",
        "per_class",
        "confusion_matrix",
        "parameters",
        "wall_time_s",
    }
    assert np.sum(metrics["confusion_matrix"]) == CLIPS_PER_FOLD
    resolved = json.loads((run / "config.json").read_text())
    assert (
        resolved["config"]["model"]["num_segments"] == N and "tensorflow" in resolved["environment"]
    )
    # Temperature fitted on the validation fold (12 clips), reported with the test ECE.
    calibration = json.loads((run / "calibration.json").read_text())
    assert calibration["clips"] == CLIPS_PER_FOLD and calibration["temperature"] > 0
    assert calibration["ece_after"] <= calibration["ece_before"] + 1e-9
    assert metrics["temperature"] == calibration["temperature"]
    assert 0 <= metrics["test_ece"] <= 1 and 0 <= metrics["test_ece_scaled"] <= 1


def test_reported_fold_actors_never_trained_or_validated_on(tmp_path):
    factory = FakeFactory()
    train_fold(config(tmp_path, epochs=1, fold=7), factory)
    (train_on, _, train_actors), (_, val_folds, val_actors), (_, test_folds, test_actors) = (
        factory.served
    )
    assert train_on and test_folds == [7]
    assert not test_actors & (train_actors | val_actors)
    assert not train_actors & val_actors


def test_resume_continues_from_saved_epoch(tmp_path):
    full = train_fold(
        config(tmp_path / "a", epochs=3, lr_schedule="paper", decay_steps=2), FakeFactory()
    )
    # Same run killed after epoch 2 (simulated by asking for 2 epochs), then resumed to 3.
    cfg = config(tmp_path / "b", epochs=3, lr_schedule="paper", decay_steps=2)
    train_fold(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2}), FakeFactory())
    factory = FakeFactory()
    resumed = train_fold(cfg, factory)
    log = (tmp_path / "b" / "run" / "training_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1", "2"]  # epoch 2 run once, after 0, 1
    assert resumed["epochs_run"] == 3
    # The resumed training data starts at epoch 2 (fresh samples, not epoch 0's again) ...
    assert (True, 2) in factory.epochs
    # ... and training continued from the restored weights: epoch 2's loss is below epoch 0's.
    header = log[0].split(",")
    losses = [float(row.split(",")[header.index("loss")]) for row in log[1:]]
    assert losses[2] < losses[0]
    assert abs(resumed["best_validation_accuracy"] - full["best_validation_accuracy"]) <= 0.35


def test_resume_passes_completed_epochs_to_the_factory(tmp_path):
    cfg = config(tmp_path, epochs=1)
    first = FakeFactory()
    train_fold(cfg, first)
    assert (True, 0) in first.epochs
    resumed = FakeFactory()
    train_fold(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2}), resumed)
    assert (True, 1) in resumed.epochs and (True, 0) not in resumed.epochs


def test_paper_schedule_restarts_every_epoch():
    schedule = StaircaseDecay(1e-3, decay_steps=50, decay_rate=0.1, restart_steps=120)
    lrs = [float(schedule(s)) for s in (0, 49, 50, 100, 119, 120, 170)]
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 1e-4, 1e-5, 1e-5, 1e-3, 1e-4], rtol=1e-5)


def test_all_folds_summary_and_cli(tmp_path, monkeypatch):
    factory = FakeFactory()
    summary = train_all_folds(config(tmp_path, epochs=1), factory, folds=[0, 1])
    assert summary["num_folds"] == 2 and 0 <= summary["mean_accuracy"] <= 1
    report = (tmp_path / "run" / "cv_report.md").read_text()
    assert report.startswith("# Cross-validation report") and "Labels: intended" in report
    saved = json.loads((tmp_path / "run" / "cv_report.json").read_text())
    assert saved["labels"] == "intended" and [f["fold"] for f in saved["per_fold"]] == [0, 1]
    assert saved["per_fold"][0]["wall_time_s"] > 0 and saved["config"]["epochs"] == 1
    assert not (tmp_path / "run" / "cv_summary.json").exists()

    import emotf.training.train as train_module

    monkeypatch.setattr(train_module, "records_dataset", FakeFactory())
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"model": MODEL.to_dict(), "epochs": 5, "verbose": 0}))
    out = tmp_path / "cli"
    assert (
        train_main(
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
                "--lr-schedule",
                "cosine",
                "--branch-weights",
                "independent",
                "--cache-records",
                "true",
            ]
        )
        == 0
    )
    resolved = json.loads((out / "config.json").read_text())["config"]
    assert (
        resolved["epochs"] == 1
        and resolved["lr_schedule"] == "cosine"
        and resolved["cache_records"]
    )
    assert (
        resolved["model"]["branch_weights"] == "independent"
        and resolved["model"]["frame_size"] == 16
    )
    with pytest.raises(SystemExit):
        train_main(["--fold", "12", "--out", str(out)])


def write_tiny_shards(out_dir, frame_size=32, clips_per_fold=2):
    """Record shards of random clips (one actor per fold) in the real naming scheme."""
    from emotf.records.example import ClipRecord, make_example
    from emotf.records.manifest import seal_records

    rng = np.random.default_rng(0)
    out_dir.mkdir()
    for fold in range(10):
        path = out_dir / f"fold-{fold}-of-10-00000.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for c in range(clips_per_fold):
                t = 20
                frames = [
                    tf.io.encode_jpeg(
                        rng.integers(0, 256, (frame_size, frame_size, 3), dtype=np.uint8)
                    ).numpy()
                    for _ in range(t)
                ]
                clip = ClipRecord(
                    clip_id=f"{1001 + fold}_DFA_ANG_XX",
                    actor_id=1001 + fold,
                    sentence="DFA",
                    emotion="ANG",
                    label=(fold + c) % 6,
                    intensity="XX",
                    fold=fold,
                    fps=10.0,
                    frames_jpeg=frames,
                    face_boxes=np.zeros((t, 4), np.float32),
                    face_detected=np.ones(t, np.int64),
                    source_size=(360, 480),
                    sample_rate=16000,
                    pcm16=(rng.normal(0, 3000, 32000)).astype(np.int16),
                )
                writer.write(make_example(clip).SerializeToString())
    seal_records(out_dir)  # a manifest, as emotf-build-records writes (training checks it)


def test_train_fold_on_record_shards(tmp_path):
    records = tmp_path / "records"
    write_tiny_shards(records)
    model = ModelConfig(
        num_segments=2,
        frame_size=32,
        video_stem_width=4,
        video_widths=(4,),
        audio_widths=(4, 4),
        fc_units=4,
    )
    cfg = config(tmp_path, records=str(records), epochs=2, batch_size=4, model=model, export=True)
    metrics = train_fold(cfg)  # the default factory: emotf.pipeline.make_dataset
    assert metrics["num_clips"] == 2 and metrics["steps_per_epoch"] == 8 * 2 // 4
    assert metrics["epochs_run"] == 2
    # The test fold's two records share one clip id (write_tiny_shards): counted once.
    from emotf.corpora.labels import agreement

    assert metrics["labels"] == "intended"
    assert metrics["label_agreement"] == agreement([f"{1001 + cfg.fold}_DFA_ANG_XX"])
    # The saved model is the one that was scored, and the run was exported for serving.
    import keras

    from emotf.evaluation.metrics import clip_metrics
    from emotf.pipeline import make_dataset

    reloaded = keras.models.load_model(tmp_path / "run" / "model.keras")
    test = make_dataset(records, [cfg.fold], training=False, config=cfg.sampling, batch_size=4)
    labels = np.concatenate([y for _, y in test])
    probs = np.concatenate([reloaded.predict(x, verbose=0)["probabilities"] for x, _ in test])
    again = clip_metrics(labels, probs)
    assert again["accuracy"] == metrics["accuracy"]
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert (tmp_path / "run" / "export" / "1" / "saved_model.pb").exists()
    assert metrics["saved_model"].endswith("export/1")


def test_same_seed_repeats_a_run_on_the_cpu(tmp_path):
    records = tmp_path / "records"
    write_tiny_shards(records)
    model = ModelConfig(
        num_segments=2,
        frame_size=32,
        video_stem_width=4,
        video_widths=(4,),
        audio_widths=(4, 4),
        fc_units=4,
    )
    logs = []
    for name in ("a", "b"):
        cfg = config(
            tmp_path,
            records=str(records),
            epochs=2,
            batch_size=4,
            model=model,
            out=str(tmp_path / name),
        )
        train_fold(cfg)
        logs.append((tmp_path / name / "training_log.csv").read_text())
    assert logs[0] == logs[1]


def test_fold_actors_are_disjoint_through_the_real_pipeline(tmp_path, monkeypatch):
    """Train / validation / test actors as train_fold's default factory actually serves them."""
    import emotf.pipeline

    records = tmp_path / "records"
    write_tiny_shards(records)  # actor 1001 + k in fold k
    real_make_dataset = emotf.pipeline.make_dataset
    served = []

    def spy(files, folds, *, training, **kwargs):
        kwargs.pop("with_metadata", None)
        dataset = real_make_dataset(files, folds, training=training, with_metadata=True, **kwargs)
        actors = {int(a) for _, _, meta in dataset for a in meta["actor_id"].numpy()}
        served.append((training, tuple(folds), actors))
        return dataset.map(lambda inputs, labels, meta: (inputs, labels))

    monkeypatch.setattr(emotf.pipeline, "make_dataset", spy)
    model = ModelConfig(
        num_segments=2,
        frame_size=32,
        video_stem_width=4,
        video_widths=(4,),
        audio_widths=(4, 4),
        fc_units=4,
    )
    cfg = config(tmp_path, records=str(records), epochs=1, batch_size=4, model=model, fold=3)
    train_fold(cfg)
    train = set().union(*(a for training, _, a in served if training))
    validation = set().union(*(a for training, f, a in served if not training and f == (4,)))
    test = set().union(*(a for training, f, a in served if not training and f == (3,)))
    assert test == {1004} and validation == {1005}
    assert train == {1001 + k for k in range(10)} - {1004, 1005}


def test_cache_records_changes_only_where_records_come_from(tmp_path):
    """Epoch 1 is identical with and without cache_records; a cached epoch 2 still draws new
    samples of the same clips (the cache keeps epoch 1's file order; the buffer reshuffles)."""
    from emotf.runs.data import records_dataset

    records = tmp_path / "records"
    write_tiny_shards(records)
    model = ModelConfig(
        num_segments=2, frame_size=32, spectrogram_shape=(16, 8), audio_widths=(4, 4)
    )
    epochs = {}
    for cache in (False, True):
        cfg = config(
            tmp_path,
            records=str(records),
            batch_size=4,
            model=model,
            cache_records=cache,
            sampling={
                "window_seconds": 0.128,
                "frame_length": 64,
                "frame_step": 16,
                "fft_length": 64,
                "num_mel_bins": 8,
            },
        )
        dataset = records_dataset(Selection((0, 1, 2, 4)), True, cfg, 0)
        epochs[cache] = [
            [(x["frames"].numpy(), x["audio"].numpy(), y.numpy()) for x, y in dataset]
            for _ in range(2)
        ]
    for cached, read in zip(epochs[True][0], epochs[False][0], strict=False):
        for a, b in zip(cached, read, strict=False):
            np.testing.assert_array_equal(a, b)
    first, second = epochs[True]
    assert not np.array_equal(first[0][0], second[0][0])
    labels = [np.sort(np.concatenate([y for _, _, y in epoch])) for epoch in (first, second)]
    np.testing.assert_array_equal(*labels)


def test_log_keeps_one_row_per_epoch(tmp_path):
    from emotf.training.run_state import read_log

    log = tmp_path / "training_log.csv"
    log.write_text("epoch,loss,val_accuracy\n0,2.0,0.1\n1,1.5,0.2\n1,1.4,0.3\n2,1.0,0.5\n")
    rows = read_log(log)
    assert [r["epoch"] for r in rows] == [0, 1, 2] and rows[1]["val_accuracy"] == 0.3


def test_resume_refuses_another_configuration(tmp_path):
    cfg = config(tmp_path, epochs=1)
    train_fold(cfg, FakeFactory())
    with pytest.raises(ValueError, match="learning_rate: 0.05 -> 0.01"):
        train_fold(
            TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2, "learning_rate": 0.01}),
            FakeFactory(),
        )
    # Another replica count (more GPUs or workers) changes the global batch mid-run: refused,
    # both counts named. (config.json records them; a run recorded without them is not checked.)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["environment"]["distribution"] == {
        "replicas": 1,
        "global_batch_size": cfg.batch_size,
    }
    (tmp_path / "run" / "config.json").write_text(
        json.dumps(
            {
                **saved,
                "environment": {
                    **saved["environment"],
                    "distribution": {"replicas": 2, "global_batch_size": 2 * cfg.batch_size},
                },
            }
        )
    )
    with pytest.raises(ValueError) as error:
        train_fold(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2}), FakeFactory())
    assert str(error.value) == (
        f"{tmp_path / 'run'} holds a resumable run trained with 2 replica(s) (global batch "
        f"{2 * cfg.batch_size}); this start has 1 (global batch {cfg.batch_size}): resume with 2 "
        "replica(s) (the same GPUs and workers), or use a new --out"
    )
    # More epochs with the same settings resume fine, also from a run made before a field
    # existed (it takes its default): a config.json without `strategy` (nor the distribution).
    del saved["config"]["strategy"], saved["environment"]["distribution"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    assert (
        train_fold(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2}), FakeFactory())[
            "epochs_run"
        ]
        == 2
    )


def test_sampling_shapes_conflicting_with_the_model_are_refused():
    ok = TrainConfig(model=MODEL, sampling={"num_segments": N, "window_seconds": 1.0})
    assert ok.sampling.num_segments == N and ok.sampling.window_seconds == 1.0
    with pytest.raises(ValueError, match="num_segments"):
        TrainConfig(model=MODEL, sampling={"num_segments": N + 1})  # refused at construction


def test_train_fold_reads_and_writes_through_gfile_urls(tmp_path):
    """Records and run folder on TensorFlow's in-memory filesystem (ram://), as on gs://: the
    run folder is complete and resumable there (log, backup, best weights, model, metrics)."""
    from emotf.runs.folder import Run
    from emotf.storage import as_path
    from emotf.training.run_state import read_log

    local = tmp_path / "records"
    write_tiny_shards(local)
    records = as_path(f"ram://{tmp_path.name}/records")
    records.mkdir()
    for file in as_path(local).iterdir():
        file.copy(records / file.name)
    model = ModelConfig(
        num_segments=2,
        frame_size=32,
        spectrogram_shape=(16, 8),
        video_stem_width=4,
        video_widths=(4,),
        audio_widths=(4, 4),
        fc_units=4,
    )
    out = f"ram://{tmp_path.name}/run"
    metrics = train_fold(
        config(tmp_path, records=str(records), out=out, epochs=1, batch_size=4, model=model)
    )
    run = Run(out)
    assert run.read_metrics()["accuracy"] == metrics["accuracy"] and metrics["epochs_run"] == 1
    assert [row["epoch"] for row in read_log(run.log_path)] == [0] and run.completed_epochs() == 1
    for path in (
        run.config_path,
        run.model_path,
        run.best_weights_path,
        run.calibration_path,
        run.tensorboard_dir,
    ):
        assert path.exists(), path
    assert not (tmp_path / "run").exists()
    assert run.load_model().count_params() == metrics["parameters"]
