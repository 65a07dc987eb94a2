"""Emotions in a live stream: one JSON line per window as it closes (`emotf-predict --live`).

    source (`-`: a container stream on standard input; /dev/videoN; rtsp:// http:// udp:// ...)
      --emotf.media.live_source.LiveFeed (one pass: a thread demuxes video AND audio, bounded)
      --Predictor.predict_video (the same code path as files: ClipReader, tracker, windows)
      --on_window--> {"start", "end", "face_id", "probabilities": {code: p}, "label": code}
                     (a skipped window: probabilities and label null, "skipped": reason)

Each line is written and flushed when its window has been scored; windows are scored one at a
time (a batch would hold lines back). `keep_timeline=False`: nothing grows with the stream's
length (held frames, crops and audio are bounded by the window: `Predictor.last_stats`).
`start` / `end` are seconds of stream time from the first video frame (audio aligned to it).

The stream ends with its source (end of file on a pipe, the server closing) and a one-line
summary on stderr; Ctrl-C / SIGTERM end it within seconds (`emotf.cli.command`: the main thread
only ever waits on the demux thread's queue in short slices); no data for `timeout_s` seconds
ends it with one line naming the source.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from emotf.media.live_source import LiveSource

__all__ = ["LiveRun", "predict_live", "window_line"]


def window_line(entry: dict, class_codes: list[str]) -> dict:
    """One window's JSON line from a timeline entry (probabilities as an array or {code: p};
    label as an index or a code): {"start", "end", "face_id", "probabilities" {code: p} (6
    decimals), "label" code}, or probabilities and label null and "skipped": the reason."""
    line = {
        "start": round(float(entry["start"]), 6),
        "end": round(float(entry["end"]), 6),
        "face_id": entry.get("face_id"),
    }
    probs = entry.get("probabilities")
    if probs is None:
        return {
            **line,
            "probabilities": None,
            "label": None,
            "skipped": entry.get("skipped") or "not scored",
        }
    if not isinstance(probs, dict):
        probs = dict(zip(class_codes, np.asarray(probs, np.float64).tolist(), strict=True))
    label = entry.get("label")
    if isinstance(label, (int, np.integer)):
        label = class_codes[int(label)]
    return {
        **line,
        "probabilities": {c: round(float(p), 6) for c, p in probs.items()},
        "label": label,
    }


@dataclass
class LiveRun:
    """What a live run did: lines written, windows skipped, stream seconds, the predictor's
    stats (most frames / crops / audio samples held), the end (`None` while running)."""

    source: str
    lines: int = 0
    skipped: int = 0
    stream_s: float = 0.0
    started: float = field(default_factory=time.monotonic)
    stats: dict = field(default_factory=dict)
    ended: str | None = None

    def summary(self) -> str:
        took = time.monotonic() - self.started
        held = ", ".join(f"{k} {v}" for k, v in self.stats.items() if k.startswith("max_"))
        return (
            f"live {self.source}: {self.lines} windows ({self.skipped} skipped) over "
            f"{self.stream_s:.1f} s of stream in {took:.1f} s; {self.ended or 'stopped'}"
            + (f"; most held: {held}" if held else "")
        )


def predict_live(
    predictor,
    source: LiveSource,
    *,
    window: float | None = None,
    hop: float | None = None,
    faces: str = "largest",
    out=None,
    run: LiveRun | None = None,
) -> LiveRun:
    """Score `source` window by window with `predictor` (an `emotf.serving.predict.Predictor`),
    writing one JSON line per window to `out` (default: standard output) as each closes.

    Returns the `LiveRun` (pass `run` to read it even when this raises: lines so far, stats).

    Raises:
        MediaError: the source cannot be opened or read (naming it), or sends no data for
            `source.timeout_s` seconds.
        NoFaceError: the stream ended without a window with a face.
        KeyboardInterrupt / emotf.deadlines.Interrupted: Ctrl-C, SIGTERM.
    """
    out = sys.stdout if out is None else out
    run = run if run is not None else LiveRun(source.label)
    codes = list(predictor.class_codes)

    def emit(entry: dict) -> None:
        line = window_line(entry, codes)
        out.write(json.dumps(line) + "\n")
        out.flush()
        run.lines += 1
        run.skipped += "skipped" in line
        run.stream_s = max(run.stream_s, line["end"])

    try:
        result = predictor.predict_video(
            source,
            window=window,
            hop=hop,
            batch_size=1,
            faces=faces,
            on_window=emit,
            keep_timeline=False,
        )
        run.stream_s = max(run.stream_s, float(result.get("duration_s") or 0.0))
        run.ended = f"end of stream, mean label {result.get('label_code')}"
    finally:
        run.stats = dict(predictor.last_stats)
    return run
