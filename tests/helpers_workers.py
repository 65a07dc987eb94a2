"""Cheap stand-ins for `process_clip` and its initializer, importable by spawned workers.

Kept free of TensorFlow so a worker starts in a fraction of a second.
"""

import os
import threading


def init(tracker_config, single_thread: bool) -> None:
    """Nothing to set up."""


def work(task: dict) -> dict:
    """Echo the task. task["action"]: "crash" exits the worker at once; "crash_first" only
    the first task["crashes"] times (counted in the file task["marker"]); "die_after" exits it
    0.2 s after returning (a worker killed while idle, between two clips)."""
    if task.get("action") == "crash":
        os._exit(1)
    if task.get("action") == "crash_first":  # dies the first task["crashes"] times only
        marker = task["marker"]  # a file that counts the crashes so far
        crashes = len(open(marker).read()) if os.path.exists(marker) else 0
        if crashes < task["crashes"]:
            with open(marker, "a") as f:
                f.write("x")
            os._exit(1)
    if task.get("action") == "die_after":
        threading.Timer(0.2, os._exit, args=(1,)).start()
    return {"status": "ok", "clip_id": task["clip_id"], "pid": os.getpid()}


def tasks(actions: dict[int, str], count: int) -> list[dict]:
    """`count` tasks named c0, c1, ...; `actions` maps an index to its action."""
    return [{"clip_id": f"c{i}", "video": f"/data/c{i}.flv", "action": actions.get(i)}
            for i in range(count)]


def hog_the_interpreter(stop: threading.Event, threads: int = 3) -> list[threading.Thread]:
    """Busy Python threads: contention for the GIL, as when TensorFlow works in the parent."""

    def spin():
        while not stop.is_set():
            sum(range(1000))

    started = [threading.Thread(target=spin, daemon=True) for _ in range(threads)]
    for thread in started:
        thread.start()
    return started
