"""A finished search's outputs in OUT (`emotf.tuning.search`): the trials table and the best config.

    trials.json / .csv  every trial: id, status, best val_accuracy, its epoch, epochs trained,
                        the Hyperband trial it continues, hyperparameters; best first,
                        unfinished trials last.
    best_config.json    the best trial as a full `TrainConfig` (`{"config": ..., "tuning": ...}`,
                        the `RUN/config.json` layout that `emotf-train --config` reads).

Written by the oracle's process only (a one-process search, or a distributed search's chief),
which holds every trial; through `emotf.storage`, so OUT may be a `tf.io.gfile` URL.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import keras_tuner

from emotf.storage import StoragePath, as_path, write_atomic, write_json
from emotf.tuning.config import TuneConfig


def plain_value(value):
    """12 significant digits for floats: keras-tuner's stepped floats read 0.30000000000000004."""
    return float(f"{value:.12g}") if isinstance(value, float) else value


def _split_record(split) -> dict:
    """What best_config.json says of the split: validation part, and the test part never read."""
    summary = split.summary()
    if not split.clip_level:
        return {"validation_folds": summary["validation"], "test_fold_never_read": summary["test"]}
    return {"split": summary, "test_clips_never_read": summary["test_clips"]}


def trial_rows(tuner: keras_tuner.Tuner, search) -> list[dict]:
    """Every trial of the search: finished ones by val_accuracy (best first), then the others."""
    rows = []
    for trial in tuner.oracle.trials.values():
        values = trial.hyperparameters.values
        done = trial.status == "COMPLETED" and trial.score is not None
        rows.append(
            {
                "trial_id": trial.trial_id,
                "status": trial.status,
                "val_accuracy": float(trial.score) if done else None,
                "best_epoch": int(trial.best_step) + 1
                if done and trial.best_step is not None
                else None,
                "epochs": int(values.get("tuner/epochs", tuner.hypermodel.config.train.epochs)),
                "continues": values.get("tuner/trial_id"),  # Hyperband: the trial it trains on
                "hyperparameters": {n: plain_value(values[n]) for n in search if n in values},
            }
        )
    rows.sort(key=lambda r: (r["val_accuracy"] is None, -(r["val_accuracy"] or 0.0), r["trial_id"]))
    return rows


def _write_csv(path: StoragePath, rows: list[dict], search) -> None:
    columns = ["trial_id", "status", "val_accuracy", "best_epoch", "epochs", "continues"]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, [*columns, *search])
    writer.writeheader()
    for row in rows:
        writer.writerow({**{k: row[k] for k in columns}, **row["hyperparameters"]})
    write_atomic(path, text.getvalue().encode("utf-8"))


def write_results(tuner: keras_tuner.Tuner, config: TuneConfig, records_check: dict) -> dict:
    """Write trials.json / .csv and best_config.json of the finished search (the oracle's
    process only: it holds every trial); return them (see `emotf.tuning.search.tune`).

    `tuner.hypermodel` is the search's `emotf.tuning.search.EmotfHyperModel` (its
    `trial_config` gives the best trial's TrainConfig, its `split` what best_config.json says of
    the split, its `task.corpus` the records' corpus, recorded as "corpus")."""
    out = as_path(config.out)
    rows = trial_rows(tuner, config.search)
    write_json(out / "trials.json", rows)
    _write_csv(out / "trials.csv", rows, config.search)
    if not rows or rows[0]["val_accuracy"] is None:
        raise RuntimeError(
            f"no trial of the search in {out / 'search'} finished; see its trial.json files"
        )
    best_trial = tuner.oracle.get_trial(rows[0]["trial_id"])
    best = replace(
        tuner.hypermodel.trial_config(best_trial.hyperparameters), out=str(out / "best-run")
    )
    best_path = out / "best_config.json"
    write_json(
        best_path,
        {
            "config": best.to_dict(),
            "tuning": {
                **{
                    k: rows[0][k]
                    for k in ("trial_id", "val_accuracy", "best_epoch", "hyperparameters")
                },
                **_split_record(tuner.hypermodel.split),
                **tuner.hypermodel.task.corpus_metrics(),
                "tuner": config.tuner,
                "labels": config.train.labels,
                **records_check,
                "finished_trials": sum(r["val_accuracy"] is not None for r in rows),
                "search_dir": str(out),
            },
        },
    )
    return {
        "best_val_accuracy": rows[0]["val_accuracy"],
        "best_hyperparameters": rows[0]["hyperparameters"],
        "best_config": best.to_dict(),
        "best_config_path": str(best_path),
        "trials": rows,
    }
