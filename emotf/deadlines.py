"""Deadlines on every wait, and signals that always end a command.

emotf waits on other processes in a few places: the workers of a multi-worker training
(`emotf.training.distribute`), the tuning oracle (`emotf.tuning.distributed`), the records
build's worker processes and Beam workers (`emotf.records`). Some of those waits happen inside
TensorFlow's C++ runtime, where the main thread never returns to Python: a Python exception, a
KeyboardInterrupt or a Python signal handler cannot reach it there. Two tools make every such
wait end:

`ending_on_signals(prog)` (entered by `emotf.cli.command` around every console script):
    SIGINT and SIGTERM raise `Interrupted` in the main thread (the command says
    `PROG: interrupted (signal N)` and exits 128 + N: 130, 143), and a watchdog thread hears
    them too, through `signal.set_wakeup_fd` (written by the C-level handler even while the
    main thread is blocked in C++). If the process is still alive `GRACE_SECONDS` (5 s) after
    the signal, the watchdog prints `PROG: interrupted (signal N); exiting` and ends it with
    `os._exit(128 + N)`; a second signal ends it at once. TensorFlow's coordination service
    installs its own SIGTERM handler (a C++ `std::signal`, found with TF 2.21 while a
    multi-worker strategy connects) which only sets a flag: the watchdog puts the handler back
    (`sigaction`) within `POLL_SECONDS`. Worker processes (the build's pool, Beam's) end with
    their parent (`emotf.records.pool.exit_with_parent`).

`guarded(seconds, peers, otherwise)`:
    a block that must end within `seconds`, for a wait in C++ that holds Python's GIL
    (TensorFlow's multi-worker start-up does: no Python thread runs then, not even the watchdog
    above, and no exception can stop it). A small watchdog *process* (this file run as a
    script, standard library only) is told the signals through the wakeup fd (the C-level
    handler writes it without the GIL). If the block has not ended `seconds` after it began,
    or `GRACE_SECONDS` after SIGINT/SIGTERM, it prints one line (`PROG: error: ...` naming
    the peers that do not answer, or `PROG: interrupted (signal N); exiting`) and ends this
    process with SIGKILL, the one signal that a process blocked in C++ with its handlers
    replaced cannot miss. A SIGTERM that TensorFlow's own handler takes during that wait ends
    the process at the deadline instead.

`silent(peers)` / `wait_for_peers(peers, seconds)`: which of a set of `host:port` addresses
    accept no TCP connection (the peers that "did not answer").

Only the standard library is used here (a base module).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

# How long the main thread has to end by itself after SIGINT/SIGTERM before the process is
# ended from the watchdog (clean-up in `finally` blocks, a pool shut down, a log flushed).
GRACE_SECONDS = 5.0
# How often the watchdog checks that the signal handlers are still emotf's.
POLL_SECONDS = 0.2
# Seconds one TCP connection attempt to a peer may take.
CONNECT_SECONDS = 2.0
ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_PROG: str | None = None  # the running command's name, for the lines printed here


def prog() -> str:
    """The running console script's name (`emotf-train`), else this program's file name."""
    return _PROG or Path(sys.argv[0] or "emotf").name


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM was received (`signum`): raised in the main thread. A KeyboardInterrupt,
    so every `except KeyboardInterrupt` / `finally` clean-up runs as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_interrupted(signum, _frame):
    if _WATCHDOG is not None:
        _WATCHDOG.note(signum)
    raise Interrupted(signum)


def _exit_now(line: str, code: int) -> None:
    """Print `line` on stderr and end the process now (no clean-up: the main thread is stuck)."""
    with contextlib.suppress(Exception):
        os.write(2, (line.rstrip("\n") + "\n").encode("utf-8", "replace"))
    os._exit(code)


# === C-level signal handlers (sigaction through ctypes) ===

# More than `struct sigaction` takes on any Linux or macOS ABI (152 bytes on x86-64 and arm64
# glibc); the handler is its first member everywhere.
_SIGACTION_BYTES = 512
_HANDLER_BYTES = ctypes.sizeof(ctypes.c_void_p)


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.sigaction  # noqa: B018 (present?)
        return libc
    except (OSError, AttributeError):
        return None


def _read_action(libc, signum: int) -> bytes | None:
    """The raw `struct sigaction` installed for `signum` (None if it cannot be read)."""
    if libc is None:
        return None
    buffer = ctypes.create_string_buffer(_SIGACTION_BYTES)
    return buffer.raw if libc.sigaction(int(signum), None, buffer) == 0 else None


def _write_action(libc, signum: int, action: bytes) -> None:
    libc.sigaction(int(signum), ctypes.create_string_buffer(action, _SIGACTION_BYTES), None)


class _Watchdog:
    """The thread of `ending_on_signals`: hears the signals (wakeup socket), keeps emotf's
    handlers installed, and ends the process `grace` seconds after the first signal."""

    def __init__(self, name: str, reader: socket.socket, grace: float):
        self.name, self.reader, self.grace = name, reader, grace
        self.stop = threading.Event()  # the command ended without a signal
        self.released = False  # the command ended after a signal: keep the clock, not handlers
        self.received: int | None = None
        self.since = 0.0
        self.libc = _libc()
        self.actions: dict[int, bytes | None] = {}  # set once the handlers are installed
        self.thread = threading.Thread(target=self.run, daemon=True, name="emotf-signal-watchdog")

    def note(self, signum: int) -> None:
        """A signal arrived (from the wakeup socket, or from the Python handler)."""
        if self.received is None:
            self.received, self.since = int(signum), time.monotonic()

    def reclaim(self) -> None:
        """Put Python's handler back where another library replaced it (TensorFlow's
        coordination service does, for SIGTERM): else a signal would never reach emotf."""
        for signum, action in self.actions.items():
            if action is None:
                continue
            now = _read_action(self.libc, signum)
            if now is not None and now[:_HANDLER_BYTES] != action[:_HANDLER_BYTES]:
                _write_action(self.libc, signum, action)

    def run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.reader], [], [], POLL_SECONDS)
            if ready:
                try:
                    data = self.reader.recv(64)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError:  # closed on the way out
                    return
                for signum in (b for b in data if b in ENDING_SIGNALS):
                    if self.received is not None and time.monotonic() - self.since > 0.5:
                        # a second signal (not the echo of the first): no more waiting
                        _exit_now(
                            f"{self.name}: interrupted again (signal {signum}); exiting",
                            128 + signum,
                        )
                    self.note(signum)
            if self.stop.is_set():
                return
            if not self.released:
                self.reclaim()
            if self.received is not None and time.monotonic() - self.since >= self.grace:
                _exit_now(
                    f"{self.name}: interrupted (signal {self.received}); exiting",
                    128 + self.received,
                )


_WATCHDOG: _Watchdog | None = None


@contextlib.contextmanager
def ending_on_signals(name: str, grace: float = GRACE_SECONDS) -> Iterator[None]:
    """For the duration: SIGINT/SIGTERM raise `Interrupted` in the main thread, and end the
    process `grace` seconds after the signal if it is still running then, also after the
    block (an interpreter exit that hangs). A signal the caller ignores (SIG_IGN: a background
    job's SIGINT) stays ignored. Handlers, wakeup fd and program name are restored on the way
    out. Does nothing outside the main thread or when already active (a command called from a
    command)."""
    global _PROG, _WATCHDOG
    if threading.current_thread() is not threading.main_thread() or _PROG is not None:
        yield
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    saved = {s: signal.getsignal(s) for s in ENDING_SIGNALS}
    old_fd = None
    _PROG = name
    _WATCHDOG = watchdog = _Watchdog(name, reader, grace)
    try:
        mine = [s for s, handler in saved.items() if handler is not signal.SIG_IGN]
        for signum in mine:
            signal.signal(signum, _raise_interrupted)
        # Python's C handler for each signal, as signal.signal installed it (`reclaim`).
        watchdog.actions = {s: _read_action(watchdog.libc, s) for s in mine}
        old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        watchdog.thread.start()
        yield
    finally:
        if old_fd is not None:
            signal.set_wakeup_fd(old_fd)
        for signum, handler in saved.items():
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if watchdog.received is None:
            watchdog.stop.set()
            with contextlib.suppress(OSError):
                writer.send(b"\0")  # wakes the watchdog now, not at its next poll
            if watchdog.thread.is_alive():
                watchdog.thread.join(timeout=2 * POLL_SECONDS + 1)
            reader.close()
            writer.close()
        else:  # interrupted: the process must still end within the grace, however it exits
            watchdog.released = True
        _PROG = _WATCHDOG = None


def reclaim_signals() -> None:
    """In the main thread, after a library call that may have installed its own SIGINT or
    SIGTERM handler (a TensorFlow multi-worker strategy): emotf's handlers again, now."""
    if _WATCHDOG is None or threading.current_thread() is not threading.main_thread():
        return
    for signum in _WATCHDOG.actions:  # those emotf handles (not a signal the caller ignores)
        signal.signal(signum, _raise_interrupted)


# === Peers that answer ===


def split_host_port(address: str) -> tuple[str, int]:
    """'host:port' (a bracketed IPv6 host allowed) -> (host, port). Raises ValueError."""
    host, colon, port = str(address).rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"not HOST:PORT. Received: {address!r}")
    return host.strip("[]"), int(port)


