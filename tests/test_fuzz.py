"""Issue 19, item 6: a fuzz harness over every console script (docs/fuzzing.md).

For each console script of setup.cfg: hostile values for every declared config field (the
leaves of its config, with the bounds of `emotf.bounds`) and for its hand-written flags, and
random or truncated bytes for every file it reads (records, run folders, SavedModels, media,
CSV splits, --config JSON). Each case runs under a time and memory cap (`tests/fuzz_cases.py`)
and must keep the contract of `fuzz_cases.problems`: exit 0, or one line on stderr naming the
problem; no traceback, no hang, nothing written outside --out; a value outside its declared
bound refused before anything is written.

The valid inputs (a 3-clip synthetic sample, its records, a run trained one epoch on a tiny
model, its export, an evaluation) are built once per session, by the console scripts
themselves, and every case mutates its own copy. `--fuzz-profile ci` (the default) runs a few
derandomized examples per test; `--fuzz-profile long` (or EMOTF_FUZZ=long) many random ones.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests import fuzz_cases as fz
from tests.fuzz_cases import Case, Value, problems
from tests.helpers_cli import TINY_MODEL_FLAGS

PROFILE = os.environ.get("EMOTF_FUZZ", "ci")
LONG = PROFILE == "long"
COMMON = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
PROFILES = {
    # CI: few examples, the same ones on every run (derandomized), no shrinking (a failure is
    # reported with its exact input; shrinking would rerun slow cases).
    "ci": dict(max_examples=2, derandomize=True, phases=(Phase.explicit, Phase.generate)),
    "long": dict(
        max_examples=int(os.environ.get("EMOTF_FUZZ_EXAMPLES", 40)),
        derandomize=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    ),
}
FUZZ = settings(**COMMON, **PROFILES[PROFILE])
FEW = settings(FUZZ, max_examples=1 if not LONG else FUZZ.max_examples)

SCRIPTS = fz.console_scripts()


# ---------------------------------------------------------------------------------------------
# The valid inputs, built once per session (once for all pytest-xdist workers)


@dataclasses.dataclass
class Inputs:
    root: Path

    sample = property(lambda self: self.root / "sample")  # 3 actors x 1 clip (folds 0, 1, 2)
    one_clip = property(lambda self: self.root / "one_clip")  # 1 clip: cheap builds
    records = property(lambda self: self.root / "records")
    run = property(lambda self: self.root / "run")  # fold 0, 1 epoch, tiny model, exported
    export = property(lambda self: self.root / "run" / "export")
    evaluation = property(lambda self: self.root / "evaluation")
    split = property(lambda self: self.root / "split")  # train.csv, test.csv
    mp4 = property(lambda self: self.root / "clip.mp4")

    @property
    def video(self) -> Path:
        return sorted((self.sample / "VideoFlash").glob("*.flv"))[0]

    @property
    def wav(self) -> Path:
        return self.sample / "AudioWAV" / (self.video.stem + ".wav")


def _shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def runner(tmp_path_factory):
    runner = fz.Runner(tmp_path_factory.mktemp("fuzz-runner"))
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def cases(tmp_path_factory):
    """A new `Case` per call."""
    base = tmp_path_factory.mktemp("fuzz-cases")
    return lambda: Case(base / uuid.uuid4().hex[:10])


@pytest.fixture(scope="session")
def inputs(tmp_path_factory, runner) -> Inputs:
    root = _shared_root(tmp_path_factory) / "emotf-fuzz-inputs"
    with open(_shared_root(tmp_path_factory) / "emotf-fuzz.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "ready").exists():
            shutil.rmtree(root, ignore_errors=True)
            _build_inputs(Inputs(root), runner, tmp_path_factory)
            (root / "ready").write_text("ok")
    return Inputs(root)


def _build_inputs(inputs: Inputs, runner, tmp_path_factory):
    """The valid inputs, by the console scripts (each such run must keep the contract too)."""
    inputs.root.mkdir(parents=True)

    def valid(prog, argv, out):
        case = Case(tmp_path_factory.mktemp("fuzz-build"))
        outcome = runner.run(prog, argv, case, allowed=[out], timeout=300)
        assert outcome.status == "exit" and outcome.rc == 0 and not problems(outcome), (
            outcome.describe()
        )

    valid(
        "emotf-make-sample",
        [
            "--out",
            inputs.sample,
            "--tiny",
            "--num_actors",
            "3",
            "--clips_per_actor",
            "1",
            "--workers",
            "1",
        ],
        inputs.sample,
    )
    valid(
        "emotf-build-records",
        ["--data-dir", inputs.sample, "--out", inputs.records, "--workers", "1", "--no-progress"],
        inputs.records,
    )
    valid(
        "emotf-train",
        [
            "--records",
            inputs.records,
            "--fold",
            "0",
            "--out",
            inputs.run,
            "--epochs",
            "1",
            "--batch-size",
            "1",
            "--export",
            "true",
            "--verbose",
            "0",
            *TINY_MODEL_FLAGS,
        ],
        inputs.run,
    )
    valid(
        "emotf-evaluate",
        ["--run", inputs.run, "--records", inputs.records, "--out", inputs.evaluation],
        inputs.evaluation,
    )
    # One clip alone (VideoFlash + AudioWAV) for builds on mutated media.
    for folder in ("VideoFlash", "AudioWAV"):
        (inputs.one_clip / folder).mkdir(parents=True)
    shutil.copy2(inputs.video, inputs.one_clip / "VideoFlash")
    shutil.copy2(inputs.wav, inputs.one_clip / "AudioWAV")
    names = sorted(p.stem for p in (inputs.sample / "VideoFlash").glob("*.flv"))
    inputs.split.mkdir()
    (inputs.split / "train.csv").write_text("\n".join(names[1:]) + "\n")
    (inputs.split / "test.csv").write_text(names[0] + "\n")
    _transcode_mp4(inputs.video, inputs.mp4)


def _transcode_mp4(source: Path, target: Path):
    """The clip's video as MPEG-4 Part 2 in an MP4 (no audio track: --audio gives it)."""
    from fractions import Fraction

    import av

    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as dst:
        stream_in = src.streams.video[0]
        rate = Fraction(stream_in.average_rate).limit_denominator(1001)
        stream = dst.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = (stream_in.width, stream_in.height, "yuv420p")
        for i, frame in enumerate(src.decode(stream_in)):
            frame = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


