"""The exported model folder and the metadata `emotf-predict` trusts: where a SavedModel is,
what the records were built with, and range checks on `assets.extra/emotf.json`.

The folder layout is TensorFlow Serving's, `BASE/<version>/saved_model.pb`, on any filesystem
`tf.io.gfile` knows (local, `gs://`, `ram://`: `emotf.storage`).

`assets.extra/emotf.json` tells the client how to prepare a clip: crop size, sample rate,
window length, shortest clip, tracker settings, temperature. A tampered or corrupted file must
give a clear error, not a multi-gigabyte allocation (a `crop_size` of 10^5 once asked for
9 GB) or a silent wrong answer. Every value the client uses is type- and range-checked here
(the classes too: `metadata_corpus`, any corpus's, agreeing with the `corpus` block),
and the file is read with a `MAX_METADATA_BYTES` cap (`emotf.serving.export.read_metadata`). The
bounds `serving_default` enforces in its graph are declared here too (`SERVING_FPS_RANGE`,
`min_clip_samples`; SECURITY.md).
"""

from __future__ import annotations

import dataclasses
import math
import re

from emotf.bounds import check_value
from emotf.configs import SamplingConfig
from emotf.corpora.info import CORPUS_KEY, CorpusInfo, CorpusInfoError
from emotf.media.faces import FaceTrackerConfig
from emotf.media.preprocess import MIN_CLIP_SECONDS, ClipSettings
from emotf.records.folder import RecordsFolder
from emotf.serving.timeline import MAX_WINDOW_SECONDS, MIN_HOP_SECONDS
from emotf.storage import StoragePath, as_path, read_json

METADATA_FILE = "emotf.json"  # under <version>/assets.extra/
MAX_METADATA_BYTES = 1 << 20  # 1 MiB: emotf writes a few KB (SECURITY.md)
# The shortest clip of a model whose metadata does not say (the build's default).
DEFAULT_MIN_CLIP_SECONDS = MIN_CLIP_SECONDS
# The frame rates `serving_default` accepts (checked in-graph; emotf.serving.export).
SERVING_FPS_RANGE = (1.0, 1000.0)
_VERSION_RE = re.compile(r"^\d+$")


def model_versions(out_dir) -> list[int]:
    """Integer version folders (TF Serving layout) in `out_dir`, sorted; [] if none."""
    out_dir = as_path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(
        int(p.name) for p in out_dir.iterdir() if _VERSION_RE.match(p.name) and p.is_dir()
    )


def resolve_saved_model(path) -> StoragePath:
    """A SavedModel folder: `path` itself if it holds `saved_model.pb`, else its highest
    integer version subfolder that holds one (a version still being copied to a remote
    filesystem has none yet). Raises FileNotFoundError naming the path otherwise."""
    path = as_path(path)
    if (path / "saved_model.pb").is_file():
        return path
    for version in reversed(model_versions(path)):
        if (path / str(version) / "saved_model.pb").is_file():
            return path / str(version)
    raise FileNotFoundError(
        f"no SavedModel in {path} (expected saved_model.pb or integer version folders). "
        f"Received: {str(path)!r}"
    )


def metadata_path(saved_model_dir) -> StoragePath:
    """`<version>/assets.extra/emotf.json` of a SavedModel folder (resolves version folders)."""
    return resolve_saved_model(saved_model_dir) / "assets.extra" / METADATA_FILE


def build_settings(records_dir) -> dict:
    """How the run's records were built, for `emotf-predict` to prepare clips the same way.

    Returns `{"clip_settings": ClipSettings.to_dict() of the records' manifest, "face_tracker":
    its tracker, "min_clip_seconds": its min_duration_s, "timeline": {"window_seconds": median
    clip seconds, "hop_seconds": 1.0}}` from the records' manifest (what it holds; empty when
    there is none: predict uses the defaults). `face_tracker` and `min_clip_seconds` are the
    `clip_settings` values that `serving_default` and older clips read; they are derived here
    from the one `ClipSettings`, never read separately. A manifest written before
    `clip_settings` existed gives its build arguments (the same fields).

    Raises:
        ValueError: the manifest's clip settings are out of their bounds (naming the field).
    """
    content = _read_manifest(records_dir)
    if content is None:
        return {}
    settings: dict[str, object] = {}
    clip = _manifest_clip_settings(content)
    if clip is not None:
        settings["clip_settings"] = clip.to_dict()
        settings["face_tracker"] = clip.tracker.to_dict()
        settings["min_clip_seconds"] = float(clip.min_duration_s)
    median = (content.get("clip_seconds") or {}).get("median")
    if median:  # emotf-predict's default timeline: the median training clip, 1 s hop
        settings["timeline"] = {"window_seconds": float(median), "hop_seconds": 1.0}
    return settings


