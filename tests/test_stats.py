"""Actor-clustered bootstrap intervals: exact estimates, determinism, coverage by simulation."""

import numpy as np
import pytest

from emotf.cremad import EMOTIONS, load_clip_names, parse_clip_name
from emotf.human import MODES, human_accuracy, load_votes
from emotf.stats import actor_bootstrap


def clips_of(actors: int, per_actor: int) -> list[str]:
    sentences = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS")
    return [f"{1001 + a}_{sentences[c % 10]}_{EMOTIONS[c % 6]}_XX"
            for a in range(actors) for c in range(per_actor)]


def test_a_perfect_model_has_a_point_interval_and_seeds_repeat():
    clips = clips_of(5, 4)
    ci = actor_bootstrap(clips, np.ones(20, bool))["model"]
    assert (ci["estimate"], ci["low"], ci["high"]) == (1.0, 1.0, 1.0)
    correct = np.arange(20) % 3 == 0
    a, b = actor_bootstrap(clips, correct, seed=4), actor_bootstrap(clips, correct, seed=4)
    assert a == b and a["model"]["estimate"] == pytest.approx(correct.mean())
    assert a["model"]["low"] <= a["model"]["estimate"] <= a["model"]["high"] and a["actors"] == 5


def test_coverage_of_a_known_accuracy_with_actor_effects():
    """Actors differ (accuracy ~ Beta(7, 3), mean 0.7); 40 actors x 10 clips per dataset.
    The actor bootstrap's 95 % interval should hold 0.7 about 95 % of the time; a bootstrap
    over clips, which treats one actor's clips as independent, holds it clearly less often."""
    rng = np.random.default_rng(1)
    clips = clips_of(40, 10)
    actor_hits = clip_hits = 0
    trials = 150
    for _ in range(trials):
        p = np.repeat(rng.beta(7, 3, size=40), 10)
        correct = rng.random(400) < p
        ci = actor_bootstrap(clips, correct, resamples=1000, seed=int(rng.integers(1 << 30)))
        actor_hits += ci["model"]["low"] <= 0.7 <= ci["model"]["high"]
        draws = correct[rng.integers(0, 400, size=(1000, 400))].mean(axis=1)
        low, high = np.quantile(draws, [0.025, 0.975])
        clip_hits += low <= 0.7 <= high
    assert 0.88 <= actor_hits / trials <= 0.99
    assert clip_hits < actor_hits


def test_human_intervals_match_emotf_human_on_real_votes():
    names = load_clip_names()[:600]  # actors 1001.. in the real table
    votes = load_votes()
    labels = np.array([EMOTIONS.index(parse_clip_name(n).emotion) for n in names])
    correct = labels % 2 == 0
    ci = actor_bootstrap(names, correct, votes, resamples=500)
    expected = human_accuracy(votes, names)
    for mode in MODES:
        human = ci["humans"][mode]
        assert human["estimate"] == pytest.approx(expected[mode], abs=1e-12)
        assert human["low"] < human["estimate"] < human["high"]
        diff = ci["model_minus_humans"][mode]
        assert diff["estimate"] == pytest.approx(correct.mean() - expected[mode], abs=1e-12)
        assert diff["low"] < diff["estimate"] < diff["high"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one `correct` value per clip"):
        actor_bootstrap(clips_of(2, 2), [True])
