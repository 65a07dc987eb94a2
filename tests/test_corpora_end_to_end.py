"""Issue 21: the whole chain on corpora other than CREMA-D, on tiny shapes.

make sample -> emotf-build-records --corpus -> emotf-verify-records -> emotf-train (export) ->
emotf-evaluate -> emotf-predict, once on the RAVDESS layout (8 emotions, 6 actor folds) and once
on a CSV corpus of a user's own labels (calm, tense, happy). Every output names the corpus's
classes, and no human-rater baseline appears (only CREMA-D has rater votes).
"""

import csv
import json
from pathlib import Path

import pytest

from emotf.cli import build_records, evaluate, predict, train, verify_records
from emotf.corpora.info import CorpusInfo
from emotf.runs.folder import Run
from emotf.storage import read_json
from emotf.synthetic.ravdess import RavdessSampleConfig, make_ravdess_sample
from tests.helpers_cli import TINY_MODEL_FLAGS

pytestmark = pytest.mark.slow

RAVDESS_CODES = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
CUSTOM = ["calm", "tense", "happy"]


@pytest.fixture(scope="module")
def ravdess_sample(tmp_path_factory) -> Path:
    """Three actors, one in each of RAVDESS folds 0, 1 and 2, two clips each."""
    out = tmp_path_factory.mktemp("ravdess") / "sample"
    make_ravdess_sample(out, RavdessSampleConfig.tiny(num_actors=3, clips_per_actor=2))
    return out


def _csv_corpus(sample: Path, out: Path) -> Path:
    """A user's CSV over the RAVDESS sample's full-AV clips, labelled with custom classes,
    one speaker per actor, and one bad row (a missing file)."""
    clips = sorted(sample.glob("Actor_*/01-01-*.mp4"))
    rows = [
        {
            "video": str(clip.relative_to(sample)),
            "label": CUSTOM[i % len(CUSTOM)],
            "speaker": clip.parent.name,
        }
        for i, clip in enumerate(clips)
    ]
    rows.append({"video": "Actor_99/missing.mp4", "label": "calm", "speaker": "Actor_99"})
    table = sample / "my_corpus.csv"
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, ["video", "label", "speaker"])
        writer.writeheader()
        writer.writerows(rows)
    return table


def _chain(tmp: Path, build_args: list[str], codes: list[str], video: Path, capsys) -> None:
    records, run_dir = tmp / "records", tmp / "run"
    assert build_records.main([*build_args, "--out", str(records), "--workers", "1"]) == 0
    manifest = read_json(records / "manifest.json")
    info = CorpusInfo.of(manifest)
    assert list(info.class_codes) == codes
    assert manifest["clips_written"] >= 3 and len(manifest["folds"]) >= 3

    capsys.readouterr()
    assert verify_records.main([str(records)]) == 0
    assert ", ".join(codes[:2]) in capsys.readouterr().out

    folds = sorted(int(k) for k in manifest["folds"])
    assert (
        train.main(
            [
                "--records",
                str(records),
                "--fold",
                str(folds[0]),
                "--out",
                str(run_dir),
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--export",
                "true",
                "--verbose",
                "0",
                *TINY_MODEL_FLAGS,
            ]
        )
        == 0
    )
    run = Run(run_dir)
    metrics = run.read_metrics()
    assert CorpusInfo.of(metrics) == info
    assert run.load_model().output["probabilities"].shape[-1] == len(codes)

    # Evaluation: the predictions table and the confusion matrix carry this corpus's classes;
    # no human-rater baseline (the corpus has no votes), said in the report's notes.
    capsys.readouterr()
    assert evaluate.main(["--run", str(run_dir)]) == 0
    evaluation = run_dir / "evaluation"
    with open(next(evaluation.rglob("predictions.csv")), newline="") as f:
        header = next(csv.reader(f))
    assert [h for h in header if h.startswith("p_")] == [f"p_{c}" for c in codes]
    report = json.loads(next(evaluation.rglob("evaluation.json")).read_text())
    assert report["corpus"]["class_codes"] == codes
    assert not report.get("human_accuracy")
    assert any("human-rater" in note for note in report["notes"])
    with open(next(evaluation.rglob("confusion_matrix.csv")), newline="") as f:
        matrix_text = f.read()
    assert all(code in matrix_text for code in codes)

    # Serving: the exported model's metadata, emotf-predict's JSON and CSV use the same classes.
    exported = Path(metrics["saved_model"])
    out = tmp / "predict"
    capsys.readouterr()
    assert predict.main(["--model", str(exported), str(video), "--out", str(out), "--json"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["error"] is None
    assert list(doc["probabilities"]) == codes
    assert doc["label_code"] in codes
    assert all(list(w["probabilities"]) == codes for w in doc["timeline"])
    [table] = list(out.glob("*.timeline.csv"))
    with open(table, newline="") as f:
        columns = next(csv.reader(f))
    assert columns == ["start", "end", "face_id", "label", *codes, "skipped"]
    assert list(out.glob("*.png")), "the timeline figure"


def test_ravdess_sample_runs_the_whole_chain(tmp_path, ravdess_sample, capsys):
    video = sorted(ravdess_sample.glob("Actor_*/01-01-*.mp4"))[0]
    _chain(
        tmp_path,
        ["--corpus", "ravdess", "--data-dir", str(ravdess_sample)],
        RAVDESS_CODES,
        video,
        capsys,
    )


def test_a_csv_corpus_of_custom_labels_runs_the_whole_chain(tmp_path, ravdess_sample, capsys):
    table = _csv_corpus(ravdess_sample, tmp_path)
    video = sorted(ravdess_sample.glob("Actor_*/01-01-*.mp4"))[0]
    _chain(
        tmp_path,
        [
            "--corpus",
            "csv",
            "--data-dir",
            str(table),
            "--classes",
            ",".join(CUSTOM),
            "--num-folds",
            "3",
        ],
        CUSTOM,
        video,
        capsys,
    )
    skipped = read_json(tmp_path / "records" / "manifest.json")["skipped"]
    assert any("missing.mp4" in json.dumps(s) and "row" in json.dumps(s) for s in skipped), skipped
