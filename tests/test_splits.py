"""Clip-level splits (the OGM-GE papers' random split, or a folder of train.csv/test.csv): the
shipped lists, validation hold-out, refusals, and training/evaluation that never mix the parts."""

import csv
import json
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from emotf.configs import ModelConfig, TrainConfig
from emotf.corpora.cremad import EMOTIONS, SENTENCES, load_clip_names, parse_clip_name
from emotf.corpora.splits import (
    ACTORS,
    OGM,
    SPEAKER_DEPENDENT,
    Selection,
    hold_out_validation,
    load_clip_split,
    run_split,
    split_folds,
)
from emotf.training.train import train_all_folds, train_fold

TINY_MODEL = ModelConfig(
    num_segments=2,
    frame_size=32,
    video_stem_width=4,
    video_widths=(4,),
    audio_widths=(4, 4),
    fc_units=4,
)


def test_the_ogm_split_is_the_whole_corpus_and_speaker_dependent():
    train, test = load_clip_split(OGM)
    assert (len(train), len(test)) == (6698, 744)
    assert sorted(train + test) == sorted(load_clip_names())  # every real name, once
    actors_train = {parse_clip_name(n).actor_id for n in train}
    actors_test = {parse_clip_name(n).actor_id for n in test}
    assert len(actors_test) == 91 and actors_test == actors_train  # why it is speaker-dependent


def test_validation_is_a_seeded_stratified_part_of_the_training_list():
    split = run_split(OGM, validation_fraction=0.1, seed=0)
    train, val, test = split.train.clips, split.validation.clips, split.test.clips
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train) + len(val) == 6698 and len(val) == 670
    per_emotion_all = Counter(parse_clip_name(n).emotion for n in train | val)
    per_emotion_val = Counter(parse_clip_name(n).emotion for n in val)
    for emotion in EMOTIONS:
        assert abs(per_emotion_val[emotion] - 0.1 * per_emotion_all[emotion]) <= 1
    assert run_split(OGM, seed=0).validation == split.validation  # repeatable
    assert run_split(OGM, seed=1).validation != split.validation  # and the seed matters
    assert split.clip_level and split.protocol == SPEAKER_DEPENDENT
    assert split.summary()["test_clips"] == 744


def test_the_actor_protocol_is_unchanged():
    split = run_split(ACTORS, fold=3, validation_folds=2)
    train, val, test = split_folds(3, 2)
    assert split.train == Selection(tuple(train)) and split.validation == Selection(tuple(val))
    assert split.test == Selection((3,)) and not split.clip_level


