"""Range checks on the SavedModel metadata that `emotf-predict` trusts.

`assets.extra/emotf.json` tells the client how to prepare a clip: crop size, sample rate,
window length, shortest clip, tracker settings, temperature. A tampered or corrupted file must
give a clear error, not a multi-gigabyte allocation (a `crop_size` of 10^5 once asked for
9 GB) or a silent wrong answer. Every value the client uses is type- and range-checked here.
"""

from __future__ import annotations

import math
from pathlib import Path

from emotf.cremad import EMOTIONS


class MetadataError(ValueError):
    """SavedModel metadata that is missing, malformed or out of range."""


# (lowest, highest) accepted; generous around every value emotf can produce.
SAMPLING_RANGES = {
    "num_segments": (1, 64),
    "window_seconds": (0.05, 10.0),
    "max_offset_seconds": (0.0, 1.0),
    "sample_rate": (4000, 96000),
    "frame_size": (8, 1024),
}
TRACKER_RANGES = {
    "keyframe_interval": (1, 1000),
    "margin": (0.0, 3.0),
    "smoothing": (0.0, 100.0),
    "detect_scale": (0.01, 1.0),
    "min_confidence": (0.0, 1.0),
    "redetect_frames": (0, 1000),
    "crop_size": (8, 1024),
    "jpeg_quality": (1, 100),
    "max_gap_seconds": (1e-3, 60.0),
}
TOP_RANGES = {"min_clip_seconds": (0.0, 60.0), "temperature": (1e-3, 1e3)}
# emotf.records.preprocess.ClipSettings (besides its tracker) and the default timeline.
CLIP_RANGES = {"sample_rate": (4000, 96000), "min_duration_s": (0.0, 60.0),
               "max_duration_s": (0.01, 3600.0)}
TIMELINE_RANGES = {"window_seconds": (0.1, 600.0), "hop_seconds": (0.01, 600.0)}
INTEGER_KEYS = {"num_segments", "sample_rate", "frame_size", "keyframe_interval",
                "redetect_frames", "crop_size", "jpeg_quality"}


def _check_value(where: str, key: str, value, bounds: tuple[float, float]) -> None:
    low, high = bounds
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (key in INTEGER_KEYS and float(value) != int(value)):
        kind = "an integer" if key in INTEGER_KEYS else "a number"
        raise MetadataError(f"{where}: {key} must be {kind}. Received: {key}={value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise MetadataError(
            f"{where}: {key}={value!r} is outside [{low}, {high}]: the metadata is corrupted "
            "or was edited; re-export the model with emotf-export"
        )


def check_metadata(metadata, path) -> dict:
    """Validate a SavedModel's emotf metadata; returns it unchanged.

    Raises:
        MetadataError: naming the file, the key and the value received.
    """
    where = str(Path(path))
    if not isinstance(metadata, dict):
        raise MetadataError(f"{where}: expected a JSON object. Received: {type(metadata).__name__}")
    codes = metadata.get("class_codes")
    if list(codes or []) != list(EMOTIONS) or not isinstance(metadata.get("class_names"), list) \
            or len(metadata["class_names"]) != len(EMOTIONS):
        raise MetadataError(f"{where}: class_codes must be {list(EMOTIONS)}. Received: {codes!r}")
    sampling = metadata.get("sampling_config")
    if not isinstance(sampling, dict):
        raise MetadataError(f"{where}: sampling_config missing or not an object")
    for key, bounds in SAMPLING_RANGES.items():
        if key not in sampling:
            raise MetadataError(f"{where}: sampling_config has no {key}")
        _check_value(where, f"{key}", sampling[key], bounds)
    tracker = metadata.get("face_tracker") or {}
    if not isinstance(tracker, dict):
        raise MetadataError(f"{where}: face_tracker must be an object. Received: {tracker!r}")
    for key, bounds in TRACKER_RANGES.items():
        if key in tracker:
            _check_value(where, key, tracker[key], bounds)
    if "stages" in tracker and not isinstance(tracker["stages"], str):
        raise MetadataError(f"{where}: stages must be a string. Received: {tracker['stages']!r}")
    for key, bounds in TOP_RANGES.items():
        if metadata.get(key) is not None:
            _check_value(where, key, metadata[key], bounds)
    for name, ranges in (("clip_settings", CLIP_RANGES), ("timeline", TIMELINE_RANGES)):
        block = metadata.get(name) or {}
        if not isinstance(block, dict):
            raise MetadataError(f"{where}: {name} must be an object. Received: {block!r}")
        for key, bounds in ranges.items():
            if key in block:
                _check_value(where, key, block[key], bounds)
        if name == "clip_settings":
            inner = block.get("tracker") or {}
            if not isinstance(inner, dict):
                raise MetadataError(f"{where}: clip_settings.tracker must be an object. "
                                    f"Received: {inner!r}")
            for key, bounds in TRACKER_RANGES.items():
                if key in inner:
                    _check_value(where, key, inner[key], bounds)
    return metadata
