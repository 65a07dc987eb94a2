"""One build per records folder: `OUT/build.lock` names the pid of the build writing it.

`hold(out)` creates the lock atomically (O_EXCL) and removes it on exit. A lock whose process is
alive refuses a second build; a lock left by a process that died (SIGKILL, power loss) is taken
over, with a note. Only the pid is recorded, so a folder shared between machines (NFS) is not
protected across hosts; the lock names the host so that case is at least visible.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK = "build.lock"


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
        return json.loads((Path(folder) / LOCK).read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
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

    Raises:
        FileExistsError: a live process holds the lock (the message names its pid).
    """
    path = Path(folder) / LOCK
    mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = read_lock(folder) or {}
            pid = int(info.get("pid", -1))
            if pid != os.getpid() and _alive(pid):
                raise FileExistsError(
                    f"{path}: another emotf-build-records (pid {pid} on "
                    f"{info.get('host', '?')}, since {info.get('started', '?')}) is writing "
                    f"{folder}; wait for it to finish or stop it, or use another --out"
                ) from None
            print(f"NOTE {path}: stale lock of pid {pid} (no longer running) taken over",
                  file=sys.stderr)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(mine)
        break
    else:
        raise FileExistsError(f"{path}: could not take the lock (another build races for it)")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, OSError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
