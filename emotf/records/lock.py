"""One build per records folder: `OUT/build.lock` names the pid of the build writing it.

`hold(out)` takes an exclusive `flock` on the lock file, writes its pid into it and removes it
on exit. A lock whose process is alive refuses a second build; a lock left by a process that
died (SIGKILL, power loss) is taken over, with a note; the flock makes the takeover safe when
several builds start at once. Only the pid is recorded, so a folder shared between machines
(NFS) is not protected across hosts; the lock names the host so that case is at least visible.

Nothing here waits (its deadline is zero, docs/scaling.md "Deadlines and signals"): the flock
is tried without blocking (`LOCK_NB`) and a contender is refused at once, naming the owner;
a lock file replaced under us is retried at most 3 times, then refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from emotf.records.folder import RecordsFolder


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by its parent) holds nothing
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def read_lock(folder: str | Path) -> dict | None:
    """The lock's content ({"pid", "host", "started"}), or None when there is no lock."""
    try:
        text = (Path(folder) / RecordsFolder.LOCK).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {"pid": -1}
    if not text:  # created, its pid not written yet (by us, or by a build that died then)
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"pid": -1}  # half-written or garbled: treated as stale


def live_owner(folder: str | Path) -> int | None:
    """Pid of another live process holding the folder's lock, else None."""
    info = read_lock(folder)
    if not info:
        return None
    pid = int(info.get("pid", -1))
    return pid if pid != os.getpid() and _alive(pid) else None


@contextlib.contextmanager
def hold(folder: str | Path):
    """Hold `folder/build.lock` for the duration of the block.

    Contenders serialise on an exclusive `flock` of the lock file (the kernel drops it when its
    process dies, even by SIGKILL), so two builds can never both take over a stale lock; the
    pid written inside names the owner for the error message and for processes that do not
    hold the flock.

    Raises:
        FileExistsError: a live process holds the lock (the message names its pid).
    """
    path = Path(folder) / RecordsFolder.LOCK
    mine = json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    for _ in range(3):
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            _refuse(path, folder, read_lock(folder) or {})
        try:  # the path may have been unlinked and re-created since we opened it
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        info = read_lock(folder) or {}
        pid = int(info.get("pid", -1)) if info else None
        if pid is not None and pid != os.getpid() and _alive(pid):
            os.close(fd)
            _refuse(path, folder, info)
        if pid is not None and pid != os.getpid():
            print(
                f"NOTE {path}: stale lock of pid {pid} (no longer running) taken over",
                file=sys.stderr,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, mine.encode(), 0)
        break
    else:
        raise FileExistsError(f"{path}: could not take the lock (another build races for it)")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # still holding the flock: contenders re-check the inode
        os.close(fd)


def _refuse(path: Path, folder, info: dict) -> None:
    raise FileExistsError(
        f"{path}: another emotf-build-records (pid {info.get('pid', '?')} on "
        f"{info.get('host', '?')}, since {info.get('started', '?')}) is writing "
        f"{folder}; wait for it to finish or stop it, or use another --out"
    ) from None