def records_corpus(records_dir) -> CorpusInfo:
    """The `CorpusInfo` of the records' manifest (its `corpus` block); CREMA-D for records
    built before corpora existed, and when there is no records folder or manifest.

    Raises:
        ValueError: the manifest's `corpus` block is malformed (naming the manifest).
    """
    content = _read_manifest(records_dir)
    try:
        return CorpusInfo.of(content)
    except CorpusInfoError as error:
        raise ValueError(f"{_manifest_path(records_dir)}: {error}") from None


def _manifest_path(records_dir) -> StoragePath:
    folder = as_path(records_dir)
    if folder.is_local:
        folder = as_path(folder.local_path().expanduser())
    return RecordsFolder(folder).manifest_path


def _read_manifest(records_dir) -> dict | None:
    """The records' `manifest.json` (read_json's default cap); None without records or one."""
    if not records_dir:
        return None
    manifest = _manifest_path(records_dir)
    if not manifest.is_file():
        return None
    return read_json(manifest)


def _manifest_clip_settings(manifest: dict) -> ClipSettings | None:
    """The `ClipSettings` a manifest records (`clip_settings`; before that existed, the same
    fields among its build `arguments`), None when it records neither (a sealed folder)."""
    if manifest.get("clip_settings"):
        return ClipSettings.from_dict(manifest["clip_settings"])
    arguments = manifest.get("arguments")
    fields = {f.name for f in dataclasses.fields(ClipSettings)}
    if isinstance(arguments, dict) and fields & set(arguments):
        return ClipSettings.from_dict(arguments)  # unknown keys (the other arguments) ignored
    return None


def clip_settings_of(metadata: dict) -> ClipSettings:
    """The `ClipSettings` the training records were built with: the metadata's
    `clip_settings` (`build_settings`); for older exports, from `face_tracker` and
    `min_clip_seconds`; the build's defaults without records."""
    if metadata.get("clip_settings"):
        return ClipSettings.from_dict(metadata["clip_settings"])
    return ClipSettings.from_dict(
        {
            "tracker": metadata.get("face_tracker") or {},
            "min_duration_s": float(metadata.get("min_clip_seconds", DEFAULT_MIN_CLIP_SECONDS)),
            "sample_rate": int(metadata["sampling_config"]["sample_rate"]),
        }
    )


def min_clip_samples(min_clip_seconds: float, sample_rate: int) -> int:
    """The fewest audio samples a clip of `min_clip_seconds` has at `sample_rate` (>= 1): what
    `serving_default` requires of `num_samples` (the build refuses shorter clips, so the model
    never saw one)."""
    return max(1, math.ceil(round(float(min_clip_seconds) * int(sample_rate), 6)))


class MetadataError(ValueError):
    """SavedModel metadata that is missing, malformed or out of range."""


# The configs' own declared bounds (emotf.bounds) check the blocks they wrote into the metadata;
# these keys must be present in `sampling_config`.
REQUIRED_SAMPLING = (
    "num_segments",
    "window_seconds",
    "max_offset_seconds",
    "sample_rate",
    "frame_size",
)
# Values no config declares: (lowest, highest) accepted.
TOP_RANGES = {"min_clip_seconds": (0.0, 60.0), "temperature": (1e-3, 1e3)}
# The default timeline of emotf-predict: the bounds of emotf.serving.predict.PredictConfig.
TIMELINE_RANGES = {
    "window_seconds": (DEFAULT_MIN_CLIP_SECONDS, MAX_WINDOW_SECONDS),
    "hop_seconds": (MIN_HOP_SECONDS, MAX_WINDOW_SECONDS),
}


