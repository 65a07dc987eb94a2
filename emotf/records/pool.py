"""The worker processes of `emotf.records.clip_worker.ClipRunner`'s pool, clip-agnostic.

`start_worker` is the pool's initializer: it makes the worker exit with its parent (a killed
build leaves no orphans) before running the real initializer; `run_with_deadline` runs one task
in a worker and ends the worker when the task overruns its deadline; `broken_pool_exit_codes`
says how the workers of a broken pool died. Top level, so spawned workers can import it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

# A pool worker checks this often whether its parent (the build) is still alive.
PARENT_POLL_S = 0.5
# The exit status of a worker ended by `run_with_deadline` (EX_TEMPFAIL).
EXIT_DEADLINE = 75


def exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as the parent process `parent` is gone.

    Killing the build's main process (SIGKILL, or SIGTERM's default action) runs no clean-up
    in it, so the pool's workers would live on, each holding a FaceTracker (~0.7 GB), reparented
    to init. A daemon thread polls `os.getppid()` (it changes when the parent dies). Not
    prctl(PR_SET_PDEATHSIG): that fires when the *thread* that spawned the worker exits, and
    pools are started from whatever thread consumes the results.
    """

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="emotf-parent-watch").start()


def run_with_deadline(work, task, seconds: float | None, marker: str):
    """In a worker: `work(task)`; if it has not returned after `seconds`, write the file
    `marker` (how the pool learns which task overran) and end this worker
    (`os._exit(EXIT_DEADLINE)`): the pool breaks, its other tasks are retried
    (`emotf.records.clip_worker.ClipRunner`). The clock is a thread of the worker: a task
    blocked in C code that holds the GIL is ended when it lets go of it."""
    if seconds is None:
        return work(task)

    def expire():
        with open(marker, "w") as f:
            f.write(str(seconds))
        os._exit(EXIT_DEADLINE)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        return work(task)
    finally:
        timer.cancel()


def start_worker(initializer, tracker_config, single_thread: bool, parent: int) -> None:
    exit_with_parent(parent)
    initializer(tracker_config, single_thread)


def broken_pool_exit_codes(executor: ProcessPoolExecutor | None, procs: dict) -> str:
    """Exit codes of the workers of a broken pool that died on their own, e.g. "1" or "-11".

    Workers the executor terminated itself (SIGTERM) are left out; "unknown" if none is left.
    The executor's manager thread is joined first: it reaps the workers of a broken pool, and a
    second thread waiting on the same pid can lose the exit status to it (ECHILD), which made
    the code read "unknown" now and then on a busy machine.
    """
    manager = getattr(executor, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(timeout=30)
    for proc in procs.values():
        proc.join(timeout=10)  # the executor terminates the survivors of a broken pool
    codes = [
        p.exitcode
        for p in procs.values()
        if p.exitcode is not None and p.exitcode != -signal.SIGTERM
    ]
    return ", ".join(map(str, codes)) if codes else "unknown"