def check(outcome, *, refuse=False, why=""):
    found = problems(outcome, refuse=refuse)
    assert not found, f"{'; '.join(found)}{f' [{why}]' if why else ''}\n{outcome.describe()}"


# ---------------------------------------------------------------------------------------------
# Every declared config field, through its dotted flag


@dataclasses.dataclass(frozen=True)
class Command:
    """A console script with a config: its config class, root flag name and cheap base argv."""

    prog: str
    config: str  # "module:Class"
    root: str  # the dotted flags' root name (`--train.epochs`)
    base: object  # (inputs, case) -> argv
    paths_in: tuple = ()  # fields naming files or folders it reads
    paths_out: tuple = ()  # fields naming the folder it writes

    @property
    def cls(self):
        import importlib

        module, name = self.config.split(":")
        return getattr(importlib.import_module(module), name)


def _train_base(i: Inputs, c: Case, prefix=""):
    return [
        "--records",
        i.records,
        "--fold",
        "0",
        "--out",
        c.out / "run",
        "--epochs",
        "1",
        "--batch-size",
        "1",
        "--verbose",
        "0",
        *[f"--{prefix}{a[2:]}" if a.startswith("--") else a for a in TINY_MODEL_FLAGS],
    ]


COMMANDS = [
    Command(
        "emotf-train",
        "emotf.configs:TrainConfig",
        "train",
        _train_base,
        paths_in=("records", "split"),
        paths_out=("out",),
    ),
    Command(
        "emotf-tune",
        "emotf.tuning.search:TuneConfig",
        "tune",
        lambda i, c: [*_train_base(i, c, "train."), "--max-trials", "1"],
        paths_in=("train.records", "train.split"),
        paths_out=("out", "train.out"),
    ),
    Command(
        "emotf-tune",
        "emotf.tuning.distributed:TunerRole",
        "distributed",
        lambda i, c: [*_train_base(i, c, "train."), "--max-trials", "1"],
    ),
    Command(
        "emotf-build-records",
        "emotf.records.config:BuildConfig",
        "build",
        lambda i, c: [
            "--data-dir",
            i.one_clip,
            "--out",
            c.out / "records",
            "--workers",
            "1",
            "--no-progress",
        ],
        paths_in=("data_dir",),
        paths_out=("out_dir",),
    ),
    Command(
        "emotf-make-sample",
        "emotf.synthetic.sample:SampleConfig",
        "sample",
        lambda i, c: [
            "--out",
            c.out / "sample",
            "--tiny",
            "--num_actors",
            "1",
            "--clips_per_actor",
            "1",
            "--workers",
            "1",
        ],
    ),
    Command(
        "emotf-demo",
        "emotf.demo:DemoConfig",
        "demo",
        lambda i, c: [
            "--out",
            c.out / "demo",
            "--num_actors",
            "3",
            "--clips_per_actor",
            "1",
            "--epochs",
            "1",
            "--batch_size",
            "1",
            "--workers",
            "1",
            "--verbose",
            "0",
            *TINY_MODEL_FLAGS,
        ],
        paths_out=("out",),
    ),
]