def _check_value(where: str, key: str, value, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetadataError(f"{where}: {key} must be a number. Received: {key}={value!r:.200}")
    if not math.isfinite(value) or not low <= value <= high:
        raise MetadataError(
            f"{where}: {key}={value!r} is outside [{low}, {high}]: the metadata is corrupted "
            "or was edited; re-export the model with emotf-export"
        )


def _check_block(where: str, name: str, block, cls) -> None:
    """Every key of `block` that is a field of the config `cls`, against that field's declared
    type and bound (unknown keys are left alone: another emotf version may have written them)."""
    if not isinstance(block, dict):
        raise MetadataError(f"{where}: {name} must be an object. Received: {block!r:.200}")
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in block.items():
        if key in known and not dataclasses.is_dataclass(getattr(cls, key, None)):
            try:
                check_value(cls, key, value)
            except ValueError as error:
                raise MetadataError(
                    f"{where}: {name}: {error}: the metadata is corrupted or "
                    "was edited; re-export the model with emotf-export"
                ) from None


def metadata_corpus(metadata: dict, path) -> CorpusInfo:
    """The classes of a model's metadata as a `CorpusInfo`: its `class_codes` and `class_names`
    (2 to 1000 distinct codes, a name each), which must agree with its `corpus` block. An
    export written before corpora existed has no such block: CREMA-D's name and folds, its
    own classes.

    Raises:
        MetadataError: naming the file and the problem.
    """
    where = str(as_path(path))
    codes, names = metadata.get("class_codes"), metadata.get("class_names")
    if not isinstance(codes, list) or not isinstance(names, list):
        raise MetadataError(
            f"{where}: class_codes and class_names must be lists. "
            f"Received: class_codes={codes!r:.200}, class_names={names!r:.200}"
        )
    try:
        declared = CorpusInfo.of(metadata)
        info = CorpusInfo(declared.name, tuple(codes), tuple(names), declared.num_folds)
    except CorpusInfoError as error:
        raise MetadataError(
            f"{where}: {error}: the metadata is corrupted or was edited; re-export the model "
            "with emotf-export"
        ) from None
    if metadata.get(CORPUS_KEY) is not None and (info.class_codes, info.class_names) != (
        declared.class_codes,
        declared.class_names,
    ):
        raise MetadataError(
            f"{where}: class_codes / class_names differ from the corpus block's. Received: "
            f"{list(info.class_codes)} / {list(info.class_names)}; corpus: "
            f"{list(declared.class_codes)} / {list(declared.class_names)}"
        )
    return info


def check_metadata(metadata, path) -> dict:
    """Validate a SavedModel's emotf metadata; returns it unchanged.

    Raises:
        MetadataError: naming the file, the key and the value received.
    """
    where = str(as_path(path))
    if not isinstance(metadata, dict):
        raise MetadataError(f"{where}: expected a JSON object. Received: {type(metadata).__name__}")
    metadata_corpus(metadata, path)
    sampling = metadata.get("sampling_config")
    if not isinstance(sampling, dict):
        raise MetadataError(f"{where}: sampling_config missing or not an object")
    for key in REQUIRED_SAMPLING:
        if key not in sampling:
            raise MetadataError(f"{where}: sampling_config has no {key}")
    _check_block(where, "sampling_config", sampling, SamplingConfig)
    _check_block(where, "face_tracker", metadata.get("face_tracker") or {}, FaceTrackerConfig)
    for key, bounds in TOP_RANGES.items():
        if metadata.get(key) is not None:
            _check_value(where, key, metadata[key], bounds)
    clip = metadata.get("clip_settings") or {}
    _check_block(where, "clip_settings", clip, ClipSettings)
    _check_block(where, "clip_settings.tracker", clip.get("tracker") or {}, FaceTrackerConfig)
    timeline = metadata.get("timeline") or {}
    if not isinstance(timeline, dict):
        raise MetadataError(f"{where}: timeline must be an object. Received: {timeline!r:.200}")
    for key, bounds in TIMELINE_RANGES.items():
        if key in timeline:
            _check_value(where, key, timeline[key], bounds)
    return metadata
