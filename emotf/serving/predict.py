"""Predict emotions of raw video files with an exported SavedModel or `.tflite` (`emotf-predict`).

    video (+ WAV) --emotf.media.preprocess.ClipReader--> face crops as frames arrive (the build's
                  code and settings: `clip_settings` in the model's metadata), audio on demand
                  --JPEG round trip at the records' quality (what training saw)
                  --emotf.serving.timeline windows (window / hop seconds)--> serving_default
                    per window
                  --> a timeline of window probabilities; the video: their mean and its label

Memory is bounded at any length and resolution: only the frames whose face box is not final
yet (a few keyframe intervals) and the current window's crops and audio are held
(`Predictor.last_stats` records the most). A video no longer than the window is one window: the
whole clip, exactly as the records store it. A file that fails (unreadable, no face, no audio,
too short) gets an `error` entry and the others go on; a window without a face is skipped with
its reason while the others get answers.

Faces (`faces`): "largest" follows the largest face (every timeline entry's `face_id` is 0);
"all" tracks every face with a stable id (`emotf.media.stream.MultiStreamTracker`,
`emotf.media.face_tracks`) and scores each face on the same windows, with the one audio track
shared by all of them: one entry per window and face (docs/faces.md). Crops are held per face
for the open windows only. `on_window` gets each entry as soon as it is scored, and
`keep_timeline=False` keeps no timeline (the summary from running sums): flat memory on a
stream of any length.

Settings are bounded where they are declared (`PredictConfig`): a window of at least the
shortest clip a model accepts (0.5 s) and at most 60 s, a hop of at least 0.04 s (at most 25
windows per second of video), `emotf.serving.timeline.MAX_WINDOWS_PER_VIDEO` windows per video
at most.
A SavedModel's graph is checked against the ops emotf's own export uses before it is loaded
(`emotf.serving.graph_ops.check_saved_model_ops`; `trust_model=True` skips the check).

Which files are read: `emotf.serving.inputs.expand_inputs`; the files written per video:
`emotf.serving.outputs.write_outputs`; the printed table: `emotf.serving.console`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from emotf.bounds import bounded, check_bounds
from emotf.configs import Config
from emotf.evaluation.calibration import apply_temperature
from emotf.media.face_tracks import FaceTracksConfig
from emotf.media.faces import FaceTracker, NoFaceError, crop_faces
from emotf.media.preprocess import ClipError, ClipReader, jpeg_round_trip
from emotf.media.stream import MultiStreamTracker
from emotf.serving.export import read_metadata
from emotf.serving.graph_ops import check_saved_model_ops
from emotf.serving.litert import LiteRTModel
from emotf.serving.metadata import (
    DEFAULT_MIN_CLIP_SECONDS,
    check_metadata,
    clip_settings_of,
    metadata_corpus,
    metadata_path,
    min_clip_samples,
    resolve_saved_model,
)
from emotf.serving.outputs import output_stems, timeline_entry, write_outputs
from emotf.serving.saved_model import load_serving, tf_error_line
from emotf.serving.timeline import (
    DEFAULT_HOP_SECONDS,
    DEFAULT_WINDOW_SECONDS,
    MAX_WINDOW_SECONDS,
    MAX_WINDOWS_PER_VIDEO,
    MIN_FACE_FRACTION,
    MIN_HOP_SECONDS,
    WindowPlanner,
    planned_windows,
    too_many_windows,
)

# Show a progress bar over windows for videos with more windows than this.
LONG_VIDEO_WINDOWS = 30
# Frames per SavedModel call (beyond one window): the call's memory grows with the frames it is
# given (8 windows of 75 frames peaked ~700 MB above 2 windows, for no speed gain on CPU).
MAX_FRAMES_PER_CALL = 160
# Most windows per SavedModel call a user may ask for (calls stop at MAX_FRAMES_PER_CALL anyway).
MAX_BATCH_SIZE = 256
# Whose emotions: the largest face (followed over time), or every face (docs/faces.md).
FACE_MODES = ("largest", "all")

__all__ = [
    "FACE_MODES",
    "ClipError",
    "PredictConfig",
    "Predictor",
    "pad_batch",
    "predict_files",
]


@dataclass(frozen=True)
class PredictConfig(Config):
    """How videos are cut into windows and batched, and whose faces are scored
    (`emotf-predict --window --hop --batch-size --faces`); None: the model's own window / hop
    (its metadata's `timeline`).

    The bounds below are the only declaration of the valid values: the CLI, `predict_files`
    and `Predictor.predict_video` all construct this (ValueError naming the field otherwise).
    """

    window_s: float | None = bounded(
        None,
        ge=DEFAULT_MIN_CLIP_SECONDS,
        le=MAX_WINDOW_SECONDS,
        help="window length in seconds, at least the shortest clip a model accepts",
    )
    hop_s: float | None = bounded(
        None,
        ge=MIN_HOP_SECONDS,
        le=MAX_WINDOW_SECONDS,
        help="seconds between window starts (at most 1 / 0.04 = 25 windows per second)",
    )
    batch_size: int = bounded(8, ge=1, le=MAX_BATCH_SIZE, help="windows per model call, at most")
    faces: str = bounded(
        "largest",
        choices=FACE_MODES,
        help="largest: the largest face, followed over time; all: every face tracked with a "
        "stable id, each with its own timeline (the audio shared)",
    )

    def __post_init__(self):
        check_bounds(self)


def pad_batch(clips: list[dict]) -> dict:
    """`serving_default` inputs for clips ({"frames" uint8 [T,S,S,3], "fps", "pcm16" int16
    [L], "sample_rate"}): frames and waveforms zero-padded to the longest."""
    t_max = max(len(c["frames"]) for c in clips)
    s_max = max(max(len(c["pcm16"]) for c in clips), 1)
    size = clips[0]["frames"].shape[1]
    frames = np.zeros([len(clips), t_max, size, size, 3], np.uint8)
    waves = np.zeros([len(clips), s_max], np.float32)
    for i, c in enumerate(clips):
        frames[i, : len(c["frames"])] = c["frames"]
        waves[i, : len(c["pcm16"])] = (
            c["pcm16"].astype(np.float32) / 32768.0
        )  # as records.parse_example
    return {
        "frames": tf.constant(frames),
        "num_frames": tf.constant([len(c["frames"]) for c in clips], tf.int32),
        "fps": tf.constant([c["fps"] for c in clips], tf.float32),
        "waveform": tf.constant(waves),
        "num_samples": tf.constant([len(c["pcm16"]) for c in clips], tf.int32),
        "sample_rate": tf.constant([c["sample_rate"] for c in clips], tf.int32),
    }


class Predictor:
    """A loaded model (SavedModel or LiteRT flatbuffer) plus the face tracker, for predicting
    many videos.

    Args:
        model: a SavedModel version folder or the base folder (latest version is used), local
            or on any filesystem `tf.io.gfile` knows (`gs://...`; `emotf.storage`); or a path
            ending in `.tflite`: run with `emotf.serving.litert.LiteRTModel` (its metadata, its
            `run_model`), the host-side preprocessing here unchanged.
        tracker: an `emotf.media.faces.FaceTracker`; default: one with the tracker settings the
            training records were built with (`clip_settings` in the metadata).
        trust_model: load the SavedModel without checking its graph's ops (a SavedModel is a
            program: only for models from a source you trust). Default: refuse a graph with
            an op emotf's own export does not use (`emotf.serving.graph_ops.UntrustedModelError`).
            A `.tflite` holds builtin ops only and is not checked here.
        num_threads: interpreter threads of a `.tflite` model (None: LiteRT's default);
            ignored for a SavedModel (TensorFlow's threads are process-wide settings).
        face_tracks: `emotf.media.face_tracks.FaceTracksConfig` for `faces="all"` (default:
            its defaults).

    Attributes:
        settings: the `ClipSettings` of the training records (tracker, sample rate, shortest
            clip; the build's defaults for models exported without records).
        window_seconds, hop_seconds: default timeline window and hop (the metadata's
            `timeline`: the median training clip and 1 s; 2.5 s and 1 s for older exports).
        audio_window_seconds: the sampler's audio window d (clips shorter are zero-padded).
        last_stats: most frames / samples held while predicting the last video.

    Raises:
        FileNotFoundError: no SavedModel in `model`.
        ValueError: bad metadata, a graph refused by the op check (`UntrustedModelError`), or
            a SavedModel TensorFlow cannot load (a flipped byte, a truncated variables file):
            one line, `<folder>: cannot load the SavedModel: <problem>` (`load_problem`).
    """

    def __init__(
        self,
        model,
        tracker=None,
        *,
        trust_model: bool = False,
        num_threads: int | None = None,
        face_tracks=None,
    ):
        self._litert = None
        if str(model).endswith(".tflite"):
            # (emotf.serving.litert imports the LiteRT interpreter, the optional `emotf[litert]`
            # extra, only when a model is opened: a SavedModel user need not install it.)
            self._litert = LiteRTModel(model, num_threads=num_threads)
            self.model_dir = model
            self.metadata = self._litert.metadata  # checked by LiteRTModel
        else:
            self.model_dir = resolve_saved_model(model)
            self.metadata = check_metadata(
                read_metadata(self.model_dir), metadata_path(self.model_dir)
            )
        # The classes, in the model's output order: its metadata's (`corpus`; CREMA-D's for
        # exports older than corpora).
        self.corpus = metadata_corpus(self.metadata, self.model_dir)
        self.class_codes = list(self.corpus.class_codes)
        self.class_names = list(self.corpus.class_names)
        sampling = self.metadata["sampling_config"]
        self.sample_rate = int(sampling["sample_rate"])
        self.audio_window_seconds = float(sampling["window_seconds"])
        self.settings = clip_settings_of(self.metadata)
        if self.settings.sample_rate != self.sample_rate:
            raise ValueError(
                f"{self.model_dir}: clip_settings.sample_rate "
                f"{self.settings.sample_rate} differs from the model's {self.sample_rate}"
            )
        self.tracker_config = self.settings.tracker
        self.min_seconds = self.settings.min_duration_s
        # The serving signature refuses less audio than this (its in-graph bound).
        min_clip_seconds = self.metadata.get("min_clip_seconds")
        self.min_samples = min_clip_samples(
            DEFAULT_MIN_CLIP_SECONDS if min_clip_seconds is None else min_clip_seconds,
            self.sample_rate,
        )
        timeline = self.metadata.get("timeline") or {}
        self.window_seconds = float(timeline.get("window_seconds", DEFAULT_WINDOW_SECONDS))
        self.hop_seconds = float(timeline.get("hop_seconds", DEFAULT_HOP_SECONDS))
        if self._litert is None:
            if not trust_model:  # before the graph is loaded: loading can already run ops
                check_saved_model_ops(str(self.model_dir))
            self._serve = load_serving(self.model_dir)
            width = self._serve.structured_outputs["probabilities"].shape[-1]
            if width is not None and width != len(self.class_codes):
                raise ValueError(
                    f"{self.model_dir}: the model gives {width} probabilities but its metadata "
                    f"names {len(self.class_codes)} classes: {self.class_codes}"
                )
        self.face_tracks = face_tracks or FaceTracksConfig()
        self._tracker = tracker
        self.last_stats: dict = {}

    @property
    def tracker(self):
        if self._tracker is None:
            self._tracker = FaceTracker(self.tracker_config)
        return self._tracker

    def resolve(
        self, window=None, hop=None, batch_size: int = 8, faces: str = "largest"
    ) -> PredictConfig:
        """The bounded `PredictConfig` of these settings, None window / hop replaced by the
        model's (also bounded: its metadata may say anything in range).

        Raises:
            ValueError: naming the value out of bounds, or a window shorter than the shortest
                clip this model was trained on.
        """
        window_s = self.window_seconds if window is None else window
        config = PredictConfig(
            window_s=window_s,
            hop_s=self.hop_seconds if hop is None else hop,
            batch_size=batch_size,
            faces=faces,
        )
        if window_s < self.min_seconds:
            raise ValueError(
                f"the window must be at least the shortest clip this model was "
                f"trained on ({self.min_seconds:g} s). Received: "
                f"window={window_s:g}"
            )
        return config

    def run_model(self, clips: list[dict]) -> list[dict]:
        """probabilities / segment probabilities / label per clip (one padded batch)."""
        if self._litert is not None:
            return self._litert.run_model(clips)
        out = self._serve(**pad_batch(clips))
        probs, segs = out["probabilities"].numpy(), out["segment_probabilities"].numpy()
        labels = out["label"].numpy()
        return [
            {
                "label": int(labels[i]),
                "probabilities": probs[i].astype(np.float64),
                "segment_probabilities": segs[i],
            }
            for i in range(len(clips))
        ]

    def _summary(self, sums: np.ndarray, count: int) -> dict:
        """label / label_code / label_name / probabilities (and calibrated_probabilities) of
        the mean of `count` windows' probabilities summing to `sums`."""
        mean = sums / count
        mean = mean / mean.sum()
        k = int(np.argmax(mean))
        codes = self.class_codes
        out = {
            "label": k,
            "label_code": codes[k],
            "label_name": self.class_names[k],
            "probabilities": {c: float(p) for c, p in zip(codes, mean, strict=True)},
        }
        temperature = self.metadata.get("temperature")
        if temperature is not None:  # the run's validation-fitted temperature
            scaled = apply_temperature(mean[None], float(temperature))[0]
            out["calibrated_probabilities"] = {
                c: float(p) for c, p in zip(codes, scaled, strict=True)
            }
        return out

    def predict_video(
        self,
        video,
        audio=None,
        *,
        window: float | None = None,
        hop: float | None = None,
        batch_size: int = 8,
        progress: bool = False,
        faces: str = "largest",
        on_window=None,
        keep_timeline: bool = True,
    ) -> dict:
        """One video's timeline and summary (see `predict_files` for the result's keys).

        Args:
            faces: "largest": the largest face, followed over time (every entry's `face_id`
                is 0); "all": every face tracked with a stable id
                (`emotf.media.stream.MultiStreamTracker`, `self.face_tracks`), each with its
                own timeline over the same windows, the audio shared by all.
            on_window: called with each timeline entry (the JSON form: `emotf.serving.outputs.
                timeline_entry`, skipped ones included) as soon as its window is scored.
            keep_timeline: False: no timeline is accumulated (the result's `timeline` is
                empty; the summary comes from running sums), for streams of any length.

        Raises:
            MediaError, ClipError, NoFaceError: the video cannot be predicted.
        """
        config = self.resolve(window, hop, batch_size, faces)
        assert config.window_s is not None and config.hop_s is not None  # resolve fills them
        window, hop, batch_size = float(config.window_s), float(config.hop_s), config.batch_size
        every_face = config.faces == "all"
        timings = dict.fromkeys(("decode_video_s", "load_audio_s", "faces_s", "model_s"), 0.0)
        start_all = time.perf_counter()
        start = time.perf_counter()
        reader = ClipReader(video, audio, self.settings, self.tracker)
        if every_face:
            # the same detector batching as the one-face tracker it replaces (1 on a live
            # source, where a batch would hold lines back)
            # (duck-typed: a MultiStreamTracker answers ClipReader as its StreamTracker does)
            reader.faces = MultiStreamTracker(  # type: ignore[assignment]
                self.tracker,
                reader.fps,
                reader.info.height,
                reader.info.width,
                self.face_tracks,
                batch=reader.faces.batch,
            )
        timings["decode_video_s"] += time.perf_counter() - start
        # Without a timeline nothing grows with the windows: a live stream may run for days.
        planner = WindowPlanner(
            window,
            hop,
            reader.fps,
            self.sample_rate,
            MAX_WINDOWS_PER_VIDEO if keep_timeline else None,
        )
        quality = self.settings.jpeg_quality
        codes = self.class_codes
        # face id -> (index, crop after the JPEG round trip, face) of the open windows' frames
        held: dict[int, deque] = {}
        pending: list[tuple] = []  # (window, face id, clip dict or skip reason, first of window)
        timeline: list[dict] = []
        sums: dict[int, np.ndarray] = {}  # face id -> sum of its scored windows' probabilities
        counts: dict[int, list[int]] = {}  # face id -> [scored, skipped]
        spans: dict[int, list[float]] = {}  # face id -> [first start, last end] of its windows
        totals = {"entries": 0, "windows": 0, "scored": 0}
        only: list[dict] = []  # the first entry (segment probabilities of a one-window video)
        max_crops = 0
        declared = reader.info.declared_seconds or 0.0
        total = planned_windows(declared, window, hop) if declared else None
        if total and total > MAX_WINDOWS_PER_VIDEO:  # refused before any frame is decoded
            reader.info.close()
            reader.close()
            raise too_many_windows(declared, hop)
        bar = None
        if progress and total and total > LONG_VIDEO_WINDOWS:
            bar = tqdm(total=total, desc=Path(video).name, unit="window", leave=False)

        def audio_of(w):
            """The window's samples, or why it cannot be scored."""
            t0 = time.perf_counter()
            end = w.end_sample
            if end is None:  # a whole-clip window: all the audio, as the records store it
                reader.audio.read_until(None)
                end = reader.audio.total
            pcm = reader.audio.samples(w.first_sample, end)
            timings["load_audio_s"] += time.perf_counter() - t0
            if len(pcm) < self.min_samples:  # the audio track ended before the video
                return (
                    f"only {len(pcm) / self.sample_rate:.2f} s of audio (the model needs "
                    f"{self.min_samples / self.sample_rate:.2f} s)"
                )
            return pcm

        def gather(w) -> None:
            # (face id, frames [T, S, S, 3]) to score, or (face id, reason)
            faces_in: list[tuple[int | None, np.ndarray | str]] = []
            if not every_face:
                frames = [
                    item for item in held.get(0, ()) if w.first_frame <= item[0] < w.end_frame
                ]
                missing = sum(not face for _, _, face in frames)
                if len(frames) - missing < MIN_FACE_FRACTION * len(frames) or not frames:
                    faces_in.append((0, f"no face in {missing} of {len(frames)} frames"))
                else:
                    faces_in.append((0, np.stack([c for _, c, _ in frames])))
            else:
                n = w.end_frame - w.first_frame
                for face_id in sorted(held):
                    frames = [
                        item for item in held[face_id] if w.first_frame <= item[0] < w.end_frame
                    ]
                    if not frames:
                        continue
                    if len(frames) < MIN_FACE_FRACTION * n:
                        reason = f"face {face_id} in only {len(frames)} of {n} frames"
                        faces_in.append((face_id, reason))
                    else:
                        faces_in.append((face_id, _fill(frames, w.first_frame, w.end_frame)))
                if not faces_in:
                    faces_in.append((None, f"no face in {n} of {n} frames"))
            pcm = None
            if any(not isinstance(clip, str) for _, clip in faces_in):
                pcm = audio_of(w)  # one read: the audio is shared by every face
            for i, (who, clip) in enumerate(faces_in):
                queued: dict | str = (
                    clip
                    if isinstance(clip, str)
                    else pcm
                    if isinstance(pcm, str)
                    else {
                        "frames": clip,
                        "fps": reader.fps,
                        "pcm16": pcm,
                        "sample_rate": self.sample_rate,
                    }
                )
                pending.append((w, who, queued, i == 0))

        def record(entry: dict) -> None:
            face_id = entry["face_id"]
            totals["entries"] += 1
            if entry["probabilities"] is not None:
                sums[face_id] = sums.get(face_id, 0.0) + entry["probabilities"]
                totals["scored"] += 1
            if face_id is not None:
                count = counts.setdefault(face_id, [0, 0])
                count[entry["probabilities"] is None] += 1
                span = spans.setdefault(face_id, [entry["start"], entry["end"]])
                span[1] = entry["end"]
            if totals["entries"] == 1:
                only.append(entry)
            if keep_timeline:
                timeline.append(entry)
            if on_window is not None:
                on_window(timeline_entry(entry, codes))

        def flush() -> None:
            clips = [c for _, _, c, _ in pending if isinstance(c, dict)]
            t0 = time.perf_counter()
            outputs = iter(self.run_model(clips)) if clips else iter(())
            timings["model_s"] += time.perf_counter() - t0
            for w, face_id, clip, first in pending:
                entry = {"start": w.start, "end": w.end, "face_id": face_id}
                if isinstance(clip, dict):
                    out = next(outputs)
                    entry.update(
                        probabilities=out["probabilities"],
                        label=out["label"],
                        segment_probabilities=out["segment_probabilities"],
                    )
                else:
                    entry.update(probabilities=None, label=None, skipped=clip)
                if first:
                    totals["windows"] += 1
                    if bar is not None:
                        bar.update(1)
                record(entry)
            pending.clear()

        def release(frames: int) -> None:
            first_frame, first_sample = planner.keep_from(frames)
            for face_id in list(held):
                crops = held[face_id]
                while crops and crops[0][0] < first_frame:
                    crops.popleft()
                if not crops and every_face:
                    del held[face_id]  # gone from the open windows (back later: a new deque)
            reader.audio.drop_before(first_sample)

        def add(w) -> None:
            """Queue window `w`; a model call holds at most `batch_size` clips and
            `MAX_FRAMES_PER_CALL` frames (flushed before `w` would pass it)."""
            held_frames = sum(len(c["frames"]) for _, _, c, _ in pending if isinstance(c, dict))
            coming = max(1, len(held)) * (w.end_frame - w.first_frame)  # a clip per face
            if pending and held_frames + coming > MAX_FRAMES_PER_CALL:
                flush()
            gather(w)
            if len(pending) >= batch_size:
                flush()

        try:
            if every_face:
                frames_iter = _every_face(reader, self.settings.tracker.crop_size)
            else:
                frames_iter = ((item.index, [(0, item.crop, item.face)]) for item in reader.crops())
            while True:
                t0 = time.perf_counter()
                item = next(frames_iter, None)
                timings["faces_s"] += time.perf_counter() - t0
                if item is None:
                    break
                index, found = item
                t0 = time.perf_counter()
                cut = [crop for _, crop, _ in found]
                crops = jpeg_round_trip(np.stack(cut), quality) if quality and cut else cut
                timings["faces_s"] += time.perf_counter() - t0
                for (face_id, _, face), crop in zip(found, crops, strict=True):
                    held.setdefault(face_id, deque()).append((index, crop, face))
                max_crops = max(max_crops, sum(len(crops) for crops in held.values()))
                for w in planner.ready(index + 1):
                    add(w)
                release(index + 1)
            num_frames = reader.info.frames
            notes = reader.check_lengths(self.audio_window_seconds)
            if not reader.faces.stats["frames_detected"]:
                raise NoFaceError(f"no face in any of the {num_frames} frames")
            for w in planner.finish(num_frames):
                add(w)
            flush()
        except BaseException:
            reader.close()  # now, not when collected: a live source's thread and child end
            raise
        finally:
            if bar is not None:
                bar.close()
        reader.audio.read_until(None)
        notes = reader.final_notes() + notes
        reader.close()
        # (decode time is inside faces_s: frames are decoded as the tracker asks for them)
        self.last_stats = {
            "max_frames_held": reader.faces.max_held,
            "max_crops_held": max_crops,
            "max_audio_samples_held": reader.audio.max_held,
            "frames": num_frames,
            "windows": totals["windows"],
            "entries": totals["entries"],
        }
        if not totals["scored"]:
            raise NoFaceError(
                f"no window with a face: faces in fewer than "
                f"{MIN_FACE_FRACTION:.0%} of the frames of each of the "
                f"{totals['windows']} windows"
            )
        skipped = totals["entries"] - totals["scored"]
        if every_face:
            ids = sorted(counts)
            scored_ids = [i for i in ids if counts[i][0]]
            main = max(scored_ids, key=lambda i: (counts[i][0], -i))
            summary = self._summary(sums[main], counts[main][0])
            stats = reader.faces.stats
            notes.append(
                f"{len(ids)} faces with windows (ids {', '.join(map(str, ids))}); "
                f"the audio is shared by all faces; label: face {main}, the one scored "
                f"in the most windows"
            )
            if stats.get("reidentified"):
                notes.append(f"{stats['reidentified']} returns of a lost face given its id back")
            if skipped:
                notes.append(
                    f"{skipped} of {totals['entries']} window entries skipped "
                    "(face in too few frames, or no face)"
                )
        else:
            summary = self._summary(sums[0], counts[0][0])
            if skipped:
                notes.append(f"{skipped} of {totals['entries']} windows skipped (no face)")
        result = {
            **{k: v for k, v in summary.items() if k != "calibrated_probabilities"},
            "duration_s": round(num_frames / reader.fps, 3),
            "window_s": window,
            "hop_s": hop,
            "timeline": [timeline_entry(w, codes) for w in timeline],
        }
        if every_face:
            result["face_id"] = main
            result["faces"] = [
                {
                    "face_id": i,
                    **(
                        self._summary(sums[i], counts[i][0])
                        if counts[i][0]
                        else {
                            "label": None,
                            "label_code": None,
                            "label_name": None,
                            "probabilities": None,
                        }
                    ),
                    "windows": counts[i][0],
                    "skipped": counts[i][1],
                    "first_s": spans[i][0],
                    "last_s": spans[i][1],
                }
                for i in ids
            ]
        if totals["entries"] == 1 and only[0]["probabilities"] is not None:
            result["segment_probabilities"] = only[0]["segment_probabilities"].round(6).tolist()
        if "calibrated_probabilities" in summary:
            result["calibrated_probabilities"] = summary["calibrated_probabilities"]
        timings = {k: round(v, 4) for k, v in timings.items()}
        timings["total_s"] = round(time.perf_counter() - start_all, 4)
        result.update(notes=notes, timings_s=timings)
        return result


def _fill(frames: list[tuple], first: int, end: int) -> np.ndarray:
    """One face's crops for every frame of [first, end) from those it is seen on (`frames`:
    (index, crop, face) in order): a frame without it repeats its nearest crop in time (the
    earlier on a tie), so the clip keeps the window's length and its timing against the audio."""
    index = np.array([i for i, _, _ in frames])
    wanted = np.arange(first, end)
    j = np.clip(np.searchsorted(index, wanted), 0, len(index) - 1)
    earlier = np.clip(j - 1, 0, len(index) - 1)
    pick = np.where(np.abs(index[earlier] - wanted) <= np.abs(index[j] - wanted), earlier, j)
    return np.stack([frames[k][1] for k in pick])


def _every_face(reader: ClipReader, size: int):
    """(frame index, [(face id, crop uint8 [S, S, 3], True)]) for every frame of `reader`, whose
    `faces` is a `MultiStreamTracker`, each as soon as its boxes are final."""

    def cut(items):
        for item in items:
            if not item.faces:
                yield item.index, []
                continue
            boxes = np.stack([f.box for f in item.faces])
            crops = crop_faces(
                np.broadcast_to(item.frame, (len(boxes), *item.frame.shape)), boxes, size
            )
            yield (
                item.index,
                [(f.face_id, crop, True) for f, crop in zip(item.faces, crops, strict=True)],
            )

    # ClipReader.crops() cuts one box per frame; its frame stream is read here directly (a
    # public `ClipReader.frames()` would be the cleaner seam: emotf.media.preprocess).
    for frame in reader._frames:
        yield from cut(reader.faces.push(frame))
    yield from cut(reader.faces.finish())


def _os_problem(error: OSError, known=None) -> str:
    """`<file>: <strerror>` of an OSError (just the strerror when the file is `known`)."""
    name = error.filename
    if name is None or str(name) == str(known):
        return error.strerror or str(error)
    return f"{name}: {error.strerror}"


def _write_problem(error: Exception, out_dir) -> str:
    """Why `out_dir`'s outputs could not be written, without repeating `out_dir`: an OSError's
    strerror (with the file, when it is not `out_dir`), TensorFlow's `<path>; <problem>`
    (`tf.io.gfile`) as `<problem>`."""
    if isinstance(error, OSError) and error.strerror:
        return _os_problem(error, out_dir)
    line = _line(error)
    for prefix in (f"{out_dir}; ", f"{out_dir}: "):
        if line.startswith(prefix):
            return line[len(prefix) :]
    return line


def _line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _error(video, audio, error: Exception) -> dict:
    text = str(error)
    if "{{function_node" in text or "[Op:" in text:  # TensorFlow's: its first meaningful line
        text = tf_error_line(error)
    elif isinstance(error, OSError) and error.strerror and text.startswith("[Errno"):
        text = _os_problem(error)  # `name: File name too long`, not `[Errno 36] ...: 'name'`
    kind = type(error).__name__
    if kind == "NoFaceError":
        text = f"no face: {text}"
    elif not isinstance(error, (ValueError, OSError)) and kind != "MediaError":
        text = f"unexpected {kind}: {text}"  # e.g. a decoder or detector crash on this file
    if str(video) not in text and not (audio and str(audio) in text):
        text = f"{video}: {text}"
    return {"file": str(video), "audio": str(audio) if audio else None, "error": text}


def predict_files(
    model_dir,
    videos,
    audios=None,
    *,
    batch_size: int = 8,
    tracker=None,
    predictor=None,
    window: float | None = None,
    hop: float | None = None,
    out_dir=None,
    progress: bool = False,
    trust_model: bool = False,
    faces: str = "largest",
) -> list[dict]:
    """Predict each video; one result dict per video, in order.

    Args:
        model_dir: SavedModel version folder or base folder.
        videos: video paths (expand folders and globs first with `expand_inputs`).
        audios: None (use each video's own track) or one WAV path (or None) per video.
        batch_size: windows per SavedModel call, at most (calls also stop short of
            `MAX_FRAMES_PER_CALL` frames, to bound memory).
        tracker: `emotf.media.faces.FaceTracker` to reuse.
        predictor: a `Predictor` to reuse (then `model_dir`, `tracker` and `trust_model` are
            ignored).
        window, hop: timeline window and hop in seconds (default: the model's metadata).
        out_dir: also write `<stem>.json`, `<stem>.timeline.csv`, `<stem>.timeline.png` there
            (local or a `tf.io.gfile` URL such as `gs://...`); stems from
            `emotf.serving.outputs.output_stems`: long or repeated names are shortened with a hash.
        progress: tqdm progress bars over files and, for long videos, over windows.
        trust_model: skip the check of the SavedModel's ops (see `Predictor`).
        faces: "largest" (the largest face, followed over time) or "all" (every face tracked
            with a stable id, each with its own timeline; `Predictor.predict_video`).

    Returns:
        Success: {"file", "audio", "label" (index), "label_code" ("ANG"), "label_name" ("anger"),
        "probabilities" {code: p} (mean of the windows'), "timeline" [{"start", "end",
        "face_id" (0 with faces="largest"; null on a window without any face with "all"),
        "probabilities" {code: p} or null, "label" code or null, "skipped" (only when skipped)}],
        "segment_probabilities" [N][C] (one-entry videos), "duration_s", "window_s", "hop_s",
        "notes", "timings_s", "outputs" (with out_dir)}. With faces="all" also "faces": [{
        "face_id", "label", "label_code", "label_name", "probabilities" (mean of that face's
        windows; null when none was scored), "windows" (scored), "skipped", "first_s",
        "last_s"}] by id, and "face_id": the face the top-level label is of (the one scored in
        the most windows).
        Failure: {"file", "audio", "error": "<path>: <problem>"}; the other files go on.
        Outputs that cannot be written: the prediction with "error" naming the problem.

    Raises:
        ValueError: window, hop or batch size out of bounds (`PredictConfig`), before any video.
    """
    videos = [str(v) for v in videos]
    if audios is None:
        audios = [None] * len(videos)
    audios = [str(a) if a else None for a in audios]
    if len(audios) != len(videos):
        raise ValueError(
            f"give one audio file per video (or none). Received: {len(videos)} videos, "
            f"{len(audios)} audio files"
        )
    PredictConfig(window_s=window, hop_s=hop, batch_size=batch_size, faces=faces)
    predictor = predictor or Predictor(model_dir, tracker, trust_model=trust_model)
    predictor.resolve(window, hop, batch_size, faces)
    stems = output_stems(videos) if out_dir is not None else [None] * len(videos)
    results = []
    pairs = list(zip(videos, audios, stems, strict=True))
    if progress and len(pairs) > 1:
        pairs = tqdm(pairs, desc="emotf-predict", unit="file")
    for video, audio, stem in pairs:
        try:
            result = {
                "file": video,
                "audio": audio,
                **predictor.predict_video(
                    video,
                    audio,
                    window=window,
                    hop=hop,
                    batch_size=batch_size,
                    progress=progress,
                    faces=faces,
                ),
            }
        except Exception as error:  # noqa: BLE001 - one bad file never stops the others
            result = _error(video, audio, error)
        if out_dir is not None:
            try:
                result["outputs"] = write_outputs(result, out_dir, predictor.class_codes, stem)
            except Exception as error:  # noqa: BLE001 - a full disk, a bad name: this video only
                problem = f"cannot write the outputs to {out_dir}: {_write_problem(error, out_dir)}"
                result["error"] = (
                    f"{result['error']}; {problem}" if "error" in result else f"{video}: {problem}"
                )
        results.append(result)
    return results