def _leaf_params():
    from emotf.cli.flags import leaves

    params = []
    for command in COMMANDS:
        for leaf in leaves(command.cls):
            params.append(
                pytest.param(command, leaf, id=f"{command.prog}--{command.root}.{leaf.key}")
            )
    return params


# Commands whose valid run trains or renders media for seconds: in the CI profile their fields
# get only values that should be refused (or that no bound covers), not in-range ones.
HEAVY = ("emotf-train", "emotf-tune", "emotf-demo", "emotf-build-records", "emotf-make-sample")
IN_RANGE = ("inside the bound", "a boolean", "none")

PATH_VALUES = [
    "",
    " ",
    "missing",
    "\u00e9\u2603 folder",
    "a" * 300,
    "file.txt",
    "-x",
    "\U0001f600/\u202e",
    "./",
    "*",
    "?/[",
    "~",
]


def _path_values(leaf, command) -> list[Value]:
    if not LONG and command.prog in HEAVY:  # CI: paths that fail before a run
        odd = ("", "-x") if leaf.key in command.paths_out else ("", "missing", "-x", "\u2603/[")
        return [Value(t, False, "an odd path") for t in odd]
    return [Value(t, False, "an odd path") for t in PATH_VALUES]


def _value_strategy(command, leaf):
    key = leaf.key
    if key in command.paths_in or key in command.paths_out:
        values = _path_values(leaf, command)
    else:
        values = fz.values_for(leaf)
    if not LONG and command.prog in HEAVY:  # CI: no full runs on in-range values (see HEAVY)
        values = [v for v in values if not v.why.startswith(IN_RANGE)] or values
    explicit = st.sampled_from(_rotate(values, key))
    if not LONG:
        return explicit
    return st.one_of(explicit, _random_value(leaf))


def _rotate(values: list, key: str) -> list:
    """The list started at a place fixed by the field name, so that the derandomized first
    examples differ from field to field (hypothesis tries the first element first)."""
    k = sum(map(ord, key)) % max(len(values), 1)
    return values[k:] + values[:k]


def _random_value(leaf):
    """Random text of the field's type, with `refuse` from its declared bound."""
    from emotf.bounds import bound_of

    optional, kind = fz._unwrap(leaf.annotation)
    bound = bound_of(leaf.field)

    def judged(x, text=None):
        refuse = False
        if kind is float and isinstance(x, float) and not (x == x and abs(x) != float("inf")):
            refuse = True
        elif bound is not None and isinstance(x, (int, float)) and not bound.contains(x):
            refuse = True
        return Value(text if text is not None else fz._number_text(x), refuse, "random")

    if kind is int:
        return st.integers(-(2**70), 2**70).map(judged)
    if kind is float:
        return st.floats(allow_nan=True, allow_infinity=True).map(judged)
    if kind is bool:
        return (
            st.text(max_size=6)
            .filter(lambda t: "\x00" not in t)
            .map(
                lambda t: Value(
                    t,
                    t.lower()
                    not in (
                        "1",
                        "0",
                        "true",
                        "false",
                        "yes",
                        "no",
                        "on",
                        "off",
                        "none",
                        "null",
                        "",
                    ),
                    "random",
                )
            )
        )
    return (
        st.text(max_size=40)
        .filter(lambda t: "\x00" not in t)
        .map(lambda t: Value(t, False, "random text"))
    )


def _inside(case: Case, text: str) -> list[Path]:
    """Where a relative `--out TEXT` lands (nowhere for a blank one: it must be refused)."""
    return [case.cwd / text] if text.strip() else []


@pytest.mark.parametrize(("command", "leaf"), _leaf_params())
def test_every_config_field_refuses_nonsense_in_one_line(command, leaf, runner, inputs, cases):
    """`--ROOT.FIELD VALUE`: a hostile value for one field, the others cheap and valid."""

    @FEW
    @given(value=_value_strategy(command, leaf))
    def case_for(value):
        case = cases()
        flag = f"--{command.root}.{leaf.key}"
        allowed = [case.out]
        if leaf.key in command.paths_out:  # a relative folder lands in the cwd: allowed
            allowed += _inside(case, value.text)
        outcome = runner.run(
            command.prog,
            [*command.base(inputs, case), flag, value.text],
            case,
            allowed=allowed,
            watch=[inputs.root],
        )
        check(outcome, refuse=value.refuse, why=f"{flag} {value.text[:80]!r}: {value.why}")

    case_for()


