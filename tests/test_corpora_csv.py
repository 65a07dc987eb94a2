"""A user's own corpus: the CSV table (columns, relative paths, folds, row-numbered problems,
the size cap, fuzzed bytes) and the class-folder form (speaker_from)."""

import csv
import io
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotf.corpora.base import Clip, Corpus, CorpusError
from emotf.corpora.registry import open_corpus
from emotf.corpora.table import CLIP_SPEAKER_NOTE, TableOptions, table_from_bytes
from emotf.storage import MAX_TABLE_BYTES, FileTooLargeError


def _files(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _csv(root, text, name="clips.csv"):
    path = root / name
    path.write_text(text)
    return path


def test_rows_become_clips_with_relative_and_absolute_paths_and_groups(tmp_path):
    _files(tmp_path, "v/a1.mp4", "v/a1.wav", "v/b1.mp4", "v/c1.mp4")
    elsewhere = tmp_path / "v" / "c1.mp4"
    path = _csv(
        tmp_path,
        "video,label,speaker,audio,sex\n"
        "v/a1.mp4,happy,anna,v/a1.wav,Female\n"
        "v/b1.mp4,sad,bob,,Male\n"
        f"{elsewhere},happy,cleo,,Female\n",
    )
    corpus = open_corpus("csv", path, folds=3)
    assert corpus.name == "csv" and corpus.class_names == ("happy", "sad")
    a, b, c = corpus.clips
    assert (a.clip_id, a.video, a.audio) == (
        "v/a1",
        str(tmp_path / "v/a1.mp4"),
        str(tmp_path / "v/a1.wav"),
    )
    assert b.audio is None and dict(b.groups) == {"sex": "Male"}
    assert c.video == str(elsewhere) and c.clip_id == str(elsewhere)[:-4]
    assert sorted(corpus.speaker_folds.values()) == [0, 1, 2] and not corpus.skipped


def test_bad_rows_are_reported_with_their_row_numbers_and_the_rest_is_kept(tmp_path):
    _files(tmp_path, "a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4")
    path = _csv(
        tmp_path,
        "video,label,speaker\n"  # row 1
        "a.mp4,happy,anna\n"  # 2: kept
        "missing.mp4,happy,anna\n"  # 3
        "b.mp4,angry,bob\n"  # 4: not a class
        "c.mp4,sad,\n"  # 5
        "d.mp4,sad\n"  # 6
        "\n"  # 7: blank, ignored
        "a.mp4,sad,anna\n"  # 8: repeated
        "e.mp4,sad,eve\n",  # 9: kept
    )
    corpus = open_corpus("csv", path, classes=["sad", "happy"], folds=2)
    assert [c.clip_id for c in corpus.clips] == ["a", "e"]
    assert corpus.class_names == ("sad", "happy")
    rows = {s.row: s.reason for s in corpus.skipped}
    assert sorted(rows) == [3, 4, 5, 6, 8]
    assert "video file not found" in rows[3] and "missing.mp4" in rows[3]
    assert "not one of the classes" in rows[4]
    assert rows[5] == "empty speaker"
    assert "2 cells, but the header has 3 columns" in rows[6]
    assert "already in row 2" in rows[8]
    assert all(s.path == str(path) for s in corpus.skipped)
    assert corpus.skipped_dicts()[0] == {"path": str(path), "reason": rows[3], "row": 3}


def test_the_fold_column_is_used_and_checked(tmp_path):
    _files(tmp_path, *(f"{n}.mp4" for n in "abcdef"))
    path = _csv(
        tmp_path,
        "video,label,speaker,fold\n"
        "a.mp4,x,anna,0\n"
        "b.mp4,x,bob,1\n"
        "c.mp4,y,anna,1\n"  # row 4: anna is in fold 0
        "d.mp4,y,cleo,x\n"  # row 5: not an integer
        "e.mp4,y,dan,-1\n"  # row 6
        "f.mp4,y,bob,1\n",
    )
    corpus = open_corpus("csv", path)
    assert corpus.num_folds == 2 and dict(corpus.speaker_folds) == {"anna": 0, "bob": 1}
    rows = {s.row: s.reason for s in corpus.skipped}
    assert sorted(rows) == [4, 5, 6]
    assert "fold 0 (row 2)" in rows[4] and "is not an integer" in rows[5]
    with pytest.raises(CorpusError, match="fold column has 2 folds; folds=3"):
        open_corpus("csv", path, folds=3)
    gap = _csv(tmp_path, "video,label,speaker,fold\na.mp4,x,anna,0\nb.mp4,x,bob,2\n", "gap.csv")
    with pytest.raises(CorpusError, match="0..K-1"):
        open_corpus("csv", gap)


def test_folds_without_a_column_are_speaker_grouped_and_deterministic(tmp_path):
    names = [f"{s}{i}.mp4" for s in "abcdefg" for i in range(3)]
    _files(tmp_path, *names)
    rows = "".join(f"{n},{'xy'[i % 2]},{n[0]}\n" for i, n in enumerate(names))
    corpus = open_corpus("csv", _csv(tmp_path, "video,label,speaker\n" + rows))
    assert corpus.num_folds == 5
    for clip in corpus.clips:
        assert corpus.fold_of(clip) == corpus.speaker_folds[clip.video.rsplit("/", 1)[1][0]]
    shuffled = "".join(reversed(rows.splitlines(keepends=True)))
    again = open_corpus("csv", _csv(tmp_path, "video,label,speaker\n" + shuffled, "b.csv"))
    assert dict(again.speaker_folds) == dict(corpus.speaker_folds)


def test_table_level_problems_are_one_line(tmp_path):
    cases = {
        "": "is empty",
        "video,label\na.mp4,x\n": "video,label,speaker",
        "video,label,speaker,label\n": "each once",
        "video,label,speaker\nmissing.mp4,x,s\n": "no usable row (1 rows skipped; first: row 2",
    }
    for i, (text, expected) in enumerate(cases.items()):
        with pytest.raises(CorpusError) as error:
            open_corpus("csv", _csv(tmp_path, text, f"{i}.csv"))
        assert expected in str(error.value) and "\n" not in str(error.value)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("video,label,speaker\né.mp4,x,s\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        open_corpus("csv", latin)
    _files(tmp_path, "a.mp4")
    few = _csv(tmp_path, "video,label,speaker\na.mp4,x,s\n", "few.csv")
    with pytest.raises(CorpusError, match="5 speaker-independent folds need at least 5"):
        open_corpus("csv", few)
    assert len(open_corpus("csv", few, folds=1)) == 1
    with pytest.raises(CorpusError, match="speaker_from is for the folder form"):
        open_corpus("csv", few, folds=1, speaker_from="parent")


def test_the_csv_read_is_size_capped(tmp_path, monkeypatch):
    import emotf.corpora.table as table

    path = _csv(tmp_path, "video,label,speaker\n" + "a.mp4,x,s\n" * 20)
    monkeypatch.setattr(table, "MAX_TABLE_BYTES", 64)
    with pytest.raises(FileTooLargeError, match="cap"):
        open_corpus("csv", path)
    assert MAX_TABLE_BYTES == 64 << 20  # the cap the module reads with by default


def test_formula_like_cells_are_plain_text(tmp_path):
    _files(tmp_path, "a.mp4")
    path = _csv(tmp_path, 'video,label,speaker\na.mp4,"=SYSTEM(""rm"")",__import__("os")\n')
    (clip,) = open_corpus("csv", path, folds=1).clips
    assert clip.label == '=SYSTEM("rm")' and clip.speaker == '__import__("os")'


# --- The folder form -------------------------------------------------------------------------


def test_class_folders_with_each_clip_its_own_speaker(tmp_path):
    _files(tmp_path, "happy/a.mp4", "happy/b.MOV", "sad/c.mp4", "sad/notes.txt", "readme.md")
    corpus = open_corpus("csv", tmp_path, folds=3)
    assert corpus.class_names == ("happy", "sad")
    assert [(c.clip_id, c.label, c.speaker) for c in corpus.clips] == [
        ("happy/a", "happy", "happy/a"),
        ("happy/b", "happy", "happy/b"),
        ("sad/c", "sad", "sad/c"),
    ]
    assert corpus.notes == (CLIP_SPEAKER_NOTE,)
    reasons = {s.path.rsplit("/", 1)[1]: s.reason for s in corpus.skipped}
    assert set(reasons) == {"notes.txt", "readme.md"}
    assert (
        "not a video file" in reasons["notes.txt"] and "not a class folder" in reasons["readme.md"]
    )


def test_class_folders_with_speakers_from_parent_or_prefix(tmp_path):
    _files(tmp_path, "happy/anna/1.mp4", "happy/bob/2.mp4", "sad/anna/3.mp4", "sad/loose.mp4")
    corpus = open_corpus("csv", tmp_path, speaker_from="parent", folds=2)
    assert [c.speaker for c in corpus.clips] == ["anna", "bob", "anna"] and not corpus.notes
    assert corpus.fold_of(corpus.clips[0]) == corpus.fold_of(corpus.clips[2])
    assert "not in a speaker folder" in corpus.skipped[0].reason

    flat = tmp_path / "flat"
    _files(flat, "happy/anna_1.mp4", "happy/bob-2.mp4", "sad/anna_3.mp4", "sad/nobody.mp4")
    corpus = open_corpus("csv", flat, speaker_from="stem-prefix", folds=2, classes=["sad", "happy"])
    assert corpus.class_names == ("sad", "happy")
    assert sorted(c.speaker for c in corpus.clips) == ["anna", "anna", "bob"]
    assert [s.reason for s in corpus.skipped] == [
        "no speaker prefix in the file name (SPEAKER_ or SPEAKER- first)"
    ]


def test_folder_form_names_the_layout_when_empty(tmp_path):
    (tmp_path / "happy").mkdir()
    with pytest.raises(CorpusError, match="one sub-folder per class"):
        open_corpus("csv", tmp_path)
    with pytest.raises(CorpusError, match="speaker_from must be one of"):
        open_corpus("csv", tmp_path, speaker_from="guess")


# --- Fuzzing -----------------------------------------------------------------------------------

ODD = st.text(alphabet=string.printable + "é\x00\u2028", max_size=12)
CELLS = st.one_of(
    st.sampled_from(['"', ",", "\n", "\r", "\x00", "é", " ", "", "=1+1"]),
    ODD,
)
# column -> likely values (valid ones included), each also sometimes odd text or a bad cell
COLUMN_VALUES = {
    "video": ["a.mp4", "b.mp4", "c.mp4", "missing.mp4", "/abs/x.mp4", "a.wav"],
    "label": ["happy", "x", "sad"],
    "speaker": ["anna", "bob", "cleo"],
    "audio": ["", "a.wav", "missing.wav"],
    "fold": ["0", "1", "2", "-1", "99999", "x"],
    "sex": ["Female", "Male", ""],
}
VALID_HEADERS = st.lists(st.sampled_from(["audio", "fold", "sex"]), unique=True).flatmap(
    lambda extra: st.permutations(["video", "label", "speaker", *extra])
)
HEADERS = st.one_of(
    VALID_HEADERS,
    VALID_HEADERS,
    VALID_HEADERS,
    st.lists(st.sampled_from([*COLUMN_VALUES, "", "video "]), max_size=6),
)


def _row(header):
    """Mostly rows of likely values (4 in 5 cells), sometimes any cells of any count."""
    cells = [
        st.one_of(*[st.sampled_from(COLUMN_VALUES[h])] * 4, CELLS) if h in COLUMN_VALUES else CELLS
        for h in header
    ]
    likely = st.tuples(*cells).map(list)
    return st.one_of(likely, likely, likely, st.lists(CELLS, max_size=7))


def _check(result_or_error, source):
    """A corpus whose clips are valid and whose problems are row-numbered, or one error line."""
    if isinstance(result_or_error, CorpusError):
        assert "\n" not in str(result_or_error)
        return
    corpus = result_or_error
    assert isinstance(corpus, Corpus) and len(corpus) >= 1
    for clip in corpus.clips:
        assert isinstance(clip, Clip) and clip.label in corpus.class_names
        assert 0 <= corpus.fold_of(clip) < corpus.num_folds
    for skip in corpus.skipped:
        assert skip.path == str(source) and isinstance(skip.row, int) and skip.row >= 2
        assert skip.reason and "\n" not in skip.reason


def _run(data, source, **options):
    try:
        return table_from_bytes(data, source, TableOptions(**options))
    except CorpusError as error:
        return error


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), header=HEADERS, folds=st.sampled_from([1, 2, None]))
def test_fuzzed_rows_give_clips_or_row_numbered_problems(tmp_path, data, header, folds):
    _files(tmp_path, "a.mp4", "b.mp4", "c.mp4", "a.wav")
    rows = data.draw(st.lists(_row(header), min_size=1, max_size=8))
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])  # quoted as needed; raw bytes: the next test
    table = text.getvalue().encode("utf-8")
    source = tmp_path / "t.csv"
    _check(_run(table, source, folds=folds), source)
    _check(_run(table, source, folds=folds, classes=("happy", "x")), source)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.sampled_from([b"", b"video,label,speaker\n", b"video,label,speaker,fold\n"]),
    body=st.binary(max_size=200),
)
def test_fuzzed_bytes_never_crash(tmp_path, prefix, body):
    _files(tmp_path, "a.mp4")
    source = tmp_path / "t.csv"
    _check(_run(prefix + body, source, folds=1), source)
