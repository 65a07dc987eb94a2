"""The timeline figure of a prediction (`<stem>.timeline.png` under `--out`): per face, a band of
window labels above the probability of each class over time (the model's class codes, from its
metadata).
"""

from __future__ import annotations

import io

import numpy as np

from emotf.storage import as_path, write_atomic

PNG_DPI = 110
# The legend's columns at most (a model may have up to 1000 classes: emotf.corpora.info).
MAX_LEGEND_COLUMNS = 10

__all__ = ["PNG_DPI", "class_colours", "face_timelines", "plot_timeline", "timeline_figure"]


def _runs(timeline: list[dict]) -> list[tuple[int, int, str | None]]:
    """(first, last + 1, label or None when skipped) of each run of consecutive windows with
    the same label."""
    runs: list[tuple[int, int, str | None]] = []
    for i, w in enumerate(timeline):
        label = w["label"] if w["probabilities"] else None
        if runs and runs[-1][2] == label:
            runs[-1] = (runs[-1][0], i + 1, label)
        else:
            runs.append((i, i + 1, label))
    return runs


def face_timelines(result: dict) -> list[tuple[int, list[dict]]]:
    """(face id, that face's timeline) per face in a result, by id. One face followed (the
    largest): [(0, the timeline)] as it is. Several faces: each face's entries over every window
    of the result, a window without an entry of that face skipped as "face not seen"."""
    timeline = result["timeline"]
    ids = sorted({w.get("face_id", 0) for w in timeline} - {None})
    if len(ids) <= 1 and all(w.get("face_id", 0) is not None for w in timeline):
        return [(ids[0] if ids else 0, timeline)]
    spans = sorted({(w["start"], w["end"]) for w in timeline})
    out = []
    for face_id in ids:
        mine = {(w["start"], w["end"]): w for w in timeline if w.get("face_id", 0) == face_id}
        out.append(
            (
                face_id,
                [
                    mine.get(span)
                    or {
                        "start": span[0],
                        "end": span[1],
                        "face_id": face_id,
                        "probabilities": None,
                        "label": None,
                        "skipped": "face not seen",
                    }
                    for span in spans
                ],
            )
        )
    return out


def _panel(
    band, ax, timeline: list[dict], class_codes: list[str], colours: dict, title: str, legend: bool
) -> list:
    """Draw one face's probability lines (`ax`) and label band (`band`); returns the band's
    (text, left, right) run labels, to be thinned once the figure is laid out."""
    centres = np.array([(w["start"] + w["end"]) / 2 for w in timeline])
    # A skipped window is a NaN: the line breaks there instead of bridging the gap.
    marker = 3 if len(timeline) <= 100 else 1.5
    for code in class_codes:
        values = [w["probabilities"][code] if w["probabilities"] else np.nan for w in timeline]
        ax.plot(centres, values, marker="o", markersize=marker, color=colours[code], label=code)
    duration = max(w["end"] for w in timeline)
    # Each window's cell spans halfway to its neighbours' centres (the end-of-video window is
    # closer than a hop to the one before: cells of a fixed width would overlap).
    if len(timeline) > 1:
        middles = (centres[:-1] + centres[1:]) / 2
        edges = np.concatenate(
            [
                [max(timeline[0]["start"], 2 * centres[0] - middles[0])],
                middles,
                [min(duration, 2 * centres[-1] - middles[-1])],
            ]
        )
    else:
        edges = np.array([timeline[0]["start"], timeline[0]["end"]])
    texts, runs = [], _runs(timeline)
    edge = 0.8 if len(runs) <= 100 else 0  # white borders would wash out a band of 1 px runs
    for first, stop, label in runs:
        left, width = edges[first], edges[stop] - edges[first]
        if label is None:
            band.barh(
                0,
                width,
                left=left,
                color="lightgrey",
                hatch="//",
                edgecolor="white",
                linewidth=edge,
            )
        else:
            band.barh(0, width, left=left, color=colours[label], edgecolor="white", linewidth=edge)
        text = band.text(
            left + width / 2,
            0,
            label or "skip",
            ha="center",
            va="center",
            fontsize=8 if label else 7,
        )
        texts.append((text, left, left + width))
    band.set_yticks([])
    band.set_ylabel("label", rotation=0, ha="right", va="center")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, duration)
    ax.set_ylabel("probability")
    if legend:
        ax.legend(
            ncol=min(len(class_codes), MAX_LEGEND_COLUMNS),
            loc="upper center",
            fontsize=8,
            frameon=False,
        )
    band.set_title(
        title
        + (
            " (grey: windows skipped, no face)"
            if any(not w["probabilities"] for w in timeline)
            else ""
        ),
        fontsize=10,
    )
    return texts


def class_colours(class_codes: list[str]) -> dict:
    """A colour per class code: tab10's in order (tab20's beyond 10 classes, repeating
    beyond 20)."""
    import matplotlib  # slow to import: only loaded when a figure is drawn

    cmap = matplotlib.colormaps["tab10" if len(class_codes) <= 10 else "tab20"]
    return {code: cmap(i % cmap.N) for i, code in enumerate(class_codes)}


def timeline_figure(result: dict, class_codes: list[str]):
    """The matplotlib Figure of `plot_timeline` (the caller closes it): one panel (a label
    band above the probability lines) per face, in id order (`face_timelines`)."""
    import matplotlib  # (matplotlib: only loaded when a figure is drawn)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # (after the backend is chosen)

    panels = face_timelines(result)
    colours = class_colours(class_codes)
    fig, axes = plt.subplots(
        2 * len(panels),
        1,
        figsize=(10, 4.8 + 3.6 * (len(panels) - 1)),
        dpi=PNG_DPI,
        sharex=True,
        gridspec_kw={"height_ratios": [1, 5] * len(panels)},
    )
    faces = {f["face_id"]: f for f in result.get("faces") or []}
    name = as_path(result["file"]).name
    all_texts = []
    for k, (face_id, timeline) in enumerate(panels):
        band, ax = axes[2 * k], axes[2 * k + 1]
        if len(panels) == 1 and not faces:
            title = f"{name}: {result.get('label_code') or ''}"
        else:
            code = (faces.get(face_id) or {}).get("label_code") or ""
            title = f"{name}, face {face_id}: {code}"
        all_texts.append(
            (band, _panel(band, ax, timeline, class_codes, colours, title, legend=k == 0))
        )
    axes[-1].set_xlabel("time (s, window centre)")
    fig.tight_layout()
    # A run's code is written only where it fits inside the run's cells, clear of the last
    # code written: with many short runs most are dropped rather than run together.
    for band, texts in all_texts:
        last_right = -np.inf
        for text, left, right in texts:
            box = text.get_window_extent()  # (the figure's renderer)
            (x0, _), (x1, _) = band.transData.transform([(left, 0), (right, 0)])
            if box.x0 < x0 or box.x1 > x1 or box.x0 < last_right + 2:
                text.remove()
            else:
                last_right = box.x1
    return fig


def plot_timeline(result: dict, class_codes: list[str], path) -> None:
    """Probabilities over time (one line and colour per class, at each window's centre,
    broken where windows were skipped) and a band with each window's label (coloured as its
    class; a run of windows with the same label has its code written on it when it fits);
    one such panel per face when every face was tracked."""
    fig = timeline_figure(result, class_codes)
    import matplotlib.pyplot as plt  # slow to import: figures only (loaded by timeline_figure)

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=PNG_DPI)
    plt.close(fig)
    write_atomic(path, png.getvalue())
