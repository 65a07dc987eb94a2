"""One clip-settings contract from the build to emotf-predict: `clip_settings`, encoded by
`ClipSettings.to_dict` / `from_dict`, from the manifest into the metadata and back."""

import pytest

from emotf.media.faces import FaceTrackerConfig
from emotf.media.preprocess import MIN_CLIP_SECONDS, ClipSettings
from emotf.records.config import BuildConfig, clip_settings
from emotf.records.folder import RecordsFolder
from emotf.serving.metadata import DEFAULT_MIN_CLIP_SECONDS, build_settings, clip_settings_of
from emotf.storage import write_json

SETTINGS = ClipSettings(
    tracker=FaceTrackerConfig(margin=0.4, crop_size=64),
    sample_rate=8000,
    min_duration_s=0.7,
    max_duration_s=5.0,
)


def _records(tmp_path, manifest: dict):
    write_json(RecordsFolder(tmp_path).manifest_path, manifest)
    return tmp_path


def test_the_manifest_clip_settings_go_into_the_metadata_and_back(tmp_path):
    manifest = {"clip_settings": SETTINGS.to_dict(), "clip_seconds": {"median": 2.5}}
    settings = build_settings(_records(tmp_path, manifest))
    assert settings["clip_settings"] == SETTINGS.to_dict()
    # The signature's constants are the same settings, not a second source.
    assert settings["face_tracker"] == SETTINGS.tracker.to_dict()
    assert settings["min_clip_seconds"] == 0.7
    assert settings["timeline"] == {"window_seconds": 2.5, "hop_seconds": 1.0}
    metadata = {**settings, "sampling_config": {"sample_rate": 16000}}
    assert clip_settings_of(metadata) == SETTINGS


def test_a_manifest_from_before_clip_settings_gives_its_build_arguments(tmp_path):
    arguments = BuildConfig("d", "o", workers=1, tracker=SETTINGS.tracker, sample_rate=8000)
    manifest = {"arguments": {**arguments.to_dict(), "min_duration_s": 0.7}}
    settings = build_settings(_records(tmp_path, manifest))
    assert ClipSettings.from_dict(settings["clip_settings"]) == ClipSettings(
        tracker=SETTINGS.tracker, sample_rate=8000, min_duration_s=0.7
    )
    assert settings["min_clip_seconds"] == 0.7


def test_no_settings_without_a_manifest_or_from_a_sealed_one(tmp_path):
    assert build_settings(None) == {} and build_settings(tmp_path) == {}
    assert build_settings(_records(tmp_path, {"shards": [], "settings": {}})) == {}


def test_out_of_bounds_clip_settings_in_a_manifest_are_refused_by_name(tmp_path):
    bad = {**SETTINGS.to_dict(), "sample_rate": 10}
    with pytest.raises(ValueError, match="ClipSettings.sample_rate"):
        build_settings(_records(tmp_path, {"clip_settings": bad}))


def test_an_older_export_without_clip_settings_still_reads():
    metadata = {
        "face_tracker": {"margin": 0.4},
        "min_clip_seconds": 0.7,
        "sampling_config": {"sample_rate": 8000},
    }
    assert clip_settings_of(metadata) == ClipSettings(
        tracker=FaceTrackerConfig(margin=0.4), sample_rate=8000, min_duration_s=0.7
    )
    defaults = clip_settings_of({"sampling_config": {"sample_rate": 16000}})
    assert defaults.min_duration_s == DEFAULT_MIN_CLIP_SECONDS


def test_the_shortest_clip_is_declared_once():
    assert DEFAULT_MIN_CLIP_SECONDS == MIN_CLIP_SECONDS
    assert ClipSettings().min_duration_s == MIN_CLIP_SECONDS
    assert BuildConfig("d", "o", workers=1).min_duration_s == MIN_CLIP_SECONDS


def test_the_build_carries_one_clip_settings_object_to_every_task(tmp_path):
    from emotf.records.build import plan_build

    video, audio = tmp_path / "VideoFlash", tmp_path / "AudioWAV"
    video.mkdir()
    audio.mkdir()
    for clip in ("1001_DFA_ANG_XX", "1002_IEO_SAD_HI"):
        (video / f"{clip}.flv").write_bytes(b"")
        (audio / f"{clip}.wav").write_bytes(b"")
    config = BuildConfig(str(tmp_path), "unused", workers=1, tracker=SETTINGS.tracker)
    shards, _ = plan_build(config)
    tasks = [task for shard in shards for task in shard["clips"]]
    assert len(tasks) == 2
    assert all(task.settings == clip_settings(config) for task in tasks)
    assert tasks[0].settings is tasks[1].settings  # built once, not per clip
