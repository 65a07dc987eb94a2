"""The one clip-preprocessing contract: emotf-build-records and emotf-predict turn the same raw
file into the same face crops and audio, with settings that travel manifest -> model."""

import json

import numpy as np
import pytest
import tensorflow as tf

from emotf import keys
from emotf.configs import ModelConfig, SamplingConfig
from emotf.media.faces import FaceTrackerConfig
from emotf.media.preprocess import ClipSettings
from emotf.model import build_model
from emotf.records.build import build_records
from emotf.records.config import BuildConfig
from emotf.serving.export import export_saved_model, read_metadata
from emotf.serving.metadata import MetadataError, check_metadata
from emotf.serving.predict import Predictor, predict_files
from emotf.synthetic.sample import SampleConfig, make_sample

N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)


def test_build_and_predict_give_identical_crops_and_audio(tmp_path, monkeypatch):
    [video] = make_sample(
        tmp_path / "sample",
        SampleConfig.tiny(num_actors=1, clips_per_actor=1),
        workers=1,
        progress=False,
    )
    tracker = FaceTrackerConfig(margin=0.5, jpeg_quality=75)
    records = tmp_path / "records"
    build_records(
        BuildConfig(
            data_dir=str(tmp_path / "sample"),
            out_dir=str(records),
            workers=1,
            progress=False,
            tracker=tracker,
            verify_media=False,
        )
    )
    manifest = json.loads((records / "manifest.json").read_text())
    settings = ClipSettings(tracker=tracker)
    assert manifest["clip_settings"] == settings.to_dict()
    # The fingerprint hashes exactly these settings (plus the fold plan and schema).
    assert {k: manifest["settings"][k] for k in settings.to_dict()} == settings.to_dict()
    saved = export_saved_model(
        build_model(TINY), SamplingConfig(num_segments=N), tmp_path / "export", records_dir=records
    )
    metadata = read_metadata(saved)
    assert metadata["clip_settings"] == manifest["clip_settings"]  # copied verbatim
    assert metadata["timeline"]["window_seconds"] == manifest["clip_seconds"]["median"]

    [record] = [
        r for f in sorted(records.glob("*.tfrecord")) for r in tf.data.TFRecordDataset(str(f))
    ]
    example = tf.train.Example.FromString(record.numpy())
    feature = example.features.feature
    stored = np.stack(
        [
            tf.io.decode_jpeg(j, channels=3, dct_method="INTEGER_ACCURATE").numpy()
            for j in feature[keys.VIDEO_FRAMES].bytes_list.value
        ]
    )
    pcm = np.frombuffer(feature[keys.AUDIO_PCM16].bytes_list.value[0], "<i2")

    predictor = Predictor(saved)
    assert predictor.settings == settings
    seen = []
    real = predictor.run_model
    monkeypatch.setattr(predictor, "run_model", lambda clips: seen.extend(clips) or real(clips))
    wav = tmp_path / "sample" / "AudioWAV" / f"{video.stem}.wav"
    [result] = predict_files(None, [video], [wav], predictor=predictor, window=10)
    assert "error" not in result, result
    [clip] = seen
    assert clip["frames"].shape == stored.shape
    np.testing.assert_array_equal(clip["frames"], stored)
    np.testing.assert_array_equal(clip["pcm16"], pcm)
    assert clip["fps"] == feature[keys.VIDEO_FPS].float_list.value[0]


def test_metadata_checks_cover_the_new_settings():
    base = {
        "class_codes": ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"],
        "class_names": list("abcdef"),
        "sampling_config": SamplingConfig(num_segments=N).to_dict(),
    }
    check_metadata(
        {
            **base,
            "timeline": {"window_seconds": 2.5, "hop_seconds": 1.0},
            "clip_settings": ClipSettings().to_dict(),
        },
        "m.json",
    )
    for bad in (
        {"timeline": {"window_seconds": 0.0, "hop_seconds": 1.0}},
        {"timeline": {"window_seconds": 2.5, "hop_seconds": float("nan")}},
        {"clip_settings": {**ClipSettings().to_dict(), "sample_rate": 10**9}},
        {"clip_settings": {"tracker": {"crop_size": 100000}}},
    ):
        try:
            check_metadata({**base, **bad}, "m.json")
        except MetadataError as error:
            assert "m.json" in str(error)
        else:
            raise AssertionError(f"accepted {bad}")


def test_a_refused_clip_leaves_no_video_file_open(tmp_path, monkeypatch):
    """ClipReader gives up before decoding (too long, no usable audio): the container that
    `open_video` opened is closed at once, not whenever the garbage collector runs."""
    import emotf.media.decode as decode
    from emotf.media.preprocess import ClipError, ClipReader

    closed = []
    real_open = decode.open_video

    def spy_open(path):
        info, frames = real_open(path)
        real_close = info.close
        info.close = lambda: (closed.append(path), real_close())
        return info, frames

    import emotf.media.preprocess as preprocess

    monkeypatch.setattr(preprocess, "open_video", spy_open)
    [video] = make_sample(
        tmp_path / "sample",
        SampleConfig.tiny(num_actors=1, clips_per_actor=1),
        workers=1,
        progress=False,
    )
    with pytest.raises(ClipError, match="over the 0.1 s limit"):
        ClipReader(video, None, ClipSettings(), max_seconds=0.1)
    assert closed == [video]


@pytest.mark.parametrize(
    "values, field",
    [
        ({"sample_rate": 10**9}, "sample_rate"),
        ({"sample_rate": 16000.5}, "sample_rate"),
        ({"min_duration_s": -1.0}, "min_duration_s"),
        ({"max_duration_s": 0.0}, "max_duration_s"),
        ({"max_duration_s": float("inf")}, "max_duration_s"),
        ({"min_duration_s": 5.0, "max_duration_s": 1.0}, "min_duration_s"),
        ({"tracker": {"crop_size": 100000}}, "crop_size"),
        ({"tracker": {"stages": "x"}}, "stages"),
        ({"tracker": "x"}, "tracker"),
    ],
)
def test_clip_settings_refuse_out_of_range_values_in_one_line(values, field):
    """The settings a manifest or a SavedModel's metadata carries are checked on reading too."""
    import dataclasses

    from emotf.bounds import bound_of

    with pytest.raises(ValueError, match=rf"^(ClipSettings|FaceTrackerConfig)\.{field} ") as error:
        ClipSettings.from_dict(values)
    assert "\n" not in str(error.value)
    for f in dataclasses.fields(ClipSettings):
        assert bound_of(f) is not None and bound_of(f).help, f.name
