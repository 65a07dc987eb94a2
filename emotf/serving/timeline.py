"""Sliding windows over a streamed video, and the results `emotf-predict` shows: the timeline
files `--out` writes, the `--json` document and the printed table.

Windows: `[k * hop, k * hop + window)` seconds for k = 0, 1, ... while the window fits in the
video (duration D), plus one last window `[D - window, D)` when the hop leaves the end
uncovered. A video no longer than the window is one window: the whole clip (frames and audio),
exactly what the records store. A window's frames are the grid frames i with i / fps in
[start, end); its audio the samples [round(start * rate), round(end * rate)). The span a window
reports is the span the model is given: frames and audio are freed only once no window still
to come (the end window included) can need them.

Bounds (`emotf.serving.predict.PredictConfig` declares them on its fields): a window is at least the
shortest clip a model accepts (`DEFAULT_MIN_CLIP_SECONDS`, 0.5 s) and at most
`MAX_WINDOW_SECONDS`; the hop at least `MIN_HOP_SECONDS`, so a video gets at most
`1 / MIN_HOP_SECONDS` = 25 windows per second of its length, plus one, and never more than
`MAX_WINDOWS_PER_VIDEO` in all.
"""

from __future__ import annotations

import csv
import hashlib
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
# Longest window: 60 s of crops at 30 fps are ~1,800 crops held (the model saw clips <= 10 s).
MAX_WINDOW_SECONDS = 60.0
# Shortest hop: one frame at 25 fps. With it, the windows of a video are at most 25 per second
# of its length (+ 1): `--hop 1e-9` once planned 10^9 windows per second and passed 4 GB.
MIN_HOP_SECONDS = 0.04
# A hard cap on one video's windows (each is a timeline entry held until the video ends):
# 100,000 windows = 67 min at the shortest hop, 28 h at the default 1 s hop.
MAX_WINDOWS_PER_VIDEO = 100_000
# Output stems under `--out` are at most this many UTF-8 bytes (a file name is at most 255).
MAX_STEM_BYTES = 120
PNG_DPI = 110


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


class TooManyWindowsError(ValueError):
    """A video would get more than `MAX_WINDOWS_PER_VIDEO` windows."""


def too_many_windows(duration_s: float, hop_s: float) -> TooManyWindowsError:
    return TooManyWindowsError(
        f"{duration_s:.1f} s at a {hop_s:g} s hop would be more than {MAX_WINDOWS_PER_VIDEO} "
        f"windows (the most per video): use a longer --hop"
    )


class WindowPlanner:
    """Windows in order as frames arrive (`ready`), then the rest at the end (`finish`);
    `keep_from` says which frames and samples the windows still to come can need.

    Raises:
        ValueError: window or hop not positive finite seconds; TooManyWindowsError when the
            video passes `max_windows` windows (default `MAX_WINDOWS_PER_VIDEO`).
    """

    def __init__(
        self,
        window_s: float,
        hop_s: float,
        fps: float,
        sample_rate: int,
        max_windows: int | None = MAX_WINDOWS_PER_VIDEO,
    ):
        if not (window_s > 0 and hop_s > 0 and math.isfinite(window_s) and math.isfinite(hop_s)):
            raise ValueError(
                f"window and hop must be positive seconds. Received: window={window_s}, hop={hop_s}"
            )
        self.window, self.hop, self.fps, self.rate = window_s, hop_s, fps, sample_rate
        # None: no cap (a live stream that keeps no timeline holds one window's worth at most)
        self.max_windows = max_windows
        self.k = 0
        self.last_end = 0.0

    def _make(self, start: float, end: float) -> Window:
        first = math.ceil(start * self.fps - 1e-6)
        stop = math.ceil(end * self.fps - 1e-6)
        return Window(
            round(start, 6),
            round(end, 6),
            first,
            max(stop, first + 1),
            round(start * self.rate),
            round(end * self.rate),
        )

    def keep_from(self, frames: int) -> tuple[int, int]:
        """(first frame, first sample) that any window still to come can need, once `frames`
        grid frames have arrived: the next hop window's start, or the end-of-video window's
        `[D - window, D)` (D >= frames / fps), whichever is earlier. Earlier ones can be freed."""
        if self.k == 0:
            return 0, 0  # the video may be no longer than the window: the whole clip
        start = min(self.k * self.hop, frames / self.fps - self.window)
        return max(math.ceil(start * self.fps - 1e-6), 0), max(round(start * self.rate), 0)

    def ready(self, frames: int) -> list[Window]:
        """Windows whose frames have all arrived (`frames` grid frames so far)."""
        out = []
        while True:
            start = self.k * self.hop
            window = self._make(start, start + self.window)
            if window.end_frame > frames:
                return out
            if self.max_windows is not None and self.k >= self.max_windows:
                raise too_many_windows(frames / self.fps, self.hop)
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
            out.append(
                Window(
                    window.start,
                    window.end,
                    window.first_frame,
                    frames,
                    window.first_sample,
                    window.end_sample,
                )
            )
        return out


