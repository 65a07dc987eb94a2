"""The run folder and the cross-validation folder: the one place their file names live.

A run folder (`emotf-train` for one fold or one test list) holds:

    config.json         {"config": TrainConfig, "split": split summary, "folds": {"train",
                        "validation", "test"} (fold protocol only), "environment": versions}
    metrics.json        the test part's metrics, written last (a finished run has one)
    model.keras         the chosen model (weights only are ever read: `emotf.runs.model_io`)
    best.weights.h5     best validation accuracy so far (`emotf.training.run_state.BestWeights`)
    backup/             Keras BackupAndRestore (weights, optimizer state, epoch)
    training_log.csv    one row per epoch (CSVLogger)
    calibration.json    the temperature fitted on the validation clips
    tensorboard/        TensorBoard logs
    evaluation/         `emotf-evaluate`'s files (`EvaluationDir`)
    export/<version>/   SavedModels of `emotf-export`

A cross-validation folder (`emotf-train --fold all`) holds `fold-K/` runs and one summary:
`cv_report.json`, `cv_report.md` and `figures/` (`emotf.evaluation.reports.cv_report`).
Every other module asks these objects for paths (or the name constants below, for messages
and help texts) instead of typing the names.

`Run.corpus` is where evaluation learns the run's classes (`emotf.corpora.info.CorpusInfo`):
the `corpus` block of `metrics.json`, else of the records' manifest, else CREMA-D (runs and
records written before corpora existed).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from emotf.configs import TrainConfig
from emotf.corpora.info import CORPUS_KEY, CREMAD_INFO, CorpusInfo, CorpusInfoError
from emotf.records.folder import RecordsFolder
from emotf.runs.model_io import ModelLoadError, load_run_model
from emotf.storage import StoragePath, as_path, read_json, write_json

_FOLD_DIR = re.compile(r"^fold-(\d+)$")

# The file names of a run folder, for messages and help texts (paths: the objects below).
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
BEST_WEIGHTS_FILE = "best.weights.h5"
LOG_FILE = "training_log.csv"
CALIBRATION_FILE = "calibration.json"
BACKUP_METADATA_FILE = "training_metadata.json"  # Keras BackupAndRestore's, in backup/
EVALUATION_DIR = "evaluation"
# An evaluation folder's (`EvaluationDir`) and a CV folder's `figures/` (the pooled files).
REPORT_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
RELIABILITY_PNG = "reliability.png"
BY_GROUP_CSV = "accuracy_by_group.csv"
TRAINING_CURVES_PNG = "training_curves.png"
ACCURACY_VS_N_CSV = "accuracy_vs_n.csv"
ACCURACY_VS_N_PNG = "accuracy_vs_n.png"
# A cross-validation folder's summary.
CV_REPORT_JSON = "cv_report.json"
CV_REPORT_MD = "cv_report.md"
FIGURES_DIR = "figures"


@dataclass(frozen=True, init=False)
class EvaluationDir:
    """The files `emotf-evaluate` writes into one folder (by default `RUN/evaluation/`)."""

    path: StoragePath

    def __init__(self, path: str | os.PathLike | StoragePath) -> None:
        object.__setattr__(self, "path", as_path(path))

    @property
    def report(self) -> StoragePath:
        return self.path / REPORT_FILE

    @property
    def predictions(self) -> StoragePath:
        return self.path / PREDICTIONS_FILE

    @property
    def confusion_csv(self) -> StoragePath:
        return self.path / CONFUSION_CSV

    @property
    def confusion_png(self) -> StoragePath:
        return self.path / CONFUSION_PNG

    @property
    def reliability_png(self) -> StoragePath:
        return self.path / RELIABILITY_PNG

    @property
    def by_group_csv(self) -> StoragePath:
        return self.path / BY_GROUP_CSV

    @property
    def training_curves_png(self) -> StoragePath:
        return self.path / TRAINING_CURVES_PNG

    @property
    def accuracy_vs_n_csv(self) -> StoragePath:
        return self.path / ACCURACY_VS_N_CSV

    @property
    def accuracy_vs_n_png(self) -> StoragePath:
        return self.path / ACCURACY_VS_N_PNG


@dataclass(frozen=True, init=False)
class Run:
    """One `emotf-train` run folder: its paths, its config and metrics, its model."""

    path: StoragePath

    def __init__(self, path: str | os.PathLike | StoragePath) -> None:
        object.__setattr__(self, "path", as_path(path))

    @classmethod
    def of(cls, run_or_model) -> Run:
        """The run of a run folder, or of a model file inside one (`RUN/model.keras`)."""
        path = as_path(run_or_model)
        return cls(path if path.is_dir() else path.parent)

    # === Paths ===

    @property
    def config_path(self) -> StoragePath:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> StoragePath:
        return self.path / METRICS_FILE

    @property
    def model_path(self) -> StoragePath:
        return self.path / MODEL_FILE

    @property
    def best_weights_path(self) -> StoragePath:
        return self.path / BEST_WEIGHTS_FILE

    @property
    def backup_dir(self) -> StoragePath:
        return self.path / "backup"

    @property
    def backup_metadata_path(self) -> StoragePath:
        """Keras BackupAndRestore's record of the last completed epoch."""
        return self.backup_dir / BACKUP_METADATA_FILE

    @property
    def log_path(self) -> StoragePath:
        return self.path / LOG_FILE

    @property
    def calibration_path(self) -> StoragePath:
        return self.path / CALIBRATION_FILE

    @property
    def tensorboard_dir(self) -> StoragePath:
        return self.path / "tensorboard"

    @property
    def evaluation(self) -> EvaluationDir:
        return EvaluationDir(self.path / EVALUATION_DIR)

    @property
    def export_dir(self) -> StoragePath:
        return self.path / "export"

    def find_evaluation_file(self, name: str) -> StoragePath | None:
        """`evaluation/<name>` of the run, else `<name>` beside the run's files, else None."""
        for candidate in (self.evaluation.path / name, self.path / name):
            if candidate.is_file():
                return candidate
        return None

    # === State ===

    @property
    def finished(self) -> bool:
        """A finished run has its metrics (written last)."""
        return self.metrics_path.is_file()

    @property
    def resumable(self) -> bool:
        return self.backup_dir.exists()

    def completed_epochs(self) -> int:
        """Epochs the run's `backup/` holds (0 for a fresh run): the epoch a resume starts at."""
        if not self.backup_metadata_path.is_file():
            return 0
        return int(read_json(self.backup_metadata_path).get("epoch", 0))

    # === config.json ===

    def record(self) -> dict:
        """The whole `config.json` ({} when the folder has none)."""
        return read_json(self.config_path) if self.config_path.is_file() else {}

    def config_values(self) -> dict:
        """The `TrainConfig` of `config.json` as stored (plain JSON values; {} without one)."""
        values = self.record().get("config", {})
        if not isinstance(values, dict):
            raise ValueError(f"{self.config_path}: 'config' is not a JSON object")  # noqa: TRY004
        return values

    def has_config(self) -> bool:
        return self.config_path.is_file()

    def train_config(self) -> TrainConfig:
        """The run's validated `TrainConfig`.

        Raises:
            FileNotFoundError: the folder has no config.json.
            ValueError: naming config.json and the problem with its values.
        """
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.config_path} not found: not an emotf-train run")
        try:
            return TrainConfig.from_dict(self.config_values())
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{self.config_path}: not a valid emotf run config ({error})"
            ) from None

    def recorded_split(self) -> dict | None:
        """The split summary with its fingerprint, as recorded
        (`emotf.corpora.splits.RunSplit.summary`)."""
        return self.record().get("split")

    def test_fold(self) -> int | None:
        """The run's test fold under the fold protocol (None for a clip-level split)."""
        test = (self.record().get("folds") or {}).get("test")
        return None if test is None else int(test)

    def write_config(
        self, config: TrainConfig, split_summary: dict, environment: dict, folds: dict | None = None
    ) -> StoragePath:
        """Write `config.json`: the resolved config, the split (and folds), the versions."""
        parts = {"config": config.to_dict(), "split": split_summary}
        if folds is not None:
            parts["folds"] = folds
        return write_json(self.config_path, {**parts, "environment": environment})

    # === metrics.json, calibration.json ===

    def read_metrics(self) -> dict:
        if not self.metrics_path.is_file():
            raise FileNotFoundError(f"{self.metrics_path} not found: the run has not finished")
        return read_json(self.metrics_path)

    def write_metrics(self, metrics: dict) -> StoragePath:
        return write_json(self.metrics_path, metrics)

    def write_calibration(self, calibration: dict) -> StoragePath:
        return write_json(self.calibration_path, calibration)

    def temperature(self) -> float | None:
        """The temperature fitted on the validation clips (None without calibration.json)."""
        if not self.calibration_path.is_file():
            return None
        return read_json(self.calibration_path).get("temperature")

    # === The corpus ===

    def corpus(self, records=None) -> CorpusInfo:
        """The run's classes and folds: `metrics.json`'s `corpus` block (what training saw),
        else that of the records' manifest (`records`, default the ones config.json names),
        else CREMA-D (`CREMAD_INFO`: runs and records written before corpora existed).

        Raises:
            ValueError: one line naming the file, when a `corpus` block is not valid, or when the
                run's and the records' classes differ (the model scores other classes).
        """
        trained = self._corpus_block(self.metrics_path)
        if records is None:
            named = self.config_values().get("records") if self.has_config() else None
            records = named if isinstance(named, str) and named else None
        manifest = RecordsFolder(as_path(records)).manifest_path if records else None
        stored = self._corpus_block(manifest) if manifest is not None else None
        if trained is not None and stored is not None and trained.class_codes != stored.class_codes:
            raise ValueError(
                f"{manifest}: the records hold the classes {list(stored.class_codes)} of corpus "
                f"{stored.name!r}, the run was trained on {list(trained.class_codes)} of "
                f"{trained.name!r} ({self.metrics_path}): evaluate it on records of its corpus"
            )
        return trained or stored or CREMAD_INFO

    @staticmethod
    def _corpus_block(path: StoragePath | None) -> CorpusInfo | None:
        """The `CorpusInfo` of a JSON file's `corpus` key; None without the file or the key."""
        if path is None or not path.is_file():
            return None
        data = read_json(path)
        if data.get(CORPUS_KEY) is None:
            return None
        try:
            return CorpusInfo.of(data)
        except CorpusInfoError as error:
            raise ValueError(f"{path}: {error}") from None

    # === The model ===

    def load_model(self, model_file=None):
        """The trained model, rebuilt from the run's `ModelConfig` with the weights of
        `model_file` (default `model.keras`) only (`emotf.runs.model_io.load_run_model`); a model
        file without a config.json beside it loads with `safe_mode=True`. Never runs code
        from the file."""
        model_file = as_path(model_file) if model_file is not None else self.model_path
        if not self.has_config():
            return load_run_model(model_file)
        try:
            config = self.train_config()
        except ValueError as error:
            raise ModelLoadError(str(error)) from None
        return load_run_model(model_file, config.model, config.sampling)


