"""RAVDESS: strict name parsing, the release's layout (what is read, what is skipped and why),
and the canonical actor-independent folds."""

import pytest

from emotf.corpora.base import CorpusError
from emotf.corpora.ravdess import (
    EMOTIONS,
    RavdessNameError,
    parse_ravdess_name,
    ravdess_folds,
)
from emotf.corpora.registry import open_corpus


def test_a_name_parses_into_its_seven_codes():
    name = parse_ravdess_name("/data/Actor_12/01-01-06-02-02-01-12.mp4")
    assert (name.modality, name.vocal_channel, name.emotion, name.intensity) == (1, 1, 6, 2)
    assert (name.statement, name.repetition, name.actor) == (2, 1, 12)
    assert name.emotion_name == "fearful" and name.sex == "Female" and name.speaker == "12"
    assert name.stem == "01-01-06-02-02-01-12" and name.extension == ".mp4"
    assert name.groups() == {
        "sex": "Female",
        "intensity": "strong",
        "vocal_channel": "speech",
        "statement": "dogs",
    }
    assert parse_ravdess_name("03-01-01-01-01-01-01.wav").extension == ".wav"
    assert parse_ravdess_name("01-01-08-01-01-01-23").sex == "Male"


@pytest.mark.parametrize(
    "name, problem",
    [
        ("01-01-06-02-02-01", "expected MM-VV-EE-II-SS-RR-AA"),
        ("1-01-06-02-02-01-12", "expected MM-VV"),
        ("04-01-06-02-02-01-12", "modality 04"),
        ("01-03-06-02-02-01-12", "vocal_channel 03"),
        ("01-01-09-02-02-01-12", "emotion 09"),
        ("01-01-00-02-02-01-12", "emotion 00"),
        ("01-01-06-03-02-01-12", "intensity 03"),
        ("01-01-06-02-03-01-12", "statement 03"),
        ("01-01-06-02-02-03-12", "repetition 03"),
        ("01-01-06-02-02-01-25", "actor 25"),
        ("01-01-06-02-02-01-00", "actor 00"),
        ("01-01-01-02-01-01-01", "neutral has normal intensity"),
        ("01-02-07-01-01-01-01", "song has no disgust"),
    ],
)
def test_a_malformed_name_is_refused_naming_the_problem(name, problem):
    with pytest.raises(RavdessNameError) as error:
        parse_ravdess_name(name)
    assert problem in str(error.value) and name in str(error.value)


def test_default_folds_are_six_blocks_of_four_actors_two_of_each_sex():
    folds = ravdess_folds()
    assert sorted(folds) == list(range(1, 25))
    for k in range(6):
        actors = [a for a, f in folds.items() if f == k]
        assert actors == list(range(4 * k + 1, 4 * k + 5))
        assert sum(a % 2 for a in actors) == 2


@pytest.mark.parametrize("k", [1, 2, 5, 7, 24])
def test_any_number_of_folds_is_contiguous_and_balanced(k):
    folds = ravdess_folds(k)
    sizes = [list(folds.values()).count(f) for f in range(k)]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert list(folds.values()) == sorted(folds.values())  # contiguous blocks in actor order
    assert ravdess_folds(k) == folds


@pytest.mark.parametrize("k", [0, 25, True, 2.0])
def test_a_bad_number_of_folds_is_refused(k):
    with pytest.raises(CorpusError, match="folds"):
        ravdess_folds(k)


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_the_layout_reads_full_av_speech_and_skips_the_rest_with_reasons(tmp_path):
    read = [
        "Actor_01/01-01-03-02-01-01-01.mp4",
        "Actor_01/01-01-01-01-02-02-01.mp4",
        "Actor_08/01-01-05-01-01-01-08.mp4",
    ]
    skipped = {
        "Actor_01/02-01-03-02-01-01-01.mp4": "video-only",
        "Actor_01/03-01-03-02-01-01-01.wav": "audio-only",
        "Actor_01/01-02-03-02-01-01-01.mp4": "song",
        "Actor_01/01-01-03-02-01-01-02.mp4": "actor 02 in the name, but in folder Actor_01",
        "Actor_01/01-01-03-02-01-01-01.mp4.bak": "not exactly 01-01-03-02-01-01-01.mp4",
        "Actor_01/01-01-03-02-01-01-01.wav": "not exactly 01-01-03-02-01-01-01.mp4",
        "Actor_01/notes.txt": "not a RAVDESS name",
        "Actor_08/01-01-01-02-01-01-08.mp4": "neutral has normal intensity",
        "README.md": "not an Actor_NN folder",
        "Actor_1/01-01-03-02-01-01-01.mp4": None,  # inside a skipped folder: not listed
    }
    for name in [*read, *skipped]:
        _touch(tmp_path / name)
    (tmp_path / "Actor_01" / "sub").mkdir()
    corpus = open_corpus("ravdess", tmp_path)
    assert corpus.name == "ravdess" and corpus.class_names == EMOTIONS
    assert [c.video for c in corpus.clips] == [str(tmp_path / p) for p in sorted(read)]
    clip = corpus.clips[1]
    assert (clip.clip_id, clip.label, clip.speaker, clip.audio) == (
        "01-01-03-02-01-01-01",
        "happy",
        "01",
        None,
    )
    assert clip.groups["intensity"] == "strong" and clip.groups["sex"] == "Male"
    reasons = {s.path: s.reason for s in corpus.skipped}
    for name, why in skipped.items():
        if why is not None:
            assert why in reasons.pop(str(tmp_path / name)), name
    assert reasons.pop(str(tmp_path / "Actor_1")).startswith("not an Actor_NN folder")
    assert reasons == {str(tmp_path / "Actor_01" / "sub"): "not a regular file"}
    assert corpus.num_folds == 6
    assert [corpus.fold_of(c) for c in corpus.clips] == [0, 0, 1]


def test_folds_option_and_actor_independence(tmp_path):
    for actor in range(1, 25):
        _touch(tmp_path / f"Actor_{actor:02d}" / f"01-01-02-01-01-01-{actor:02d}.mp4")
    corpus = open_corpus("ravdess", tmp_path, folds=4)
    assert corpus.num_folds == 4 and len(corpus) == 24
    assert [len(corpus.clips_in(k)) for k in range(4)] == [6, 6, 6, 6]
    assert corpus.speaker_folds == open_corpus("ravdess", tmp_path, folds=4).speaker_folds


def test_no_actor_folder_or_no_input_clip_is_one_line(tmp_path):
    with pytest.raises(CorpusError, match="no Actor_NN folder"):
        open_corpus("ravdess", tmp_path)
    _touch(tmp_path / "Actor_01" / "02-01-03-02-01-01-01.mp4")
    with pytest.raises(CorpusError, match="no full-AV speech clip.*1 files passed over"):
        open_corpus("ravdess", tmp_path)
    with pytest.raises(CorpusError, match="not a folder"):
        open_corpus("ravdess", tmp_path / "missing")
