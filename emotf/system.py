"""Facts about the machine that several modules need."""

import os


def available_cpus() -> int:
    """CPUs this process may run on (cgroup/affinity aware), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
