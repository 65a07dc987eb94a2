"""`emotf-predict --live`: a video written into a pipe at real-time pace by another process.

The writer is `tools/bench_live.py feed` (MPEG-TS: H.264 + AAC, frame by frame, flushed, its
clock started once the reader takes the first bytes); the reader is `emotf-predict --live -` in
its own process, as a user runs it. Loopback only: nothing leaves this machine.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from emotf.configs import ModelConfig, SamplingConfig
from emotf.media.files import MediaError
from emotf.media.live_source import LiveSource, open_live
from emotf.model import build_model
from emotf.serving.export import export_saved_model
from emotf.serving.live import window_line
from emotf.synthetic.video import write_face_video

ROOT = Path(__file__).resolve().parents[1]
FEED = ROOT / "tools" / "bench_live.py"
N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)
CODES = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
WINDOW, HOP = 1.0, 0.5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    keras.utils.set_random_seed(3)
    saved = export_saved_model(build_model(TINY), SamplingConfig(num_segments=N), root / "export")
    video = write_face_video(root / "face.mp4", 8.0, fps=25.0, width=320, height=240)
    return {"root": root, "model": saved, "video": video}


def _env() -> dict:
    """CPU only; TF_CPP_MIN_LOG_LEVEL unset, so that emotf keeps TensorFlow's log off stderr."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def _writer(video, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(FEED), "feed", str(video), "--log", str(log)],
        stdout=subprocess.PIPE,
        env=_env(),
    )


def _reader(model, stdin, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emotf.cli.predict",
            "--model",
            str(model),
            "--live",
            "-",
            "--window",
            str(WINDOW),
            "--hop",
            str(HOP),
            *extra,
        ],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _frame_times(log: Path) -> list[float]:
    return [
        float(row.split()[1])
        for row in log.read_text().splitlines()
        if row and not row.startswith("start")
    ]


def test_lines_arrive_while_the_stream_is_written(setup, tmp_path):
    log = tmp_path / "frames.log"
    writer = _writer(setup["video"], log)
    reader = _reader(setup["model"], writer.stdout)
    writer.stdout.close()  # the reader holds the only read end
    lines, arrivals = [], []
    for text in reader.stdout:
        arrivals.append(time.monotonic())
        lines.append(json.loads(text))
    err = reader.stderr.read()
    assert reader.wait(timeout=60) == 0, err
    assert writer.wait(timeout=60) == 0
    written = _frame_times(log)
    assert len(written) == 200
    # the first window's line came while the writer still had seconds of stream to write
    assert arrivals[0] < written[-1] - 2.0, (arrivals[0], written[-1])
    starts = [line["start"] for line in lines]
    assert starts == sorted(set(starts)) and starts[0] == 0.0
    assert len(lines) >= int((8.0 - WINDOW) / HOP)  # 14 hop windows (+ the end's)
    for line in lines:
        assert set(line) >= {"start", "end", "face_id", "probabilities", "label"}
        assert "skipped" not in line, line
        assert line["end"] - line["start"] == pytest.approx(WINDOW, abs=0.05)
        assert line["label"] in CODES
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    summary = err.strip().splitlines()[-1]
    assert "end of stream" in summary and f"{len(lines)} windows" in summary


def test_sigint_mid_stream_ends_within_seconds(setup, tmp_path):
    writer = _writer(setup["video"], tmp_path / "frames.log")
    reader = _reader(setup["model"], writer.stdout)
    writer.stdout.close()
    first = reader.stdout.readline()  # the stream is flowing: a window has closed
    assert json.loads(first)["start"] == 0.0
    sent = time.monotonic()
    reader.send_signal(signal.SIGINT)
    code = reader.wait(timeout=15)
    took = time.monotonic() - sent
    err = reader.stderr.read()
    writer.kill()
    writer.wait()
    assert code == 130, err
    assert took < 6.0, took
    assert "interrupted" in err


def test_garbage_on_stdin_is_one_line(setup, tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"this is not a video stream\n" * 4000)
    with open(garbage, "rb") as stdin:
        reader = _reader(setup["model"], stdin)
        out, err = reader.communicate(timeout=120)
    assert reader.returncode == 1 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("emotf-predict: error:")]
    assert errors == [
        "emotf-predict: error: standard input (-): not a media stream (no "
        "container format recognised)"
    ], err


