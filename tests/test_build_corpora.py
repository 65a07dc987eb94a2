"""emotf-build-records --corpus ravdess / csv on tiny synthetic corpora: the manifest's corpus,
classes, folds and speakers, the records' labels, the skipped files and rows with their reasons,
and emotf-verify-records on the result."""

from __future__ import annotations

import json
import shutil

import pytest

from emotf import keys
from emotf.cli.build_records import main
from emotf.cli.verify_records import main as verify_main
from emotf.configs import SamplingConfig
from emotf.corpora.base import CorpusError
from emotf.corpora.info import CorpusInfo
from emotf.corpora.ravdess import (
    EMOTIONS,
    INTENSITIES,
    STATEMENTS,
    parse_ravdess_name,
    ravdess_folds,
)
from emotf.pipeline import make_dataset
from emotf.records.config import BuildConfig
from emotf.records.example import read_records
from emotf.records.plan import make_plan
from emotf.synthetic.ravdess import RavdessSampleConfig, make_ravdess_sample

TINY = RavdessSampleConfig.tiny()  # actors 01 and 06, 3 full-AV speech clips each
CLASSES = ("calm", "tense", "happy")  # not sorted: the label order is the one given


def records_by_clip(out_dir) -> dict:
    recs = list(read_records(sorted(out_dir.glob("*.tfrecord"))))
    ids = [r[keys.CLIP_ID].numpy().decode() for r in recs]
    assert len(ids) == len(set(ids)), f"clip written twice: {ids}"
    return dict(zip(ids, recs, strict=True))


def build(*argv: str) -> int:
    return main([*argv, "--workers", "1", "--no-progress"])


@pytest.fixture(scope="module")
def ravdess_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("ravdess")
    return out, make_ravdess_sample(out, TINY)


@pytest.fixture(scope="module")
def ravdess_built(ravdess_sample, tmp_path_factory):
    data, _ = ravdess_sample
    out = tmp_path_factory.mktemp("ravdess_records") / "out"
    code = build("--corpus", "ravdess", "--data-dir", str(data), "--out", str(out))
    return out, json.loads((out / "manifest.json").read_text()), code


@pytest.fixture(scope="module")
def csv_built(ravdess_sample, tmp_path_factory):
    """A CSV corpus over the RAVDESS sample's MP4s with labels of its own: anna speaks actor
    01's clips (fold 0), bob actor 06's (fold 1); one row has a separate audio file; rows 8
    and 9 are bad (a missing video, a label outside --classes)."""
    data, speech = ravdess_sample
    folder = tmp_path_factory.mktemp("csv")
    wav = data / "Actor_01" / "03-01-01-01-01-01-01.wav"
    rows = ["video,label,speaker,audio,fold,intensity"]
    for i, video in enumerate(speech):
        speaker, fold = ("anna", 0) if "Actor_01" in str(video) else ("bob", 1)
        audio = wav if i == 0 else ""
        rows.append(f"{video},{CLASSES[i % 3]},{speaker},{audio},{fold},{'strong' * (i == 1)}")
    rows.append(f"{folder / 'missing.mp4'},calm,bob,,1,")
    rows.append(f"{speech[0].with_name('x.mp4')},angry,bob,,1,")
    table = folder / "clips.csv"
    table.write_text("\n".join(rows) + "\n")
    out = folder / "out"
    code = build(
        "--corpus",
        "csv",
        "--data-dir",
        str(table),
        "--out",
        str(out),
        "--classes",
        "calm,tense,happy",
    )
    return out, json.loads((out / "manifest.json").read_text()), code, speech


# --------------------------------------------------------------------------------------------
# RAVDESS


def test_ravdess_manifest_names_the_corpus_its_classes_folds_and_speakers(ravdess_built):
    out, manifest, code = ravdess_built
    assert code == 0 and manifest["clips_written"] == 6
    assert manifest["corpus"] == {
        "name": "ravdess",
        "class_codes": list(EMOTIONS),
        "class_names": list(EMOTIONS),
        "num_folds": 6,
    }
    info = CorpusInfo.of(manifest)
    assert info.num_classes == 8 and not info.has_rater_votes
    folds = ravdess_folds()
    assert manifest["speakers"] == {"01": folds[1], "06": folds[6]} == {"01": 0, "06": 1}
    assert sorted(p.name for p in out.glob("*.tfrecord")) == [
        "fold-0-of-6-00000.tfrecord",
        "fold-1-of-6-00000.tfrecord",
    ]
    assert list(manifest["classes"]) == list(EMOTIONS)
    assert manifest["classes"]["neutral"] == manifest["classes"]["calm"] == 2
    assert sum(manifest["classes"].values()) == 6
    assert manifest["media_summary"] is None and manifest["media_checks"] == {}
    assert manifest["settings"]["corpus"] == "ravdess"


