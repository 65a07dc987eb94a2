"""Metrics, confusion matrix, figures and predictions files of emotf.evaluation.evaluate."""

import argparse
import csv
import json

import numpy as np
import pytest

from emotf.corpora.base import MAX_FOLDS
from emotf.corpora.cremad import EMOTIONS
from emotf.corpora.info import CREMAD_INFO
from emotf.evaluation.evaluate import accuracy_vs_segments, evaluate_model, model_with_segments
from emotf.evaluation.figures import (
    plot_accuracy_vs_n,
    plot_training_curves,
    read_accuracy_vs_n,
    read_predictions,
    write_confusion_matrix,
    write_predictions,
)
from emotf.evaluation.metrics import classification_report_dict, mean_std
from emotf.evaluation.summary import model_vs_humans, summarize_predictions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


# Hand-computed case, 3 classes:
#   true: a a a b b c      pred: a a b b c c
#   cm = [[2,1,0],[0,1,1],[0,0,1]]
#   precision a=2/2, b=1/2, c=1/2; recall a=2/3, b=1/2, c=1/1; accuracy 4/6
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def test_report_against_hand_computed_case():
    r = classification_report_dict(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert r["num_examples"] == 6
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    expected = {"a": (1.0, 2 / 3, 3), "b": (0.5, 0.5, 2), "c": (0.5, 1.0, 1)}
    for name, (p, rec, support) in expected.items():
        got = r["per_class"][name]
        assert got["precision"] == pytest.approx(p)
        assert got["recall"] == pytest.approx(rec)
        assert got["f1"] == pytest.approx(2 * p * rec / (p + rec))
        assert got["support"] == support
    assert r["macro_avg"]["recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    json.dumps(r)  # JSON-ready


def test_report_keeps_absent_classes_and_rejects_bad_input():
    r = classification_report_dict([0, 0], [0, 1], EMOTIONS)
    assert len(r["confusion_matrix"]) == 6
    assert r["per_class"]["SAD"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    with pytest.raises(ValueError, match="differ in length"):
        classification_report_dict([0, 1], [0], EMOTIONS)
    with pytest.raises(ValueError, match="outside"):
        classification_report_dict([0, 7], [0, 1], EMOTIONS)


def test_mean_std_ignores_missing():
    assert mean_std([0.5, 0.7, None, float("nan")]) == pytest.approx((0.6, 0.02**0.5))
    assert mean_std([0.4]) == (0.4, 0.0)
    assert all(np.isnan(mean_std([])))


@pytest.mark.parametrize("normalize", ["true", None])
def test_confusion_matrix_files(tmp_path, normalize):
    cm = [[2, 1, 0], [0, 1, 1], [0, 0, 0]]  # an empty row must not break normalisation
    write_confusion_matrix(
        cm, ["a", "b", "c"], tmp_path / "cm.csv", tmp_path / "cm.png", normalize=normalize
    )
    with open(tmp_path / "cm.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true\\predicted", "a", "b", "c"]
    assert rows[1] == ["a", "2", "1", "0"]
    assert_valid_png(tmp_path / "cm.png")
    with pytest.raises(ValueError, match="3x3"):
        write_confusion_matrix([[1]], ["a", "b", "c"], tmp_path / "x.csv")


def test_training_curves_png(tmp_path):
    log = tmp_path / "training_log.csv"
    log.write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n"
        "0,0.2,1.8,0.18,1.79\n1,0.35,1.6,0.3,1.7\n2,0.5,1.3,0.38,1.6\n"
    )
    plot_training_curves(log, tmp_path / "curves.png")
    assert_valid_png(tmp_path / "curves.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="no epochs"):
        plot_training_curves(empty, tmp_path / "x.png")


def test_accuracy_vs_n_files(tmp_path):
    rows = [
        {"source": "trained N=10", "n": n, "accuracy": 0.3 + 0.03 * n} for n in range(10, 0, -1)
    ]
    rows.append({"source": "trained with N", "n": 4, "accuracy": 0.4})
    plot_accuracy_vs_n(rows, tmp_path / "acc.csv", tmp_path / "acc.png")
    back = read_accuracy_vs_n(tmp_path / "acc.csv")
    assert [r["n"] for r in back if r["source"] == "trained N=10"] == list(range(1, 11))
    assert back[0]["accuracy"] == pytest.approx(0.33)
    assert_valid_png(tmp_path / "acc.png")


def test_predictions_round_trip(tmp_path):
    probs = np.eye(6)[[0, 3, 5]] * 0.9 + 0.1 / 6
    write_predictions(tmp_path / "p.csv", ["a", "b", "c"], [0, 2, 5], probs, EMOTIONS)
    back = read_predictions(tmp_path / "p.csv")
    assert back["clip_ids"] == ["a", "b", "c"]
    assert back["labels"].tolist() == [0, 2, 5]
    assert back["predicted"].tolist() == [0, 3, 5]
    np.testing.assert_allclose(back["probabilities"], probs, atol=1e-6)


def test_model_vs_humans_on_real_clips(cremad_tables_dir):
    from emotf.corpora.votes import load_votes

    votes = load_votes(cremad_tables_dir / "tabulatedVotes.csv")
    clips = ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_DFA_ANG_XX"]
    side = model_vs_humans(clips, [4, 3, 0], [4, 4, 0], votes)
    assert side["num_clips"] == 3
    assert side["model"]["all"] == pytest.approx(2 / 3)
    assert side["model"]["HAP"] == 0.0 and side["model"]["NEU"] == 1.0
    assert np.isnan(side["model"]["SAD"])
    # Row 100001: 1001_IEO_NEU_XX voice, 10 of 11 said neutral.
    assert side["humans"]["voice"]["NEU"] == pytest.approx(10 / 11)


def test_summarize_predictions_writes_everything(tmp_path):
    clips = ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_DFA_ANG_XX", "1002_DFA_SAD_XX"]
    probs = np.eye(6)[[4, 4, 0, 5]]
    report = summarize_predictions(clips, [4, 3, 0, 5], probs, tmp_path, corpus=CREMAD_INFO)
    assert report["accuracy"] == pytest.approx(0.75)
    for name in ("predictions.csv", "confusion_matrix.csv", "evaluation.json"):
        assert (tmp_path / name).is_file()
    assert_valid_png(tmp_path / "confusion_matrix.png")
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["humans_same_clips"]["model"]["DIS"] is None  # NaN -> null
    assert 0 < saved["humans_same_clips"]["humans"]["audio-visual"]["all"] < 1


# === Glue: a tiny saved run + a fake evaluation dataset (no records needed) ===

CLIPS = [
    "1001_IEO_NEU_XX",
    "1001_IEO_HAP_LO",
    "1001_DFA_ANG_XX",
    "1002_DFA_SAD_XX",
    "1003_ITH_FEA_XX",
]


def tiny_model_config(**overrides):
    from emotf.configs import ModelConfig

    values = {
        "num_segments": 3,
        "frame_size": 32,
        "spectrogram_shape": (24, 16),
        "video_stem_width": 4,
        "video_widths": (8,),
        "audio_widths": (4, 8),
        "fc_units": 8,
    }
    values.update(overrides)
    return ModelConfig(**values)


def fake_dataset_fn(part, training, config, epoch):
    """An evaluation `DatasetFactory` over CLIPS (N and batch size from the config)."""
    import tensorflow as tf

    num_segments, batch_size = config.model.num_segments, config.batch_size
    rng = np.random.default_rng(sum(part.folds))
    m = len(CLIPS)
    inputs = {
        "frames": rng.integers(0, 256, (m, num_segments, 32, 32, 3)).astype("uint8"),
        "audio": rng.normal(0, 0.1, (m, num_segments, 20480)).astype("float32"),
    }
    labels = np.array([4, 3, 0, 5, 2], np.int32)
    return tf.data.Dataset.from_tensor_slices((inputs, labels, {"clip_id": CLIPS})).batch(
        batch_size
    )


def make_run(run, records="", test_fold=0, **overrides):
    """A run folder with an untrained tiny model; `overrides` are ModelConfig fields."""
    from emotf.model import build_model

    config = tiny_model_config(**overrides)
    run.mkdir(parents=True)
    build_model(config).save(str(run / "model.keras"))
    (run / "config.json").write_text(
        json.dumps(
            {
                "config": {
                    "model": config.to_dict(),
                    "batch_size": 2,
                    "records": str(records),
                    "sampling": {},
                },
                "folds": {"train": [2, 3], "validation": [1], "test": test_fold},
            }
        )
    )
    (run / "training_log.csv").write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.2,1.8,0.1,1.9\n1,0.3,1.7,0.2,1.8\n"
    )
    return run


def test_evaluate_model_on_a_tiny_run(tmp_path):
    run = make_run(tmp_path / "run")
    report = evaluate_model(run, dataset_fn=fake_dataset_fn)
    out = run / "evaluation"
    assert report["folds"] == [0] and report["num_segments"] == 3
    assert report["num_examples"] == len(CLIPS)
    predictions = read_predictions(out / "predictions.csv")
    assert predictions["clip_ids"] == CLIPS
    np.testing.assert_allclose(predictions["probabilities"].sum(-1), 1.0, atol=1e-4)
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert_valid_png(out / name)
    assert set(report["humans_same_clips"]["humans"]) == {"voice", "face", "audio-visual"}


def test_accuracy_vs_segments_reuses_shared_weights(tmp_path):
    run = make_run(tmp_path / "run")
    other = make_run(tmp_path / "run-n2", num_segments=2)
    rows = accuracy_vs_segments(
        run,
        segments=[1, 2, 4],
        other_runs=[other],
        dataset_fn=fake_dataset_fn,
        out=tmp_path / "out",
    )
    assert [(r["n"], r["num_examples"]) for r in rows] == [(1, 5), (2, 5), (4, 5), (2, 5)]
    assert rows[-1]["source"] == "trained and evaluated with N"
    assert_valid_png(tmp_path / "out" / "accuracy_vs_n.png")


def test_model_with_segments_copies_the_core_and_refuses_independent():
    from emotf.model import build_model

    trained = build_model(tiny_model_config())
    five = model_with_segments(trained, 5, tiny_model_config())
    assert five.inputs[0].shape[1] == 5
    for a, b in zip(trained.get_layer("core").weights, five.get_layer("core").weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    same = model_with_segments(trained, 3, tiny_model_config())
    rng = np.random.default_rng(0)
    x = {
        "frames": rng.integers(0, 256, (2, 3, 32, 32, 3)).astype("uint8"),
        "audio": rng.normal(0, 0.1, (2, 3, 20480)).astype("float32"),
    }
    np.testing.assert_allclose(
        np.asarray(same(x)["probabilities"]), np.asarray(trained(x)["probabilities"]), atol=1e-6
    )
    with pytest.raises(ValueError, match="shared branch weights"):
        model_with_segments(trained, 5, tiny_model_config(branch_weights="independent"))


def _records_stub(tmp_path):
    """A folder `check_records_folder` takes for records (one empty shard): the tests' fake
    dataset factory reads nothing from it; --allow-incomplete lets its manifest check pass."""
    records = tmp_path / "records"
    records.mkdir(exist_ok=True)
    (records / "fold-1-of-10-00000.tfrecord").write_bytes(b"")
    return records


def test_cli_evaluates_a_run_with_accuracy_vs_n(tmp_path, monkeypatch, capsys):
    import emotf.evaluation.evaluate
    from emotf.cli.evaluate import main, parse_segments

    assert parse_segments("1..4") == [1, 2, 3, 4] and parse_segments("8,2,2") == [2, 8]
    with pytest.raises(argparse.ArgumentTypeError, match="0..3"):
        parse_segments("0..3")
    monkeypatch.setattr(
        emotf.evaluation.evaluate, "records_evaluation_dataset", lambda records: fake_dataset_fn
    )
    run = make_run(tmp_path / "run")
    # --records is checked up front (a records folder: a shard or a manifest), then read by
    # the fake factory; its (empty) shard is let through by --allow-incomplete.
    records = _records_stub(tmp_path)
    assert (
        main(
            [
                "--run",
                str(run),
                "--records",
                str(records),
                "--allow-incomplete",
                "--fold",
                "1",
                "--segments",
                "1..2",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["folds"] == [1] and printed["num_examples"] == 5
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert printed["ece"] == saved["calibration"]["ece"] is not None
    ci = saved["confidence_intervals"]["model"]
    assert printed["accuracy_95ci"] == [ci["low"], ci["high"]]
    assert [r["n"] for r in printed["accuracy_vs_n"]] == [1, 2]
    for name in ("predictions.csv", "confusion_matrix.csv", "accuracy_vs_n.csv", "evaluation.json"):
        assert (tmp_path / "out" / name).is_file()


def write_real_name_shards(out_dir, folds=(0, 1), frame_size=32):
    """Tiny record shards whose clip ids are real CREMA-D names (so humans have votes)."""
    import tensorflow as tf

    from emotf.corpora.cremad import parse_clip_name
    from emotf.records.example import ClipRecord, make_example

    rng = np.random.default_rng(0)
    out_dir.mkdir()
    for fold in folds:
        names = [
            f"{1001 + fold}_DFA_ANG_XX",
            f"{1001 + fold}_DFA_SAD_XX",
            f"{1001 + fold}_ITH_HAP_XX",
        ]
        with tf.io.TFRecordWriter(str(out_dir / f"fold-{fold}-of-10-00000.tfrecord")) as writer:
            for name in names:
                clip, t = parse_clip_name(name), 12
                frames = [
                    tf.io.encode_jpeg(
                        rng.integers(0, 256, (frame_size, frame_size, 3), dtype=np.uint8)
                    ).numpy()
                    for _ in range(t)
                ]
                record = ClipRecord(
                    clip_id=name,
                    actor_id=clip.actor_id,
                    sentence=clip.sentence,
                    emotion=clip.emotion,
                    label=clip.label,
                    intensity=clip.intensity,
                    fold=fold,
                    fps=10.0,
                    frames_jpeg=frames,
                    face_boxes=np.zeros((t, 4), np.float32),
                    face_detected=np.ones(t, np.int64),
                    source_size=(360, 480),
                    sample_rate=16000,
                    pcm16=rng.normal(0, 3000, 24000).astype(np.int16),
                )
                writer.write(make_example(record).SerializeToString())
    from emotf.records.manifest import seal_records

    seal_records(out_dir)  # a manifest, as emotf-build-records writes (evaluation checks it)
    return out_dir


@pytest.mark.slow
def test_glue_on_record_shards_through_the_pipeline(tmp_path):
    """evaluate_model + accuracy_vs_segments with the default factory (emotf.pipeline)."""
    pytest.importorskip("emotf.pipeline")
    records = write_real_name_shards(tmp_path / "records")
    # Frame size and spectrogram shape come from the model config, as in training.
    run = make_run(
        tmp_path / "run", records=records, test_fold=1, num_segments=2, spectrogram_shape=(96, 60)
    )
    report = evaluate_model(run)
    predictions = read_predictions(run / "evaluation" / "predictions.csv")
    assert sorted(predictions["clip_ids"]) == [
        "1002_DFA_ANG_XX",
        "1002_DFA_SAD_XX",
        "1002_ITH_HAP_XX",
    ]
    assert sorted(predictions["labels"].tolist()) == [0, 3, 5]
    assert report["num_segments"] == 2 and report["folds"] == [1]
    assert report["humans_same_clips"]["num_clips"] == 3
    rows = accuracy_vs_segments(run, folds=[0, 1], segments=[1, 3])
    assert [(r["n"], r["num_examples"]) for r in rows] == [(1, 6), (3, 6)]


def test_report_extras_can_be_switched_off(tmp_path):
    from emotf.evaluation.summary import ReportExtras

    clips = ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_DFA_ANG_XX", "1002_DFA_SAD_XX"]
    off = ReportExtras(humans=False, groups=False, calibration=False, intervals=False)
    report = summarize_predictions(
        clips, [4, 3, 0, 5], np.eye(6)[[4, 4, 0, 5]], tmp_path, corpus=CREMAD_INFO, extras=off
    )
    for extra in ("humans_same_clips", "by_group", "calibration", "confidence_intervals"):
        assert report[extra] is None, extra
    assert not (tmp_path / "reliability.png").exists()
    assert not (tmp_path / "accuracy_by_group.csv").exists()
    on = summarize_predictions(
        clips, [4, 3, 0, 5], np.eye(6)[[4, 4, 0, 5]], tmp_path / "on", corpus=CREMAD_INFO
    )
    assert all(
        on[e] is not None
        for e in ("humans_same_clips", "by_group", "calibration", "confidence_intervals")
    )


def test_one_prediction_loop_with_and_without_clip_ids():
    import tensorflow as tf

    from emotf.evaluation.metrics import predict_clips

    def model(inputs, training=False):
        return {"probabilities": tf.one_hot(tf.cast(inputs["audio"][:, 0], tf.int32), 6)}

    audio = np.array([[2.0], [5.0], [0.0]], np.float32)
    labels = np.array([2, 1, 0], np.int32)
    plain = tf.data.Dataset.from_tensor_slices(({"audio": audio}, labels)).batch(2)
    with_ids = tf.data.Dataset.from_tensor_slices(
        ({"audio": audio}, labels, {"clip_id": ["a", "b", "c"]})
    ).batch(2)
    a, b = predict_clips(model, plain), predict_clips(model, with_ids)
    assert a.clip_ids is None and b.clip_ids == ["a", "b", "c"]
    np.testing.assert_array_equal(a.predicted, [2, 5, 0])
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    with pytest.raises(ValueError, match="empty"):
        predict_clips(model, plain.take(0))


def test_prediction_loop_runs_in_one_graph_with_the_eager_outputs():
    # Memory: an eager call of a Keras functional model holds every intermediate tensor until
    # it returns (~5 GB for a batch of 16 of the default model); predict_clips runs a graph, in
    # which the model's Python body runs once per trace, not once per batch, and a last,
    # smaller batch reuses a shape-relaxed graph (tools/bench_train_memory.py).
    import keras
    import tensorflow as tf

    from emotf.evaluation.metrics import predict_clips

    traces = []
    dense = keras.layers.Dense(6)
    dense.build((None, 3))  # a trained model's variables exist before it predicts

    def model(inputs, training=False):
        traces.append(1)
        return {"probabilities": tf.nn.softmax(dense(inputs["audio"]))}

    audio = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(({"audio": audio}, np.arange(7) % 6)).batch(2)
    got = predict_clips(model, ds)
    assert len(traces) <= 2  # 4 batches (2, 2, 2, 1): at most a first and a relaxed trace
    eager = np.concatenate([tf.nn.softmax(dense(x["audio"])).numpy() for x, _ in ds])
    np.testing.assert_allclose(got.probabilities, eager, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.labels, np.arange(7) % 6)


def test_cli_switches_report_extras_off(tmp_path, monkeypatch, capsys):
    from dataclasses import fields

    import emotf.evaluation.evaluate
    from emotf.cli.evaluate import EXTRAS, main
    from emotf.evaluation.summary import ReportExtras

    assert EXTRAS == tuple(f.name for f in fields(ReportExtras))
    monkeypatch.setattr(
        emotf.evaluation.evaluate, "records_evaluation_dataset", lambda records: fake_dataset_fn
    )
    run = make_run(tmp_path / "run")
    assert (
        main(
            [
                "--run",
                str(run),
                "--records",
                str(_records_stub(tmp_path)),
                "--allow-incomplete",
                "--out",
                str(tmp_path / "out"),
                "--extras.calibration",
                "false",
                "--extras.groups",
                "false",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["ece"] is None
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert saved["calibration"] is None and saved["by_group"] is None
    assert saved["humans_same_clips"] is not None and saved["confidence_intervals"] is not None


@pytest.mark.parametrize(
    "flag, value, problem",
    [
        ("--fold", "\uff11", "not an integer: '\uff11'"),  # int() would take a full-width 1
        (  # the config's bound: any corpus's folds (emotf.corpora.base.MAX_FOLDS)
            "--fold",
            str(MAX_FOLDS),
            f"TrainConfig.fold must be in [0, {MAX_FOLDS - 1}]. Received: fold={MAX_FOLDS}",
        ),
        ("--batch-size", "0", "TrainConfig.batch_size must be in [1, "),
        ("--batch-size", "1.5", "not an integer: '1.5'"),
        (
            "--segments",
            "1..100000",
            "ModelConfig.num_segments must be in [1, 64]. Received: num_segments=100000",
        ),
        ("--segments", "\u0661..\u0662", "expected N >= 1 as 'A..B' or a comma list"),
    ],
)
def test_cli_numbers_are_refused_outside_the_configs_bounds(flag, value, problem, capsys):
    """--fold, --batch-size and --segments accept what TrainConfig / ModelConfig accept."""
    from emotf.cli.evaluate import main

    with pytest.raises(SystemExit) as exit_:
        main(["--run", "unused", flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and problem in err[0], err


def test_a_loop_over_models_prints_no_retracing_warning(caplog):
    # Accuracy vs N and --fold all predict with one new model after another, each traced once:
    # TensorFlow counts traces per Python code object, so a lambda per model shared one count
    # and warned of "frequent retracing" after five models.
    import logging

    import tensorflow as tf

    from emotf.evaluation.metrics import predict_clips

    audio = np.ones((2, 3), np.float32)
    ds = tf.data.Dataset.from_tensor_slices(({"audio": audio}, np.zeros(2, np.int32))).batch(2)
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for scale in range(8):

            def model(inputs, training=False, scale=float(scale)):
                return {"probabilities": tf.nn.softmax(inputs["audio"] * scale)}

            predict_clips(model, ds)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_a_batch_is_predicted_a_few_clips_per_call_with_the_same_probabilities():
    # Memory: a call's activations scale with its clips (~1 GB for 16 clips of the default
    # model), so predict_clips cuts each batch into calls of PREDICT_CHUNK_CLIPS clips.
    import keras
    import tensorflow as tf

    from emotf.evaluation.metrics import (
        PREDICT_CHUNK_CLIPS,
        inference_function,
        predict_batch,
        predict_clips,
    )

    sizes = []
    dense = keras.layers.Dense(6)
    dense.build((None, 3))

    def model(inputs, training=False):
        sizes.append(inputs["audio"].shape[0])
        return {"probabilities": tf.nn.softmax(dense(inputs["audio"]))}

    audio = np.random.default_rng(1).normal(size=(11, 3)).astype(np.float32)
    whole = tf.nn.softmax(dense(audio)).numpy()
    got = predict_batch(inference_function(model), {"audio": tf.constant(audio)}, chunk=4)
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)
    assert got.shape == (11, 6) and max(s for s in sizes if s is not None) <= 4
    ds = tf.data.Dataset.from_tensor_slices(({"audio": audio}, np.arange(11) % 6)).batch(16)
    sizes.clear()
    np.testing.assert_allclose(predict_clips(model, ds).probabilities, whole, rtol=0, atol=1e-6)
    assert max(s for s in sizes if s is not None) <= PREDICT_CHUNK_CLIPS < 11
