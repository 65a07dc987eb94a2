"""Cross-validation report in the shape of the paper's Table I (Markdown + JSON + figures).

`cv_report(CV_DIR)` reads an `emotf-train --fold all` folder:

    CV_DIR/fold-K/metrics.json           test-fold accuracy (written by emotf.train)
    CV_DIR/fold-K/config.json            the run's config (N = config.model.num_segments)
    CV_DIR/fold-K/training_log.csv       Keras CSVLogger
    CV_DIR/fold-K/evaluation/            from `emotf.evaluation.evaluate.evaluate_model` (or fold-K/ itself):
        predictions.csv                  per-clip predictions (needed for the human baseline
                                         on the same clips and the pooled confusion matrix)
        accuracy_vs_n.csv                from `accuracy_vs_segments`, when run

and writes `cv_report.md`, `cv_report.json` and `figures/*.png` into `out` (default CV_DIR).
With `records` (or `evaluate=True` and the records named in the runs' config), folds without
predictions are evaluated first.

The human baseline is CREMA-D's crowd-sourced votes on the clips with the same ids (see
`emotf.evaluation.human`): on the synthetic sample those ids are real CREMA-D names, so the human figures
are the real clips' votes while the model saw generated media.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from emotf.cremad import EMOTIONS
from emotf.evaluation.evaluate import EVALUATION_DIRNAME, evaluate_model, load_run_config
from emotf.evaluation.figures import (
    accuracy_intervals,
    classification_report_dict,
    mean_std,
    plot_accuracy_vs_n,
    plot_training_curves,
    read_accuracy_vs_n,
    read_predictions,
    write_confusion_matrix,
    write_json,
)
from emotf.evaluation.groups import accuracy_by_group, write_group_table
from emotf.evaluation.human import human_accuracy
from emotf.votes import MODES, load_votes

# Accuracies (%) on CREMA-D reported in the paper's Table I (10-fold CV), for reference only.
PAPER_REPORTED: tuple[tuple[str, float], ...] = (
    ("Temporal aggregation of asynchronous audio and video, N=10 (this method)", 68.4),
    ("Human raters (CREMA-D, audio-visual)", 63.6),
    ("RMA", 65.0),
    ("MERML", 66.5),
    ("Single-window CNN baseline", 55.8),
)
_FOLD_DIR = re.compile(r"^fold-(\d+)$")


def fold_dirs(cv_dir) -> list[tuple[int, Path]]:
    """(fold, folder) of every `fold-K` sub-folder, sorted by K."""
    found = []
    for path in Path(cv_dir).iterdir():
        match = _FOLD_DIR.match(path.name)
        if match and path.is_dir():
            found.append((int(match[1]), path))
    return sorted(found)


def _find(fold_dir: Path, name: str) -> Path | None:
    for candidate in (fold_dir / EVALUATION_DIRNAME / name, fold_dir / name):
        if candidate.is_file():
            return candidate
    return None


def _num_segments(fold_dir: Path) -> int | None:
    model = load_run_config(fold_dir).get("config", {}).get("model", {})
    if "num_segments" in model:
        return int(model["num_segments"])
    evaluation = _find(fold_dir, "evaluation.json")
    if evaluation:
        return json.loads(evaluation.read_text()).get("num_segments")
    return None


def _pct(value, digits: int = 1) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{100 * value:.{digits}f}"


def _text(value) -> str:
    return "n/a" if value is None else str(value)


def _pct_pm(mean, std) -> str:
    return "n/a" if not np.isfinite(mean) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def collect_folds(
    cv_dir, *, votes, records=None, evaluate: bool = False, dataset_fn=None
) -> list[dict]:
    """Per-fold facts: accuracy, clip ids and predictions, human accuracy on the same clips."""
    folds = []
    for k, fold_dir in fold_dirs(cv_dir):
        predictions_path = _find(fold_dir, "predictions.csv")
        if (
            predictions_path is None
            and (records or evaluate or dataset_fn)
            and (fold_dir / "model.keras").is_file()
        ):
            evaluate_model(fold_dir, records, dataset_fn=dataset_fn, votes=votes)
            predictions_path = _find(fold_dir, "predictions.csv")
        metrics_path = fold_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        fold = {
            "fold": k,
            "dir": fold_dir,
            "num_segments": _num_segments(fold_dir),
            "best_epoch": metrics.get("best_epoch"),
            "predictions": None,
            "humans": {mode: None for mode in MODES},
        }
        accuracy = metrics.get("accuracy")
        num_clips = metrics.get("num_clips")
        if predictions_path is not None:
            predictions = read_predictions(predictions_path)
            fold["predictions"] = predictions
            if accuracy is None:
                accuracy = float(np.mean(predictions["labels"] == predictions["predicted"]))
            num_clips = len(predictions["clip_ids"])
            try:
                fold["humans"] = human_accuracy(votes, predictions["clip_ids"])
            except KeyError:
                pass  # clip ids outside CREMA-D: no human baseline for this fold
        if accuracy is None:
            continue  # neither metrics nor predictions: an unfinished fold
        fold.update(accuracy=float(accuracy), num_clips=num_clips)
        accuracy_vs_n = _find(fold_dir, "accuracy_vs_n.csv")
        fold["accuracy_vs_n"] = read_accuracy_vs_n(accuracy_vs_n) if accuracy_vs_n else []
        folds.append(fold)
    return folds


def _mean_accuracy_vs_n(folds) -> list[dict]:
    """Accuracy vs N averaged over the folds that measured it (per source and N)."""
    grouped: dict[tuple[str, int], list[float]] = {}
    for fold in folds:
        for row in fold["accuracy_vs_n"]:
            grouped.setdefault((row["source"], row["n"]), []).append(row["accuracy"])
    return [
        {
            "source": f"{source} (mean of {len(v)} folds)",
            "n": n,
            "accuracy": float(np.mean(v)),
            "num_examples": "",
        }
        for (source, n), v in grouped.items()
    ]


def cv_report(
    cv_dir, out=None, *, votes=None, records=None, evaluate: bool = False, dataset_fn=None
) -> tuple[Path, Path]:
    """Render the cross-validation report of an `emotf-train --fold all` folder.

    Args:
        cv_dir: the parent folder holding `fold-K/` runs.
        out: where to write `cv_report.md`, `cv_report.json` and `figures/` (default cv_dir).
        votes: an `emotf.votes.VoteTable` (default: the shipped vote table).
        records / evaluate / dataset_fn: evaluate folds that have no predictions yet
            (see `emotf.evaluation.evaluate.evaluate_model`).

    Returns:
        (markdown path, json path).

    Raises:
        FileNotFoundError: no finished fold (metrics.json or predictions.csv) under cv_dir.
    """
    cv_dir = Path(cv_dir)
    out = Path(out) if out else cv_dir
    figures = out / "figures"
    votes = votes if votes is not None else load_votes()
    folds = collect_folds(
        cv_dir, votes=votes, records=records, evaluate=evaluate, dataset_fn=dataset_fn
    )
    if not folds:
        raise FileNotFoundError(
            f"no finished fold-K run (metrics.json or predictions) under {cv_dir}"
        )

    mean, std = mean_std([f["accuracy"] for f in folds])
    segments = sorted({f["num_segments"] for f in folds if f["num_segments"] is not None})
    human_mean = {m: mean_std([f["humans"][m] for f in folds]) for m in MODES}
    figure_links: dict[str, str] = {}

    # Pooled over the folds that have per-clip predictions.
    with_predictions = [f for f in folds if f["predictions"] is not None]
    pooled = None
    if with_predictions:
        clip_ids = [c for f in with_predictions for c in f["predictions"]["clip_ids"]]
        labels = np.concatenate([f["predictions"]["labels"] for f in with_predictions])
        predicted = np.concatenate([f["predictions"]["predicted"] for f in with_predictions])
        pooled = classification_report_dict(labels, predicted, EMOTIONS)
        try:
            pooled["humans"] = human_accuracy(votes, clip_ids, by_class=True)
        except KeyError:
            pooled["humans"] = None
        write_confusion_matrix(
            pooled["confusion_matrix"],
            EMOTIONS,
            figures / "confusion_matrix.csv",
            figures / "confusion_matrix.png",
            title=f"pooled over {len(with_predictions)} test folds",
        )
        figure_links["confusion_matrix"] = "figures/confusion_matrix.png"
        pooled["confidence_intervals"] = accuracy_intervals(clip_ids, labels, predicted, votes)
        try:
            pooled["by_group"] = accuracy_by_group(clip_ids, labels, predicted, votes)
            write_group_table(figures / "accuracy_by_group.csv", pooled["by_group"])
        except ValueError:  # names that are not CREMA-D clip names
            pooled["by_group"] = None
    for fold in folds:
        log = fold["dir"] / "training_log.csv"
        if log.is_file():
            name = f"fold-{fold['fold']}_training_curves.png"
            plot_training_curves(log, figures / name, title=f"training curves, fold {fold['fold']}")
            figure_links[f"training_curves_fold_{fold['fold']}"] = f"figures/{name}"
    curve_rows = _mean_accuracy_vs_n(folds)
    if curve_rows:
        plot_accuracy_vs_n(curve_rows, figures / "accuracy_vs_n.csv", figures / "accuracy_vs_n.png")
        figure_links["accuracy_vs_n"] = "figures/accuracy_vs_n.png"

    summary = {
        "cv_dir": str(cv_dir),
        "num_folds": len(folds),
        "num_segments": segments,
        "mean_accuracy": mean,
        "std_accuracy": std,
        "std_kind": "sample (ddof=1)",
        "per_fold": [
            {
                "fold": f["fold"],
                "accuracy": f["accuracy"],
                "num_clips": f["num_clips"],
                "num_segments": f["num_segments"],
                "best_epoch": f["best_epoch"],
                "human_accuracy_same_clips": f["humans"],
            }
            for f in folds
        ],
        "human_accuracy_same_clips_mean_std": {
            m: {"mean": v[0], "std": v[1]} for m, v in human_mean.items()
        },
        "pooled": pooled,
        "reported_in_the_paper": [{"method": m, "accuracy_percent": a} for m, a in PAPER_REPORTED],
        "figures": figure_links,
        "note": "Human figures are CREMA-D's crowd-sourced votes on the clips with these ids "
        "(correct responses / all responses); on a synthetic sample they are the real "
        "clips' votes, not ratings of the generated media.",
    }
    json_path = write_json(out / "cv_report.json", summary)
    md_path = out / "cv_report.md"
    md_path.write_text(render_markdown(summary))
    return md_path, json_path


def _interval_text(intervals: dict | None) -> str:
    """" (95 % CI a-b %; emotf minus human AV d points, CI a to b; k actors)" or ""."""
    if not intervals or "model" not in intervals or intervals["model"]["low"] is None:
        return ""
    m = intervals["model"]
    text = f" (95 % CI {_pct(m['low'])}-{_pct(m['high'])} %"
    diff = (intervals.get("model_minus_humans") or {}).get("audio-visual")
    if diff and diff["low"] is not None:
        text += (f"; emotf minus human audio-visual {_pct(diff['estimate'])} points, 95 % CI "
                 f"{_pct(diff['low'])} to {_pct(diff['high'])}")
    return text + f"; t interval over {intervals['actors']} actors)"


def _group_lines(by_group: dict | None) -> list[str]:
    """Markdown table: pooled accuracy by actor sex and age band and by clip intensity."""
    if not by_group:
        return []
    lines = [
        "",
        "## By actor and by intensity, pooled over the test folds (same clips)",
        "",
        "Actors' sex and age from CREMA-D's VideoDemographics.csv; intensity from the clip "
        "name (LO/MD/HI only for sentence IEO). All groupings: figures/accuracy_by_group.csv.",
        "",
        "| grouping | group | clips | emotf | human voice | human face | human AV |",
        "|---|---|---|---|---|---|---|",
    ]
    for grouping in ("sex", "age", "intensity"):
        for group, row in by_group.get(grouping, {}).items():
            lines.append(
                f"| {grouping} | {group} | {row['num_clips']} | {_pct(row['model'])} | "
                f"{_pct(row['voice'])} | {_pct(row['face'])} | {_pct(row['audio-visual'])} |"
            )
    return lines


def render_markdown(summary: dict) -> str:
    """The Markdown report from `cv_report`'s summary dict (figures linked relatively)."""
    n_used = ", ".join(map(str, summary["num_segments"])) or "n/a"
    k = summary["num_folds"]
    lines = [
        "# Cross-validation report",
        "",
        f"Source: `{summary['cv_dir']}`; {k} test folds; segments per clip N = {n_used}.",
        "",
        "## Accuracy (Table I)",
        "",
        "| method | accuracy (%) | clips / notes |",
        "|---|---|---|",
    ]
    for fold in summary["per_fold"]:
        lines.append(
            f"| emotf, fold {fold['fold']} | {_pct(fold['accuracy'])} | "
            f"{_text(fold['num_clips'])} clips, N={_text(fold['num_segments'])} |"
        )
    lines.append(
        f"| **emotf, mean ± std over {k} folds** | "
        f"**{_pct_pm(summary['mean_accuracy'], summary['std_accuracy'])}** | "
        f"N={n_used}, sample std |"
    )
    human = summary["human_accuracy_same_clips_mean_std"]
    for mode in reversed(MODES):
        v = human[mode]
        mean = v["mean"] if v["mean"] is not None else float("nan")
        lines.append(
            f"| Human raters, {mode} (same clips) | {_pct_pm(mean, v['std'] or 0.0)} | "
            "CREMA-D votes, mean ± std over folds |"
        )
    for item in summary["reported_in_the_paper"]:
        lines.append(
            f"| {item['method']} — reported in the paper | {item['accuracy_percent']:.1f} | "
            "paper's Table I, not measured here |"
        )
    lines += [
        "",
        "## Per fold",
        "",
        "| fold | clips | N | best epoch | emotf (%) | human voice (%) | human face (%) | human AV (%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fold in summary["per_fold"]:
        h = fold["human_accuracy_same_clips"]
        lines.append(
            f"| {fold['fold']} | {_text(fold['num_clips'])} | {_text(fold['num_segments'])} | "
            f"{_text(fold['best_epoch'])} | {_pct(fold['accuracy'])} | {_pct(h['voice'])} | "
            f"{_pct(h['face'])} | {_pct(h['audio-visual'])} |"
        )
    pooled = summary.get("pooled")
    if pooled:
        lines += [
            "",
            "## Per class, pooled over the test folds (same clips)",
            "",
            (
                f"Pooled accuracy {_pct(pooled['accuracy'])} % on {pooled['num_examples']} clips"
                f"{_interval_text(pooled.get('confidence_intervals'))}. "
                "emotf per-class accuracy is its recall on that class; human accuracy is correct "
                "responses / all responses."
            ),
            "",
            "| class | clips | emotf precision | emotf recall | emotf F1 | human voice | human face | human AV |",
            "|---|---|---|---|---|---|---|---|",
        ]
        humans = pooled.get("humans") or {}
        for name in EMOTIONS:
            c = pooled["per_class"][name]
            h = [_pct(humans.get(m, {}).get(name)) for m in MODES]
            lines.append(
                f"| {name} | {c['support']} | {_pct(c['precision'])} | {_pct(c['recall'])} | "
                f"{_pct(c['f1'])} | {' | '.join(h)} |"
            )
        lines += _group_lines(pooled.get("by_group"))
    figures = summary["figures"]
    if figures:
        lines += ["", "## Figures", ""]
        titles = {
            "confusion_matrix": "Confusion matrix (pooled test folds)",
            "accuracy_vs_n": "Accuracy vs number of segments N",
        }
        for key, link in figures.items():
            title = titles.get(key) or f"Training curves, fold {key.rsplit('_', 1)[-1]}"
            lines += [f"### {title}", "", f"![{title}]({link})", ""]
    lines += [
        "## Notes",
        "",
        f"- {summary['note']}",
        (
            '- The figures marked "reported in the paper" are quoted for reference; they were '
            "not reproduced here."
        ),
        (
            "- Human baseline data: CREMA-D (Cao et al., 2014), Open Database License 1.0 "
            "(see emotf/data/README.md)."
        ),
    ]
    return "\n".join(lines) + "\n"