def planned_windows(duration_s: float, window_s: float, hop_s: float) -> int:
    """How many windows a video of `duration_s` gets (a progress bar; the check up front
    against `MAX_WINDOWS_PER_VIDEO`)."""
    if duration_s <= window_s:
        return 1
    full = math.floor((duration_s - window_s) / hop_s + 1e-9) + 1
    return full + (duration_s - ((full - 1) * hop_s + window_s) > 1e-6)


# --------------------------------------------------------------------------------------------
# Results: timeline entries, the files of `--out`, what is printed


def timeline_entry(w: dict, class_codes: list[str]) -> dict:
    """One window (of one face) of a result's `timeline`: {"start", "end", "face_id" (0 when
    following the largest face; null on a window without any face when tracking every face),
    "label" (code), "probabilities" {code: p} (6 decimals)}, or label and probabilities null
    with the `skipped` reason."""
    entry = {"start": w["start"], "end": w["end"], "face_id": w.get("face_id", 0)}
    if w["probabilities"] is None:
        return {**entry, "probabilities": None, "label": None, "skipped": w["skipped"]}
    return {
        **entry,
        "label": class_codes[w["label"]],
        "probabilities": {c: round(float(p), 6) for c, p in zip(class_codes, w["probabilities"])},
    }


def output_stems(files) -> list[str]:
    """The stem of each file's outputs under `--out`, in order: the file's own stem when it is
    short and not taken yet, else its first `MAX_STEM_BYTES` - 9 bytes (UTF-8, whole
    characters) and `-` + 8 hex digits of a hash of the whole path, so that every name fits a
    filesystem (255 bytes with `.timeline.png`) and two videos never write over each other
    (`a/clip.mp4` and `b/clip.mp4`; compared case-blind, for case-blind filesystems)."""
    stems, taken = [], set()
    for file in map(str, files):
        stem = as_path(file).stem or "video"
        n = 0
        while len(stem.encode("utf-8")) > MAX_STEM_BYTES or stem.casefold() in taken:
            digest = hashlib.sha1(f"{file}#{n}".encode() if n else file.encode()).hexdigest()[:8]
            head = as_path(file).stem.encode("utf-8")[: MAX_STEM_BYTES - 9]
            stem = f"{head.decode('utf-8', 'ignore')}-{digest}"
            n += 1
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def write_outputs(result: dict, out_dir, class_codes: list[str], stem: str | None = None) -> dict:
    """`out_dir/<stem>.json`, `<stem>.timeline.csv` (one row per window and face, with a
    `face_id` column) and `<stem>.timeline.png` (one panel per face) for one video's result
    (`emotf.serving.predict.predict_files`); a failed video gets its JSON (with `error`) only.
    `stem`: default `output_stems([result["file"]])[0]` (a long name is shortened).
    Returns {"json": path, "csv": path, "png": path} of what was written. `out_dir` may be
    local or a `tf.io.gfile` URL (`gs://...`; `emotf.storage`); each file is written whole."""
    out_dir = as_path(out_dir)
    out_dir.mkdir()
    stem = stem or output_stems([result["file"]])[0]
    paths = {"json": out_dir / f"{stem}.json"}
    write_json(paths["json"], document(result))
    timeline = result.get("timeline") or []
    if timeline:
        paths["csv"] = out_dir / f"{stem}.timeline.csv"
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(["start", "end", "face_id", "label", *class_codes, "skipped"])
        for w in timeline:
            probs = w["probabilities"] or {}
            face_id = w.get("face_id", 0)
            writer.writerow(
                [
                    w["start"],
                    w["end"],
                    "" if face_id is None else face_id,
                    w["label"] or "",
                    *[f"{probs[c]:.6f}" if c in probs else "" for c in class_codes],
                    w.get("skipped") or "",
                ]
            )
        write_atomic(paths["csv"], text.getvalue().encode("utf-8"))
        paths["png"] = out_dir / f"{stem}.timeline.png"
        plot_timeline(result, class_codes, paths["png"])
    return {k: str(v) for k, v in paths.items()}


