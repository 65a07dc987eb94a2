"""Actor-clustered t intervals: exact estimates, edge cases, coverage by simulation."""

import itertools

import numpy as np
import pytest

from emotf.corpora.cremad import EMOTIONS, INTENSITIES, SENTENCES, load_clip_names, parse_clip_name
from emotf.corpora.votes import MODES, VoteTable, load_votes
from emotf.evaluation.human import human_accuracy
from emotf.evaluation.stats import actor_intervals


def clips_of(actors: int, per_actor: int) -> list[str]:
    """Distinct well-formed names, `per_actor` (<= 288) for each of `actors` actors."""
    combos = list(itertools.product(SENTENCES, EMOTIONS, INTENSITIES))[:per_actor]
    return [f"{1001 + a}_{s}_{e}_{i}" for a in range(actors) for s, e, i in combos]


def test_estimates_equal_plain_accuracy_and_edge_cases():
    clips = clips_of(5, 4)
    perfect = actor_intervals(clips, np.ones(20, bool))["model"]
    assert (perfect["estimate"], perfect["low"], perfect["high"]) == (1.0, 1.0, 1.0)
    correct = np.arange(20) % 3 == 0
    ci = actor_intervals(clips, correct)
    assert ci["model"]["estimate"] == pytest.approx(correct.mean()) and ci["actors"] == 5
    assert ci["model"]["low"] < ci["model"]["estimate"] < ci["model"]["high"]
    one_actor = actor_intervals(clips_of(1, 6), [True, False] * 3)["model"]
    assert one_actor["estimate"] == 0.5 and one_actor["low"] is None  # no spread to measure
    with pytest.raises(ValueError, match="one `correct` value per clip"):
        actor_intervals(clips_of(2, 2), [True])
    with pytest.raises(ValueError, match="clip ids repeat"):
        actor_intervals(clips[:2] * 2, [True] * 4)


def coverage(actors: int, per_actor: int, trials: int, rng) -> tuple[float, float]:
    """How often the 95 % intervals hold the true mean accuracy 0.7 when actors differ
    (accuracy ~ Beta(7, 3)): the actor t interval, and a Wald interval over clips that treats
    one actor's clips as independent."""
    clips = clips_of(actors, per_actor)
    actor_hits = clip_hits = 0
    for _ in range(trials):
        p = np.repeat(rng.beta(7, 3, size=actors), per_actor)
        correct = rng.random(actors * per_actor) < p
        ci = actor_intervals(clips, correct)["model"]
        actor_hits += ci["low"] <= 0.7 <= ci["high"]
        mean = correct.mean()
        half = 1.96 * np.sqrt(mean * (1 - mean) / correct.size)
        clip_hits += mean - half <= 0.7 <= mean + half
    return actor_hits / trials, clip_hits / trials


def test_coverage_with_the_actors_of_one_fold():
    """9 actors x 80 clips, as in a CREMA-D test fold."""
    actor_rate, clip_rate = coverage(9, 80, 300, np.random.default_rng(1))
    assert 0.91 <= actor_rate <= 0.99
    assert clip_rate < 0.8  # clips are not independent: that interval is far too narrow


def test_human_intervals_match_emotf_human_on_real_votes():
    names = load_clip_names()[:600]
    votes = load_votes()
    labels = np.array([EMOTIONS.index(parse_clip_name(n).emotion) for n in names])
    correct = labels % 2 == 0
    ci = actor_intervals(names, correct, votes)
    expected = human_accuracy(votes, names)
    for mode in MODES:
        human, diff = ci["humans"][mode], ci["model_minus_humans"][mode]
        assert human["estimate"] == pytest.approx(expected[mode], abs=1e-12)
        assert human["low"] < human["estimate"] < human["high"]
        assert diff["estimate"] == pytest.approx(correct.mean() - expected[mode], abs=1e-12)
        assert diff["low"] < diff["estimate"] < diff["high"]


def test_a_mode_without_responses_has_no_interval():
    clips = clips_of(3, 2)
    labels = np.array([EMOTIONS.index(parse_clip_name(c).emotion) for c in clips])
    counts = np.zeros((6, 6), np.int64)
    counts[np.arange(6), labels] = 3  # voice only, every response right
    votes = VoteTable(tuple(clips), ("voice",) * 6, labels, counts)
    ci = actor_intervals(clips, [True] * 6, votes)
    assert ci["humans"]["voice"]["estimate"] == 1.0
    face = ci["humans"]["face"]
    assert np.isnan(face["estimate"]) and face["low"] is None and face["high"] is None
    assert ci["model_minus_humans"]["face"]["low"] is None
