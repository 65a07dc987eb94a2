"""Cheap stand-ins for `process_clip` and its initializer, importable by spawned workers.

Kept free of TensorFlow so a worker starts in a fraction of a second.
"""

import os
import threading
import time
from dataclasses import dataclass

from emotf.records.clip_worker import ClipResult, ClipTask


@dataclass(frozen=True)
class EchoTask(ClipTask):
    """A `ClipTask` with what `work` should do: `action` "crash" exits the worker at once;
    "crash_first" only the first `crashes` times (counted in the file `marker`); "die_after"
    exits it 0.2 s after returning (a worker killed while idle, between two clips); "hang" sleeps
    for a minute (a clip stuck in its decoder)."""

    action: str | None = None
    marker: str = ""
    crashes: int = 0


def init(tracker_config, single_thread: bool) -> None:
    """Nothing to set up."""


def work(task: EchoTask) -> ClipResult:
    """Echo the task as an "ok" result whose stats hold the worker's pid, after its action."""
    if task.action == "crash":
        os._exit(1)
    if task.action == "crash_first":  # dies the first task.crashes times only
        crashes = os.path.getsize(task.marker) if os.path.exists(task.marker) else 0
        if crashes < task.crashes:
            with open(task.marker, "a") as f:
                f.write("x")
            os._exit(1)
    if task.action == "hang":
        time.sleep(60)
    if task.action == "die_after":
        threading.Timer(0.2, os._exit, args=(1,)).start()
    return ClipResult(task.clip_id, "ok", stats={"pid": os.getpid()})


def tasks(actions: dict[int, str], count: int) -> list[EchoTask]:
    """`count` tasks named c0, c1, ...; `actions` maps an index to its action."""
    return [
        EchoTask(
            clip_id=f"c{i}",
            fold=0,
            video=f"/data/c{i}.flv",
            audio=f"/data/c{i}.wav",
            action=actions.get(i),
        )
        for i in range(count)
    ]


def hog_the_interpreter(stop: threading.Event, threads: int = 3) -> list[threading.Thread]:
    """Busy Python threads: contention for the GIL, as when TensorFlow works in the parent."""

    def spin():
        while not stop.is_set():
            sum(range(1000))

    started = [threading.Thread(target=spin, daemon=True) for _ in range(threads)]
    for thread in started:
        thread.start()
    return started


def ended(process, within: float) -> tuple[int, str, float]:
    """(exit status, stderr, seconds it took) of a `subprocess.Popen` given `within` seconds;
    killed (and reaped) when it is still running then."""
    started = time.monotonic()
    try:
        _, err = process.communicate(timeout=within)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, err, time.monotonic() - started