def write_split(folder, train, test, emotions=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name, names in (("train.csv", train), ("test.csv", test)):
        with open(folder / name, "w", newline="") as f:
            writer = csv.writer(f)
            for clip in names:
                writer.writerow([clip, (emotions or {}).get(clip, clip.split("_")[2])])
    return folder


@pytest.mark.parametrize(
    "problem",
    [
        "missing test.csv",
        "bad name",
        "emotion differs",
        "in both lists",
        "listed twice",
        "a file name",
    ],
)
def test_a_bad_split_folder_is_refused_naming_the_file_and_row(tmp_path, problem):
    train, test = ["1001_DFA_ANG_XX", "1001_DFA_SAD_XX"], ["1002_DFA_ANG_XX"]
    emotions = {}
    if problem == "bad name":
        train = train + ["1001_DFA_XYZ_XX"]
    elif problem == "emotion differs":
        emotions = {"1001_DFA_SAD_XX": "HAP"}
    elif problem == "in both lists":
        test = test + ["1001_DFA_ANG_XX"]
    elif problem == "listed twice":
        train = train + ["1001_DFA_ANG_XX"]
    elif problem == "a file name":  # records hold bare ids: it would match nothing
        test = test + ["1001_DFA_HAP_XX.flv"]
    folder = write_split(tmp_path / "split", train, test, emotions)
    if problem == "missing test.csv":
        (folder / "test.csv").unlink()
    with pytest.raises(ValueError) as error:
        TrainConfig(split=str(folder))
    message = str(error.value)
    expected = {
        "missing test.csv": "test.csv",
        "bad name": "train.csv, row 3",
        "emotion differs": "train.csv, row 2",
        "in both lists": "1001_DFA_ANG_XX",
        "listed twice": "train.csv, row 3",
        "a file name": "test.csv, row 2: write the bare clip name",
    }[problem]
    assert expected in message and str(folder) in message


def test_train_all_folds_refuses_a_clip_level_split(tmp_path):
    with pytest.raises(ValueError, match="clip-level split has one test list"):
        train_all_folds(TrainConfig(split=OGM, out=str(tmp_path)))


# --- through the real pipeline -------------------------------------------------------------


def write_named_shards(out_dir, clips_per_fold=3, frame_size=32):
    """One actor per fold, each clip a distinct real-looking name; returns {name: label}."""
    from emotf.records.example import ClipRecord, make_example

    rng = np.random.default_rng(0)
    out_dir.mkdir()
    labels = {}
    for fold in range(10):
        with tf.io.TFRecordWriter(str(out_dir / f"fold-{fold}-of-10-00000.tfrecord")) as writer:
            for c in range(clips_per_fold):
                emotion = EMOTIONS[(fold + c) % 6]
                name = f"{1001 + fold}_{SENTENCES[c]}_{emotion}_XX"
                labels[name] = EMOTIONS.index(emotion)
                t = 12
                frames = [
                    tf.io.encode_jpeg(
                        rng.integers(0, 256, (frame_size, frame_size, 3), dtype=np.uint8)
                    ).numpy()
                    for _ in range(t)
                ]
                writer.write(
                    make_example(
                        ClipRecord(
                            clip_id=name,
                            actor_id=1001 + fold,
                            sentence=SENTENCES[c],
                            emotion=emotion,
                            label=labels[name],
                            intensity="XX",
                            fold=fold,
                            fps=10.0,
                            frames_jpeg=frames,
                            face_boxes=np.zeros((t, 4), np.float32),
                            face_detected=np.ones(t, np.int64),
                            source_size=(360, 480),
                            sample_rate=16000,
                            pcm16=rng.normal(0, 3000, 24000).astype(np.int16),
                        )
                    ).SerializeToString()
                )
    from emotf.records.manifest import seal_records

    seal_records(out_dir)  # a manifest, as emotf-build-records writes (training checks it)
    return labels


@pytest.fixture(scope="module")
def clip_split_records(tmp_path_factory):
    """30 named clips in fold shards; a split whose test list takes one clip of 6 actors."""
    root = tmp_path_factory.mktemp("clip_split")
    labels = write_named_shards(root / "records")
    names = sorted(labels)
    test = names[::5]  # 6 clips from 6 different actors, who are also in the training list
    train = [n for n in names if n not in test]
    return root, labels, write_split(root / "split", train, test), train, test


def test_make_dataset_keeps_only_the_listed_clips(clip_split_records):
    from emotf.configs import SamplingConfig
    from emotf.pipeline import make_dataset

    root, labels, _, _, test = clip_split_records
    sampling = SamplingConfig(num_segments=2, frame_size=32, time_bins=16, freq_bins=8)
    ds = make_dataset(
        root / "records",
        range(10),
        training=True,
        config=sampling,
        batch_size=2,
        drop_remainder=False,
        with_metadata=True,
        clip_ids=test,
    )
    served = [c.decode() for _, _, meta in ds for c in meta["clip_id"].numpy()]
    assert sorted(served) == sorted(test)
    for _, label, meta in ds:
        for name, y in zip(meta["clip_id"].numpy(), label.numpy(), strict=True):
            assert labels[name.decode()] == y


def test_training_on_a_clip_split_never_serves_test_clips_and_reports_it(
    clip_split_records, tmp_path
):
    from emotf.evaluation.evaluate import evaluate_model
    from emotf.pipeline import make_dataset
    from emotf.runs.data import records_dataset

    root, _, split_dir, train, test = clip_split_records
    served = []

    def spy(part, training, config, epoch):
        served.append((training, None if part.clips is None else set(part.clips)))
        return records_dataset(part, training, config, epoch)

    cfg = TrainConfig(
        records=str(root / "records"),
        out=str(tmp_path / "run"),
        split=str(split_dir),
        validation_fraction=0.25,
        epochs=2,
        batch_size=4,
        lr_schedule="constant",
        learning_rate=0.01,
        verbose=0,
        export=False,
        model=TINY_MODEL,
    )
    metrics = train_fold(cfg, spy)
    train_part, val_part, test_part = served
    assert train_part[0] and not val_part[0] and not test_part[0]
    assert test_part[1] == set(test)
    assert not (train_part[1] | val_part[1]) & set(test)
    assert train_part[1] | val_part[1] == set(train) and len(val_part[1]) == 6
    assert metrics["fold"] is None and metrics["protocol"] == SPEAKER_DEPENDENT
    assert metrics["split"] == str(split_dir) and metrics["num_clips"] == len(test) == 6
    assert (metrics["train_clips"], metrics["validation_clips"], metrics["test_clips"]) == (
        18,
        6,
        6,
    )
    assert metrics["steps_per_epoch"] == 18 // 4
    assert metrics["clips_in_records"] == {"train": 18, "validation": 6, "test": 6}
    run_config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert run_config["split"]["test_clips"] == 6 and "folds" not in run_config

    # emotf-evaluate on the run picks the same test list, and says what it is.
    report = evaluate_model(tmp_path / "run")
    assert report["protocol"] == SPEAKER_DEPENDENT and report["split"] == str(split_dir)
    with open(tmp_path / "run" / "evaluation" / "predictions.csv") as f:
        assert sorted(row["clip_id"] for row in csv.DictReader(f)) == sorted(test)
    # The scored model is the one saved: its accuracy on the test list is the run's.
    import keras

    from emotf.evaluation.metrics import clip_metrics

    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    ds = make_dataset(
        root / "records",
        range(10),
        training=False,
        config=cfg.sampling,
        batch_size=4,
        clip_ids=test,
    )
    labels = np.concatenate([y for _, y in ds])
    probs = np.concatenate([model.predict(x, verbose=0)["probabilities"] for x, _ in ds])
    assert clip_metrics(labels, probs)["accuracy"] == metrics["accuracy"]


def test_cli_flags_select_the_split(tmp_path, clip_split_records):
    from emotf.cli.train import build_parser, resolve_config

    _, _, split_dir, _, _ = clip_split_records
    args = build_parser().parse_args(
        ["--records", "r", "--split", str(split_dir), "--validation-fraction", "0.2"]
    )
    config, run_all = resolve_config(args)
    assert config.split == str(split_dir) and config.validation_fraction == 0.2 and not run_all
    args = build_parser().parse_args(["--records", "r", "--split", "ogm"])
    assert resolve_config(args)[0].split == OGM
    with pytest.raises(ValueError, match="train.csv and test.csv"):
        resolve_config(build_parser().parse_args(["--split", str(tmp_path / "nowhere")]))


def test_hold_out_validation_without_enough_clips_to_stratify():
    names = ["1001_DFA_ANG_XX", "1001_DFA_SAD_XX", "1002_DFA_ANG_XX", "1002_DFA_HAP_XX"]
    train, val = hold_out_validation(names, 0.25, seed=0)
    assert len(val) == 1 and sorted(train + val) == sorted(names)
    with pytest.raises(ValueError, match="validation_fraction"):
        hold_out_validation(names, 1.0, seed=0)


def test_tuning_on_a_clip_split_never_reads_the_test_list(clip_split_records, tmp_path):
    from emotf.runs.data import records_dataset
    from emotf.tuning.config import TuneConfig
    from emotf.tuning.search import tune

    root, _, split_dir, train, test = clip_split_records
    served = []

    def spy(part, training, config, epoch):
        served.append(set(part.clips))
        return records_dataset(part, training, config, epoch)

    base = TrainConfig(
        records=str(root / "records"),
        split=str(split_dir),
        validation_fraction=0.25,
        epochs=1,
        batch_size=4,
        verbose=0,
        export=False,
        model=TINY_MODEL,
    )
    tune(
        TuneConfig(train=base, out=str(tmp_path / "tune"), max_trials=2, search=("learning_rate",)),
        spy,
    )
    assert served and set().union(*served) == set(train)  # training + validation, never test
    best = json.loads((tmp_path / "tune" / "best_config.json").read_text())
    assert best["tuning"]["test_clips_never_read"] == len(test)
    assert best["config"]["split"] == str(split_dir)


def test_a_test_list_with_no_built_clip_is_refused_before_training(clip_split_records, tmp_path):
    root, _, _, train, _ = clip_split_records
    split_dir = write_split(tmp_path / "split", train, ["1090_DFA_ANG_XX", "1091_DFA_SAD_XX"])
    cfg = TrainConfig(
        records=str(root / "records"),
        out=str(tmp_path / "run"),
        split=str(split_dir),
        epochs=1,
        batch_size=4,
        verbose=0,
        export=False,
        model=TINY_MODEL,
    )
    with pytest.raises(ValueError, match="none of the 2 clips of the test list"):
        train_fold(cfg)
    assert not (tmp_path / "run" / "training_log.csv").exists()


def test_cli_refuses_fold_all_with_a_clip_level_split(capsys):
    from emotf.cli.train import main

    with pytest.raises(SystemExit):
        main(["--records", "r", "--split", "ogm", "--fold", "all"])
    assert "a clip-level split has one test list" in capsys.readouterr().err


def test_a_split_edited_after_a_run_is_refused_on_resume_and_evaluation(
    clip_split_records, tmp_path
):
    from emotf.evaluation.evaluate import evaluate_model

    root, _, _, train, test = clip_split_records
    split_dir = write_split(tmp_path / "split", train, test)
    cfg = TrainConfig(
        records=str(root / "records"),
        out=str(tmp_path / "run"),
        split=str(split_dir),
        validation_fraction=0.25,
        epochs=1,
        batch_size=4,
        verbose=0,
        export=False,
        model=TINY_MODEL,
    )
    train_fold(cfg)
    with pytest.raises(ValueError, match="its folds hold training clips"):
        evaluate_model(tmp_path / "run", folds=[0])
    write_split(split_dir, train[1:], test + train[:1])  # one training clip moved to test
    with pytest.raises(ValueError, match="differ from the ones"):
        train_fold(cfg)
    with pytest.raises(ValueError, match="differ from the ones"):
        evaluate_model(tmp_path / "run")


def test_a_folder_split_is_kept_as_an_absolute_path(clip_split_records, monkeypatch):
    _, _, split_dir, _, _ = clip_split_records
    monkeypatch.chdir(split_dir.parent)
    assert TrainConfig(split="split").split == str(split_dir.resolve())


def test_a_validation_hold_out_of_unbuilt_clips_is_refused_before_training(
    clip_split_records, tmp_path
):
    root, labels, _, _, test = clip_split_records
    built = [n for n in sorted(labels) if n not in test][:4]
    unbuilt = [
        f"{actor}_{sentence}_{emotion}_XX"
        for actor in range(1050, 1091)
        for sentence in ("IEO", "TIE")
        for emotion in ("ANG", "SAD")
    ]
    split_dir = write_split(tmp_path / "split", built + unbuilt, test)
    cfg = TrainConfig(
        records=str(root / "records"),
        out=str(tmp_path / "run"),
        split=str(split_dir),
        validation_fraction=0.02,
        epochs=1,
        batch_size=2,
        verbose=0,
        export=False,
        model=TINY_MODEL,
    )
    assert not run_split(cfg.split, validation_fraction=0.02).validation.clips & set(built)
    with pytest.raises(ValueError, match="clips of the validation list"):
        train_fold(cfg)


@pytest.mark.parametrize("content", ["huge", "binary"])
def test_a_split_file_is_read_under_a_size_cap_and_as_text(tmp_path, content):
    """A user's train.csv/test.csv is capped (MAX_TABLE_BYTES, checked before reading) and a
    binary file is refused naming it, never read whole."""
    from emotf.corpora.splits import read_split_csv
    from emotf.storage import MAX_TABLE_BYTES

    path = tmp_path / "train.csv"
    if content == "huge":
        with open(path, "wb") as f:
            f.truncate(MAX_TABLE_BYTES + 1)  # sparse: no disk used
    else:
        path.write_bytes(b"\xff\xfe\x00" * 100)
    with pytest.raises(ValueError, match=str(path)):
        read_split_csv(path)