@dataclass(frozen=True, init=False)
class CrossValidation:
    """An `emotf-train --fold all` folder: `fold-K/` runs and the one CV summary."""

    path: StoragePath

    def __init__(self, path: str | os.PathLike | StoragePath) -> None:
        object.__setattr__(self, "path", as_path(path))

    def fold(self, k: int) -> Run:
        return Run(self.path / f"fold-{int(k)}")

    def folds(self) -> list[tuple[int, Run]]:
        """(fold, run) of every `fold-K` sub-folder, sorted by K."""
        if not self.path.is_dir():
            return []
        found = [
            (int(m[1]), Run(p))
            for p in self.path.iterdir()
            if (m := _FOLD_DIR.match(p.name)) and p.is_dir()
        ]
        return sorted(found, key=lambda item: item[0])

    @property
    def report_json(self) -> StoragePath:
        return self.path / CV_REPORT_JSON

    @property
    def report_md(self) -> StoragePath:
        return self.path / CV_REPORT_MD

    @property
    def figures_dir(self) -> StoragePath:
        return self.path / FIGURES_DIR

    @staticmethod
    def figure_files(figures_dir) -> EvaluationDir:
        """The pooled confusion matrix, accuracy by group and accuracy vs N in `figures/`
        (the same names as a run's evaluation folder)."""
        return EvaluationDir(figures_dir)

    @staticmethod
    def training_curves_png(figures_dir, fold: int) -> StoragePath:
        return as_path(figures_dir) / f"fold-{int(fold)}_training_curves.png"
