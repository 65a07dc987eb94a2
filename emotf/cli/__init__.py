"""Console scripts: each module parses arguments and calls one library function.

`command(prog)` wraps every `main(argv=None)`:

- TensorFlow's C++ log noise is kept off the console (`emotf.quiet`); `--verbose` (a bare flag,
  anywhere on the command line) or an explicit `TF_CPP_MIN_LOG_LEVEL` brings it back.
- An error a user can cause (a missing file, a bad value, a full disk) ends the command with one
  line `PROG: error: ...` naming the file and the problem, and exit status 1, never a traceback.
  `--debug` (or `EMOTF_DEBUG=1`) re-raises, for developers.
- SIGINT (Ctrl-C) and SIGTERM (`kill`, `timeout`, a scheduler's stop) always end the command
  within seconds: the clean-up runs, `PROG: interrupted (signal N)`, exit status 130 or 143;
  if the main thread is blocked in TensorFlow's C++ (a multi-worker start-up waiting for a
  peer), the process is ended `emotf.deadlines.GRACE_SECONDS` (5 s) after the signal with
  `PROG: interrupted (signal N); exiting` (`emotf.deadlines.ending_on_signals`).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import functools
import os
import sys
import warnings

from emotf.deadlines import Interrupted, ending_on_signals
from emotf.quiet import quiet_tensorflow

DEBUG_ENV = "EMOTF_DEBUG"
# Errors whose message is meant for the user as is.
USER_ERRORS = (ValueError, TypeError, KeyError, LookupError, RuntimeError)


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (`PROG: error: ...`, exit status 2); an unknown
    flag is named with the closest known one (`--model.num_segmnts`: did you mean
    `--model.num_segments`?)."""

    def error(self, message: str):
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            unknown = [t.split("=")[0] for t in message[len(prefix) :].split() if t.startswith("-")]
            for flag in unknown[:1]:
                close = difflib.get_close_matches(flag, self._option_string_actions, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _pop_flag(argv: list[str], flag: str) -> bool:
    """Remove a bare `flag` (one not followed by a value) from argv; True when it was there."""
    for i, token in enumerate(argv):
        if token == flag:
            following = argv[i + 1] if i + 1 < len(argv) else None
            if following is None or following.startswith("-"):
                del argv[i]
                return True
    return False


def _wants_tf_logs(argv: list[str]) -> bool:
    return "TF_CPP_MIN_LOG_LEVEL" in os.environ or _pop_flag(list(argv), "--verbose")


# Console scripts that run with oneDNN's convolutions unless the user says otherwise
# (TF_ENABLE_ONEDNN_OPTS=0): TensorFlow 2.21 leaves them off on this kind of CPU, and they take
# ~0.8x the CPU time of a SavedModel call (docs/serving.md). Read when TensorFlow loads.
ONEDNN_PROGRAMS = frozenset({"emotf-predict"})
if os.path.basename(sys.argv[0]) in ONEDNN_PROGRAMS:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Before any console-script module imports TensorFlow (they do at import time).
TF_LOGS = _wants_tf_logs(sys.argv[1:])
quiet_tensorflow(verbose=TF_LOGS)


def describe(error: BaseException) -> str:
    """One line for the user: the file and the problem."""
    if isinstance(error, OSError) and error.strerror:
        where = error.filename if error.filename is not None else ""
        if error.errno == errno.ENOSPC:
            return f"{where}: no space left on device".lstrip(": ")
        return f"{where}: {error.strerror.lower()}".lstrip(": ")
    if _out_of_memory(error):
        return (
            "out of memory: the model, batch or input is too large for this machine "
            "(reduce --batch_size or the model's widths)"
        )
    text = str(error).strip()
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = f"missing key {error.args[0]!r}"
    line = text.splitlines()[0] if text else type(error).__name__
    return line


def _out_of_memory(error: BaseException) -> bool:
    """MemoryError, or TensorFlow's ResourceExhaustedError (named without importing TF)."""
    return isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError"


def command(prog: str):
    """Decorate a console script's `main(argv=None) -> int` (see the module docstring)."""

    def wrap(main):
        @functools.wraps(main)
        def run(argv=None) -> int:
            argv = list(sys.argv[1:] if argv is None else argv)
            debug = _pop_flag(argv, "--debug") or os.environ.get(DEBUG_ENV) == "1"
            verbose = _pop_flag(argv, "--verbose") or TF_LOGS
            if not verbose:
                warnings.filterwarnings("ignore", module="keras")
            # Warnings (e.g. a report extra left out, and why) as one line each, no source.
            warnings.formatwarning = lambda message, category, *_args, **_kw: (
                f"{prog}: warning: {message}\n"
            )
            try:
                with ending_on_signals(prog):
                    return main(argv)
            except Interrupted as stop:
                print(f"{prog}: interrupted (signal {stop.signum})", file=sys.stderr)
                return stop.exit_code
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return 130
            except Exception as error:  # noqa: BLE001  (the one place errors become a line)
                if debug:
                    raise
                expected = isinstance(error, (OSError, *USER_ERRORS)) or _out_of_memory(error)
                hint = (
                    ""
                    if expected
                    else (f" ({type(error).__name__}; rerun with --debug for the traceback)")
                )
                print(f"{prog}: error: {describe(error)}{hint}", file=sys.stderr)
                return 1

        return run

    return wrap
