"""Accuracy by actor sex / age / race / ethnicity and clip intensity / sentence, on the real
CREMA-D tables (demographics and votes shipped in emotf/data/)."""

import csv
from collections import Counter

import numpy as np
import pytest

from emotf.corpora.cremad import EMOTIONS, load_clip_names, parse_clip_name
from emotf.corpora.info import CREMAD_INFO
from emotf.corpora.votes import MODES, load_votes
from emotf.evaluation.groups import (
    GROUPINGS,
    UNKNOWN,
    accuracy_by_group,
    clip_groups,
    load_demographics,
)
from emotf.evaluation.human import human_accuracy
from emotf.evaluation.summary import ReportWarning, summarize_predictions


@pytest.fixture(scope="module")
def corpus():
    names = load_clip_names()
    labels = np.array([EMOTIONS.index(parse_clip_name(n).emotion) for n in names])
    return names, labels, load_votes()


def test_demographics_are_the_datasets_91_actors():
    actors = load_demographics()
    assert len(actors) == 91 and set(actors) == set(range(1001, 1092))
    assert Counter(a["sex"] for a in actors.values()) == {"Male": 48, "Female": 43}
    assert all(
        int(a["age"][:2]) % 10 == 0 and a["age"][3:] == str(int(a["age"][:2]) + 9)
        for a in actors.values()
    )


def test_intensity_levels_belong_to_one_sentence(corpus):
    names, _, _ = corpus
    groups = clip_groups(names)
    graded = {s for s, i in zip(groups["sentence"], groups["intensity"], strict=True) if i != "XX"}
    assert graded == {"IEO"}  # only "It's eleven o'clock" was spoken at three levels


def test_every_grouping_partitions_the_clips_and_humans_add_up(corpus):
    names, labels, votes = corpus
    by_group = accuracy_by_group(names, labels, labels, votes)
    assert list(by_group) == list(GROUPINGS)
    for table in by_group.values():
        assert sum(row["num_clips"] for row in table.values()) == len(names)
        assert all(row["model"] == 1.0 for row in table.values())
    # Human accuracy is correct / all responses: the response-weighted group means give back
    # the accuracy on the whole table.
    sexes = clip_groups(names)["sex"]
    overall = human_accuracy(votes)
    for mode in MODES:
        correct = responses = 0.0
        for sex in ("Female", "Male"):
            table = votes.select([n for n, s in zip(names, sexes, strict=True) if s == sex])
            count = table.counts[np.asarray(table.modes) == mode].sum()
            correct += by_group["sex"][sex][mode] * count
            responses += count
        assert correct / responses == pytest.approx(overall[mode], abs=1e-12)


def test_model_accuracy_follows_its_mistakes(corpus):
    names, labels, votes = corpus
    sexes = clip_groups(names)["sex"]
    wrong = (labels + 1) % 6
    predicted = np.where(np.array(sexes) == "Female", labels, wrong)  # right on women only
    by_group = accuracy_by_group(names, labels, predicted, votes)
    assert by_group["sex"]["Female"]["model"] == 1.0 and by_group["sex"]["Male"]["model"] == 0.0
    females = sum(s == "Female" for s in sexes)
    for table in by_group.values():
        assert sum(r["model"] * r["num_clips"] for r in table.values()) == females


def test_unknown_actors_and_clips_without_votes():
    clips = ["1001_DFA_ANG_XX", "1002_DFA_SAD_XX"]
    partial = {
        1001: {"sex": "Male", "age": "50-59", "race": "Caucasian", "ethnicity": "Not Hispanic"}
    }
    assert clip_groups(clips, partial)["sex"] == ["Male", UNKNOWN]
    by_group = accuracy_by_group(clips, [0, 5], [0, 0], votes=load_votes(), demographics=partial)
    assert by_group["sex"][UNKNOWN]["model"] == 0.0 and by_group["sex"]["Male"]["model"] == 1.0
    from emotf.corpora.votes import VoteTable

    no_votes = VoteTable((), (), np.zeros(0, np.int64), np.zeros((0, 6), np.int64))
    row = accuracy_by_group(clips, [0, 5], [0, 5], votes=no_votes)["sex"]["Male"]
    assert row["voice"] is None and row["model"] == 1.0


def test_evaluation_writes_the_table(tmp_path):
    clips = ["1001_DFA_ANG_XX", "1002_DFA_SAD_XX", "1003_IEO_HAP_HI", "1004_IEO_ANG_LO"]
    labels = [0, 5, 3, 0]
    probabilities = np.eye(6)[[0, 5, 3, 1]]  # the last clip wrong
    report = summarize_predictions(clips, labels, probabilities, tmp_path, corpus=CREMAD_INFO)
    with open(tmp_path / "accuracy_by_group.csv") as f:
        rows = {(r["grouping"], r["group"]): r for r in csv.DictReader(f)}
    assert float(rows[("intensity", "LO")]["model"]) == 0.0
    assert float(rows[("intensity", "HI")]["model"]) == 1.0
    assert int(rows[("sentence", "IEO")]["num_clips"]) == 2
    assert report["by_group"]["intensity"]["XX"]["model"] == 1.0
    assert list(report["by_group"]["intensity"]) == ["LO", "HI", "XX"]  # level order
    intervals = report["confidence_intervals"]
    assert intervals["actors"] == 4 and intervals["model"]["estimate"] == 0.75
    assert intervals["model"]["low"] < 0.75 < intervals["model"]["high"]
    assert set(intervals["model_minus_humans"]) == {"voice", "face", "audio-visual"}
    with pytest.warns(ReportWarning) as warned:
        hand_made = summarize_predictions(
            ["clip_a"], [0], np.eye(6)[[0]], tmp_path / "other", corpus=CREMAD_INFO
        )
    reasons = [str(w.message) for w in warned]
    assert any(
        r.startswith("accuracy by group left out") and "not a CREMA-D clip name" in r
        for r in reasons
    )
    assert any(
        r.startswith("confidence intervals left out") and "not a CREMA-D clip name" in r
        for r in reasons
    )
    assert hand_made["by_group"] is None and hand_made["confidence_intervals"] is None
