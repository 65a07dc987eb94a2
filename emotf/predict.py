"""Predict emotions of raw video files with an exported SavedModel (`emotf-predict`).

    video (+ WAV) --emotf.media--> RGB frames, 16 kHz int16 audio
                  --emotf.faces--> face track, 224x224 crops (the code emotf-build-records runs)
                  --JPEG round trip at the records' quality (what training saw)
                  --SavedModel serving_default--> probabilities, label

Audio comes from the WAV when given, else from the video's own track, and is resampled to the
model's rate (16 kHz) by `emotf.media.load_audio`. Clips are padded into batches; a file that
fails (unreadable, no face, no audio, too short) gets an `error` entry and the others go on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from emotf.export import DEFAULT_MIN_CLIP_SECONDS, read_metadata, resolve_saved_model


def tracker_config_of(metadata: dict):
    """The `FaceTrackerConfig` stored in a SavedModel's metadata (`face_tracker`); the default
    config when absent (models exported without records, older exports). Unknown keys (a newer
    emotf) are ignored."""
    import dataclasses

    from emotf.faces import FaceTrackerConfig

    known = {f.name for f in dataclasses.fields(FaceTrackerConfig)}
    values = {k: v for k, v in (metadata.get("face_tracker") or {}).items() if k in known}
    return FaceTrackerConfig(**values)


class ClipError(ValueError):
    """A clip that cannot be predicted; the message names the problem."""


@dataclass
class ClipInput:
    """One clip ready for `serving_default`.

    Attributes:
        frames: uint8 [T, 224, 224, 3] face crops.
        fps: frame rate of the video.
        pcm16: int16 [S] mono audio at `sample_rate`.
        sample_rate: Hz (the model's rate).
        duration: T / fps seconds.
        notes: conversions and tolerated problems (from decoding and the face tracker).
        timings: seconds spent decoding video / audio and tracking + cropping faces.
    """

    frames: np.ndarray
    fps: float
    pcm16: np.ndarray
    sample_rate: int
    duration: float
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def load_clip(
    video_path,
    audio_path=None,
    tracker=None,
    *,
    sample_rate: int = 16000,
    min_seconds: float = 0.5,
    window_seconds: float = 1.28,
    jpeg_quality: int | None = None,
) -> ClipInput:
    """Decode a video, crop its face and load its audio, like `emotf-build-records` does.

    Args:
        video_path: any video FFmpeg reads (FLV, MP4, ...).
        audio_path: a WAV (or FLAC, ...); None: the video's own audio track.
        tracker: an `emotf.faces.FaceTracker` (reuse one across clips: MTCNN loads once);
            default: `FaceTracker()` with the build's default config.
        sample_rate: rate the audio is resampled to (the model's).
        min_seconds: shorter video or audio is refused (the build's `--min-duration`, 0.5 s);
            clips shorter than `window_seconds` (d) are zero-padded like in training, with a note.
        window_seconds: the audio window d.
        jpeg_quality: JPEG-encode and decode the crops at this quality, as the records store
            them (training saw decoded JPEGs); default: the tracker's `jpeg_quality` (90);
            0 skips the round trip.

    Raises:
        emotf.media.MediaError: unreadable video or audio, no audio track.
        emotf.faces.NoFaceError: no face in any frame.
        ClipError: video or audio shorter than `min_seconds`.
    """
    from emotf.faces import FaceTracker, crop_faces
    from emotf.media import MediaError, decode_video, load_audio

    timings = {}
    start = time.perf_counter()
    video = decode_video(video_path)
    timings["decode_video_s"] = time.perf_counter() - start
    duration = len(video.frames) / video.fps
    if duration < min_seconds:
        raise ClipError(
            f"{video_path}: clip too short: {len(video.frames)} frames at {video.fps:g} fps = "
            f"{duration:.2f} s of video; the records keep clips of at least {min_seconds:g} s"
        )
    start = time.perf_counter()
    if audio_path is None:
        try:
            pcm, audio_notes = load_audio(video_path, sample_rate)
        except MediaError as error:
            raise MediaError(error.path, f"no audio: {error.problem} (pass a WAV with --audio)") from None
    else:
        pcm, audio_notes = load_audio(audio_path, sample_rate)
    timings["load_audio_s"] = time.perf_counter() - start
    audio_seconds = len(pcm) / sample_rate
    if audio_seconds < min_seconds:
        raise ClipError(
            f"{audio_path or video_path}: audio too short: {audio_seconds:.2f} s; the records "
            f"keep clips of at least {min_seconds:g} s"
        )
    if audio_seconds < window_seconds:
        audio_notes = list(audio_notes) + [
            f"audio ({audio_seconds:.2f} s) shorter than the {window_seconds:g} s window: "
            "zero-padded, as in training"
        ]
    start = time.perf_counter()
    tracker = tracker or FaceTracker()
    track = tracker.track(video.frames)
    crops = crop_faces(video.frames, track.boxes, tracker.config.crop_size)
    quality = tracker.config.jpeg_quality if jpeg_quality is None else jpeg_quality
    if quality:
        crops = _jpeg_round_trip(crops, quality)
    timings["faces_s"] = time.perf_counter() - start
    notes = list(video.notes) + list(audio_notes)
    if track.stats.get("full_scans"):
        notes.append(f"face found only by searching every frame ({int(track.detected.sum())} of "
                     f"{len(track.detected)} frames)")
    return ClipInput(crops, float(video.fps), pcm, sample_rate, duration, notes, timings)


def _jpeg_round_trip(crops: np.ndarray, quality: int) -> np.ndarray:
    """Encode like `emotf.media.encode_jpegs` and decode like `emotf.sampling.gather_frames`."""
    import tensorflow as tf

    from emotf.media import encode_jpegs

    return np.stack(
        [
            tf.io.decode_jpeg(jpeg, channels=3, dct_method="INTEGER_ACCURATE").numpy()
            for jpeg in encode_jpegs(crops, quality)
        ]
    )


def pad_batch(clips: list[ClipInput]) -> dict:
    """`serving_default` inputs for clips: frames and waveforms zero-padded to the longest."""
    import tensorflow as tf

    t_max = max(len(c.frames) for c in clips)
    s_max = max(len(c.pcm16) for c in clips)
    size = clips[0].frames.shape[1]
    frames = np.zeros([len(clips), t_max, size, size, 3], np.uint8)
    waves = np.zeros([len(clips), s_max], np.float32)
    for i, c in enumerate(clips):
        frames[i, : len(c.frames)] = c.frames
        waves[i, : len(c.pcm16)] = c.pcm16.astype(np.float32) / 32768.0  # as records.parse_example
    return {
        "frames": tf.constant(frames),
        "num_frames": tf.constant([len(c.frames) for c in clips], tf.int32),
        "fps": tf.constant([c.fps for c in clips], tf.float32),
        "waveform": tf.constant(waves),
        "num_samples": tf.constant([len(c.pcm16) for c in clips], tf.int32),
        "sample_rate": tf.constant([c.sample_rate for c in clips], tf.int32),
    }


class Predictor:
    """A loaded SavedModel plus the face tracker, for predicting many clips.

    Args:
        model_dir: a SavedModel version folder or the base folder (latest version is used).
        tracker: an `emotf.faces.FaceTracker`; default: one with the `FaceTrackerConfig` the
            training records were built with (stored at export as `face_tracker`), or the
            build's default config for models exported without records.

    Attributes:
        tracker_config: that `FaceTrackerConfig` (its `jpeg_quality` is the JPEG round trip's).
        min_seconds: shortest clip accepted (the build's `min_duration_s`, default 0.5 s).
    """

    def __init__(self, model_dir, tracker=None):
        import tensorflow as tf

        self.model_dir = resolve_saved_model(model_dir)
        self.metadata = read_metadata(self.model_dir)
        self.class_codes = list(self.metadata["class_codes"])
        self.class_names = list(self.metadata["class_names"])
        sampling = self.metadata["sampling_config"]
        self.sample_rate = int(sampling["sample_rate"])
        self.window_seconds = float(sampling["window_seconds"])
        # How the training records were built (absent in models exported without records).
        self.min_seconds = float(self.metadata.get("min_clip_seconds", DEFAULT_MIN_CLIP_SECONDS))
        self.tracker_config = tracker_config_of(self.metadata)
        self._serve = tf.saved_model.load(str(self.model_dir)).signatures["serving_default"]
        self._tracker = tracker

    @property
    def tracker(self):
        if self._tracker is None:
            from emotf.faces import FaceTracker

            self._tracker = FaceTracker(self.tracker_config)
        return self._tracker

    def load(self, video, audio=None) -> ClipInput:
        return load_clip(
            video,
            audio,
            self.tracker,
            sample_rate=self.sample_rate,
            min_seconds=self.min_seconds,
            window_seconds=self.window_seconds,
            jpeg_quality=self.tracker_config.jpeg_quality,  # what the records stored
        )

    def predict_clips(self, clips: list[ClipInput]) -> list[dict]:
        """Model outputs for loaded clips (one padded batch)."""
        out = self._serve(**pad_batch(clips))
        probs = out["probabilities"].numpy()
        segs = out["segment_probabilities"].numpy()
        temperature = self.metadata.get("temperature")
        if temperature is not None:
            from emotf.calibration import apply_temperature

            scaled = apply_temperature(probs, float(temperature))
        results = []
        for i in range(len(clips)):
            k = int(out["label"].numpy()[i])
            results.append(
                {
                    "label": k,
                    "label_code": self.class_codes[k],
                    "label_name": self.class_names[k],
                    "probabilities": {c: float(p) for c, p in zip(self.class_codes, probs[i])},
                    "segment_probabilities": segs[i].round(6).tolist(),
                }
            )
            if temperature is not None:  # the run's validation-fitted temperature
                results[-1]["calibrated_probabilities"] = {
                    c: float(p) for c, p in zip(self.class_codes, scaled[i])}
        return results


def _error(video, audio, error: Exception) -> dict:
    text = str(error)
    kind = type(error).__name__
    if kind == "NoFaceError":
        text = f"no face: {text}"
    elif kind not in ("MediaError", "ClipError", "ValueError", "FileNotFoundError", "OSError"):
        text = f"unexpected {kind}: {text}"  # e.g. a decoder or detector crash on this file
    if str(video) not in text and not (audio and str(audio) in text):
        text = f"{video}: {text}"
    return {"file": str(video), "audio": str(audio) if audio else None, "error": text}


def predict_files(
    model_dir, videos, audios=None, *, batch_size: int = 8, tracker=None, predictor=None
) -> list[dict]:
    """Predict each video; one result dict per video, in order.

    Args:
        model_dir: SavedModel version folder or base folder.
        videos: video paths.
        audios: None (use each video's own track) or one WAV path (or None) per video.
        batch_size: clips per SavedModel call (padded to the longest in the batch).
        tracker: `emotf.faces.FaceTracker` to reuse.
        predictor: a `Predictor` to reuse (then `model_dir` and `tracker` are ignored).

    Returns:
        Success: {"file", "audio", "label" (index), "label_code" ("ANG"), "label_name" ("anger"),
        "probabilities" {code: p}, "segment_probabilities" [N][C], "duration_s", "notes",
        "timings_s" {decode_video_s, load_audio_s, faces_s, model_s, total_s}}.
        Failure: {"file", "audio", "error": "<path>: <problem>"}; the other files go on.
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
    predictor = predictor or Predictor(model_dir, tracker)
    results: list[dict | None] = [None] * len(videos)
    pending: list[tuple[int, ClipInput, float]] = []

    def flush():
        if not pending:
            return
        start = time.perf_counter()
        try:
            outputs = predictor.predict_clips([clip for _, clip, _ in pending])
        except Exception:  # noqa: BLE001  isolate the failing clip: retry one by one
            outputs = []
            for _, clip, _ in pending:
                try:
                    outputs.append(predictor.predict_clips([clip])[0])
                except Exception as error:  # noqa: BLE001
                    outputs.append({"error": f"model call failed: {str(error).strip().splitlines()[-1]}"})
        model_s = (time.perf_counter() - start) / len(pending)
        for (i, clip, load_s), output in zip(pending, outputs):
            if "error" in output:
                results[i] = {"file": videos[i], "audio": audios[i], "error": f"{videos[i]}: {output['error']}"}
                continue
            timings = {k: round(v, 4) for k, v in clip.timings.items()}
            timings["model_s"] = round(model_s, 4)
            timings["total_s"] = round(load_s + model_s, 4)
            results[i] = {
                "file": videos[i],
                "audio": audios[i],
                **output,
                "duration_s": round(clip.duration, 3),
                "notes": clip.notes,
                "timings_s": timings,
            }
        pending.clear()

    for i, (video, audio) in enumerate(zip(videos, audios)):
        start = time.perf_counter()
        try:
            clip = predictor.load(video, audio)
        except Exception as error:  # noqa: BLE001 - one bad file never stops the others
            results[i] = _error(video, audio, error)
            continue
        pending.append((i, clip, time.perf_counter() - start))
        if len(pending) >= batch_size:
            flush()
    flush()
    return results


def format_table(results: list[dict]) -> str:
    """Human-readable: one block per file with the label and a probability table."""
    lines = []
    for result in results:
        if "error" in result:
            lines.append(f"{result['file']}\n  ERROR: {result['error']}")
            continue
        head = f"{result['file']}  ({result['duration_s']:.2f} s"
        head += f", audio {result['audio']})" if result.get("audio") else ", audio from the video)"
        lines.append(head)
        lines.append(f"  label: {result['label_code']} ({result['label_name']})")
        for code, p in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]):
            bar = "#" * int(round(p * 40))
            lines.append(f"    {code}  {p:6.3f}  {bar}")
        for note in result.get("notes", []):
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def to_json(results: list[dict]) -> str:
    return json.dumps(results, indent=2)
