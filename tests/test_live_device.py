"""`emotf-predict --live /dev/videoN`: a capture device read through the system `ffmpeg`.

`ffmpeg` here is a stand-in put first on PATH (a Python script): it logs its command line and
pid, then writes a synthetic talking-head clip as MPEG-TS on its standard output (made once by
`tools/bench_live.py feed`, as tests/test_live.py makes its streams), fails as ffmpeg does for
a missing camera, or hangs. The capture device is a link named video* in /dev/shm to /dev/null:
a real character device under /dev, so the device check runs unchanged.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import keras
import pytest

from emotf.cli.predict import main as predict_main
from emotf.configs import ModelConfig, SamplingConfig
from emotf.media.capture import capture_argv
from emotf.media.files import MediaError
from emotf.media.live_source import LiveSource
from emotf.model import build_model
from emotf.serving.export import export_saved_model
from emotf.synthetic.video import write_face_video

ROOT = Path(__file__).resolve().parents[1]
FEED = ROOT / "tools" / "bench_live.py"
N = 3
TINY = ModelConfig(
    num_segments=N, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)
CODES = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
WINDOW, HOP = 1.0, 0.5

FAKE_FFMPEG = '''#!{python}
"""A stand-in for ffmpeg (tests/test_live_device.py), as FAKE_FFMPEG_MODE says."""
import json, os, sys, time

with open(os.environ["FAKE_FFMPEG_LOG"], "a") as log:
    log.write(json.dumps({{"pid": os.getpid(), "argv": sys.argv[1:]}}) + "\\n")
mode = os.environ["FAKE_FFMPEG_MODE"]
if mode == "fail":
    sys.stderr.write(
        "[video4linux2,v4l2 @ 0x55d0c6b0e940] Cannot open video device /dev/video0: "
        "No such file or directory\\n/dev/video0: No such file or directory\\n"
    )
    sys.exit(1)
if mode in ("stream", "stream-then-hang"):
    with open(os.environ["FAKE_FFMPEG_STREAM"], "rb") as stream:
        while chunk := stream.read(188 * 64):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
if mode != "stream":
    time.sleep(300)  # output left open: a camera that stalls
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("live_device")
    keras.utils.set_random_seed(3)
    saved = export_saved_model(build_model(TINY), SamplingConfig(num_segments=N), root / "export")
    video = write_face_video(root / "face.mp4", 3.0, fps=25.0, width=320, height=240)
    stream = root / "face.ts"
    with open(stream, "wb") as out:
        subprocess.run(
            [sys.executable, str(FEED), "feed", str(video), "--pace", "1000", "--no-wait"],
            stdout=out,
            check=True,
            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        )
    bin_dir = root / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    fake.write_text(FAKE_FFMPEG.format(python=sys.executable))
    fake.chmod(0o755)
    return {"root": root, "model": saved, "stream": stream, "bin": bin_dir}


@pytest.fixture
def device():
    """A stand-in capture device: /dev/shm/video-... -> /dev/null (a character device)."""
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("needs a writable /dev/shm for a stand-in capture device")
    path = Path(f"/dev/shm/video-emotf-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    path.symlink_to("/dev/null")
    yield str(path)
    path.unlink()


@pytest.fixture(autouse=True)
def no_stray_children(tmp_path):
    """A test that fails leaves no stand-in behind (the children its ffmpeg.log names)."""
    yield
    for call in _calls(tmp_path / "ffmpeg.log"):
        if _running(call["pid"]):
            os.kill(call["pid"], signal.SIGKILL)


def _env(setup, mode: str, log: Path) -> dict:
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "PATH": f"{setup['bin']}{os.pathsep}{os.environ['PATH']}",
        "FAKE_FFMPEG_MODE": mode,
        "FAKE_FFMPEG_LOG": str(log),
        "FAKE_FFMPEG_STREAM": str(setup["stream"]),
    }
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def _predict(model, source: str, env: dict, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emotf.cli.predict",
            "--model",
            str(model),
            "--live",
            source,
            "--window",
            str(WINDOW),
            "--hop",
            str(HOP),
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _running(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _gone(pid: int, within: float = 5.0) -> bool:
    end = time.monotonic() + within
    while _running(pid) and time.monotonic() < end:
        time.sleep(0.05)
    return not _running(pid)


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("emotf-predict: error:")]


def test_the_ffmpeg_command_is_the_documented_one():
    argv = capture_argv("/dev/video0", "default")
    docs = (ROOT / "docs" / "live.md").read_text()
    docs = re.sub(r"\s+", " ", docs.replace("\\\n", " "))
    assert " ".join(argv) in docs
    assert argv[argv.index("v4l2") + 3 : argv.index("v4l2") + 5] == ["-i", "/dev/video0"]
    assert argv[argv.index("alsa") + 3 : argv.index("alsa") + 5] == ["-i", "default"]
    assert argv[-3:] == ["-flush_packets", "1", "-"] and "mpegts" in argv


def test_device_lines_come_from_the_ffmpeg_child(setup, device, tmp_path):
    log = tmp_path / "ffmpeg.log"
    reader = _predict(setup["model"], device, _env(setup, "stream", log))
    out, err = reader.communicate(timeout=180)
    assert reader.returncode == 0, err
    lines = [json.loads(text) for text in out.splitlines()]
    assert len(lines) >= int((3.0 - WINDOW) / HOP)  # 4 hop windows (+ the end's)
    assert [line["start"] for line in lines][:2] == [0.0, 0.5]
    for line in lines:
        assert line["label"] in CODES, line
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    summary = err.strip().splitlines()[-1]
    assert f"live {device}: {len(lines)} windows" in summary and "end of stream" in summary
    (call,) = _calls(log)
    assert call["argv"] == capture_argv(device, "default")[1:]  # the default microphone
    assert _gone(call["pid"])


def test_a_failing_ffmpeg_is_one_line_with_its_message(setup, device, tmp_path):
    log = tmp_path / "ffmpeg.log"
    reader = _predict(setup["model"], device, _env(setup, "fail", log), "--live-audio", "hw:1,0")
    out, err = reader.communicate(timeout=180)
    assert reader.returncode == 1 and out == "", err
    assert _errors(err) == [
        f"emotf-predict: error: {device}: ffmpeg failed (exit status 1): Cannot open video "
        "device /dev/video0: No such file or directory; /dev/video0: No such file or directory"
    ], err
    (call,) = _calls(log)
    assert call["argv"] == capture_argv(device, "hw:1,0")[1:]
    assert _gone(call["pid"])


def test_sigterm_mid_stream_stops_the_child(setup, device, tmp_path):
    log = tmp_path / "ffmpeg.log"
    reader = _predict(setup["model"], device, _env(setup, "stream-then-hang", log))
    first = reader.stdout.readline()
    assert json.loads(first)["start"] == 0.0
    (call,) = _calls(log)
    assert _running(call["pid"])
    reader.send_signal(signal.SIGTERM)
    code = reader.wait(timeout=30)
    err = reader.stderr.read()
    assert code == 143, err
    assert "interrupted" in err
    assert _gone(call["pid"]), "the ffmpeg child outlived emotf-predict"


def test_a_silent_ffmpeg_ends_at_the_deadline(setup, device, tmp_path):
    log = tmp_path / "ffmpeg.log"
    reader = _predict(setup["model"], device, _env(setup, "hang", log), "--live-timeout", "1")
    out, err = reader.communicate(timeout=180)
    assert reader.returncode == 1 and out == "", err
    assert _errors(err) == [f"emotf-predict: error: {device}: no data for 1 s"], err
    (call,) = _calls(log)
    assert _gone(call["pid"]), "the hung ffmpeg child outlived emotf-predict"


def _main(model, source: str, *extra) -> int:
    """`emotf-predict --live` in this process (for what ends before any stream is read)."""
    return predict_main(["--model", str(model), "--live", source, *extra])


def test_no_ffmpeg_is_one_line_before_the_model_loads(device, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert _main(tmp_path / "no-model-here", device) == 1  # the model: refused before it
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = _errors(err)
    assert line.startswith(f"emotf-predict: error: {device}: reading a capture device needs")
    assert "install ffmpeg" in line


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("/dev/video-emotf-missing-0", "no such capture device"),
        ("/dev/null", "not a capture device (one is named /dev/videoN)"),
    ],
)
def test_what_is_no_capture_device_is_refused_before_anything_starts(spec, problem):
    with pytest.raises(MediaError) as raised:
        LiveSource(spec).check()
    assert str(raised.value) == f"{spec}: {problem}"


def test_a_file_named_video_is_no_capture_device():
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("needs a writable /dev/shm")
    path = Path(f"/dev/shm/video-emotf-file-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    path.write_bytes(b"not a camera")
    try:
        with pytest.raises(MediaError, match=r"not a capture device \(not a character device\)"):
            LiveSource(str(path)).check()
    finally:
        path.unlink()


def test_a_missing_device_is_one_line_from_the_cli(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", f"{setup['bin']}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FFMPEG_MODE", "stream")
    monkeypatch.setenv("FAKE_FFMPEG_LOG", str(tmp_path / "ffmpeg.log"))
    assert _main(tmp_path / "no-model-here", "/dev/video-emotf-missing-0") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert _errors(err) == [
        "emotf-predict: error: /dev/video-emotf-missing-0: no such capture device"
    ], err
    assert not (tmp_path / "ffmpeg.log").exists()  # nothing was started


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"microphone": "none"}, "the model needs the speech"),
        ({"microphone": "-f lavfi"}, "an ALSA device name"),
        ({"format": "mpegts"}, "give it no container format"),
    ],
)
def test_device_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LiveSource("/dev/video0", **kwargs)


def test_a_microphone_is_for_a_device_only():
    with pytest.raises(ValueError, match="for a capture device"):
        LiveSource("-", microphone="hw:1,0")
    assert LiveSource("/dev/video0", microphone="plughw:CARD=U0x46d0x825,DEV=0").microphone


def test_live_audio_none_is_one_line_from_the_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as ended:
        _main(tmp_path / "no-model-here", "/dev/video0", "--live-audio", "none")
    assert ended.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = _errors(err)
    assert "the model needs the speech" in line and "Received: microphone='none'" in line
    with pytest.raises(SystemExit):
        _main(tmp_path / "no-model-here", "-", "--live-audio", "hw:1,0")
    (line,) = _errors(capsys.readouterr().err)
    assert "a microphone is for a capture device" in line