def test_ravdess_records_hold_the_corpus_labels_and_the_mp4s_own_audio(
    ravdess_sample, ravdess_built
):
    out, manifest, _ = ravdess_built
    _, speech = ravdess_sample
    recs = records_by_clip(out)
    assert sorted(recs) == sorted(p.stem for p in speech)
    folds = ravdess_folds()
    for clip_id, rec in recs.items():
        name = parse_ravdess_name(clip_id)
        assert rec[keys.EMOTION].numpy().decode() == name.emotion_name
        assert int(rec[keys.LABEL]) == EMOTIONS.index(name.emotion_name)
        assert int(rec[keys.ACTOR_ID]) == name.actor
        assert int(rec[keys.FOLD]) == folds[name.actor]
        assert rec[keys.INTENSITY].numpy().decode() == INTENSITIES[name.intensity]
        assert rec[keys.SENTENCE].numpy().decode() == STATEMENTS[name.statement]
        # The MP4's AAC track at 48 kHz, resampled to the records' 16 kHz, as long as the video.
        assert int(rec[keys.AUDIO_SAMPLE_RATE]) == 16000
        seconds = int(rec[keys.PARSED_NUM_SAMPLES]) / 16000
        video_s = int(rec[keys.PARSED_NUM_FRAMES]) / float(rec[keys.VIDEO_FPS])
        assert abs(seconds - video_s) < 0.1 and 1.2 < seconds < 1.6, clip_id
    assert any(
        "01-01-01-01-01-01-01.mp4" in n and "resampled 48000 Hz -> 16000 Hz" in n
        for n in manifest["notes"]
    )


def test_ravdess_song_video_only_and_audio_only_files_are_skipped_with_the_reason(ravdess_built):
    _, manifest, _ = ravdess_built
    reasons = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in manifest["skipped"]}
    for actor in ("01", "06"):
        assert reasons[f"01-02-01-01-01-01-{actor}.mp4"].startswith("song")
        assert reasons[f"02-01-01-01-01-01-{actor}.mp4"].startswith("video-only")
        assert reasons[f"03-01-01-01-01-01-{actor}.wav"].startswith("audio-only")
    assert "not an Actor_NN folder" in reasons["sample.json"]
    assert manifest["clips_skipped"] == len(manifest["skipped"]) == 7
    assert all(s["clip_id"] is None for s in manifest["skipped"])


def test_the_pipeline_reads_six_fold_eight_class_records(ravdess_built):
    out, _, _ = ravdess_built
    config = SamplingConfig(num_segments=2)
    dataset = make_dataset(
        out, [1], training=False, config=config, batch_size=3, with_metadata=True
    )
    (inputs, labels, meta), *rest = list(dataset)
    assert not rest and sorted(meta["actor_id"].numpy().tolist()) == [6, 6, 6]
    assert sorted(labels.numpy().tolist()) == [0, 1, 2]  # neutral, calm, happy
    assert inputs["frames"].shape[:2] == (3, 2) and meta["fold"].numpy().tolist() == [1, 1, 1]


# --------------------------------------------------------------------------------------------
# CSV


def test_csv_manifest_has_the_given_class_order_the_fold_column_and_the_speakers(csv_built):
    out, manifest, code, _ = csv_built
    assert code == 0 and manifest["clips_written"] == 6
    assert manifest["corpus"] == {
        "name": "csv",
        "class_codes": list(CLASSES),
        "class_names": list(CLASSES),
        "num_folds": 2,
    }
    assert manifest["speakers"] == {"anna": 0, "bob": 1}
    assert manifest["classes"] == {"calm": 2, "tense": 2, "happy": 2}
    assert sorted(p.name for p in out.glob("*.tfrecord")) == [
        "fold-0-of-2-00000.tfrecord",
        "fold-1-of-2-00000.tfrecord",
    ]


def test_csv_records_index_the_class_order_and_number_the_speakers(csv_built):
    out, manifest, _, speech = csv_built
    recs = records_by_clip(out)
    assert len(recs) == 6
    for i, video in enumerate(speech):
        clip_id = str(video.with_suffix(""))  # the video entry without its extension
        rec = recs[clip_id]
        anna = "Actor_01" in str(video)
        assert rec[keys.EMOTION].numpy().decode() == CLASSES[i % 3]
        assert int(rec[keys.LABEL]) == i % 3
        assert int(rec[keys.ACTOR_ID]) == (1 if anna else 2)  # sorted speakers: anna, bob
        assert int(rec[keys.FOLD]) == (0 if anna else 1)
        assert rec[keys.INTENSITY].numpy().decode() == ("strong" if i == 1 else "")
        assert rec[keys.SENTENCE].numpy().decode() == ""
        assert int(rec[keys.PARSED_NUM_SAMPLES]) > 16000  # its own audio, or the WAV (row 2)
    # Row 2 names a separate audio file; the others read their MP4's own AAC track.
    own_track = [n for n in manifest["notes"] if "audio from the aac track" in n]
    assert len(own_track) == 5 and not any(str(speech[0]) in n for n in own_track)