# ---------------------------------------------------------------------------------------------
# Hand-written flags (emotf-predict, emotf-evaluate, emotf-export, emotf-verify-records, ...)

FLOAT_BAD = [
    "nan",
    "inf",
    "-inf",
    "0",
    "-0",
    "-1",
    "1e-9",
    "1e-300",
    "1e300",
    "abc",
    "",
    "\u0661",
    "1e999",
]
INT_BAD = ["0", "-1", "-9999999999", str(10**18), str(10**100), "1.5", "nan", "abc", "", "\uff11"]


def _positive(text: str, kind) -> bool:
    """Whether argparse's `type=kind` takes `text` (`int("\uff11")` is 1) as a finite number
    > 0: what --help declares for sizes, counts, versions, window and hop."""
    try:
        value = kind(text)
    except ValueError:
        return False
    return value > 0 and value != float("inf")


def _at_least(text: str, low: int) -> bool:
    """Whether `int(text)` is an integer >= `low` (a version may be 0; 0 workers: no pool)."""
    try:
        return int(text) >= low
    except ValueError:
        return False


def _fold(text: str) -> bool:
    try:
        return 0 <= int(text) <= 9
    except ValueError:
        return False


def _predict(extra):
    return lambda i, c: ["--model", i.export, i.video, "--out", c.out, "--no-progress", *extra]


HAND_FLAGS = {
    # (prog, base argv builder, flag, values, refuse?) -- refuse: the value is outside what
    # --help declares (a positive window/hop/batch size).
    "predict-window": (
        "emotf-predict",
        _predict([]),
        "--window",
        FLOAT_BAD,
        lambda t: not _positive(t, float),
    ),
    "predict-hop": (
        "emotf-predict",
        _predict([]),
        "--hop",
        FLOAT_BAD,
        lambda t: not _positive(t, float),
    ),
    "predict-batch-size": (
        "emotf-predict",
        _predict([]),
        "--batch-size",
        INT_BAD,
        lambda t: not _positive(t, int),
    ),
    "predict-audio": (
        "emotf-predict",
        _predict([]),
        "--audio",
        PATH_VALUES + ["/dev/zero", "/dev/null", "/proc/self/status"],
        None,
    ),
    "predict-out": (
        "emotf-predict",
        lambda i, c: ["--model", i.export, i.video, "--no-progress"],
        "--out",
        [p for p in PATH_VALUES if p.strip()],
        None,
    ),
    "predict-input": (
        "emotf-predict",
        lambda i, c: ["--model", i.export, "--out", c.out, "--no-progress"],
        "",
        PATH_VALUES + ["/dev/null", "/dev/zero", "**", "/proc/self/fd/*"],
        None,
    ),
    "predict-model": (
        "emotf-predict",
        lambda i, c: [i.video, "--out", c.out, "--no-progress"],
        "--model",
        PATH_VALUES + ["/dev/null", "/"],
        None,
    ),
    "evaluate-fold": (
        "emotf-evaluate",
        lambda i, c: ["--run", i.run, "--records", i.records, "--out", c.out],
        "--fold",
        INT_BAD + ["10", "99"],
        lambda t: not _fold(t),
    ),
    "evaluate-batch-size": (
        "emotf-evaluate",
        lambda i, c: ["--run", i.run, "--records", i.records, "--out", c.out],
        "--batch-size",
        INT_BAD,
        lambda t: not _positive(t, int),
    ),
    "evaluate-segments": (
        "emotf-evaluate",
        lambda i, c: ["--run", i.run, "--records", i.records, "--out", c.out],
        "--segments",
        [
            "0",
            "-1..3",
            "1..100000",
            "3..1",
            "",
            "a..b",
            ",",
            "1,1,1",
            str(10**18),
            "\u0661..\u0662",
        ],
        None,
    ),
    "evaluate-labels": (
        "emotf-evaluate",
        lambda i, c: ["--run", i.run, "--records", i.records, "--out", c.out],
        "--labels",
        ["", "INTENDED", "\u00e9"],
        lambda t: True,
    ),
    "evaluate-extras": (
        "emotf-evaluate",
        lambda i, c: ["--run", i.run, "--records", i.records, "--out", c.out],
        "--extras.humans",
        ["maybe", "", "2"],
        lambda t: True,
    ),
    "evaluate-votes": (
        "emotf-evaluate",
        lambda i, c: ["--run", i.run, "--records", i.records, "--out", c.out],
        "--votes",
        PATH_VALUES + ["/dev/null", "/dev/zero"],
        None,
    ),
    "evaluate-records": (
        "emotf-evaluate",
        lambda i, c: ["--run", i.run, "--out", c.out],
        "--records",
        PATH_VALUES + ["/dev/null"],
        None,
    ),
    "evaluate-run": (
        "emotf-evaluate",
        lambda i, c: ["--out", c.out],
        "--run",
        PATH_VALUES + ["/dev/null", "/"],
        None,
    ),
    "evaluate-compare": (
        "emotf-evaluate",
        lambda i, c: ["--compare", i.evaluation],
        "",
        PATH_VALUES + ["/dev/null", "/dev/zero"],
        None,
    ),
    "export-version": (
        "emotf-export",
        lambda i, c: [i.run, "--out", c.out],
        "--version",
        INT_BAD + ["1"],
        lambda t: not _at_least(t, 0),
    ),
    "export-run": (
        "emotf-export",
        lambda i, c: ["--out", c.out],
        "",
        PATH_VALUES + ["/dev/null"],
        None,
    ),
    "verify-records": (
        "emotf-verify-records",
        lambda i, c: [],
        "",
        PATH_VALUES + ["/dev/null", "/proc", "/"],
        None,
    ),
    "make-sample-workers": (
        "emotf-make-sample",
        lambda i, c: [
            "--out",
            c.out / "s",
            "--tiny",
            "--num_actors",
            "1",
            "--clips_per_actor",
            "1",
        ],
        "--workers",
        INT_BAD,
        lambda t: not _at_least(t, 0),
    ),
    "config-file": (None, None, "--config", PATH_VALUES + ["/dev/null", "/dev/zero", "/"], None),
}


