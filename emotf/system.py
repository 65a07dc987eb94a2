"""Facts about the machine that several modules need, and handing memory back to it."""

import ctypes
import os


def available_memory() -> int | None:
    """Bytes of memory the kernel says can be taken without swapping (`MemAvailable` of
    /proc/meminfo), else free physical pages; None where neither is known."""
    try:
        with open("/proc/meminfo") as f:  # a kernel file: a few lines, read to the one wanted
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_cpus() -> int:
    """CPUs this process may run on (cgroup/affinity aware), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def trim_heap() -> None:
    """Hand the freed parts of glibc's heaps back to the kernel (`malloc_trim(0)`): TensorFlow's
    many threads each get a malloc arena, and what they freed otherwise stays resident (a
    finished fold's model; the record buffers of a prediction loop, whose RSS crept up by
    ~0.5 MB a clip). A no-op where the C library is not glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl, Windows)
        pass
