"""Corpora by name: `open_corpus("cremad" | "ravdess" | "csv", data_dir, **options)`.

Adding a corpus is one module with an `open_X(data_dir, **options) -> Corpus` function
(`emotf.corpora.base` has the seam) and one line in `OPENERS` (docs/corpora.md).
`corpus_info(corpus)` is what records, runs and models carry about it (`CorpusInfo`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from emotf.corpora.base import Corpus, CorpusError
from emotf.corpora.cremad_corpus import open_cremad
from emotf.corpora.info import CREMAD_INFO, CorpusInfo, CorpusInfoError
from emotf.corpora.ravdess import open_ravdess
from emotf.corpora.table import open_table
from emotf.storage import StoragePath

OPENERS: dict[str, Callable[..., Corpus]] = {
    "cremad": open_cremad,
    "ravdess": open_ravdess,
    "csv": open_table,
}
CORPORA: tuple[str, ...] = tuple(OPENERS)


def open_corpus(name: str, data_dir: str | Path | StoragePath, **options) -> Corpus:
    """The corpus `name` read from `data_dir` (a folder; for `csv` also a CSV file).

    Raises:
        CorpusError: an unknown name, a folder that does not match the corpus's layout, or a
            bad option (one line naming what was expected).
    """
    opener = OPENERS.get(name) if isinstance(name, str) else None
    if opener is None:
        raise CorpusError(f"unknown corpus {name!r:.80} (known: {', '.join(CORPORA)})")
    return opener(data_dir, **options)


def corpus_info(corpus: Corpus) -> CorpusInfo:
    """The `CorpusInfo` of an opened corpus: exactly `CREMAD_INFO` for CREMA-D (its codes
    `ANG`, ... and names `anger`, ...); for any other its class names as both codes and names.

    Raises:
        CorpusError: a corpus `CorpusInfo` cannot describe (fewer than 2 classes or folds).
    """
    if corpus.name == CREMAD_INFO.name:
        return CREMAD_INFO
    try:
        return CorpusInfo(corpus.name, corpus.class_names, corpus.class_names, corpus.num_folds)
    except CorpusInfoError as error:
        raise CorpusError(f"{corpus.name}: {corpus.root}: {error}") from None
