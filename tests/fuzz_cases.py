"""The fuzz harness's machinery (issue 19, item 6; docs/fuzzing.md): run a console script on
one case, under a time and a memory cap, and say what is wrong with what it did.

- `Runner` keeps one worker process that imports TensorFlow once and runs each case's
  `main(argv)` in-process (its stdout and stderr, C++ logs included, go to the case's files;
  its cwd, TMPDIR and HOME are the case's). The parent waits with a deadline: a case that does
  not answer in time is a hang, and the worker is killed (SIGKILL, so a thread blocked in C++
  cannot keep it) and started afresh for the next case. The worker runs under RLIMIT_AS, so a
  case that grows without bound dies (or gets MemoryError) instead of taking the machine.
  `Runner.run(..., fresh=True)` starts a fresh `python -c "... main()"` instead (same caps).
- `problems(outcome)` is the contract every entry point keeps: exit status 0, or a non-zero
  status with ONE line on stderr naming the problem (`PROG: ...`; lines `PROG: warning: ...`
  allowed besides), never a traceback, never a hang, nothing written outside `--out` (or the
  case's own temp folder); a value outside its declared bound (or a wrong type, nan, inf) is
  refused, before anything is written.
- `values_for(leaf)`, `json_hostile`, `mutate_bytes`, `zip_bomb` make the hostile inputs.

The worker side is `serve()` (run as `python tests/fuzz_cases.py --serve IN OUT`); it imports
nothing heavy itself: each case imports its own console-script module.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Caps: a case gets TIMEOUT_S seconds (a fresh process START_S more for its imports) and
# MEMORY_GB of address space. TensorFlow reserves address space well beyond what it touches: a
# tiny emotf-train, emotf-evaluate and emotf-predict in one process peak at ~3.4 GB of VmPeak
# (0.9 GB resident), so 6 GB leaves room and still stops the 4 GB+ blow-ups early.
TIMEOUT_S = float(os.environ.get("EMOTF_FUZZ_TIMEOUT", 60))
START_S = 30.0
MEMORY_GB = float(os.environ.get("EMOTF_FUZZ_MEMORY_GB", 6))


def console_scripts() -> dict[str, str]:
    """{prog: "module:function"} of every console script declared in setup.cfg."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    text = parser.get("options.entry_points", "console_scripts")
    scripts = {}
    for line in text.strip().splitlines():
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip()
    return scripts


# ---------------------------------------------------------------------------------------------
# Running a case


