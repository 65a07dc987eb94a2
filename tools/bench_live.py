"""Live input, measured: a video fed at real-time pace through a pipe into `emotf-predict --live -`.

    python tools/bench_live.py --model DIR [--video FILE | --seconds 60] [--window S --hop S]
    python tools/bench_live.py feed VIDEO [--pace 1.0] [--log FILE] > stream.ts   (the writer alone)

The writer (`feed`, run as its own process) decodes VIDEO (`emotf.media.decode`: frames on the
constant-rate grid, audio at 16 kHz) and re-encodes it as MPEG-TS (H.264 `ultrafast` /
`zerolatency`, AAC) on its standard output, frame by frame, each frame (with the audio up to its
end) written and flushed no earlier than its stream time after the start: a camera, as a pipe
sees it. It logs the wall time (`time.monotonic`, one clock for every process of this machine)
at which each frame had been written.

The benchmark starts `emotf-predict --model DIR --live -` reading the writer's output, records the
wall time each JSON line arrives, and reports:

    latency     arrival of a window's line - the wall time its last frame was written
                (frame ceil(end * fps) - 1): median and p95, over the scored windows
    RTF         the predictor's processing time / stream time: the CPU time of the
                emotf-predict process (user + system, from /proc) over the stream's seconds
                (< 1: keeps up; the first seconds, TensorFlow's start-up and the model's load,
                are left out: the clock starts at the first frame written)

Without `--video`, a synthetic one (`emotf.synthetic.video.write_face_video`: the astronaut's head
drifting, speech-like audio) of `--seconds` is written first.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


class _Counted:
    """A binary file object that counts the bytes written through it."""

    def __init__(self, out):
        self.out, self.written = out, 0

    def write(self, data) -> int:
        self.out.write(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def _wait_drained(fd: int, seconds: float = 300.0) -> None:
    """Until the reader has taken everything written to the pipe `fd` (Linux FIONREAD)."""
    import fcntl
    import termios

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0] == 0:
            return
        time.sleep(0.01)


def feed(
    video,
    out,
    *,
    pace: float = 1.0,
    log=None,
    sample_rate: int = 16000,
    width: int | None = None,
    wait_reader: bool = True,
) -> int:
    """Write `video` as MPEG-TS (H.264 + AAC, interleaved frame by frame) to the binary file
    object `out`, at `pace` x real time; one line per frame `index wall_time` to `log`.

    With `wait_reader` (and `out` a pipe), the clock starts once the reader has taken the first
    bytes (a camera switched on when the reader is ready: its start-up, TensorFlow's import
    and the model's load, is not in the figures). Returns the frames written. A reader that
    goes away (BrokenPipeError) ends the feed."""
    import av

    from emotf.media.decode import AudioStream, open_video

    info, frames = open_video(video)
    audio = AudioStream(video, sample_rate)
    fps = info.fps
    rate = Fraction(fps).limit_denominator(1001)
    w, h = info.width, info.height
    if width is not None and width < w:
        w, h = width, int(round(h * width / w / 2)) * 2
    sink = _Counted(out)
    container = av.open(sink, "w", format="mpegts", container_options={"flush_packets": "1"})
    video_out = container.add_stream("libx264", rate=rate)
    video_out.width, video_out.height, video_out.pix_fmt = w, h, "yuv420p"
    video_out.options = {"preset": "ultrafast", "tune": "zerolatency"}
    sound = container.add_stream("aac", rate=sample_rate)
    sound.layout = "mono"
    written, sent_samples = 0, 0
    waiting = (
        wait_reader
        and not os.isatty(out.fileno())
        and stat.S_ISFIFO(os.fstat(out.fileno()).st_mode)
    )
    start = time.monotonic()
    if log is not None and not waiting:
        log.write(f"start {start:.6f}\n")
    try:
        for i, rgb in enumerate(frames):
            due = start + i / fps / pace
            time.sleep(max(0.0, due - time.monotonic()))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if (w, h) != (info.width, info.height):
                frame = frame.reformat(width=w, height=h)
            frame.pts, frame.time_base = i, 1 / rate
            packets = list(video_out.encode(frame))
            upto = int(round((i + 1) / fps * sample_rate))
            pcm = audio.samples(sent_samples, upto)
            audio.drop_before(upto)
            if len(pcm):
                chunk = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = sample_rate, sent_samples
                chunk.time_base = Fraction(1, sample_rate)
                packets += list(sound.encode(chunk))
                sent_samples += len(pcm)
            container.mux(packets)
            out.flush()
            if waiting and sink.written:
                _wait_drained(out.fileno())
                waiting, start = False, time.monotonic() - i / fps / pace
                if log is not None:
                    log.write(f"start {time.monotonic():.6f}\n")
            written = i + 1
            if log is not None:
                log.write(f"{i} {time.monotonic():.6f}\n")
                log.flush()
        container.mux(list(video_out.encode()) + list(sound.encode()))
        container.close()
        out.flush()
    except BrokenPipeError:
        pass
    return written


def _percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if values else float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(model, video, *, window=None, hop=None, pace: float = 1.0, extra=()) -> dict:
    """Run the writer and `emotf-predict --live -` on `video`; the figures of the docstring."""
    with tempfile.TemporaryDirectory(prefix="emotf-bench-live-") as tmp:
        log_path = Path(tmp) / "frames.log"
        predict = [sys.executable, "-m", "emotf.cli.predict", "--model", str(model), "--live", "-"]
        predict += [
            a
            for flag, v in (("--window", window), ("--hop", hop))
            if v is not None
            for a in (flag, str(v))
        ] + list(extra)
        writer = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "feed",
                str(video),
                "--pace",
                str(pace),
                "--log",
                str(log_path),
            ],
            stdout=subprocess.PIPE,
        )
        reader = subprocess.Popen(
            predict, stdin=writer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        writer.stdout.close()  # the reader's copy is the only one: its exit ends the writer
        arrivals, lines = [], []
        cpu_at_first_frame: list[float] = []

        def watch_start():  # the reader's CPU time when the writer's clock started
            while writer.poll() is None and not cpu_at_first_frame:
                if log_path.exists() and "start" in log_path.read_text():
                    cpu_at_first_frame.append(_cpu_seconds(reader.pid))
                    return
                time.sleep(0.005)

        watcher = threading.Thread(target=watch_start, daemon=True)
        watcher.start()
        cpu_end = 0.0
        for line in reader.stdout:
            arrivals.append(time.monotonic())
            lines.append(json.loads(line))
            cpu_end = _cpu_seconds(reader.pid)
        err = reader.stderr.read()
        reader.wait()
        writer.wait()
        watcher.join(timeout=1)
        written, clock = {}, None
        for row in log_path.read_text().split("\n"):
            if row.startswith("start"):
                clock = float(row.split()[1])
            elif row:
                i, t = row.split()
                written[int(i)] = float(t)
    if reader.returncode != 0 or not lines:
        raise SystemExit(f"emotf-predict --live exited {reader.returncode}:\n{err[-2000:]}")
    from emotf.media.decode import open_video

    info, _ = open_video(video)
    info.close()
    fps = info.fps
    latencies = []
    for line, arrived in zip(lines, arrivals, strict=True):
        if line.get("skipped"):
            continue
        last = min(int(np.ceil(line["end"] * fps - 1e-6)) - 1, max(written))
        latencies.append(arrived - written[max(last, 0)])
    stream_s = len(written) / fps
    cpu = cpu_end - (cpu_at_first_frame[0] if cpu_at_first_frame else 0.0)
    return {
        "windows": len(lines),
        "scored": len(latencies),
        "stream_s": round(stream_s, 2),
        "latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(_percentile(latencies, 95), 3),
        "latency_max_s": round(max(latencies), 3) if latencies else None,
        "rtf_cpu": round(cpu / stream_s, 3),
        "first_line_after_s": round(arrivals[0] - (clock or min(written.values())), 3),
        "last_line_after_end_s": round(arrivals[-1] - max(written.values()), 3),
        "summary": err.strip().splitlines()[-1] if err.strip() else "",
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["feed"]:
        parser = argparse.ArgumentParser(prog="bench_live.py feed")
        parser.add_argument("video")
        parser.add_argument("--pace", type=float, default=1.0)
        parser.add_argument("--log", default=None)
        parser.add_argument("--width", type=int, default=None)
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="start the clock at once, not when the reader takes the first bytes",
        )
        args = parser.parse_args(argv[1:])
        log = open(args.log, "w") if args.log else None  # noqa: SIM115 - closed below
        try:
            feed(
                args.video,
                sys.stdout.buffer,
                pace=args.pace,
                log=log,
                width=args.width,
                wait_reader=not args.no_wait,
            )
        finally:
            if log is not None:
                log.close()
        return 0
    parser = argparse.ArgumentParser(prog="bench_live.py", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", default=None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--window", type=float, default=None)
    parser.add_argument("--hop", type=float, default=None)
    parser.add_argument("--pace", type=float, default=1.0)
    args, extra = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="emotf-bench-live-video-") as tmp:
        video = args.video
        if video is None:
            from emotf.synthetic.video import write_face_video

            video = write_face_video(
                Path(tmp) / "live.mp4", args.seconds, fps=25.0, width=args.width, height=args.height
            )
        result = bench(
            args.model, video, window=args.window, hop=args.hop, pace=args.pace, extra=extra
        )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
