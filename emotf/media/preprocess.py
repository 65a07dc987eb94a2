"""The one clip-preprocessing contract: raw media -> face crops + 16-bit mono audio.

    ClipSettings   what the records are built with; `emotf-build-records` writes
                   `to_dict()` into its manifest (`clip_settings`, and its fields are what the
                   settings fingerprint hashes), `emotf-export` copies it verbatim into the
                   SavedModel metadata, `emotf-predict` rebuilds it with `from_dict`.
    ClipReader     streams one video: frames on a constant-rate grid (`emotf.media.stream`), the
                   face tracked online and cropped as frames arrive, audio read on demand.
    read_clip      a whole (short) clip from a ClipReader: what `emotf.records.clip_worker` stores.

`emotf-build-records` (via `read_clip`) and `emotf-predict` (via `ClipReader.crops`, window by
window) run the same code on the same settings, so their crops and audio are identical
(tests/test_preprocess.py checks it on one file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotf import keys
from emotf.bounds import bounded, check_bounds
from emotf.configs import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Config
from emotf.media.decode import audio_source, open_video
from emotf.media.faces import FaceTracker, FaceTrackerConfig, NoFaceError, crop_faces
from emotf.media.files import MediaError, encode_jpegs
from emotf.media.live_source import LiveFeed, LiveSource, open_live
from emotf.media.staging import staged
from emotf.media.stream import StreamTracker
from emotf.storage import is_url

# Video and audio durations further apart than this get a note (a wrong or cut WAV?).
DURATION_MISMATCH_S = 0.5
# Keyframes per detector call on a live source: each window's line waits for its last frame's
# box, which waits for the batch its keyframe is in (files: `emotf.media.stream.DETECT_BATCH`).
LIVE_DETECT_BATCH = 1
# Longest clip any setting may name (CREMA-D's longest, 1064_IEO_DIS_MD, is about a minute).
MAX_CLIP_SECONDS = 3600.0
# The shortest clip the records keep (and so the shortest a model accepts: emotf.serving).
MIN_CLIP_SECONDS = 0.5
# The longest clip the build keeps by default.
DEFAULT_MAX_CLIP_SECONDS = 10.0


class ClipError(ValueError):
    """A clip that cannot be used (too short, too long); the message names the file."""


@dataclass(frozen=True)
class ClipSettings(Config):
    """How raw media become a clip (face crops + audio), for the build and for prediction.

    Attributes:
        tracker: face detection, tracking and crop settings (its `jpeg_quality` is the quality
            of the stored crops, which prediction round-trips through too).
        sample_rate: audio rate in Hz (mono int16).
        min_duration_s: shorter video or audio is refused.
        max_duration_s: the build skips longer clips (prediction streams any length).
    """

    tracker: FaceTrackerConfig = bounded(
        default_factory=FaceTrackerConfig, help="face detection, tracking and crop settings"
    )
    sample_rate: int = bounded(
        keys.AUDIO_SAMPLE_RATE_HZ,
        ge=MIN_SAMPLE_RATE,
        le=MAX_SAMPLE_RATE,
        help="audio rate in Hz (mono int16)",
    )
    min_duration_s: float = bounded(
        MIN_CLIP_SECONDS,
        ge=0.0,
        le=MAX_CLIP_SECONDS,
        help="shorter video or audio is refused (seconds)",
    )
    max_duration_s: float = bounded(
        DEFAULT_MAX_CLIP_SECONDS,
        gt=0.0,
        le=MAX_CLIP_SECONDS,
        help="the build skips longer clips (seconds; prediction streams any length)",
    )

    def __post_init__(self):
        check_bounds(self)
        if not isinstance(self.tracker, FaceTrackerConfig):
            raise ValueError(
                "ClipSettings.tracker must be a FaceTrackerConfig. Received: "
                f"tracker={self.tracker!r}"
            )
        if not self.min_duration_s <= self.max_duration_s:
            raise ValueError(
                "ClipSettings.min_duration_s must be at most max_duration_s. Received: "
                f"min_duration_s={self.min_duration_s}, max_duration_s={self.max_duration_s}"
            )

    @property
    def jpeg_quality(self) -> int:
        return self.tracker.jpeg_quality

    @classmethod
    def from_dict(cls, values: dict | None) -> ClipSettings:
        """From `to_dict()` output; missing keys take the defaults. Unlike every other config
        (`emotf.configs.from_dict`), unknown keys are ignored: this reads the settings another
        emotf version wrote into a manifest or a SavedModel's metadata.

        Raises:
            ValueError: one line naming the field (`ClipSettings.sample_rate`,
                `FaceTrackerConfig.crop_size`, ...) when a value is out of its bounds.
        """
        values = values or {}
        tracker_values = values.get("tracker") or {} if isinstance(values, Mapping) else None
        if tracker_values is None:
            raise ValueError(f"ClipSettings must be a JSON object. Received: {values!r:.200}")
        if not isinstance(tracker_values, Mapping):
            raise ValueError(
                "ClipSettings.tracker must be a JSON object. Received: "
                f"tracker={tracker_values!r:.200}"
            )
        known = {f.name for f in dataclasses.fields(FaceTrackerConfig)}
        tracker = FaceTrackerConfig(**{k: v for k, v in tracker_values.items() if k in known})
        top = {
            k: values[k] for k in ("sample_rate", "min_duration_s", "max_duration_s") if k in values
        }
        return cls(tracker=tracker, **top)


@dataclass
class Crop:
    """One frame's face crop: index (grid frame), crop uint8 [S, S, 3], box float32 [4] in
    source pixels, detected (0/1), face (False: farther than max_gap_seconds from any
    detection)."""

    index: int
    crop: np.ndarray
    box: np.ndarray
    detected: int
    face: bool


class ClipReader:
    """One video streamed into face crops, with its audio on demand.

    Args:
        video: any container/codec PyAV reads (a local path, or a URL such as gs://...: copied
            to a local temporary file, deleted by `close()` or when the reader is collected),
            or a `emotf.media.live_source.LiveSource` (`-`, /dev/videoN, rtsp://...: read as it
            comes, video and audio from one pass; `live` is then its `LiveFeed`).
        audio: a WAV (or FLAC, ...) for this video (local or a URL), None for the video's own
            track; an unreadable file falls back to the video's track with a note.
        settings: `ClipSettings`.
        tracker: a `FaceTracker` with `settings.tracker` (reuse one: MTCNN loads once).
        max_seconds: refuse (ClipError) videos longer than this (the build's limit).

    Attributes:
        info: `emotf.media.decode.VideoInfo` (fps, size; frame counts once streamed).
        audio: `emotf.media.decode.AudioStream` (int16 at settings.sample_rate).
        notes: conversions and tolerated problems, filled in as the clip is read.
        faces: the `StreamTracker` (stats, `max_held`).

    Raises:
        MediaError: unreadable video, no usable audio.
    """

    def __init__(
        self,
        video,
        audio,
        settings: ClipSettings,
        tracker: FaceTracker | None = None,
        *,
        max_seconds: float | None = None,
    ):
        self.settings = settings
        self.max_seconds = max_seconds
        self.live: LiveFeed | None = None  # the `LiveFeed` of a live source
        if isinstance(video, LiveSource):
            self._open_live(video, audio, tracker)
            return
        self.path = Path(video) if not is_url(video) else video
        staging = contextlib.ExitStack()  # local copies of URL media (emotf.media.staging)
        self.close = weakref.finalize(self, staging.close)
        video_local = staging.enter_context(staged(video))
        audio_local = staging.enter_context(staged(audio)) if audio else None
        try:
            self.info, self._frames = open_video(video_local)
        except BaseException:
            self.close()
            raise
        try:
            if max_seconds is not None and (self.info.declared_seconds or 0) > max_seconds:
                raise ClipError(
                    f"{video}: clip is {self.info.declared_seconds:.1f} s long, "
                    f"over the {max_seconds:g} s limit"
                )
            self.audio, self.notes = audio_source(
                Path(video_local),
                Path(audio_local) if audio_local is not None else None,
                settings.sample_rate,
            )
        except BaseException:
            self.info.close()  # the frames generator never started: its `with` never ran
            self.close()
            raise
        self.tracker = tracker or FaceTracker(settings.tracker)
        self.faces = StreamTracker(self.tracker, self.info.fps, self.info.height, self.info.width)

    def _open_live(self, source: LiveSource, audio, tracker: FaceTracker | None) -> None:
        """A live source (`emotf.media.live_source.LiveSource`): video and audio from one pass
        over its container; the detector sees one keyframe per call (`LIVE_DETECT_BATCH`)."""
        if audio is not None:
            raise ValueError(f"a live source brings its own audio track. Received: audio={audio!r}")
        self.path = source.label
        rate = self.settings.sample_rate
        self.info, self._frames, self.audio, live = open_live(source, rate)
        self.live = live
        self.close = weakref.finalize(self, live.close)
        self.notes = []
        self.tracker = tracker or FaceTracker(self.settings.tracker)
        self.faces = StreamTracker(
            self.tracker, self.info.fps, self.info.height, self.info.width, batch=LIVE_DETECT_BATCH
        )

    @property
    def fps(self) -> float:
        return self.info.fps

    def crops(self) -> Iterator[Crop]:
        """Face crops in frame order, each as soon as its box is final (bounded memory)."""
        size = self.settings.tracker.crop_size
        limit = None if self.max_seconds is None else int(self.max_seconds * self.fps) + 1

        def cut(items):
            for item in items:
                crop = crop_faces(item.frame[None], item.box[None], size)[0]
                yield Crop(item.index, crop, item.box, item.detected, item.face)

        for frame in self._frames:
            if limit is not None and self.info.frames > limit:
                raise ClipError(f"{self.path}: clip is over the {self.max_seconds:g} s limit")
            yield from cut(self.faces.push(frame))
        yield from cut(self.faces.finish())

    def final_notes(self) -> list[str]:
        """Notes known once the clip is read: variable frame rate, several faces, audio
        conversions, a video/audio duration mismatch."""
        info, stats = self.info, self.faces.stats
        notes = list(self.notes) + list(info.notes) + list(self.audio.notes)
        if info.duplicated or info.dropped:
            notes.append(
                f"variable frame rate: put on a constant {info.fps:g} fps grid by "
                f"timestamps ({info.duplicated} frames repeated, {info.dropped} dropped)"
            )
        if stats["multi_face_frames"]:
            notes.append(
                f"other faces present ({stats['multi_face_frames']} of "
                f"{stats['detector_images']} detections saw more than one): followed the "
                "largest face, tracked by overlap"
            )
        video_s, audio_s = info.frames / info.fps, self.audio.total / self.settings.sample_rate
        if self.audio.ended and abs(video_s - audio_s) > DURATION_MISMATCH_S:
            notes.append(
                f"video {video_s:.2f} s and audio {audio_s:.2f} s differ by more than "
                f"{DURATION_MISMATCH_S:g} s (wrong or cut audio?): kept"
            )
        return notes

    def check_lengths(self, window_seconds: float | None = None) -> list[str]:
        """Refuse (ClipError) video or audio shorter than min_duration_s; a note when shorter
        than the sampler's audio window (zero-padded, as in training). Reads the audio to the
        end of the video (or of the audio)."""
        video_s = self.info.frames / self.fps
        self.audio.read_until(
            int(np.ceil(max(video_s, self.settings.min_duration_s) * self.settings.sample_rate)) + 1
        )
        audio_s = self.audio.total / self.settings.sample_rate
        shortest = min(video_s, audio_s)
        if shortest < self.settings.min_duration_s:
            raise ClipError(
                f"{self.path}: clip too short (video {video_s:.2f} s, audio "
                f"{audio_s:.2f} s); the records keep clips of at least "
                f"{self.settings.min_duration_s:g} s"
            )
        if window_seconds is not None and shortest < window_seconds:
            note = (
                f"shorter than the {window_seconds:g} s window (video {video_s:.2f} s, "
                f"audio {audio_s:.2f} s): zero-padded, as in training"
            )
            return [note]
        return []


@dataclass
class Clip:
    """A whole clip, as the records store it.

    Attributes:
        crops: uint8 [T, S, S, 3]; boxes float32 [T, 4] source pixels; detected int8 [T].
        fps; pcm16 int16 [S] at sample_rate; source_size (height, width); notes; stats.
    """

    crops: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    fps: float
    pcm16: np.ndarray
    sample_rate: int
    source_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def read_clip(
    video,
    audio,
    settings: ClipSettings,
    tracker: FaceTracker | None = None,
    *,
    window_seconds: float | None = None,
) -> Clip:
    """Read a whole clip (at most `settings.max_duration_s`): `emotf-build-records`' input.

    Raises:
        MediaError, ClipError (too short / too long), NoFaceError (no face in any frame).
    """
    reader = ClipReader(video, audio, settings, tracker, max_seconds=settings.max_duration_s)
    items = list(reader.crops())
    notes = reader.check_lengths(window_seconds)
    reader.audio.read_until(None)
    audio_s = reader.audio.total / settings.sample_rate
    if audio_s > settings.max_duration_s:
        raise ClipError(
            f"{video}: clip is {audio_s:.1f} s long, over the {settings.max_duration_s:g} s limit"
        )
    if not any(item.detected for item in items):
        raise NoFaceError(f"no face in any of the {len(items)} frames")
    stats = dict(reader.faces.stats)
    final_notes = reader.final_notes() + notes
    return Clip(
        crops=np.stack([item.crop for item in items]),
        boxes=np.stack([item.box for item in items]).astype(np.float32),
        detected=np.array([item.detected for item in items], np.int8),
        fps=reader.fps,
        pcm16=reader.audio.samples(0, reader.audio.total),
        sample_rate=settings.sample_rate,
        source_size=(reader.info.height, reader.info.width),
        notes=final_notes,
        stats=stats,
    )


def jpeg_round_trip(crops: np.ndarray, quality: int) -> np.ndarray:
    """Encode like the records (`emotf.media.files.encode_jpegs`) and decode like training
    (`emotf.sampling.gather_frames`): the pixels the model was trained on."""
    import tensorflow as tf  # lazy: the media modules never import TensorFlow at import

    if not len(crops):
        return crops
    return np.stack(
        [
            tf.io.decode_jpeg(jpeg, channels=3, dct_method="INTEGER_ACCURATE").numpy()
            for jpeg in encode_jpegs(crops, quality)
        ]
    )


__all__ = [
    "DURATION_MISMATCH_S",
    "Clip",
    "ClipError",
    "ClipReader",
    "ClipSettings",
    "Crop",
    "MediaError",
    "NoFaceError",
    "jpeg_round_trip",
    "read_clip",
]