@pytest.mark.parametrize("name", sorted(HAND_FLAGS))
def test_every_hand_written_flag_refuses_nonsense_in_one_line(name, runner, inputs, cases):
    prog, base, flag, values, refuse = HAND_FLAGS[name]
    progs = [prog] if prog else [c.prog for c in COMMANDS if c.root != "distributed"]

    @FUZZ
    @given(text=st.sampled_from(_rotate(values, name)), which=st.sampled_from(_rotate(progs, name)))
    def case_for(text, which):
        case = cases()
        if prog is None:  # --config FILE of every command with a config
            command = next(c for c in COMMANDS if c.prog == which)
            argv = [*command.base(inputs, case), flag, text]
        else:
            argv = [*base(inputs, case), *([flag] if flag else []), text]
        allowed = [case.out] + (_inside(case, text) if flag == "--out" else [])
        outcome = runner.run(which, argv, case, allowed=allowed, watch=[inputs.root])
        check(outcome, refuse=bool(refuse and refuse(text)), why=f"{flag} {text[:80]!r}")

    case_for()


# ---------------------------------------------------------------------------------------------
# Every file a command reads: random, truncated, flipped bytes; hostile JSON values


@dataclasses.dataclass(frozen=True)
class FileTarget:
    """A file `path` (relative to the copied input `copy`) that `prog argv` reads."""

    prog: str
    copy: str  # an Inputs attribute: the folder or file copied into the case
    path: str  # the file in the copy to mutate ("" = the copy itself)
    argv: object  # (copy, inputs, case) -> argv
    json: bool = False


def _records_files(i: Inputs):
    shard = sorted(p.name for p in i.records.glob("fold-0-*.tfrecord"))[0]
    return "manifest.json", shard, shard.replace(".tfrecord", ".json")


