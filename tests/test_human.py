"""Human baseline from CREMA-D's real vote table."""

import math

import numpy as np
import pytest

from emotf.corpora.cremad import EMOTIONS, data_path
from emotf.corpora.votes import MODES, VoteTable, load_votes
from emotf.evaluation.human import human_accuracy, human_summary


@pytest.fixture(scope="module")
def votes(cremad_tables_dir):
    return load_votes(cremad_tables_dir / "tabulatedVotes.csv")


def test_whole_table_accuracy_matches_the_readme(votes):
    acc = human_accuracy(votes)
    assert list(acc) == list(MODES)
    assert round(100 * acc["voice"], 1) == 40.0
    assert round(100 * acc["face"], 1) == 57.4
    assert round(100 * acc["audio-visual"], 1) == 63.1


def test_table_shape_and_default_path(votes):
    assert len(votes) == 3 * 7442
    for mode in MODES:
        assert sum(m == mode for m in votes.modes) == 7442
    shipped = load_votes()
    assert data_path("tabulatedVotes.csv").is_file()
    assert shipped.counts.sum() == votes.counts.sum()


def test_per_class_accuracy_weights_classes_by_responses(votes):
    per = human_accuracy(votes, by_class=True)
    for mode in MODES:
        assert set(per[mode]) == {"all", *EMOTIONS}
        rows = np.asarray(votes.modes) == mode
        totals = [votes.counts[rows & (votes.labels == k)].sum() for k in range(6)]
        pairs = zip(EMOTIONS, totals, strict=True)
        weighted = sum(per[mode][e] * t for e, t in pairs) / sum(totals)
        assert math.isclose(weighted, per[mode]["all"], rel_tol=1e-12)
    # Faces give away happiness; voices give away neutrality (known CREMA-D pattern).
    assert max(EMOTIONS, key=lambda e: per["face"][e]) == "HAP"
    assert max(EMOTIONS, key=lambda e: per["voice"][e]) == "NEU"


def test_subset_is_exactly_those_clips(votes):
    # Row 100001 of the real table: 1001_IEO_NEU_XX, voice responses N=10 of 11.
    acc = human_accuracy(votes, ["1001_IEO_NEU_XX", "1001_IEO_NEU_XX"])
    assert acc["voice"] == pytest.approx(10 / 11)
    one = votes.select(["1001_IEO_NEU_XX"])
    assert len(one) == 3 and set(one.modes) == set(MODES)


def test_hand_made_table():
    table = VoteTable(
        clip_ids=("1001_DFA_ANG_XX", "1001_DFA_SAD_XX", "1001_DFA_ANG_XX"),
        modes=("voice", "voice", "face"),
        labels=np.array([0, 5, 0]),
        counts=np.array([[3, 1, 0, 0, 0, 0], [0, 0, 0, 0, 2, 2], [1, 1, 0, 0, 0, 0]]),
    )
    per = human_accuracy(table, by_class=True)
    assert per["voice"]["all"] == pytest.approx(5 / 8)
    assert per["voice"]["ANG"] == pytest.approx(3 / 4)
    assert per["voice"]["SAD"] == pytest.approx(2 / 4)
    assert math.isnan(per["voice"]["HAP"])
    assert per["face"]["all"] == pytest.approx(1 / 2)
    assert math.isnan(per["audio-visual"]["all"])
    summary = human_summary(table)
    assert summary["voice"]["num_clips"] == 2 and summary["voice"]["num_responses"] == 8


def test_unknown_clip_is_named(votes):
    with pytest.raises(KeyError, match="1001_DFA_ANG_YY"):
        human_accuracy(votes, ["1001_DFA_ANG_XX", "1001_DFA_ANG_YY"])
