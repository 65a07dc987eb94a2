"""Capture devices for `emotf-predict --live /dev/videoN`: the camera and a microphone read by
the system `ffmpeg` in a child process, muxed to MPEG-TS on its standard output, which the live
demuxer (`emotf.media.live_source.LiveFeed`) reads like any other stream:

    ffmpeg -hide_banner -nostdin -loglevel error -f v4l2 -thread_queue_size 512 -i /dev/videoN
        -f alsa -thread_queue_size 512 -i MICROPHONE -map 0:v:0 -map 1:a:0 -c:v libx264
        -preset ultrafast -tune zerolatency -pix_fmt yuv420p -c:a aac -f mpegts
        -flush_packets 1 -

(`capture_argv`; PyAV's wheels ship an FFmpeg without `v4l2`, and a webcam has no sound: the
microphone is an ALSA device, `default` unless named.) The child is bounded: the path is checked
before anything starts (`check_device`: a character device named video*), a missing `ffmpeg` is
one line (`find_ffmpeg`), its first packet has the live source's deadline, a failure is one line
with the tail of its standard error (`Capture.failure`), and it is stopped (SIGTERM, then
SIGKILL) when the stream ends for any reason (`Capture.stop`). It runs in its own session, so a
Ctrl-C on the terminal reaches emotf only, which stops it; if emotf dies without stopping it,
its next write into the closed pipe ends it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import threading
from collections import deque
from pathlib import Path

from emotf.media.files import MediaError

# The microphone when none is named (ALSA's default capture device); NO_MICROPHONE refused: the
# model needs the speech, and emotf has no silent-audio mode.
DEFAULT_MICROPHONE = "default"
NO_MICROPHONE = "none"
# An ALSA device name: `default`, `hw:1,0`, `plughw:CARD=U0x46d0x825,DEV=0`, `pulse`, ...
_ALSA_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_:,=.-]{0,199}")
# Capture device files are named video* (`/dev/video0`; a link such as /dev/v4l/by-id/... is
# accepted when it points at one).
DEVICE_PREFIX = "video"
# Lines of the child's standard error kept (the tail a failure reports), and how many of them
# the one-line message quotes.
STDERR_LINES = 20
QUOTED_LINES = 3
# Seconds given to the child to exit after SIGTERM (then SIGKILL), and to report its exit
# status once its output has ended.
STOP_S = 2.0
EXIT_S = 1.0
# `[video4linux2,v4l2 @ 0x55d0c6b0e940] ` before an FFmpeg log line.
_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*")

__all__ = [
    "DEFAULT_MICROPHONE",
    "NO_MICROPHONE",
    "Capture",
    "capture_argv",
    "check_device",
    "find_ffmpeg",
    "microphone_problem",
]


def microphone_problem(microphone: str) -> str | None:
    """Why `microphone` cannot be a capture device's microphone (None: it can)."""
    if microphone == NO_MICROPHONE:
        return (
            "a capture device is read with a microphone (the model needs the speech, and a "
            "webcam has none): name an ALSA capture device (default, hw:1,0, plughw:CARD=...). "
            f"Received: microphone={microphone!r}"
        )
    if not isinstance(microphone, str) or not _ALSA_NAME.fullmatch(microphone):
        return (
            "the microphone is an ALSA device name (default, hw:1,0, plughw:CARD=...). "
            f"Received: microphone={microphone!r}"
        )
    return None


