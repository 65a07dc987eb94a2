"""tools/rehearse_cremad.py: real CREMA-D names and durations, and a killed run that resumes."""

import json

import pytest

from tests.helpers_tools import load_tool


@pytest.fixture(scope="module")
def rehearsal():
    return load_tool("rehearse_cremad")


def test_durations_come_from_the_official_wav_sizes(rehearsal):
    durations = rehearsal.real_durations()
    assert len(durations) == 7442  # every CREMA-D clip
    # 1001_DFA_ANG_XX.wav is 72,862 bytes in checksums.csv: (72862 - 44) / 32000 s.
    assert durations["1001_DFA_ANG_XX"] == round((72862 - 44) / 32000, 3)
    assert 1.0 < min(durations.values()) and max(durations.values()) < 6.0


def test_a_fraction_keeps_every_actor(rehearsal):
    full = rehearsal.chosen_clips(1.0)
    tenth = rehearsal.chosen_clips(0.1)
    assert len(full) == 7442
    actors = {name[:4] for name, _ in tenth}
    assert len(actors) == 91  # every actor, so every fold
    assert 700 < len(tenth) < 900
    assert set(tenth) <= set(full)


def test_a_stopped_run_resumes_from_the_first_stage_not_done(rehearsal, tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(rehearsal, "write_sample", lambda out, clips, workers: written.append(1))
    calls = []

    def run(name, module, argv, out):
        calls.append(name)
        if name == "train default, fold 0" and len(calls) < 5:
            raise SystemExit(f"rehearsal: stage {name} failed (exit 1)")
        if name == "build":
            (out / "records").mkdir(exist_ok=True)
            (out / "records" / "fold-0-of-10-00000.tfrecord").write_bytes(b"x" * 1000)
        return {"stage": name, "wall_s": 2.0, "cpu_s": 1.0, "peak_rss_mb": 100}

    with pytest.raises(SystemExit):
        rehearsal.rehearse(0.01, tmp_path, 1, run=run)
    assert calls == ["build", "verify", "train default, fold 0"]
    partial = json.loads((tmp_path / rehearsal.PARTIAL).read_text())
    assert [s["stage"] for s in partial["stages"]] == ["sample", "build", "verify"]

    calls.clear()
    calls.extend(["x"] * 4)  # the failing stage passes this time
    result = rehearsal.rehearse(0.01, tmp_path, 1, run=run)
    assert calls[4:] == [
        "train default, fold 0",
        "evaluate",
        "export",
        "train demo model, all folds",
    ]
    assert len(written) == 1  # the sample stage was done: not run again
    assert [s["stage"] for s in result["stages"]][0] == "sample"
    assert len(result["stages"]) == 7
    assert result["records_bytes"] == 1000
    assert json.loads((tmp_path / "rehearsal.json").read_text()) == result
    assert "train demo model, all folds" in rehearsal.table(result)

    # --restart starts over: every stage runs again.
    calls.clear()
    calls.extend(["x"] * 4)
    rehearsal.rehearse(0.01, tmp_path, 1, restart=True, run=run)
    assert len(written) == 2 and calls[4] == "build"


def test_compare_reads_a_partial_run(rehearsal):
    small = {
        "clips": 10,
        "stages": [
            {"stage": "build", "wall_s": 10.0, "cpu_s": 20.0, "peak_rss_mb": 100},
            {"stage": "evaluate", "wall_s": 1.0, "cpu_s": 1.0, "peak_rss_mb": 100},
        ],
    }
    large = {
        "clips": 100,
        "stages": [{"stage": "build", "wall_s": 150.0, "cpu_s": 200.0, "peak_rss_mb": 130}],
    }
    text = rehearsal.compare(small, large)
    build = next(line for line in text.splitlines() if line.startswith("build"))
    assert build.split()[1:] == ["1.50", "1.00", "1.30"]
    assert "(not run)" in next(line for line in text.splitlines() if line.startswith("evaluate"))


def test_markdown_puts_both_runs_and_their_ratios_in_one_table(rehearsal):
    small = {
        "fraction": 0.1,
        "clips": 10,
        "stages": [
            {"stage": "sample", "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": None},
            {"stage": "build", "wall_s": 10.0, "cpu_s": 20.0, "peak_rss_mb": 1000},
            {"stage": "evaluate", "wall_s": 1.0, "cpu_s": 1.0, "peak_rss_mb": 100},
        ],
    }
    large = {
        "fraction": 1.0,
        "clips": 100,
        "stages": [
            {"stage": "sample", "wall_s": 5.0, "cpu_s": 4.0, "peak_rss_mb": None},
            {"stage": "build", "wall_s": 1500.0, "cpu_s": 230.0, "peak_rss_mb": 1300},
        ],
    }
    lines = rehearsal.markdown(small, large).splitlines()
    assert lines[0].startswith("| stage | 0.1: wall s |") and "1.0: wall s" in lines[0]
    assert len(lines) == 2 + 3 and all(line.count("|") == lines[0].count("|") for line in lines)
    cells = {line.split(" | ")[0][2:]: line.strip("| ").split(" | ") for line in lines[2:]}
    # build: 2,000 ms of CPU per clip at 0.1, 2,300 at 1.0 -> 1.15x; RSS 1,300 / 1,000 -> 1.30x
    assert cells["build"] == ["build", "10", "20", "1,000", "2,000.0"] + [
        "1,500",
        "230",
        "1,300",
        "2,300.0",
        "1.15x",
        "1.30x",
    ]
    assert cells["sample"][-2:] == ["-", "-"]  # nothing to divide by (a copied sample)
    assert cells["evaluate"][5] == "(not run)"