def answers(address: str, timeout: float = CONNECT_SECONDS) -> bool:
    """Does something accept a TCP connection at `address` ('host:port')?"""
    try:
        host, port = split_host_port(address)
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def silent(peers: Mapping[str, str], timeout: float = CONNECT_SECONDS) -> list[str]:
    """The names among `peers` ({name: 'host:port'}) whose address accepts no TCP connection."""
    return [name for name, address in peers.items() if not answers(address, timeout)]


def wait_for_peers(peers: Mapping[str, str], seconds: float, poll: float = 0.5) -> list[str]:
    """Wait until every peer answers (`answers`) or `seconds` have passed; the names of those
    that did not answer ([] when all did). Retries with a backoff from `poll` to 5 s."""
    end = time.monotonic() + seconds
    waiting = dict(peers)
    while True:
        connect = max(0.05, min(CONNECT_SECONDS, end - time.monotonic()))
        waiting = {name: peers[name] for name in silent(waiting, connect)}
        left = end - time.monotonic()
        if not waiting or left <= 0:
            return list(waiting)
        time.sleep(min(poll, left))
        poll = min(2 * poll, 5.0)


def no_answer(peers: Mapping[str, str], names: list[str], seconds: float) -> str:
    """'worker 1 (localhost:12346) did not answer within 30 s' for the `names` among `peers`."""
    who = " and ".join(f"{name} ({peers[name]})" for name in names)
    return f"{who} did not answer within {seconds:g} s"


