"""Sliding windows over a streamed video: which windows a video gets and which frames and audio
samples each is given, planned as the frames arrive (`WindowPlanner`).

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

What is made of the scored windows lives elsewhere: the JSON forms and the files of `--out`
(`emotf.serving.outputs`), the figure (`emotf.serving.timeline_plot`), the printed table
(`emotf.serving.console`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
        out: list[Window] = []
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
