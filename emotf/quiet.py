"""Quiet TensorFlow for the console scripts: no C++ log noise unless asked for.

TensorFlow 2.21 prints oneDNN, CPU-feature and CUDA-stub notices while it is imported, before
its own `TF_CPP_MIN_LOG_LEVEL` is read, so the only way to keep them off a user's console is to
point file descriptor 2 at /dev/null for the duration of the import. Python exceptions are
unaffected (they are raised, not printed). Spawned workers inherit `EMOTF_QUIET_TF=1` and do the
same when `emotf` is imported in them.
"""

from __future__ import annotations

import os
import sys

import absl.logging

QUIET_ENV = "EMOTF_QUIET_TF"


def quiet_tensorflow(verbose: bool = False) -> None:
    """Silence TensorFlow's C++ logging for this process and its children (unless `verbose`,
    or the user set `TF_CPP_MIN_LOG_LEVEL` themselves), then import TensorFlow quietly."""
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        os.environ.pop(QUIET_ENV, None)  # the user asked for TensorFlow's own log level
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ[QUIET_ENV] = "1"
    import_tensorflow_quietly()


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr (fd 2) sent to /dev/null during the import only."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        # Here, not at the top: this import is the one whose stderr is silenced.
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    absl.logging.set_verbosity(absl.logging.ERROR)
