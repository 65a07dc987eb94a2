"""Strict serving inputs: a fresh process (no emotf) loads the SavedModel; serving_default and
predict_segments refuse bad inputs with an error naming the input, and still answer good ones."""

import json
import os
import subprocess
import sys

import keras
import pytest

from emotf.configs import ModelConfig, SamplingConfig
from emotf.model import build_model
from emotf.serving.export import export_saved_model
from emotf.serving.metadata import DEFAULT_MIN_CLIP_SECONDS, min_clip_samples

N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)
SAMPLING = SamplingConfig(num_segments=N)

SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
serve, segments = m.signatures["serving_default"], m.signatures["predict_segments"]
L = int(sys.argv[2])

def good(**changes):
    x = dict(frames=tf.zeros([2, 40, 224, 224, 3], tf.uint8), num_frames=tf.constant([40, 30]),
             fps=tf.constant([30.0, 25.0]), waveform=tf.zeros([2, 24000]),
             num_samples=tf.constant([24000, 20000]), sample_rate=tf.constant([16000, 16000]))
    x.update(changes)
    return x

wave = np.zeros([2, 24000], np.float32)
nan_wave, inf_wave = wave.copy(), wave.copy()
nan_wave[1, 100] = np.nan
inf_wave[0, 5] = np.inf
cases = {
    "ok": lambda: serve(**good()),
    "nan_audio": lambda: serve(**good(waveform=tf.constant(nan_wave))),
    "inf_audio": lambda: serve(**good(waveform=tf.constant(inf_wave))),
    "fps_zero": lambda: serve(**good(fps=tf.constant([30.0, 0.0]))),
    "fps_negative": lambda: serve(**good(fps=tf.constant([-30.0, 25.0]))),
    "fps_nan": lambda: serve(**good(fps=tf.constant([np.nan, 25.0], tf.float32))),
    "fps_inf": lambda: serve(**good(fps=tf.constant([np.inf, 25.0], tf.float32))),
    "batch_fps": lambda: serve(**good(fps=tf.constant([30.0]))),
    "batch_waveform": lambda: serve(**good(waveform=tf.zeros([3, 24000]))),
    "fps_tiny": lambda: serve(**good(fps=tf.constant([30.0, 1e-30]))),
    "fps_huge": lambda: serve(**good(fps=tf.constant([30.0, 5000.0]))),
    "num_samples_zero": lambda: serve(**good(num_samples=tf.constant([24000, 0]))),
    "num_samples_short": lambda: serve(**good(num_samples=tf.constant([7999, 24000]))),
    "num_samples_shortest_ok": lambda: serve(**good(num_samples=tf.constant([8000, 24000]))),
    "num_frames_zero": lambda: serve(**good(num_frames=tf.constant([0, 30]))),
    "sample_rate_other": lambda: serve(**good(sample_rate=tf.constant([16000, 44100]))),
    "fps_lowest_ok": lambda: serve(**good(fps=tf.constant([1.0, 1000.0]))),
    "batch_sample_rate": lambda: serve(**good(sample_rate=tf.constant([16000, 16000, 16000]))),
    "rank_waveform": lambda: serve(**good(waveform=tf.zeros([2, 24000, 1]))),
    "rank_fps": lambda: serve(**good(fps=tf.constant(30.0))),
    "segments_ok": lambda: segments(frames=tf.zeros([2, %N%, 224, 224, 3], tf.uint8),
                                    audio=tf.zeros([2, %N%, L])),
    "segments_nan": lambda: segments(frames=tf.zeros([2, %N%, 224, 224, 3], tf.uint8),
                                     audio=tf.fill([2, %N%, L], np.nan)),
    "segments_rank": lambda: segments(frames=tf.zeros([2, %N%, 224, 224, 3], tf.uint8),
                                      audio=tf.zeros([2, %N%, L, 1])),
    "segments_batch": lambda: segments(frames=tf.zeros([2, %N%, 224, 224, 3], tf.uint8),
                                       audio=tf.zeros([1, %N%, L])),
}
report = {}
for name, call in cases.items():
    try:
        out = call()
        report[name] = "ok " + str(np.round(out["probabilities"].numpy().sum(-1), 4).tolist())
    except Exception as error:  # noqa: BLE001
        report[name] = type(error).__name__ + ": " + str(error)[:600]
assert not [k for k in sys.modules if k == "emotf" or k.startswith("emotf.")]
print(json.dumps(report))
""".replace("%N%", str(N))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    keras.utils.set_random_seed(2)
    saved = export_saved_model(build_model(TINY), SAMPLING, tmp_path_factory.mktemp("export"))
    env = {**os.environ, "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(saved), str(SAMPLING.window_length)],
        cwd=tmp_path_factory.mktemp("cwd"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_wrong_rank_is_refused_naming_the_input(report):
    assert "Shape of tensor waveform [2,24000,1] is not compatible" in report["rank_waveform"]
    assert "Shape of tensor fps [] is not compatible" in report["rank_fps"]
    assert "Shape of tensor audio [2,3,20480,1] is not compatible" in report["segments_rank"]


def test_good_inputs_still_answer(report):
    assert report["ok"] == "ok [1.0, 1.0]" and report["segments_ok"] == "ok [1.0, 1.0]"
    # The bounds themselves are accepted: 1 and 1000 fps, the shortest clip the build takes.
    assert report["fps_lowest_ok"] == "ok [1.0, 1.0]"
    assert report["num_samples_shortest_ok"] == "ok [1.0, 1.0]"


def test_the_shortest_clip_is_the_builds_not_a_retyped_number():
    from emotf.media.preprocess import ClipSettings

    assert DEFAULT_MIN_CLIP_SECONDS == ClipSettings().min_duration_s
    assert min_clip_samples(DEFAULT_MIN_CLIP_SECONDS, SAMPLING.sample_rate) == 8000
    assert min_clip_samples(0.7, 16000) == 11200 and min_clip_samples(0.0, 16000) == 1


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("nan_audio", "waveform must be finite"),
        ("inf_audio", "waveform must be finite"),
        ("fps_zero", "fps must be in [1, 1000] frames per second. Received:] [30 0]"),
        ("fps_negative", "fps must be in [1, 1000]"),
        ("fps_tiny", "fps must be in [1, 1000] frames per second. Received:] [30 1e-30]"),
        ("fps_huge", "fps must be in [1, 1000]"),
        (
            "num_samples_zero",
            "num_samples must be >= 8000 (the shortest clip the model was built "
            "for). Received:] [24000 0]",
        ),
        ("num_samples_short", "num_samples must be >= 8000"),
        ("num_frames_zero", "num_frames must be >= 1"),
        (
            "sample_rate_other",
            "sample_rate must be 16000 (the sample rate the model was trained at). "
            "Received:] [16000 44100]",
        ),
        ("fps_nan", "fps must be finite"),
        ("fps_inf", "fps must be finite"),
        ("batch_fps", "batch size of fps differs from that of frames"),
        ("batch_waveform", "batch size of waveform differs from that of frames"),
        ("batch_sample_rate", "batch size of sample_rate differs from that of frames"),
        ("segments_nan", "audio must be finite"),
        ("segments_batch", "batch size of audio differs from that of frames"),
    ],
)
def test_bad_inputs_are_refused_naming_the_input(report, case, says):
    assert not report[case].startswith("ok"), (case, report[case])
    assert says in report[case], (case, report[case])
