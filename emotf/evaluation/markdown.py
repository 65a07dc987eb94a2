"""The Markdown of the cross-validation summary (`emotf.evaluation.reports.cv_report`)."""

from __future__ import annotations

import numpy as np

from emotf.corpora.cremad import EMOTIONS
from emotf.corpora.votes import MODES


def _pct(value, digits: int = 1) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{100 * value:.{digits}f}"


def _text(value) -> str:
    return "n/a" if value is None else str(value)


def _pct_pm(mean, std) -> str:
    return "n/a" if not np.isfinite(mean) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _interval_text(intervals: dict | None) -> str:
    """ " (95 % CI a-b %; emotf minus human AV d points, CI a to b; k actors)" or ""."""
    if not intervals or "model" not in intervals or intervals["model"]["low"] is None:
        return ""
    m = intervals["model"]
    text = f" (95 % CI {_pct(m['low'])}-{_pct(m['high'])} %"
    diff = (intervals.get("model_minus_humans") or {}).get("audio-visual")
    if diff and diff["low"] is not None:
        text += (
            f"; emotf minus human audio-visual {_pct(diff['estimate'])} points, 95 % CI "
            f"{_pct(diff['low'])} to {_pct(diff['high'])}"
        )
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


def _seconds(value) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _labels_text(summary: dict) -> str:
    """Which labels were scored, and how often intended and perceived labels agree."""
    labels = summary.get("labels")
    names = {
        "intended": "intended (the file name's emotion)",
        "perceived": "perceived (the raters' audio-visual majority)",
    }
    text = f"Labels: {names.get(str(labels), _text(labels))}."
    agree = summary.get("label_agreement")
    if agree and agree.get("rate") is not None:
        missing = agree.get("without_votes") or 0
        text += (
            f" Intended and perceived labels agree on {agree['agree']} of the "
            f"{agree['clips']} evaluated clips ({_pct(agree['rate'])} %"
            + (f"; {missing} without votes" if missing else "")
            + ")."
        )
    else:
        text += " Agreement of intended and perceived labels: n/a (no evaluated clip ids)."
    return text


def render_markdown(summary: dict) -> str:
    """The Markdown report from `cv_report`'s summary dict (figures linked relatively)."""
    n_used = ", ".join(map(str, summary["num_segments"])) or "n/a"
    k = summary["num_folds"]
    lines = [
        "# Cross-validation report",
        "",
        f"Source: `{summary['cv_dir']}`; {k} test folds; segments per clip N = {n_used}.",
        "",
        _labels_text(summary),
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
        "| fold | clips | N | best epoch | wall time (s) | emotf (%) "
        "| human voice (%) | human face (%) | human AV (%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for fold in summary["per_fold"]:
        h = fold["human_accuracy_same_clips"]
        lines.append(
            f"| {fold['fold']} | {_text(fold['num_clips'])} | {_text(fold['num_segments'])} | "
            f"{_text(fold['best_epoch'])} | {_seconds(fold.get('wall_time_s'))} | "
            f"{_pct(fold['accuracy'])} | {_pct(h['voice'])} | "
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
            "| class | clips | emotf precision | emotf recall | emotf F1 "
            "| human voice | human face | human AV |",
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