FILE_TARGETS = {
    # emotf-verify-records: the manifest, a shard, its sidecar
    "verify-manifest": FileTarget(
        "emotf-verify-records", "records", "manifest.json", lambda r, i, c: [r], json=True
    ),
    "verify-shard": FileTarget("emotf-verify-records", "records", "<shard>", lambda r, i, c: [r]),
    "verify-sidecar": FileTarget(
        "emotf-verify-records", "records", "<sidecar>", lambda r, i, c: [r], json=True
    ),
    # emotf-train on records
    "train-manifest": FileTarget(
        "emotf-train",
        "records",
        "manifest.json",
        lambda r, i, c: [*_train_base(i, c)[2:], "--records", r],
        json=True,
    ),
    "train-shard": FileTarget(
        "emotf-train",
        "records",
        "<shard>",
        lambda r, i, c: [*_train_base(i, c)[2:], "--records", r],
    ),
    "train-split-csv": FileTarget(
        "emotf-train", "split", "train.csv", lambda s, i, c: [*_train_base(i, c), "--split", s]
    ),
    "train-config": FileTarget(
        "emotf-train",
        "run",
        "config.json",
        lambda r, i, c: [*_train_base(i, c), "--config", r / "config.json"],
        json=True,
    ),
    "tune-manifest": FileTarget(
        "emotf-tune",
        "records",
        "manifest.json",
        lambda r, i, c: [*_train_base(i, c, "train.")[2:], "--records", r, "--max-trials", "1"],
        json=True,
    ),
    "build-config": FileTarget(
        "emotf-build-records",
        "run",
        "config.json",
        lambda r, i, c: [
            "--config",
            r / "config.json",
            "--data-dir",
            i.one_clip,
            "--out",
            c.out / "records",
        ],
        json=True,
    ),
    # emotf-build-records on media
    "build-flv": FileTarget(
        "emotf-build-records",
        "one_clip",
        "<flv>",
        lambda d, i, c: [
            "--data-dir",
            d,
            "--out",
            c.out / "records",
            "--workers",
            "1",
            "--no-progress",
        ],
    ),
    "build-wav": FileTarget(
        "emotf-build-records",
        "one_clip",
        "<wav>",
        lambda d, i, c: [
            "--data-dir",
            d,
            "--out",
            c.out / "records",
            "--workers",
            "1",
            "--no-progress",
        ],
    ),
    # a run folder: emotf-evaluate --run, --model, emotf-export
    "evaluate-run-config": FileTarget(
        "emotf-evaluate",
        "run",
        "config.json",
        lambda r, i, c: ["--run", r, "--records", i.records, "--out", c.out],
        json=True,
    ),
    "evaluate-run-metrics": FileTarget(
        "emotf-evaluate",
        "run",
        "metrics.json",
        lambda r, i, c: ["--run", r, "--records", i.records, "--out", c.out],
        json=True,
    ),
    "evaluate-run-model": FileTarget(
        "emotf-evaluate",
        "run",
        "model.keras",
        lambda r, i, c: ["--run", r, "--records", i.records, "--out", c.out],
    ),
    "evaluate-model-file": FileTarget(
        "emotf-evaluate",
        "run",
        "model.keras",
        lambda r, i, c: [
            "--model",
            r / "model.keras",
            "--records",
            i.records,
            "--fold",
            "0",
            "--out",
            c.out,
        ],
    ),
    "evaluate-run-weights": FileTarget(
        "emotf-evaluate",
        "run",
        "best.weights.h5",
        lambda r, i, c: ["--run", r, "--records", i.records, "--out", c.out],
    ),
    "evaluate-calibration": FileTarget(
        "emotf-evaluate",
        "run",
        "calibration.json",
        lambda r, i, c: ["--run", r, "--records", i.records, "--out", c.out],
        json=True,
    ),
    "evaluate-compare-csv": FileTarget(
        "emotf-evaluate",
        "evaluation",
        "predictions.csv",
        lambda e, i, c: ["--compare", e, i.evaluation],
    ),
    "evaluate-compare-report": FileTarget(
        "emotf-evaluate",
        "evaluation",
        "evaluation.json",
        lambda e, i, c: ["--compare", e, i.evaluation],
        json=True,
    ),
    "export-config": FileTarget(
        "emotf-export", "run", "config.json", lambda r, i, c: [r, "--out", c.out], json=True
    ),
    "export-model": FileTarget(
        "emotf-export", "run", "model.keras", lambda r, i, c: [r, "--out", c.out]
    ),
    # emotf-predict: the SavedModel, its metadata, the media
    "predict-saved-model-pb": FileTarget(
        "emotf-predict",
        "export",
        "1/saved_model.pb",
        lambda m, i, c: ["--model", m, i.video, "--out", c.out, "--no-progress"],
    ),
    "predict-variables": FileTarget(
        "emotf-predict",
        "export",
        "1/variables/variables.data-00000-of-00001",
        lambda m, i, c: ["--model", m, i.video, "--out", c.out, "--no-progress"],
    ),
    "predict-metadata": FileTarget(
        "emotf-predict",
        "export",
        "1/assets.extra/emotf.json",
        lambda m, i, c: ["--model", m, i.video, "--out", c.out, "--no-progress"],
        json=True,
    ),
    "predict-flv": FileTarget(
        "emotf-predict",
        "sample",
        "<flv>",
        lambda s, i, c: ["--model", i.export, _flv(s), "--out", c.out, "--no-progress"],
    ),
    "predict-mp4": FileTarget(
        "emotf-predict",
        "mp4",
        "",
        lambda m, i, c: ["--model", i.export, m, "--audio", i.wav, "--out", c.out, "--no-progress"],
    ),
    "predict-wav": FileTarget(
        "emotf-predict",
        "sample",
        "<wav>",
        lambda s, i, c: [
            "--model",
            i.export,
            _flv(s),
            "--audio",
            _wav(s),
            "--out",
            c.out,
            "--no-progress",
        ],
    ),
}