def document(result: dict) -> dict:
    """A result as written to files and `--json`: always the keys `file`, `timeline`, `label`,
    `probabilities`, `notes`, `error` (null on success; on failure the others are empty)."""
    base = {
        "file": result["file"],
        "timeline": [],
        "label": None,
        "probabilities": None,
        "notes": [],
        "error": None,
    }
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
        faces = result.get("faces") or []
        what = f"mean of {len(timeline)} windows" if len(timeline) > 1 else "whole clip"
        if faces:
            main = next(f for f in faces if f["face_id"] == result["face_id"])
            what = f"face {main['face_id']}, mean of its {main['windows']} windows"
        lines.append(f"  label: {result['label_code']} ({result['label_name']}; {what})")
        for code, p in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]):
            bar = "#" * round(p * 40)
            lines.append(f"    {code}  {p:6.3f}  {bar}")
        for face in faces:
            label = (
                f"{face['label_code']} ({face['label_name']})"
                if face["label_code"]
                else "no window scored"
            )
            lines.append(
                f"  face {face['face_id']}: {label}; {face['windows']} windows scored, "
                f"{face['skipped']} skipped, {face['first_s']:.2f}-{face['last_s']:.2f} s"
            )
        if len(timeline) > 1:
            for w in timeline:
                what = (
                    f"{w['label']} {w['probabilities'][w['label']]:.3f}"
                    if w["label"]
                    else f"skipped: {w['skipped']}"
                )
                who = (
                    ""
                    if not faces
                    else ("no face  " if w.get("face_id") is None else f"face {w['face_id']:<3d} ")
                )
                lines.append(f"    {w['start']:8.2f}-{w['end']:<8.2f} {who}{what}")
        for note in result.get("notes", []):
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def to_json(results: list[dict]) -> str:
    """One JSON document for all inputs (`--json`): a list of `document` objects."""
    return json.dumps([document(r) for r in results], indent=2)


def _runs(timeline: list[dict]) -> list[tuple[int, int, str | None]]:
    """(first, last + 1, label or None when skipped) of each run of consecutive windows with
    the same label."""
    runs = []
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
    import numpy as np

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
        ax.legend(ncol=len(class_codes), loc="upper center", fontsize=8, frameon=False)
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


def timeline_figure(result: dict, class_codes: list[str]):
    """The matplotlib Figure of `plot_timeline` (the caller closes it): one panel (a label
    band above the probability lines) per face, in id order (`face_timelines`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = face_timelines(result)
    colours = dict(zip(class_codes, plt.get_cmap("tab10").colors))
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
    renderer = fig.canvas.get_renderer()
    for band, texts in all_texts:
        last_right = -np.inf
        for text, left, right in texts:
            box = text.get_window_extent(renderer)
            (x0, _), (x1, _) = band.transData.transform([(left, 0), (right, 0)])
            if box.x0 < x0 or box.x1 > x1 or box.x0 < last_right + 2:
                text.remove()
            else:
                last_right = box.x1
    return fig


def plot_timeline(result: dict, class_codes: list[str], path) -> None:
    """Probabilities over time (one line and colour per emotion, at each window's centre,
    broken where windows were skipped) and a band with each window's label (coloured as its
    emotion; a run of windows with the same label has its code written on it when it fits);
    one such panel per face when every face was tracked."""
    fig = timeline_figure(result, class_codes)
    import matplotlib.pyplot as plt

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=PNG_DPI)
    plt.close(fig)
    write_atomic(path, png.getvalue())
