"""The Markdown of the cross-validation summary (`emotf.evaluation.reports.cv_report`).

The classes, and whether there are human-rater rows, come from the summary's `corpus`
(`emotf.corpora.info.CorpusInfo`; CREMA-D for a summary without one).
"""

from __future__ import annotations

import numpy as np

from emotf.corpora.info import CorpusInfo
from emotf.corpora.votes import MODES
from emotf.runs.folder import BY_GROUP_CSV, FIGURES_DIR


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
        f"name (LO/MD/HI only for sentence IEO). All groupings: {FIGURES_DIR}/{BY_GROUP_CSV}.",
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


def _corpus_text(corpus: CorpusInfo) -> str:
    """ "Corpus: `name`, C classes: ANG (anger), ..." (a name only where it is not the code)."""
    classes = ", ".join(
        code if name == code else f"{code} ({name})"
        for code, name in zip(corpus.class_codes, corpus.class_names, strict=True)
    )
    return f"Corpus: `{corpus.name}`, {corpus.num_classes} classes: {classes}."


def _labels_text(summary: dict, corpus: CorpusInfo) -> str:
    """Which labels were scored, and how often intended and perceived labels agree."""
    labels = summary.get("labels")
    names = {
        "intended": "intended (the file name's emotion)",
        "perceived": "perceived (the raters' audio-visual majority)",
    }
    if not corpus.has_rater_votes:  # no perceived labels to compare with
        return f"Labels: {_text(labels)} (the corpus's own)."
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
    corpus = CorpusInfo.of(summary)
    raters = corpus.has_rater_votes
    n_used = ", ".join(map(str, summary["num_segments"])) or "n/a"
    k = summary["num_folds"]
    lines = [
        "# Cross-validation report",
        "",
        f"Source: `{summary['cv_dir']}`; {k} test folds; segments per clip N = {n_used}.",
        "",
        _corpus_text(corpus),
        "",
        _labels_text(summary, corpus),
        "",
        "## Accuracy (Table I)" if summary["reported_in_the_paper"] else "## Accuracy",
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
    human = summary["human_accuracy_same_clips_mean_std"] or {}
    for mode in reversed(MODES if raters else ()):
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
    human_heads = "| human voice (%) | human face (%) | human AV (%) " if raters else ""
    lines += [
        "",
        "## Per fold",
        "",
        f"| fold | clips | N | best epoch | wall time (s) | emotf (%) {human_heads}|",
        "|---|---|---|---|---|---|" + ("---|---|---|" if raters else ""),
    ]
    for fold in summary["per_fold"]:
        h = fold["human_accuracy_same_clips"] or {}
        human_cells = (
            f" {_pct(h.get('voice'))} | {_pct(h.get('face'))} | {_pct(h.get('audio-visual'))} |"
            if raters
            else ""
        )
        lines.append(
            f"| {fold['fold']} | {_text(fold['num_clips'])} | {_text(fold['num_segments'])} | "
            f"{_text(fold['best_epoch'])} | {_seconds(fold.get('wall_time_s'))} | "
            f"{_pct(fold['accuracy'])} |{human_cells}"
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
                "emotf per-class accuracy is its recall on that class"
                + ("; human accuracy is correct responses / all responses." if raters else ".")
            ),
            "",
            "| class | clips | emotf precision | emotf recall | emotf F1 |"
            + (" human voice | human face | human AV |" if raters else ""),
            "|---|---|---|---|---|" + ("---|---|---|" if raters else ""),
        ]
        humans = pooled.get("humans") or {}
        for name in corpus.class_codes:
            c = pooled["per_class"][name]
            h = [_pct(humans.get(m, {}).get(name)) for m in MODES]
            lines.append(
                f"| {name} | {c['support']} | {_pct(c['precision'])} | {_pct(c['recall'])} | "
                f"{_pct(c['f1'])} |" + (f" {' | '.join(h)} |" if raters else "")
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
    lines += ["## Notes", ""]
    lines += [f"- {note}" for note in (summary.get("notes") or [])]
    if summary.get("note"):
        lines.append(f"- {summary['note']}")
    if summary["reported_in_the_paper"]:
        lines.append(
            '- The figures marked "reported in the paper" are quoted for reference; they were '
            "not reproduced here."
        )
    if raters:
        lines.append(
            "- Human baseline data: CREMA-D (Cao et al., 2014), Open Database License 1.0 "
            "(see emotf/data/README.md)."
        )
    return "\n".join(lines) + "\n"