def test_csv_bad_rows_are_skipped_with_their_row_numbers(csv_built):
    out, manifest, _, _ = csv_built
    rows = {s.get("row"): s for s in manifest["skipped"]}
    assert sorted(rows) == [8, 9] and manifest["clips_skipped"] == 2
    assert "video file not found" in rows[8]["reason"] and "missing.mp4" in rows[8]["reason"]
    assert "label 'angry' is not one of the classes" in rows[9]["reason"]
    assert rows[8]["path"].endswith("clips.csv")


# --------------------------------------------------------------------------------------------
# emotf-verify-records, bad layouts and options


def test_verify_records_names_the_corpus_and_its_classes(ravdess_built, csv_built, capsys):
    assert verify_main([str(ravdess_built[0])]) == 0
    out = capsys.readouterr().out
    assert "corpus ravdess, 6 folds, 8 classes: neutral, calm, happy, sad" in out
    assert verify_main([str(csv_built[0])]) == 0
    assert "corpus csv, 2 folds, 3 classes: calm, tense, happy" in capsys.readouterr().out


def test_verify_reads_a_manifest_without_corpus_as_cremad_and_refuses_a_bad_one(
    csv_built, tmp_path, capsys
):
    copy = tmp_path / "copy"
    shutil.copytree(csv_built[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["corpus"]  # as written before corpora existed
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert verify_main([str(copy)]) == 0
    assert "corpus cremad, 10 folds, 6 classes: ANG, DIS, FEA" in capsys.readouterr().out
    manifest["corpus"] = {"name": "csv", "class_codes": ["calm"], "num_folds": 2}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert verify_main([str(copy)]) == 1
    assert "corpus.class_codes must be 2 to" in capsys.readouterr().err
    manifest["corpus"] = {"name": "csv", "class_codes": list(CLASSES), "num_folds": 3}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert verify_main([str(copy)]) == 1
    assert "a shard of 2 folds, but corpus.num_folds is 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    "corpus, expected",
    [
        ("ravdess", "ravdess: no Actor_NN folder in"),
        ("cremad", "cremad: no VideoFlash folder in"),
        ("csv", "csv: no clip in"),
    ],
)
def test_a_folder_of_another_layout_is_one_line_naming_the_expected_one(
    corpus, expected, tmp_path, capsys
):
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    (data / "clips" / "notes.txt").write_text("x")
    out = tmp_path / "out"
    assert build("--corpus", corpus, "--data-dir", str(data), "--out", str(out)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"emotf-build-records: error: {expected}")
    assert not out.exists()  # refused before anything is written


@pytest.mark.parametrize(
    "fields, problem",
    [
        (dict(num_folds=6), "cremad: CremadOptions.folds must be one of 10. Received: folds=6"),
        (dict(corpus="ravdess", classes=("a", "b")), "ravdess: unknown options ['classes']"),
        (dict(corpus="csv", fold_seed=3), "csv: unknown options ['fold_seed', 'stratify_by_sex']"),
        (dict(corpus="ravdess", speaker_from="parent"), "ravdess: unknown options ['speaker_f"),
        (dict(corpus="csv", classes=("a", "a")), "csv: TableOptions.classes repeats a name"),
        (dict(corpus="ravdess", num_folds=30), "ravdess: RavdessOptions.folds must be in [1, 24]"),
    ],
)
def test_options_a_corpus_does_not_take_are_refused_before_anything_is_written(
    fields, problem, tmp_path, capsys
):
    out = tmp_path / "out"
    with pytest.raises(CorpusError) as error:
        make_plan(BuildConfig(str(tmp_path), str(out), **fields))
    assert str(error.value).startswith(problem)
    assert build("--data-dir", str(tmp_path), "--out", str(out), *_flags(fields)) == 1
    assert capsys.readouterr().err == f"emotf-build-records: error: {error.value}\n"
    assert not out.exists()


def _flags(fields: dict) -> list[str]:
    return [
        text
        for key, value in fields.items()
        for text in (f"--{key}", ",".join(value) if isinstance(value, tuple) else str(value))
    ]


@pytest.mark.parametrize(
    "fields, problem",
    [(dict(corpus="csv", num_folds=1), "num_folds"), (dict(corpus="x"), "corpus")],
)
def test_out_of_bounds_build_options_are_refused(fields, problem):
    with pytest.raises(ValueError, match=problem):
        BuildConfig("data", "out", **fields)


def test_corpus_options_reach_the_corpus():
    assert BuildConfig("d", "o").corpus_options() == {"fold_seed": 0, "stratify_by_sex": False}
    assert BuildConfig("d", "o", corpus="ravdess", num_folds=3).corpus_options() == {"folds": 3}
    options = BuildConfig("d", "o", corpus="csv", classes=["b", "a"]).corpus_options()
    assert options == {"classes": ("b", "a"), "speaker_from": "clip"}
    assert not BuildConfig("d", "o", corpus="ravdess").checks_media
    assert BuildConfig("d", "o").checks_media
