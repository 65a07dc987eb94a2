"""The corpus a run learns: read from its records, sizing the classifier and bounding the folds.

The records' manifest carries the corpus (`emotf.corpora.info.CorpusInfo`: class codes in
label order, display names, folds). A run reads it before anything is built: the classifier has
`info.num_classes` outputs (`sized_config`; a `model.num_classes` given explicitly must agree),
the fold protocol runs over `info.num_folds` folds (`check_folds`, `run_split`), metrics.json
records it (`metrics["corpus"]`). Records without a `corpus` key (built before corpora existed)
are CREMA-D's; data from a custom dataset factory (no records folder) is CREMA-D's too, unless
`model.num_classes` says another class count (classes "0", "1", ...).

Light: no TensorFlow, so `emotf-train` and `emotf-tune` check a fold while parsing their flags.
"""

from __future__ import annotations

from dataclasses import replace

from emotf.configs import TrainConfig
from emotf.corpora.info import CREMAD_INFO, CorpusInfo, CorpusInfoError
from emotf.corpora.labels import INTENDED
from emotf.corpora.splits import ACTORS, RunSplit, run_split
from emotf.records.folder import RecordsFolder
from emotf.records.manifest import RecordsError, read_manifest
from emotf.storage import as_path

UNNAMED = "unnamed"  # the corpus of a custom factory's data of a non-CREMA-D class count


def records_corpus(records) -> CorpusInfo | None:
    """The corpus of a records folder (its manifest's `corpus`; CREMA-D for records without
    one, or whose manifest is missing or unreadable: `emotf.records.manifest.check_records`
    names that problem); None when `records` is not a folder (a custom factory's data).

    Raises:
        ValueError: the manifest's `corpus` is not a valid `CorpusInfo` (naming the file).
    """
    if not records or not as_path(records).is_dir():
        return None
    folder = RecordsFolder(as_path(records))
    if not folder.manifest_path.is_file():
        return CREMAD_INFO
    try:
        manifest = read_manifest(records)
    except RecordsError:
        return CREMAD_INFO
    try:
        return CorpusInfo.of(manifest)
    except CorpusInfoError as error:
        raise ValueError(f"{folder.manifest_path}: {error}") from None


def run_corpus(config: TrainConfig) -> CorpusInfo:
    """The corpus of a run: its records' (`records_corpus`), else (a custom factory's data)
    CREMA-D's, or classes "0".."n-1" when `model.num_classes` gives another count n."""
    info = records_corpus(config.records)
    if info is not None:
        return info
    n = config.model.num_classes
    if n is None or n == CREMAD_INFO.num_classes:
        return CREMAD_INFO
    codes = tuple(str(c) for c in range(n))
    return CorpusInfo(UNNAMED, codes, codes, CREMAD_INFO.num_folds)


def describe_classes(info: CorpusInfo, shown: int = 3) -> str:
    """'8 classes (neutral, calm, happy, ...)': the count and the first codes."""
    codes = ", ".join(info.class_codes[:shown]) + (", ..." if info.num_classes > shown else "")
    return f"{info.num_classes} classes ({codes})"


def sized_config(config: TrainConfig, info: CorpusInfo) -> TrainConfig:
    """`config` with `model.num_classes` = the corpus's class count.

    Raises:
        ValueError: one line naming both counts, when `model.num_classes` is given and differs.
    """
    given = config.model.num_classes
    if given == info.num_classes:
        return config
    if given is not None:
        raise ValueError(
            f"ModelConfig.num_classes={given}, but the records {config.records or '(none)'} hold "
            f"{describe_classes(info)} of corpus {info.name}: leave --model.num_classes out "
            f"(the records size the classifier) or give {info.num_classes}"
        )
    return replace(config, model=replace(config.model, num_classes=info.num_classes))


def check_folds(config: TrainConfig, info: CorpusInfo) -> None:
    """Refuse, in one line, a test fold or a validation fold count the corpus's folds cannot
    give (the actor protocol; a clip-level split ignores both).

    Raises:
        ValueError: naming the field, its valid range for these records and the value.
    """
    if config.split != ACTORS:
        return
    n, where = info.num_folds, f"the records of {info.name} hold {info.num_folds} folds"
    if not 0 <= config.fold <= n - 1:
        raise ValueError(
            f"TrainConfig.fold must be in [0, {n - 1}] ({where}). Received: fold={config.fold}"
        )
    if not 1 <= config.validation_folds <= n - 2:
        raise ValueError(
            f"TrainConfig.validation_folds must be in [1, {n - 2}] ({where}: one tests, "
            f"one at least trains). Received: validation_folds={config.validation_folds}"
        )


def check_labels(config: TrainConfig, info: CorpusInfo) -> None:
    """Refuse, in one line, perceived labels for a corpus without rater votes (they are the
    CREMA-D raters' majority, `emotf.corpora.labels`)."""
    if config.labels != INTENDED and not info.has_rater_votes:
        raise ValueError(
            f"TrainConfig.labels={config.labels!r} takes CREMA-D's rater votes; the records of "
            f"{info.name} have none: use labels={INTENDED!r}"
        )


def corpus_split(config: TrainConfig, info: CorpusInfo) -> RunSplit:
    """The training, validation and test selections of `config` over the corpus's folds."""
    return run_split(
        config.split,
        config.fold,
        config.validation_folds,
        config.validation_fraction,
        config.seed,
        num_folds=info.num_folds,
    )


def check_config(config: TrainConfig) -> CorpusInfo:
    """The run's corpus (`run_corpus`), once `config` is checked against it: its class count
    (`sized_config`), folds (`check_folds`) and labels (`check_labels`). `emotf-train` and
    `emotf-tune` call it while parsing, so that such a mistake is a usage error, before anything
    is written.

    Raises:
        ValueError: one line naming the field, the records' value and the config's.
    """
    info = run_corpus(config)
    check_folds(sized_config(config, info), info)
    check_labels(config, info)
    return info