@dataclasses.dataclass
class Case:
    """One case's folders: `inputs` (copies the case may mutate), `out` (where it may write),
    `cwd` (its working directory, kept empty), `tmp` (its TMPDIR) and `home` (its HOME)."""

    root: Path

    def __post_init__(self):
        for name in ("inputs", "out", "cwd", "tmp", "home"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    inputs = property(lambda self: self.root / "inputs")
    out = property(lambda self: self.root / "out")
    cwd = property(lambda self: self.root / "cwd")
    tmp = property(lambda self: self.root / "tmp")
    home = property(lambda self: self.root / "home")

    def copy(self, source: Path, name: str | None = None) -> Path:
        """A copy of the file or folder `source` under `inputs/`."""
        target = self.inputs / (name or source.name)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
        return target


@dataclasses.dataclass
class Outcome:
    prog: str
    argv: list
    status: str  # "exit", "timeout" or "crash" (the process died: a signal, the memory cap)
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    written: list  # paths created, changed or removed outside `allowed`
    written_allowed: list  # paths created or changed inside `allowed` (--out, tmp)

    def describe(self) -> str:
        tail = "\n".join(self.stderr.splitlines()[-15:])
        return (
            f"{self.prog} {' '.join(_shell(a) for a in self.argv)}\n"
            f"  -> {self.status} rc={self.rc} in {self.seconds:.1f} s\n"
            f"  stderr (last lines):\n{_indent(tail)}\n"
            f"  stdout (head):\n{_indent(self.stdout[:600])}"
        )


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _shell(text: str) -> str:
    text = str(text)
    if len(text) > 120:
        text = text[:100] + f"...<{len(text)} chars>"
    return text if text and all(c.isalnum() or c in "-_.,/=:" for c in text) else repr(text)


def snapshot(*roots: Path) -> dict[str, tuple]:
    """{path: (size, mtime_ns, kind)} of every file, folder and link under `roots`."""
    seen: dict[str, tuple] = {}
    for root in roots:
        if not os.path.lexists(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                kind = "link" if os.path.islink(path) else "dir" if os.path.isdir(path) else "file"
                seen[path] = (
                    st.st_size if kind == "file" else 0,
                    st.st_mtime_ns if kind == "file" else 0,
                    kind,
                )
    return seen


def _changes(before: dict, after: dict) -> list[str]:
    changed = [p for p, v in after.items() if before.get(p) != v]
    removed = [p for p in before if p not in after]
    return sorted(changed) + [f"(removed) {p}" for p in sorted(removed)]


# What libraries keep in a user's HOME on their first import (not the command's doing).
LIBRARY_CACHES = (".keras", ".cache", ".config", ".matplotlib")


def _limit_memory():  # preexec_fn of the worker and of fresh processes
    os.setsid()
    limit = int(MEMORY_GB * 2**30)
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _env(case: Case, extra: dict | None = None) -> dict:
    """A user's shell: no TF_CPP_MIN_LOG_LEVEL (it turns emotf's quiet logs off), no GPU."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "EMOTF_DEBUG", "PYTEST_CURRENT_TEST")
    }
    env.update(
        CUDA_VISIBLE_DEVICES="",
        PYTHONPATH=str(REPO),
        HOME=str(case.home),
        TMPDIR=str(case.tmp),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra or {})
    return env


class Runner:
    """Runs cases (see the module docstring); one per test session and process."""

    def __init__(self, home: Path, timeout: float = TIMEOUT_S, start_s: float = START_S):
        self.home = Path(home)
        self.start_s = start_s
        self.home.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.scripts = console_scripts()
        self.process = None
        self.restarts = 0

    # -- the worker
    def _start(self):
        worker_case = Case(self.home / "worker")
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve",
                str(to_worker_r),
                str(from_worker_w),
            ],
            pass_fds=(to_worker_r, from_worker_w),
            cwd=worker_case.cwd,
            env=_env(worker_case),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_limit_memory,
        )
        os.close(to_worker_r)
        os.close(from_worker_w)
        self.jobs = os.fdopen(to_worker_w, "w")
        self.answers = from_worker_r
        self.restarts += 1

    def _kill(self):
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            self.jobs.close()
            os.close(self.answers)
            self.process = None

    def close(self):
        self._kill()

    def _ask(self, job: dict, timeout: float):
        """(status, rc) of one job in the worker."""
        if self.process is None:
            self._start()
            timeout += self.start_s
        try:
            self.jobs.write(json.dumps(job) + "\n")
            self.jobs.flush()
        except BrokenPipeError:
            self._kill()
            return "crash", None
        deadline = time.monotonic() + timeout
        buffer = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                return "timeout", None
            ready, _, _ = select.select([self.answers], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self.answers, 4096)
            if not chunk:  # the worker died: a signal, the memory cap, os._exit
                rc = self.process.wait()
                self._kill()
                return "crash", rc
            buffer += chunk
            if buffer.endswith(b"\n"):
                return "exit", json.loads(buffer)["rc"]

    def _fresh(self, target: str, argv: list, case: Case, env: dict | None, timeout: float):
        module, function = target.split(":")
        code = f"import sys; from {module} import {function} as main; sys.exit(main(sys.argv[1:]))"
        with open(case.root / "stdout", "wb") as out, open(case.root / "stderr", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-c", code, *argv],
                cwd=case.cwd,
                env=_env(case, env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=_limit_memory,
            )
            try:
                rc = process.wait(timeout + self.start_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return "timeout", None
        return ("crash", rc) if rc < 0 else ("exit", rc)

    def run(
        self,
        prog: str,
        argv: list,
        case: Case,
        *,
        allowed=(),
        watch=(),
        env=None,
        timeout: float | None = None,
        fresh: bool = False,
        target: str | None = None,
    ) -> Outcome:
        """Run `prog argv` in `case` (cwd, TMPDIR, HOME: the case's folders).

        Args:
            allowed: folders it may write in, besides the case's tmp (default: the case's out).
            watch: other folders that must stay unchanged (the shared inputs).
            env: extra environment variables for this case.
            fresh: a fresh process instead of the worker.
            target: "module:function" instead of the console script's (self-tests).
        """
        argv = [str(a) for a in argv]
        target = target or self.scripts[prog]
        timeout = self.timeout if timeout is None else timeout
        allowed = (
            [Path(a) for a in (allowed or [case.out])]
            + [case.tmp]
            + [case.home / name for name in LIBRARY_CACHES]
        )
        roots = [case.root, *map(Path, watch)]
        before = snapshot(*roots)
        start = time.monotonic()
        if fresh:
            status, rc = self._fresh(target, argv, case, env, timeout)
        else:
            status, rc = self._ask(
                {
                    "target": target,
                    "prog": prog,
                    "argv": argv,
                    "cwd": str(case.cwd),
                    "tmp": str(case.tmp),
                    "home": str(case.home),
                    "env": env or {},
                    "stdout": str(case.root / "stdout"),
                    "stderr": str(case.root / "stderr"),
                },
                timeout,
            )
        seconds = time.monotonic() - start
        after = snapshot(*roots)
        logs = {str(case.root / "stdout"), str(case.root / "stderr")}
        changes = [c for c in _changes(before, after) if c not in logs]
        # A new folder on the way to an allowed one (`--out new/deeper`) is allowed too.
        inside = [c for c in changes if any(_under(c, a) or _above(c, a) for a in allowed)]
        outside = [c for c in changes if c not in inside]
        outcome = Outcome(
            prog,
            argv,
            status,
            rc,
            _read(case.root / "stdout"),
            _read(case.root / "stderr"),
            seconds,
            outside,
            [c for c in inside if not any(_under(c, a) for a in allowed[-5:])],
        )
        # For reading a failure later: what ran and what it did (outside the snapshot).
        (case.root / "outcome.json").write_text(
            json.dumps(
                {
                    **dataclasses.asdict(outcome),
                    "stdout": outcome.stdout[-2000:],
                    "stderr": outcome.stderr[-4000:],
                    "target": target,
                },
                indent=1,
            )
        )
        return outcome


def _under(change: str, folder: Path) -> bool:
    path = change.removeprefix("(removed) ")
    return path == str(folder) or path.startswith(str(folder) + os.sep)


def _above(change: str, folder: Path) -> bool:
    return (
        not change.startswith("(removed) ")
        and os.path.isdir(change)
        and str(folder).startswith(change.rstrip(os.sep) + os.sep)
    )


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------------------------------------
# The contract


# A progress bar (tqdm's `NAME:  40%|####      | 2/5 [...]`) is status, not an error line.
PROGRESS_BAR = re.compile(r"^\S*:? *\d{1,3}%\|.*\| *\d+/\d+ \[")
# emotf.cli.command's line for an exception it did not expect (not a user error): the command
# itself says the problem was not anticipated, and the line seldom names it
# ("Graph execution error: (InvalidArgumentError; rerun with --debug for the traceback)").
CATCH_ALL = "rerun with --debug for the traceback"


def problems(outcome: Outcome, *, refuse: bool = False) -> list[str]:
    """What is wrong with `outcome` (empty: nothing). `refuse`: the input is outside what the
    command declares valid, so it must be refused (non-zero status) before writing anything."""
    found = []
    prog = outcome.prog
    if outcome.status == "timeout":
        found.append("hang: no exit within the time limit")
    elif outcome.status == "crash":
        found.append(
            f"crash: the process died (status {outcome.rc}; a signal or the "
            f"{MEMORY_GB:g} GB memory cap)"
        )
    if "Traceback (most recent call last)" in outcome.stderr + outcome.stdout:
        found.append("a traceback")
    if outcome.status == "exit" and outcome.rc not in (0, None):
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        errors = [
            line
            for line in lines
            if not line.startswith(f"{prog}: warning:") and not PROGRESS_BAR.search(line)
        ]
        if len(errors) != 1:
            found.append(
                f"{len(errors)} lines on stderr besides warnings (want one line naming the problem)"
            )
        elif not errors[0].startswith(f"{prog}:"):
            found.append(f"the error line does not start with '{prog}:': {errors[0][:200]!r}")
        elif len(errors[0].split(":", 1)[1].strip()) < 8:
            found.append(f"the error line names no problem: {errors[0]!r}")
        elif CATCH_ALL in errors[0]:
            found.append(
                f"an unexpected exception, caught by {prog}'s catch-all: {errors[0][:300]!r}"
            )
    if outcome.status == "exit" and outcome.rc == 0 and refuse:
        found.append("accepted (exit status 0) a value outside its declared bound")
    if outcome.written:
        found.append(f"wrote outside --out: {outcome.written[:5]}")
    if refuse and outcome.rc not in (0, None) and outcome.written_allowed:
        found.append(f"refused only after writing: {outcome.written_allowed[:5]}")
    return found


# ---------------------------------------------------------------------------------------------
# Hostile values


@dataclasses.dataclass(frozen=True)
class Value:
    """A command-line value and whether the command must refuse it."""

    text: str
    refuse: bool
    why: str


EMPTY_AND_ODD = [
    "",
    " ",
    "-",
    "--",
    "\u00e9\u00e8\u2603",
    "\u202e1",
    "\U0001f600",
    "a" * 5000,
    "-1e-400",
    "0x10",
    "1_000",
    "\u0661\u0662",
    "\uff11\uff12",
]


def _number_text(x) -> str:
    return repr(x) if isinstance(x, float) else str(x)


def values_for(leaf) -> list[Value]:
    """Values for one config field (`emotf.cli.flags.Leaf`): outside its declared bound, of the
    wrong type, nan/inf, huge, empty, unicode (`refuse` where the bound or the type says so), and
    in-range edges of the bound (`refuse=False`)."""
    from emotf.bounds import bound_of
    from emotf.cli.flags import _default

    bound = bound_of(leaf.field)
    optional, kind = _unwrap(leaf.annotation)
    default = _default(leaf.field)
    out: list[Value] = []
    if kind is bool:
        out += [Value(t, True, "not a boolean") for t in ("maybe", "2", "-1", "tru", "nan", "")]
        out += [Value(t, False, "a boolean") for t in ("true", "false")]
    elif kind in (int, float):
        if kind is int:
            out += [Value(t, True, "not an integer") for t in ("1.5", "nan", "inf", "1e3", "abc")]
            huge = [10**18, -(10**18), 10**100, 2**31, 2**63]
        else:
            out += [
                Value(t, True, "not finite")
                for t in ("nan", "inf", "-inf", "1e999", "-1e999", "NaN")
            ]
            out += [Value("abc", True, "not a number")]
            huge = [1e300, -1e300, 1e-300, 5e-324, 1e-9, -0.0]
        for x in huge + [0, -1]:
            if default is not dataclasses.MISSING and x == default:
                continue
            refuse = bound is not None and not bound.contains(kind(x))
            out.append(
                Value(
                    _number_text(kind(x)),
                    refuse,
                    "outside the bound"
                    if refuse
                    else "an extreme value (no bound declared)"
                    if bound is None
                    else "inside the bound",
                )
            )
        if bound is not None:
            out += _edges(bound, kind)
    elif kind is str:
        if bound is not None and bound.choices is not None:
            out += [
                Value(t, t not in bound.choices, "not a declared choice")
                for t in EMPTY_AND_ODD + [str(c).upper() for c in bound.choices]
            ]
        else:
            out += [Value(t, False, "an odd string") for t in EMPTY_AND_ODD]
    elif _is_tuple(kind):
        element = _tuple_element(kind)
        out += [Value(t, True, "not a list of numbers") for t in ("a,b", "1.5,x", "nan,nan")]
        out += [
            Value(t, False, "an odd list")
            for t in ("", ",", "0", "-1,-1", "0,0", "1," * 2000, "99999,99999", "1x1")
        ]
        if bound is not None and element in (int, float):
            for x in (0, -1, 10**9):
                if not bound.contains(element(x)):
                    out.append(Value(f"{x},{x}", True, "an element outside the bound"))
    if optional:
        out += [Value(t, False, "none") for t in ("none", "null", "NONE")]
    return out


def _edges(bound, kind) -> list[Value]:
    """In-range edges of a numeric bound and the values just outside them."""
    out = []
    step = 1 if kind is int else 1e-6
    for edge, _inside in ((bound.ge, True), (bound.gt, False), (bound.le, True), (bound.lt, False)):
        if edge is None or not math.isfinite(edge):
            continue
        upper = edge in (bound.le, bound.lt)
        candidates = [
            edge,
            edge + (step if not upper else -step),
            edge - step if not upper else edge + step,
        ]
        for x in candidates:
            x = kind(x) if kind is float or float(x).is_integer() else None
            if x is None:
                continue
            ok = bound.contains(x)
            out.append(
                Value(
                    _number_text(x),
                    not ok,
                    "inside the bound (an edge)" if ok else "just outside the bound",
                )
            )
    return out


def _unwrap(annotation):
    import types
    import typing

    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return True, inner
    return False, annotation


def _is_tuple(annotation) -> bool:
    import typing

    return typing.get_origin(annotation) is tuple


def _tuple_element(annotation):
    import typing

    args = typing.get_args(annotation)
    return args[0] if args else object


# JSON values that fit no field (or every field badly).
JSON_HOSTILE = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**30,
    -(10**30),
    1e308,
    float("nan"),
    float("inf"),
    "",
    "\u0000",
    "\u202e\U0001f600",
    "x" * 10000,
    [],
    [1, 2],
    {},
    {"a": {"b": None}},
    "../../../../etc/passwd",
]


def json_paths(value, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:20]):
            yield from json_paths(item, (*prefix, i))


def json_replace(value, path, new):
    """A copy of `value` with the item at `path` replaced by `new` (or removed: `new` is
    `REMOVE`)."""
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if new is REMOVE:
        del node[path[-1]]
    else:
        node[path[-1]] = new
    return copy


REMOVE = object()


def json_text(value) -> str:
    return json.dumps(value, indent=1, allow_nan=True)


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def mutate_bytes(data: bytes, kind: str, at: float, noise: bytes) -> bytes:
    """`data` truncated at a fraction `at`, `noise` written over it at `at`, replaced by
    `noise`, or emptied."""
    cut = int(len(data) * at)
    if kind == "truncate":
        return data[:cut]
    if kind == "flip":
        noise = noise or b"\xff"
        return (
            data[:cut]
            + bytes(a ^ b ^ 0xA5 for a, b in zip(data[cut : cut + len(noise)], noise, strict=False))
            + data[cut + len(noise) :]
        )
    if kind == "random":
        return noise
    if kind == "empty":
        return b""
    raise ValueError(kind)


MUTATIONS = ("truncate", "flip", "random", "empty")


def zip_bomb(template: Path, member: str, target: Path, inflated_gb: float = 2.0) -> Path:
    """A copy of the zip `template` whose `member` inflates to `inflated_gb` GB of spaces
    (~4.5 MB a GB on disk, ~2 s a GB to write), written by streaming deflate."""
    size = int(inflated_gb * 2**30)
    with (
        zipfile.ZipFile(template) as source,
        zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as out,
    ):
        for info in source.infolist():
            if info.filename != member:
                out.writestr(info, source.read(info.filename))
        chunk = b" " * 2**24
        with out.open(member, "w", force_zip64=True) as stream:
            for _ in range(size // len(chunk)):
                stream.write(chunk)
    return target


# ---------------------------------------------------------------------------------------------
# The worker


def serve(jobs_fd: int, answers_fd: int) -> None:
    """Run jobs (one JSON object a line) until the pipe closes; answer {"rc": ...} a line."""
    import importlib
    import tempfile
    import traceback

    jobs = os.fdopen(jobs_fd)
    answers = os.fdopen(answers_fd, "w")
    base_env = dict(os.environ)
    saved = os.dup(1), os.dup(2)
    for line in jobs:
        job = json.loads(line)
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(base_env, TMPDIR=job["tmp"], HOME=job["home"], **job["env"])
        tempfile.tempdir = job["tmp"]
        with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.argv = [job["prog"], *job["argv"]]
            start = time.monotonic()
            rc = _call(job, importlib, traceback)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        _reset_globals(time.monotonic() - start)
        answers.write(json.dumps({"rc": rc}) + "\n")
        answers.flush()


def _call(job, importlib, traceback) -> int:
    """What `sys.exit(main())` would give: its status, SystemExit's, or 1 and a traceback."""
    module, function = job["target"].split(":")
    try:
        rc = getattr(importlib.import_module(module), function)(job["argv"])
    except SystemExit as stop:
        rc = stop.code
    except BaseException:  # noqa: BLE001 (what Python itself does with an uncaught error)
        traceback.print_exc()
        return 1
    if rc is None:
        return 0
    if not isinstance(rc, int):
        print(rc, file=sys.stderr)
        return 1
    return rc


def _reset_globals(seconds: float) -> None:
    """Undo what one case may leave for the next, so that a case sees what a fresh process
    would: Keras' global dtype policy, its session (after a case that did real work), and
    TensorFlow's count of retraced functions (five trainings in one process warn of
    "retracing", which no user's single run prints)."""
    keras = sys.modules.get("keras")
    if keras is not None:
        try:
            keras.mixed_precision.set_global_policy("float32")
            if seconds > 1.0:
                keras.backend.clear_session()
        except Exception:  # noqa: BLE001
            pass
    polymorphic = sys.modules.get(
        "tensorflow.python.eager.polymorphic_function.polymorphic_function"
    )
    if polymorphic is not None and hasattr(polymorphic, "_FrequentTracingDetectorManager"):
        polymorphic._frequent_tracing_detector_manager = (
            polymorphic._FrequentTracingDetectorManager()
        )
    import warnings

    warnings.resetwarnings()


# ---------------------------------------------------------------------------------------------
# Fake commands for the harness's self-test (tests/test_fuzz.py): each misbehaves in one way.


def _fake_paths(argv):
    return Path(argv[argv.index("--out") + 1]), Path(argv[argv.index("--input") + 1])


def fake_good_error(argv):
    print("fake: error: input.txt: bad value. Received: x=1", file=sys.stderr)
    return 1


def fake_good_success(argv):
    out, _ = _fake_paths(argv)
    (out / "result.txt").write_text("ok")
    print("done")
    return 0


def fake_traceback(argv):
    raise RuntimeError("boom")


def fake_multiline(argv):
    print("fake: error: first line\nsecond line", file=sys.stderr)
    return 1


def fake_silent_failure(argv):
    return 1


def fake_unnamed(argv):
    print("something went wrong", file=sys.stderr)
    return 1


def fake_hang(argv):
    time.sleep(3600)


def fake_hang_ignoring_signals(argv):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    time.sleep(3600)


def fake_write_cwd(argv):
    Path("stray.txt").write_text("x")
    return 0


def fake_write_input(argv):
    _, source = _fake_paths(argv)
    source.write_text("changed by the command")
    return 0


def fake_write_then_refuse(argv):
    out, _ = _fake_paths(argv)
    (out / "partial.txt").write_text("x")
    print("fake: error: bad value. Received: x=-1", file=sys.stderr)
    return 1


def fake_accept_anything(argv):
    return 0


def fake_memory_hog(argv):
    hog = bytearray(int(2 * MEMORY_GB * 2**30))
    return len(hog) * 0


def fake_exit_by_signal(argv):
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.path.insert(0, str(REPO))
        serve(int(sys.argv[2]), int(sys.argv[3]))
