"""`emotf.deadlines`: SIGINT/SIGTERM end a command even when another library took the handler
or the main thread holds the GIL in C++; a guarded wait ends at its deadline with one line
naming who did not answer. Each case is a small subprocess (standard library and emotf only,
no TensorFlow): a fraction of a second to start."""

import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from helpers_workers import ended

from emotf import deadlines

# A child that announces "ready" on stdout, then waits as argv[1] says: "sleep" (Python),
# "taken" (Python, after a library replaced the SIGTERM handler), "gil" (in C, GIL held).
CHILD = textwrap.dedent("""
    import contextlib, ctypes, signal, sys, time
    from emotf import deadlines

    def run(wait, port):
        if wait == "taken":  # a library replaces the SIGTERM handler (as TensorFlow's does)
            ctypes.CDLL(None).signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3 * deadlines.POLL_SECONDS)
        peers = {"worker 1": f"127.0.0.1:{port}"}
        with deadlines.guarded(3.0, peers, "every peer answers", grace=1.0) \\
                if wait == "gil" else contextlib.nullcontext():
            print("ready", flush=True)
            if wait == "gil":  # blocks in C holding the GIL (PyDLL keeps it), deaf to signals
                mutex = ctypes.create_string_buffer(64)  # zeros: a default glibc mutex
                ctypes.PyDLL(None).pthread_mutex_lock(mutex)
                ctypes.PyDLL(None).pthread_mutex_lock(mutex)  # never returns
            else:
                time.sleep(60)

    try:
        with deadlines.ending_on_signals("emotf-x", grace=1.0):
            run(sys.argv[1], int(sys.argv[2]))
    except deadlines.Interrupted as stop:  # as emotf.cli.command does
        sys.exit(stop.exit_code)
""")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(wait: str, port: int = 9) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, wait, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready", process.communicate(timeout=10)
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_a_python_wait_through_the_normal_path(signum):
    process = start("sleep")
    process.send_signal(signum)
    rc, err, _ = ended(process, within=5)
    assert rc == 128 + signum  # Interrupted raised in the main thread, not os._exit


def test_sigterm_ends_the_process_after_a_library_replaced_its_handler():
    process = start("taken")
    process.send_signal(signal.SIGTERM)
    rc, _, seconds = ended(process, within=5)
    assert rc == 128 + signal.SIGTERM and seconds < 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_a_wait_that_holds_the_gil_within_the_grace(signum):
    process = start("gil", closed_port())
    time.sleep(0.5)  # "ready" is printed just before the C call: let the child get into it
    process.send_signal(signum)
    rc, err, seconds = ended(process, within=10)
    assert rc == -signal.SIGKILL and seconds < 3, err
    assert err.strip().splitlines()[-1] == f"emotf-x: interrupted (signal {signum}); exiting"


def test_a_guarded_wait_ends_at_its_deadline_naming_who_did_not_answer():
    port = closed_port()
    process = start("gil", port)
    rc, err, seconds = ended(process, within=15)
    assert rc == -signal.SIGKILL and seconds < 6, err
    assert err.strip().splitlines() == [
        f"emotf-x: error: worker 1 (127.0.0.1:{port}) did not answer within 3 s"
    ]


def test_wait_for_peers_names_the_silent_ones_and_returns_at_the_deadline():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up, down = f"127.0.0.1:{listening.getsockname()[1]}", f"127.0.0.1:{closed_port()}"
        started = time.monotonic()
        silent = deadlines.wait_for_peers({"chief": up, "worker 1": down}, seconds=1.0)
    assert silent == ["worker 1"] and time.monotonic() - started < 3
    assert deadlines.no_answer({"worker 1": down}, silent, 1.0) == (
        f"worker 1 ({down}) did not answer within 1 s"
    )


def test_a_clip_past_its_deadline_is_skipped_naming_it_and_the_build_goes_on():
    """The local build's pool: clip c2 hangs; it is skipped with a reason naming its file and
    the deadline, the others come back in order (those in flight retried), nothing twice."""
    import helpers_workers

    from emotf.media.faces import FaceTrackerConfig
    from emotf.records.clip_worker import ClipRunner

    runner = ClipRunner(
        FaceTrackerConfig(),
        2,
        4,
        work=helpers_workers.work,
        initializer=helpers_workers.init,
        deadline_seconds=2.0,
    )
    started = time.monotonic()
    results = list(runner.run(helpers_workers.tasks({2: "hang"}, 6)))
    assert [r.clip_id for r in results] == [f"c{i}" for i in range(6)]
    assert [r.status for r in results] == ["ok", "ok", "skipped", "ok", "ok", "ok"]
    assert results[2].reason == (
        "not processed within the per-clip deadline of 2 s "
        "(--worker_timeout_seconds): /data/c2.flv skipped, its worker "
        "stopped"
    )
    assert time.monotonic() - started < 20  # one deadline, not one per retry