def _flv(folder: Path) -> Path:
    return sorted((folder / "VideoFlash").glob("*.flv"))[0]


def _wav(folder: Path) -> Path:
    return folder / "AudioWAV" / (_flv(folder).stem + ".wav")


def _resolve(copy: Path, path: str, inputs: Inputs) -> Path:
    if path == "":
        return copy
    if path in ("<shard>", "<sidecar>"):
        _, shard, sidecar = _records_files(inputs)
        return copy / (shard if path == "<shard>" else sidecar)
    if path == "<flv>":
        return _flv(copy)
    if path == "<wav>":
        return _wav(copy)
    return copy / path


def _mutation_strategy(json_file: bool, salt: int):
    """(kind, a, b, noise) mutations. Hypothesis starts from its simplest draw (all zeros), so
    each draw is shifted by `salt` (from the target's name): the first, derandomized examples
    differ from file to file (one is truncated, another flipped mid-file, ...)."""
    kinds = list(fz.MUTATIONS)
    raw = st.tuples(st.integers(0, 3), st.integers(0, 999), st.binary(min_size=1, max_size=64)).map(
        lambda t: (
            "bytes",
            kinds[(t[0] + salt) % len(kinds)],
            ((t[1] + 7 * salt) % 1000) / 1000,
            bytes([(salt * 37 + 1) % 256]) + t[2],
        )
    )
    if not json_file:
        return raw
    choices = list(range(len(fz.JSON_HOSTILE))) + ["remove", "deep"]
    hostile = st.tuples(st.integers(0, 10**6), st.integers(0, len(choices) - 1)).map(
        lambda t: ("json", t[0] + salt, choices[(t[1] + salt) % len(choices)], b"")
    )
    return st.one_of(hostile, raw) if salt % 2 == 0 else st.one_of(raw, hostile)


def _salt(name: str) -> int:
    return sum(map(ord, name))


def _mutate(path: Path, mutation):
    kind, a, b, noise = mutation
    if kind == "bytes":
        path.write_bytes(fz.mutate_bytes(path.read_bytes(), a, b, noise))
        return f"{a} at {b:.3f} ({len(noise)} bytes)"
    value = json.loads(path.read_text())
    paths = list(fz.json_paths(value))
    where = paths[a % len(paths)]
    if b == "deep":
        new = json.loads(fz.deep_json(200))
        path.write_text(
            fz.json_text(fz.json_replace(value, where, new)).replace(
                json.dumps(new), fz.deep_json(100_000)
            )
        )
        return f"{list(where)} -> 100000 nested lists"
    if b == "remove" and where:
        path.write_text(fz.json_text(fz.json_replace(value, where, fz.REMOVE)))
        return f"{list(where)} removed"
    new = fz.JSON_HOSTILE[b] if b != "remove" else None
    path.write_text(fz.json_text(fz.json_replace(value, where, new)))
    return f"{list(where)} -> {json.dumps(new, allow_nan=True)[:60]}"


@pytest.mark.parametrize("name", sorted(FILE_TARGETS))
def test_every_file_read_survives_random_bytes(name, runner, inputs, cases):
    """A copy of the valid inputs with one file mutated: one line or success, never worse."""
    target = FILE_TARGETS[name]

    @FUZZ
    @given(mutation=_mutation_strategy(target.json, _salt(name)))
    def case_for(mutation):
        case = cases()
        copy = case.copy(getattr(inputs, target.copy))
        victim = _resolve(copy, target.path, inputs)
        how = _mutate(victim, mutation)
        outcome = runner.run(
            target.prog,
            target.argv(copy, inputs, case),
            case,
            allowed=[case.out],
            watch=[inputs.root],
        )
        check(outcome, why=f"{victim.relative_to(case.inputs)}: {how}")

    case_for()


# ---------------------------------------------------------------------------------------------
# Size caps: zip bombs, huge and sparse files


@pytest.fixture(scope="session")
def bomb(inputs, tmp_path_factory):
    """model.keras whose config.json inflates to 2 GB (9 MB on disk): with TensorFlow's own
    ~3.4 GB, reading it whole passes the 6 GB cap."""
    return fz.zip_bomb(
        inputs.run / "model.keras",
        "config.json",
        tmp_path_factory.mktemp("bomb") / "model.keras",
        inflated_gb=2,
    )


