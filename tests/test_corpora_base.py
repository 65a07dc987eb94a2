"""The corpus seam: the registry, speaker-disjoint deterministic folds, and the CREMA-D wrapper
over the shipped metadata and over a folder in CREMA-D's layout."""

from collections import Counter

import pytest

from emotf.corpora.base import (
    Clip,
    Corpus,
    CorpusError,
    balanced_speaker_folds,
    check_num_folds,
)
from emotf.corpora.cremad import EMOTIONS, canonical_folds, load_clip_names
from emotf.corpora.cremad_corpus import cremad_corpus_from_names
from emotf.corpora.registry import CORPORA, open_corpus


def _one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_registry_names_the_three_corpora():
    assert CORPORA == ("cremad", "ravdess", "csv")


def test_an_unknown_corpus_is_one_line_naming_the_known_ones(tmp_path):
    with pytest.raises(CorpusError) as error:
        open_corpus("iemocap", tmp_path)
    text = _one_line(error)
    assert "iemocap" in text and "cremad, ravdess, csv" in text


@pytest.mark.parametrize(
    "name, expected",
    [("cremad", "VideoFlash"), ("ravdess", "Actor_NN"), ("csv", "CSV file")],
)
def test_a_folder_not_in_the_layout_names_what_was_expected(tmp_path, name, expected):
    (tmp_path / "stray.txt").write_text("x")
    target = tmp_path if name != "csv" else tmp_path / "missing.csv"
    with pytest.raises(CorpusError) as error:
        open_corpus(name, target)
    assert expected in _one_line(error)


def test_an_unknown_option_is_named(tmp_path):
    with pytest.raises(CorpusError) as error:
        open_corpus("ravdess", tmp_path, fold=3)
    assert "unknown options ['fold']" in _one_line(error) and "folds" in str(error.value)


def test_balanced_folds_are_speaker_disjoint_balanced_and_order_free():
    speakers = [f"s{i}" for i in range(10) for _ in range(i + 1)]  # s9 has 10 clips, s0 one
    folds = balanced_speaker_folds(speakers, 3)
    assert set(folds) == set(speakers) and set(folds.values()) == {0, 1, 2}
    sizes = Counter(folds[s] for s in speakers)
    assert max(sizes.values()) - min(sizes.values()) <= 1  # 55 clips: 19, 18, 18
    assert balanced_speaker_folds(list(reversed(speakers)), 3) == folds
    assert folds["s9"] == 0 and folds["s8"] == 1 and folds["s7"] == 2  # largest first


def test_balanced_folds_need_as_many_speakers_as_folds():
    with pytest.raises(CorpusError, match="at least 4 speakers"):
        balanced_speaker_folds(["a", "b", "c"], 4)
    with pytest.raises(CorpusError, match="integer"):
        check_num_folds(True, 5, "x")


def test_a_corpus_refuses_a_label_outside_its_classes_and_a_speaker_without_fold():
    clip = Clip("c1", "v.mp4", None, "happy", "anna")
    with pytest.raises(CorpusError, match="not one of"):
        Corpus("x", ".", ("sad",), (clip,), {"anna": 0}, 1)
    with pytest.raises(CorpusError, match="needs a fold"):
        Corpus("x", ".", ("happy",), (clip,), {"anna": 2}, 2)
    with pytest.raises(CorpusError, match="unique"):
        Corpus("x", ".", ("happy",), (clip, clip), {"anna": 0}, 1)
    with pytest.raises(CorpusError, match="non-empty"):
        Clip("c1", "v.mp4", None, "happy", " ")


def test_clip_groups_are_read_only():
    clip = Clip("c1", "v.mp4", None, "happy", "anna", {"sex": "Female"})
    with pytest.raises(TypeError):
        clip.groups["sex"] = "Male"  # type: ignore[index]
    assert hash(clip) == hash(Clip("c1", "v.mp4", None, "happy", "anna"))


def test_cremad_over_the_shipped_metadata():
    corpus = cremad_corpus_from_names(load_clip_names(), "/data/crema")
    assert len(corpus) == 7442 and len(corpus.speakers) == 91
    assert corpus.class_names == EMOTIONS and corpus.num_folds == 10
    canonical = canonical_folds()
    assert {int(s): f for s, f in corpus.speaker_folds.items()} == canonical
    folds_of_speaker: dict[str, set[int]] = {}
    for clip in corpus.clips:
        folds_of_speaker.setdefault(clip.speaker, set()).add(corpus.fold_of(clip))
    assert all(len(f) == 1 for f in folds_of_speaker.values())
    assert sum(len(corpus.clips_in(k)) for k in range(10)) == 7442
    first = next(c for c in corpus.clips if c.clip_id == "1001_DFA_ANG_XX")
    assert first.video == "/data/crema/VideoFlash/1001_DFA_ANG_XX.flv"
    assert first.audio == "/data/crema/AudioWAV/1001_DFA_ANG_XX.wav"
    assert (first.label, first.speaker) == ("ANG", "1001")
    assert dict(first.groups) == {"sex": "Male", "intensity": "XX", "sentence": "DFA"}
    assert corpus.label_index(first) == EMOTIONS.index("ANG")


def test_cremad_folds_follow_the_seed_and_stratification_options():
    names = load_clip_names()[:200]
    plain = cremad_corpus_from_names(names)
    seeded = cremad_corpus_from_names(names, fold_seed=3, stratify_by_sex=True)
    expected = canonical_folds(3, True)
    assert {int(s): f for s, f in seeded.speaker_folds.items()} == expected
    assert dict(seeded.speaker_folds) != dict(plain.speaker_folds)
    with pytest.raises(CorpusError, match="folds"):
        cremad_corpus_from_names(names, folds=5)


def test_cremad_folder_lists_pairs_and_skips_with_reasons(tmp_path):
    video, audio = tmp_path / "VideoFlash", tmp_path / "AudioWAV"
    video.mkdir()
    audio.mkdir()
    for name in ("1001_DFA_ANG_XX.flv", "1002_IEO_HAP_HI.flv", "1001_DFA_ANG_XX (1).flv"):
        (video / name).write_bytes(b"x")
    (video / "notes.txt").write_text("x")
    for name in ("1001_DFA_ANG_XX.wav", "1003_TIE_SAD_XX.wav"):
        (audio / name).write_bytes(b"x")
    corpus = open_corpus("cremad", tmp_path)
    assert [c.clip_id for c in corpus.clips] == ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI"]
    assert corpus.clips[0].audio == str(audio / "1001_DFA_ANG_XX.wav")
    assert corpus.clips[1].audio is None  # no WAV: the FLV's own track
    reasons = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in corpus.skipped_dicts()}
    assert set(reasons) == {"1001_DFA_ANG_XX (1).flv", "notes.txt", "1003_TIE_SAD_XX.flv"}
    assert "video file missing" in reasons["1003_TIE_SAD_XX.flv"]
    assert "not a .flv file" in reasons["notes.txt"]
    assert corpus.fold_of(corpus.clips[0]) == canonical_folds()[1001]