def test_silent_source_ends_at_its_deadline(setup):
    """A pipe that stays open but sends nothing: one line naming the source, at the deadline."""
    read_end, write_end = os.pipe()
    try:
        started = time.monotonic()
        with pytest.raises(MediaError, match=r"pipe:\d+: no data for 1 s"):
            open_live(LiveSource(f"pipe:{read_end}", timeout_s=1.0), 16000)
        assert time.monotonic() - started < 5
    finally:
        os.close(write_end)
        os.close(read_end)


def test_held_frames_and_audio_stay_bounded(setup):
    """In-process: the same stream through `Predictor.predict_video` with a `LiveSource`; what
    is held does not grow with the stream (compared with the frames streamed)."""
    from emotf.serving.live import LiveRun, predict_live
    from emotf.serving.predict import Predictor

    writer = subprocess.Popen(
        [sys.executable, str(FEED), "feed", str(setup["video"]), "--pace", "4"],
        stdout=subprocess.PIPE,
        env=_env(),
    )
    try:
        predictor = Predictor(setup["model"])
        lines = []

        class Out:
            def write(self, text):
                lines.append(json.loads(text))

            def flush(self):
                pass

        run = LiveRun("pipe")
        predict_live(
            predictor,
            LiveSource(f"pipe:{writer.stdout.fileno()}"),
            window=WINDOW,
            hop=HOP,
            out=Out(),
            run=run,
        )
    finally:
        writer.stdout.close()
        writer.wait(timeout=30)
    stats = predictor.last_stats
    assert stats["frames"] == 200 and run.lines == len(lines) >= 14
    assert stats["max_crops_held"] <= (WINDOW + 0.5) * 25  # a window (+ the tracker's lag)
    assert stats["max_audio_samples_held"] <= (WINDOW + 0.5) * 16000
    assert stats["max_frames_held"] <= 30


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("/dev/video99", "no such capture device"),
        ("udp://127.0.0.1:9", "no data for 0.5 s"),
        ("http://127.0.0.1:9/stream.ts", "cannot open (Connection refused)"),
    ],
)
def test_bad_sources_name_themselves(spec, problem):
    with pytest.raises(MediaError) as raised:
        open_live(LiveSource(spec, timeout_s=0.5), 16000)
    assert str(raised.value).startswith(f"{spec}: ") and problem in str(raised.value)


def test_not_a_live_source_is_refused():
    with pytest.raises(ValueError, match="Received: 'clip.mp4'"):
        LiveSource("clip.mp4")


def test_window_line_from_either_entry_form():
    probs = np.array([0.1, 0.1, 0.1, 0.5, 0.1, 0.1])
    raw = window_line(
        {"start": 0.5, "end": 1.5, "probabilities": probs, "label": 3, "face_id": 0}, CODES
    )
    formatted = window_line(
        {
            "start": 0.5,
            "end": 1.5,
            "face_id": 0,
            "label": "HAP",
            "probabilities": dict(zip(CODES, probs.tolist(), strict=True)),
        },
        CODES,
    )
    assert raw == formatted and raw["label"] == "HAP" and "skipped" not in raw
    skipped = window_line(
        {
            "start": 0,
            "end": 1,
            "probabilities": None,
            "label": None,
            "skipped": "no face in 25 of 25 frames",
        },
        CODES,
    )
    assert skipped["skipped"] == "no face in 25 of 25 frames" and skipped["label"] is None


def test_a_url_is_read_in_one_pass_with_the_audio_aligned(setup, tmp_path):
    """An MPEG-TS served over HTTP (loopback): every frame on the grid, and as much audio as
    video (the audio is aligned to the first video frame)."""
    import functools
    import http.server
    import threading

    ts = tmp_path / "clip.ts"
    with open(ts, "wb") as out:
        subprocess.run(
            [sys.executable, str(FEED), "feed", str(setup["video"]), "--pace", "1000", "--no-wait"],
            stdout=out,
            check=True,
            env=_env(),
        )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/clip.ts"
        info, frames, audio, feed = open_live(LiveSource(url, timeout_s=5), 16000)
        count = sum(1 for _ in frames)
        audio.read_until(None)
    finally:
        server.shutdown()
    assert count == info.frames == 200 and info.fps == 25.0 and info.width == 320
    assert abs(audio.total / 16000 - count / 25.0) < 0.1, audio.total
    assert feed.stats["packets_dropped"] == 0
