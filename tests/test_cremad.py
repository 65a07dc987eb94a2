"""CREMA-D names, labels and folds, checked on the real metadata tables."""

import csv
from collections import Counter, defaultdict

import pytest

from emotf.corpora import cremad


@pytest.fixture(scope="module")
def real_names(cremad_tables_dir):
    return cremad.load_clip_names(cremad_tables_dir / "SentenceFilenames.csv")


def test_every_real_name_parses(real_names):
    parsed = [cremad.parse_clip_name(n) for n in real_names]
    assert len(parsed) == 7442
    assert len({p.clip_id for p in parsed}) == 7442
    assert [p.clip_id for p in parsed] == real_names
    assert {p.actor_id for p in parsed} == set(range(1001, 1092))
    assert Counter(p.emotion for p in parsed)["ANG"] == 1271


def test_labels_fixed_sorted_order():
    assert cremad.EMOTIONS == tuple(sorted(cremad.EMOTIONS))
    assert cremad.parse_clip_name("1001_DFA_ANG_XX").label == 0
    assert cremad.parse_clip_name("1091_WSI_SAD_HI").label == 5
    assert [e[0] for e in cremad.EMOTIONS] == list(cremad.VOTE_LETTERS)


@pytest.mark.parametrize(
    "name",
    [
        "1001_DFA_ANG",  # missing level
        "1001_DFA_XYZ_XX",  # unknown emotion
        "1000_DFA_ANG_XX",  # actor out of range
        "1001_ABC_ANG_XX",  # unknown sentence
        "1001_DFA_ANG_ZZ",  # unknown level
        "1001-DFA-ANG-XX",
        "bad_name",
        "",
    ],
)
def test_bad_names_are_reported_not_guessed(name):
    with pytest.raises(cremad.ClipNameError, match="Received: name="):
        cremad.parse_clip_name(name)


def test_parse_accepts_paths_and_extensions():
    parsed = cremad.parse_clip_name("/data/VideoFlash/1076_MTI_SAD_XX.flv")
    assert parsed == cremad.ClipName(1076, "MTI", "SAD", "XX")


@pytest.mark.parametrize("stratify", [False, True])
def test_real_folds_are_actor_independent_and_complete(real_names, cremad_tables_dir, stratify):
    sexes = cremad.load_actor_sexes(cremad_tables_dir / "VideoDemographics.csv")
    folds = cremad.canonical_folds(stratify_by_sex=stratify)
    assert set(folds) == set(range(1001, 1092))
    sizes = Counter(folds.values())
    assert set(sizes) == set(range(10))
    assert max(sizes.values()) - min(sizes.values()) <= 1
    emotions_per_fold = defaultdict(set)
    for name in real_names:
        clip = cremad.parse_clip_name(name)
        emotions_per_fold[folds[clip.actor_id]].add(clip.emotion)
    assert all(emotions_per_fold[k] == set(cremad.EMOTIONS) for k in range(10))
    if stratify:
        for sex in ("Male", "Female"):
            per_fold = Counter(folds[a] for a, s in sexes.items() if s == sex)
            assert max(per_fold.values()) - min(per_fold.values()) <= 1


def test_folds_deterministic_and_seeded():
    assert cremad.canonical_folds(seed=0) == cremad.canonical_folds(seed=0)
    assert cremad.canonical_folds(seed=0) != cremad.canonical_folds(seed=1)


def test_fold_of_clips_never_splits_an_actor():
    names = [f"{a}_DFA_{e}_XX" for a in (1001, 1002, 1003) for e in cremad.EMOTIONS]
    folds = cremad.fold_of_clips(names, n_folds=2)
    by_actor = defaultdict(set)
    for clip_id, fold in folds.items():
        by_actor[clip_id[:4]].add(fold)
    assert all(len(f) == 1 for f in by_actor.values())
    assert set(folds.values()) == {0, 1}


def test_shipped_tables_match_shared(cremad_tables_dir):
    for name in ("SentenceFilenames.csv", "VideoDemographics.csv"):
        shipped = cremad.data_path(name).read_bytes()
        assert shipped == (cremad_tables_dir / name).read_bytes()
    with open(cremad.data_path("VideoDemographics.csv"), newline="") as f:
        assert len(list(csv.DictReader(f))) == 91