def check_device(path: str) -> None:
    """Refuse (MediaError naming `path`) what is not a readable capture device: missing, not
    named video* (nor a link to one), not a character device, not readable."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MediaError(path, "no such capture device") from None
    except OSError as error:
        raise MediaError(path, f"cannot open ({error.strerror})") from None
    names = (Path(path).name, Path(os.path.realpath(path)).name)
    if not any(name.startswith(DEVICE_PREFIX) for name in names):
        raise MediaError(path, f"not a capture device (one is named /dev/{DEVICE_PREFIX}N)")
    if not stat.S_ISCHR(mode):
        raise MediaError(path, "not a capture device (not a character device)")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "cannot open (permission denied: is this user in the video group?)")


def find_ffmpeg(device: str) -> str:
    """The `ffmpeg` program on PATH; MediaError naming `device` when there is none."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise MediaError(
            device,
            "reading a capture device needs the ffmpeg program, not found on PATH: install "
            "ffmpeg (apt install ffmpeg, dnf install ffmpeg, brew install ffmpeg)",
        )
    return found


def capture_argv(device: str, microphone: str, ffmpeg: str = "ffmpeg") -> list[str]:
    """The child's command line: camera `device` (v4l2) and ALSA `microphone`, H.264 + AAC in
    MPEG-TS on standard output, each packet flushed (latency), only errors logged."""
    return [
        ffmpeg,
        *("-hide_banner", "-nostdin", "-loglevel", "error"),
        *("-f", "v4l2", "-thread_queue_size", "512", "-i", device),
        *("-f", "alsa", "-thread_queue_size", "512", "-i", microphone),
        *("-map", "0:v:0", "-map", "1:a:0"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-f", "mpegts", "-flush_packets", "1", "-"),
    ]


class Capture:
    """The `ffmpeg` child of one capture device: `start` it, read MPEG-TS from `fd`, `stop` it.

    Attributes:
        device, microphone: what is read.
        process: the `subprocess.Popen` once started.
    """

    def __init__(self, device: str, microphone: str = DEFAULT_MICROPHONE):
        self.device, self.microphone = device, microphone
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self._tail: deque[str] = deque(maxlen=STDERR_LINES)
        self._reader: threading.Thread | None = None

    def start(self) -> int:
        """Check the device and ffmpeg, start the child; the file descriptor of its output.

        Raises:
            MediaError: naming the device (see `check_device`, `find_ffmpeg`), or the child
                cannot be started.
        """
        check_device(self.device)
        argv = capture_argv(self.device, self.microphone, find_ffmpeg(self.device))
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches emotf only: emotf stops the child
            )
        except OSError as error:
            raise MediaError(self.device, f"cannot start ffmpeg ({error.strerror})") from None
        self.process = process
        self._reader = threading.Thread(
            target=self._drain, daemon=True, name="emotf-capture-stderr"
        )
        self._reader.start()
        assert process.stdout is not None  # stdout=PIPE
        return process.stdout.fileno()

    def _drain(self) -> None:
        """Read the child's standard error to its end (a full pipe would stall it), keeping
        the last `STDERR_LINES` lines."""
        process = self.process
        if process is None or process.stderr is None:
            return
        for raw in process.stderr:
            line = _LOG_PREFIX.sub("", raw.decode("utf-8", "replace")).strip()
            if line:
                self._tail.append(line)

    def failure(self) -> MediaError | None:
        """The child's failure as one line naming the device (its exit status and the tail of
        its standard error), or None: still running (waited up to `EXIT_S`), exited with 0,
        or stopped by `stop`."""
        if self.process is None or self.stopping:
            return None
        try:
            code = self.process.wait(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            return None
        if code == 0:
            return None
        if self._reader is not None:
            self._reader.join(timeout=EXIT_S)
        quoted = list(dict.fromkeys(self._tail))[-QUOTED_LINES:]
        what = f"exit status {code}" if code > 0 else f"killed by signal {-code}"
        said = "; ".join(quoted)[:400] if quoted else "no message"
        return MediaError(self.device, f"ffmpeg failed ({what}): {said}")

    def stop(self) -> None:
        """End the child (SIGTERM, SIGKILL after `STOP_S`) and reap it; idempotent."""
        self.stopping = True
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout=STOP_S)

    def close_output(self) -> None:
        """Close emotf's end of the child's output (once nothing reads it any more)."""
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