# === A watchdog process, for blocks that hold the GIL ===

_DONE = b"\0"  # written by the guarded process when the block has ended


@contextlib.contextmanager
def guarded(
    seconds: float,
    peers: Mapping[str, str],
    otherwise: str,
    hint: str = "",
    grace: float = GRACE_SECONDS,
) -> Iterator[None]:
    """The block must end within `seconds`, and SIGINT/SIGTERM must end the process within
    `grace`, even if the block holds the GIL in C++ (module docstring). On expiry the line is
    `no_answer` for the `peers` ({name: 'host:port'}) that accept no connection then, plus
    `hint`, or `otherwise` when every peer answers."""
    read_end, write_end = os.pipe()
    order = {
        "pid": os.getpid(),
        "seconds": seconds,
        "grace": grace,
        "prog": prog(),
        "peers": dict(peers),
        "otherwise": otherwise,
        "hint": hint,
    }
    try:
        watcher = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), json.dumps(order)],
            stdin=read_end,
            close_fds=True,
        )
    finally:
        os.close(read_end)
    os.set_blocking(write_end, False)
    main = threading.current_thread() is threading.main_thread()
    old_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False) if main else None
    try:
        yield
    finally:
        if old_fd is not None:
            signal.set_wakeup_fd(old_fd, warn_on_full_buffer=False)
        with contextlib.suppress(OSError):
            os.write(write_end, _DONE)
        os.close(write_end)
        try:
            watcher.wait(timeout=5)
        except subprocess.TimeoutExpired:
            watcher.kill()
            watcher.wait()


def _watch_process(order: dict) -> int:
    """The watchdog process of `guarded`: reads stdin (signal numbers, or `_DONE`)."""
    pid, prog_name = order["pid"], order["prog"]
    end = time.monotonic() + order["seconds"]
    stdin = sys.stdin.fileno()
    while True:
        left = end - time.monotonic()
        if left <= 0:
            names = silent(order["peers"])
            message = (
                no_answer(order["peers"], names, order["seconds"]) + order["hint"]
                if names
                else order["otherwise"]
            )
            line = f"{prog_name}: error: {message}"
            break
        ready, _, _ = select.select([stdin], [], [], left)
        if not ready:
            continue
        data = os.read(stdin, 64)
        if not data or _DONE in data:  # the block ended, or the guarded process is gone
            return 0
        signums = [b for b in data if b in ENDING_SIGNALS]
        if signums:  # give the guarded process its grace, as `ending_on_signals` does
            end = min(end, time.monotonic() + order["grace"])
            order["otherwise"] = order["hint"] = ""
            order["peers"] = {}
            order["signal"] = signums[0]
    if "signal" in order:
        line = f"{prog_name}: interrupted (signal {order['signal']}); exiting"
    try:
        os.kill(pid, 0)
    except OSError:
        return 0
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode("utf-8", "replace"))
        os.kill(pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(_watch_process(json.loads(sys.argv[1])))