def _bomb_runs(inputs, case):
    return {
        "emotf-evaluate --run": (
            "emotf-evaluate",
            ["--run", case.inputs / "run", "--records", inputs.records, "--out", case.out],
        ),
        "emotf-evaluate --model": (
            "emotf-evaluate",
            [
                "--model",
                case.inputs / "run" / "model.keras",
                "--records",
                inputs.records,
                "--fold",
                "0",
                "--out",
                case.out,
            ],
        ),
        "emotf-export": ("emotf-export", [case.inputs / "run", "--out", case.out]),
    }


@pytest.mark.parametrize(
    "which", ["emotf-evaluate --run", "emotf-evaluate --model", "emotf-export"]
)
def test_zip_bomb_model_is_refused_in_one_line(which, runner, inputs, cases, bomb):
    case = cases()
    run = case.copy(inputs.run)
    shutil.copy2(bomb, run / "model.keras")
    prog, argv = _bomb_runs(inputs, case)[which]
    outcome = runner.run(prog, argv, case, watch=[inputs.root])
    check(outcome, refuse=True, why="zip bomb")
    assert "MemoryError" not in outcome.stderr, outcome.describe()  # refused by a cap


@pytest.mark.parametrize("name", ["manifest", "config", "metadata", "sidecar"])
def test_huge_json_files_are_refused_before_reading(name, runner, inputs, cases):
    """A sparse 16 GB JSON file (no disk used): refused by its size, not read into memory."""
    case = cases()
    if name == "manifest":
        copy = case.copy(inputs.records)
        victim, prog, argv = copy / "manifest.json", "emotf-verify-records", [copy]
    elif name == "sidecar":
        copy = case.copy(inputs.records)
        victim, prog, argv = (copy / _records_files(inputs)[2], "emotf-verify-records", [copy])
    elif name == "config":
        copy = case.copy(inputs.run)
        victim, prog, argv = copy / "config.json", "emotf-export", [copy, "--out", case.out]
    else:
        copy = case.copy(inputs.export)
        victim, prog, argv = (
            copy / "1" / "assets.extra" / "emotf.json",
            "emotf-predict",
            ["--model", copy, inputs.video, "--out", case.out, "--no-progress"],
        )
    with open(victim, "r+b") as f:
        f.seek(0, os.SEEK_END)
        f.truncate(16 * 2**30)
    outcome = runner.run(prog, argv, case, watch=[inputs.root])
    check(outcome, refuse=True, why=f"{victim.name} of 16 GB")
    assert "MemoryError" not in outcome.stderr, outcome.describe()  # refused by a cap


def test_every_console_script_is_fuzzed():
    """A new console script needs its cases here (config fields, flags, files)."""
    covered = (
        {c.prog for c in COMMANDS}
        | {v[0] for v in HAND_FLAGS.values() if v[0]}
        | {t.prog for t in FILE_TARGETS.values()}
    )
    assert set(SCRIPTS) <= covered, sorted(set(SCRIPTS) - covered)


# ---------------------------------------------------------------------------------------------
# The harness can fail: the checker flags each kind of misbehaviour of a tiny fake command


@pytest.fixture(scope="module")
def fake_runner(tmp_path_factory):
    runner = fz.Runner(tmp_path_factory.mktemp("fake-runner"), timeout=3, start_s=5)
    yield runner
    runner.close()


@pytest.mark.parametrize(
    ("fake", "fresh", "expected"),
    [
        ("good_error", False, None),
        ("good_success", False, None),
        ("traceback", False, "a traceback"),
        ("multiline", False, "2 lines on stderr"),
        ("silent_failure", False, "0 lines on stderr"),
        ("unnamed", False, "does not start with"),
        ("hang", False, "hang"),
        ("hang_ignoring_signals", True, "hang"),
        ("write_cwd", False, "wrote outside --out"),
        ("write_input", False, "wrote outside --out"),
        ("write_then_refuse", False, "refused only after writing"),
        ("accept_anything", False, "accepted (exit status 0)"),
        ("memory_hog", False, "a traceback"),  # MemoryError under the cap, not the machine's RAM
        ("memory_hog", True, "a traceback"),
        ("exit_by_signal", True, "crash"),
    ],
)
def test_harness_flags_misbehaviour(fake, fresh, expected, fake_runner, tmp_path):
    case = Case(tmp_path / "case")
    victim = case.inputs / "input.txt"
    victim.write_text("valid")
    outcome = fake_runner.run(
        "fake",
        ["--out", case.out, "--input", victim],
        case,
        target=f"tests.fuzz_cases:fake_{fake}",
        fresh=fresh,
        timeout=3 if "hang" in fake else 30,
    )
    found = problems(outcome, refuse=fake in ("accept_anything", "write_then_refuse"))
    if expected is None:
        assert found == [], outcome.describe()
    else:
        assert any(expected in p for p in found), (found, outcome.describe())
