"""Sliding windows over a streamed video, and the results `emotf-predict` shows: the timeline
files `--out` writes, the `--json` document and the printed table.

Windows: `[k * hop, k * hop + window)` seconds for k = 0, 1, ... while the window fits in the
video (duration D), plus one last window `[D - window, D)` when the hop leaves the end
uncovered. A video no longer than the window is one window: the whole clip (frames and audio),
exactly what the records store. A window's frames are the grid frames i with i / fps in
[start, end); its audio the samples [round(start * rate), round(end * rate)).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass

from emotf.storage import as_path, write_atomic, write_json

# Windows are skipped when fewer than this fraction of their frames show a face.
MIN_FACE_FRACTION = 0.5
# Defaults when a model's metadata has no `timeline` (exported before it existed): the real
# CREMA-D median clip length (docs/build_records.md) and a 1 s hop.
DEFAULT_WINDOW_SECONDS = 2.5
DEFAULT_HOP_SECONDS = 1.0


@dataclass(frozen=True)
class Window:
    """One window: seconds [start, end), grid frames [first_frame, end_frame), audio samples
    [first_sample, end_sample) (None: all the audio, for a whole-clip window)."""

    start: float
    end: float
    first_frame: int
    end_frame: int
    first_sample: int
    end_sample: int | None


class WindowPlanner:
    """Windows in order as frames arrive (`ready`), then the rest at the end (`finish`)."""

    def __init__(self, window_s: float, hop_s: float, fps: float, sample_rate: int):
        if not (window_s > 0 and hop_s > 0 and math.isfinite(window_s) and math.isfinite(hop_s)):
            raise ValueError(f"window and hop must be positive seconds. Received: window={window_s}, "
                             f"hop={hop_s}")
        self.window, self.hop, self.fps, self.rate = window_s, hop_s, fps, sample_rate
        self.k = 0
        self.last_end = 0.0

    def _make(self, start: float, end: float) -> Window:
        first = math.ceil(start * self.fps - 1e-6)
        stop = math.ceil(end * self.fps - 1e-6)
        return Window(round(start, 6), round(end, 6), first, max(stop, first + 1),
                      round(start * self.rate), round(end * self.rate))

    def next_first_frame(self) -> int:
        """The first frame any window still to come can need (frames before can be freed)."""
        return math.ceil(self.k * self.hop * self.fps - 1e-6)

    def next_first_sample(self) -> int:
        return round(self.k * self.hop * self.rate)

    def ready(self, frames: int) -> list[Window]:
        """Windows whose frames have all arrived (`frames` grid frames so far)."""
        out = []
        while True:
            start = self.k * self.hop
            window = self._make(start, start + self.window)
            if window.end_frame > frames:
                return out
            out.append(window)
            self.last_end = window.end
            self.k += 1

    def finish(self, frames: int) -> list[Window]:
        """The windows left once the video has `frames` frames in all."""
        duration = frames / self.fps
        out = self.ready(frames)
        if self.k == 0:  # no longer than the window: the whole clip, all its audio
            self.k = 1
            return [Window(0.0, round(duration, 6), 0, frames, 0, None)]
        if duration - self.last_end > 0.5 / self.fps:
            start = duration - self.window
            window = self._make(start, duration)
            out.append(Window(window.start, window.end, window.first_frame, frames,
                              window.first_sample, window.end_sample))
        return out


def planned_windows(duration_s: float, window_s: float, hop_s: float) -> int:
    """How many windows a video of `duration_s` gets (for a progress bar)."""
    if duration_s <= window_s:
        return 1
    full = math.floor((duration_s - window_s) / hop_s + 1e-9) + 1
    return full + (duration_s - ((full - 1) * hop_s + window_s) > 1e-6)


# --------------------------------------------------------------------------------------------
# Results: timeline entries, the files of `--out`, what is printed


def timeline_entry(w: dict, class_codes: list[str]) -> dict:
    """One window of a result's `timeline`: {"start", "end", "label" (code), "probabilities"
    {code: p} (6 decimals)}, or label and probabilities null with the `skipped` reason."""
    entry = {"start": w["start"], "end": w["end"]}
    if w["probabilities"] is None:
        return {**entry, "probabilities": None, "label": None, "skipped": w["skipped"]}
    return {**entry, "label": class_codes[w["label"]],
            "probabilities": {c: round(float(p), 6)
                              for c, p in zip(class_codes, w["probabilities"])}}


def write_outputs(result: dict, out_dir, class_codes: list[str]) -> dict:
    """`out_dir/<stem>.json`, `<stem>.timeline.csv` and `<stem>.timeline.png` for one video's
    result (`emotf.predict.predict_files`); a failed video gets its JSON (with `error`) only.
    Returns {"json": path, "csv": path, "png": path} of what was written. `out_dir` may be
    local or a `tf.io.gfile` URL (`gs://...`; `emotf.storage`); each file is written whole."""
    out_dir = as_path(out_dir)
    out_dir.mkdir()
    stem = as_path(result["file"]).stem
    paths = {"json": out_dir / f"{stem}.json"}
    write_json(paths["json"], document(result))
    timeline = result.get("timeline") or []
    if timeline:
        paths["csv"] = out_dir / f"{stem}.timeline.csv"
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(["start", "end", "label", *class_codes, "skipped"])
        for w in timeline:
            probs = w["probabilities"] or {}
            writer.writerow([w["start"], w["end"], w["label"] or "",
                             *[f"{probs[c]:.6f}" if c in probs else "" for c in class_codes],
                             w.get("skipped") or ""])
        write_atomic(paths["csv"], text.getvalue().encode("utf-8"))
        paths["png"] = out_dir / f"{stem}.timeline.png"
        plot_timeline(result, class_codes, paths["png"])
    return {k: str(v) for k, v in paths.items()}


def document(result: dict) -> dict:
    """A result as written to files and `--json`: always the keys `file`, `timeline`, `label`,
    `probabilities`, `notes`, `error` (null on success; on failure the others are empty)."""
    base = {"file": result["file"], "timeline": [], "label": None, "probabilities": None,
            "notes": [], "error": None}
    return {**base, **result}


def format_table(results: list[dict]) -> str:
    """Human-readable (`emotf-predict` without `--json`): one block per file with the label, a
    probability table and, for several windows, one line per window."""
    lines = []
    for result in results:
        if "error" in result:
            lines.append(f"{result['file']}\n  ERROR: {result['error']}")
            continue
        head = f"{result['file']}  ({result['duration_s']:.2f} s"
        head += f", audio {result['audio']})" if result.get("audio") else ", audio from the video)"
        lines.append(head)
        timeline = result.get("timeline") or []
        what = f"mean of {len(timeline)} windows" if len(timeline) > 1 else "whole clip"
        lines.append(f"  label: {result['label_code']} ({result['label_name']}; {what})")
        for code, p in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]):
            bar = "#" * round(p * 40)
            lines.append(f"    {code}  {p:6.3f}  {bar}")
        if len(timeline) > 1:
            for w in timeline:
                what = (f"{w['label']} {w['probabilities'][w['label']]:.3f}" if w["label"]
                        else f"skipped: {w['skipped']}")
                lines.append(f"    {w['start']:8.2f}-{w['end']:<8.2f} {what}")
        for note in result.get("notes", []):
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def to_json(results: list[dict]) -> str:
    """One JSON document for all inputs (`--json`): a list of `document` objects."""
    return json.dumps([document(r) for r in results], indent=2)


def plot_timeline(result: dict, class_codes: list[str], path) -> None:
    """Probabilities over time (one line and colour per emotion, at each window's centre) and a
    band with each window's label (coloured as its emotion; the code written on it when the
    windows are wide enough to read)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = result["timeline"]
    colours = dict(zip(class_codes, plt.get_cmap("tab10").colors))
    fig, (band, ax) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 5]})
    scored = [w for w in timeline if w["probabilities"]]
    centres = [(w["start"] + w["end"]) / 2 for w in scored]
    for code in class_codes:
        ax.plot(centres, [w["probabilities"][code] for w in scored], marker="o", markersize=3,
                color=colours[code], label=code)
    duration = max(w["end"] for w in timeline)
    hop = (timeline[1]["start"] - timeline[0]["start"]) if len(timeline) > 1 else duration
    readable = duration / max(hop, 1e-9) <= 60
    for w in timeline:
        left = (w["start"] + w["end"]) / 2 - hop / 2 if len(timeline) > 1 else w["start"]
        width = hop if len(timeline) > 1 else w["end"] - w["start"]
        if w["probabilities"]:
            band.barh(0, width, left=left, color=colours[w["label"]], edgecolor="white")
            if readable:
                band.text(left + width / 2, 0, w["label"], ha="center", va="center", fontsize=8)
        else:
            band.barh(0, width, left=left, color="lightgrey", hatch="//", edgecolor="white")
            if readable:
                band.text(left + width / 2, 0, "skip", ha="center", va="center", fontsize=7)
    band.set_yticks([])
    band.set_ylabel("label", rotation=0, ha="right", va="center")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s, window centre)")
    ax.set_ylabel("probability")
    ax.legend(ncol=len(class_codes), loc="upper center", fontsize=8, frameon=False)
    title = f"{as_path(result['file']).name}: {result.get('label_code') or ''}"
    band.set_title(title + (" (grey: windows skipped, no face)"
                            if any(not w["probabilities"] for w in timeline) else ""), fontsize=10)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, png.getvalue())
