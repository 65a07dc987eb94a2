"""The README's end-to-end demo, at a tiny size: sample -> records -> train -> export -> predict."""

import json
from pathlib import Path

import pytest

from emotf.corpora.cremad import EMOTIONS, canonical_folds, parse_clip_name
from emotf.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    config = DemoConfig(
        out=str(tmp_path / "demo"), num_actors=3, clips_per_actor=8, epochs=1, workers=1, verbose=0
    )
    summary = run_demo(config)

    saved_model = Path(summary["saved_model"])
    assert (saved_model / "saved_model.pb").exists() and saved_model.parent.name == "export"
    assert summary["held_out_clips"] == 8  # the one fold-0 actor's clips
    assert summary["held_out_accuracy_reevaluated"] == pytest.approx(summary["held_out_accuracy"])
    predicted = parse_clip_name(summary["predicted_clip"])
    assert canonical_folds()[predicted.actor_id] == config.fold  # a held-out clip
    prediction = summary["prediction"]
    assert prediction["label_code"] in EMOTIONS
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert {Path(p).name for p in summary["figures"]} >= {"confusion_matrix.png"}
    assert (
        json.loads((tmp_path / "demo" / "demo_summary.json").read_text())["run"] == summary["run"]
    )
    out = capsys.readouterr().out
    assert "held-out fold 0: accuracy" in out and "SavedModel:" in out

    # A second call reuses the sample, the records and the trained run.
    again = run_demo(config)
    assert again["saved_model"] == summary["saved_model"]
    assert again["held_out_accuracy"] == summary["held_out_accuracy"]
