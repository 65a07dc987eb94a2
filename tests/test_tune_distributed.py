"""Distributed search (keras-tuner's chief/worker mode) on loopback: a chief and two workers as
local `emotf-tune` processes against a serial search of the same command; role checks."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emotf.cli.tune import main as tune_main
from emotf.cli.tune import parse_config
from emotf.configs import ModelConfig
from emotf.storage import read_json
from emotf.tuning.distributed import TunerRole, serve_oracle
from emotf.tuning.search import tune
from tests.test_train import config, write_tiny_shards

ROOT = Path(__file__).resolve().parents[1]
MAX_TRIALS = 3
TIMEOUT_S = 240  # the whole distributed search; about 30 s on 2 shared cores
# The workers' ids leave out tuner0, the id of a one-process search: continuing the finished
# search in one process must then find the oracle through search/oracle.json alone.
WORKERS = ("tuner1", "tuner2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search_argv(tmp_path: Path, out: Path) -> list[str]:
    """emotf-tune over tiny record shards: 3 random trials x 1 epoch, test fold 3."""
    records = tmp_path / "records"
    if not records.exists():
        write_tiny_shards(records)
    model = ModelConfig(
        num_segments=2,
        frame_size=32,
        video_stem_width=4,
        video_widths=(4,),
        audio_widths=(4, 4),
        fc_units=4,
    )
    train = config(tmp_path, records=str(records), epochs=1, batch_size=4, model=model)
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps(train.to_dict()))
    return [
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--max-trials",
        str(MAX_TRIALS),
        "--search",
        "learning_rate,dropout",
    ]


def spawn(argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with log.open("w") as f:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "emotf.cli.tune", *argv],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """The distributed search (chief by flags, tuner1 by keras-tuner's variables, tuner2 by
    flags) and then the same search serially, in this process."""
    tmp = tmp_path_factory.mktemp("distributed")
    out = tmp / "tune"
    argv = search_argv(tmp, out)
    address = f"127.0.0.1:{free_port()}"
    logs = {name: tmp / f"{name}.log" for name in ("chief", *WORKERS)}
    procs = {}
    start = time.monotonic()
    try:
        procs["chief"] = spawn(
            [*argv, "--tuner-id", "chief", "--oracle-address", address], logs["chief"]
        )
        host, port = address.split(":")
        procs["tuner1"] = spawn(
            argv,
            logs["tuner1"],
            env={
                "KERASTUNER_TUNER_ID": "tuner1",
                "KERASTUNER_ORACLE_IP": host,
                "KERASTUNER_ORACLE_PORT": port,
            },
        )
        procs["tuner2"] = spawn(
            [*argv, "--tuner-id", "tuner2", "--oracle-address", address], logs["tuner2"]
        )
        for name, proc in procs.items():
            left = TIMEOUT_S - (time.monotonic() - start)
            assert proc.wait(timeout=max(left, 1)) == 0, logs[name].read_text()[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    distributed_s = time.monotonic() - start
    start = time.monotonic()
    serial = tune(parse_config(search_argv(tmp, tmp / "serial")))
    serial_s = time.monotonic() - start
    print(
        f"\nchief + 2 workers {distributed_s:.1f} s (3 processes, TensorFlow imports included); "
        f"serial in-process {serial_s:.1f} s"
    )
    return out, {name: log.read_text() for name, log in logs.items()}, serial, argv


def test_every_trial_runs_exactly_once(searches):
    out, logs, _, _ = searches
    ids = [f"{k}" for k in range(MAX_TRIALS)]
    rows = read_json(out / "trials.json", list)
    assert sorted(r["trial_id"] for r in rows) == ids
    assert {r["status"] for r in rows} == {"COMPLETED"}
    assert sorted(p.name for p in (out / "search").glob("trial_*")) == [f"trial_{i}" for i in ids]
    # keras-tuner's own ledger: each trial handed out once, and ended once.
    oracle = read_json(out / "search" / "oracle.json")
    assert sorted(oracle["start_order"]) == ids and sorted(oracle["end_order"]) == ids
    assert oracle["run_times"] == {i: 1 for i in ids} and oracle["ongoing_trials"] == {}
    # Each worker's own account: disjoint, together every trial.
    ran = {}
    for worker in WORKERS:
        (line,) = re.findall(
            rf"^{worker}: trials run: (.*) \(the chief", logs[worker], re.MULTILINE
        )
        ran[worker] = [] if line == "none" else line.split(", ")
    assert sorted(ran["tuner1"] + ran["tuner2"]) == ids
    # One training per trial: one TensorBoard event file per trial's training run.
    for i in ids:
        events = list((out / "tensorboard" / i / "execution0" / "train").glob("events.out.*"))
        assert len(events) == 1, (i, events)
    assert "listening on 127.0.0.1:" in logs["chief"]


def test_the_trials_table_equals_a_serial_search(searches):
    """The same seed and trial count: the oracle (the chief's) draws trial k's hyperparameters
    from the seed alone (random search), whichever worker asks, so the table keyed by trial id
    is the serial one. Every trial starts from the same weights and data (`--seed`, CPU op
    determinism) in a fresh model, so the scores and best epochs are equal too: the whole
    table, its order included, is compared."""
    out, _, serial, _ = searches
    table = read_json(out / "trials.json", list)
    assert table == serial["trials"]
    best = read_json(out / "best_config.json")
    assert best["config"] == {**serial["best_config"], "out": str(out / "best-run")}


def test_a_finished_distributed_search_continues_in_one_process(searches):
    """No search/tuner0.json there: the oracle is reloaded from search/oracle.json, so nothing
    is trained again and the table is the chief's."""
    out, _, _, argv = searches
    assert not (out / "search" / "tuner0.json").exists()
    table = read_json(out / "trials.json", list)
    again = tune(parse_config(argv))
    assert again["trials_run"] == [] and again["trials"] == table


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (
            ["--tuner-id", "tuner1"],
            {},
            "worker tuner1 needs the chief's address: give --oracle-address",
        ),
        (["--tuner-id", "chief"], {}, "the chief needs the address to listen on"),
        (
            ["--tuner-id", "worker1", "--oracle-address", "127.0.0.1:5000"],
            {},
            "must be 'chief' or 'tunerN' (tuner0, tuner1, ...). Received: 'worker1'",
        ),
        (
            ["--tuner-id", "tuner0", "--oracle-address", "127.0.0.1:99999"],
            {},
            "a port in 1..65535. Received: '127.0.0.1:99999'",
        ),
        (["--tuner-id", "tuner0", "--oracle-address", "localhost"], {}, "Received: 'localhost'"),
        (["--oracle-address", "127.0.0.1:5000"], {}, "an oracle address needs a tuner id"),
        (
            [],
            {"KERASTUNER_TUNER_ID": "tuner0", "KERASTUNER_ORACLE_IP": "127.0.0.1"},
            "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT go together",
        ),
        (
            [],
            {
                "KERASTUNER_TUNER_ID": "tuner0",
                "KERASTUNER_ORACLE_IP": "127.0.0.1",
                "KERASTUNER_ORACLE_PORT": "http",
            },
            "Received: '127.0.0.1:http'",
        ),
    ],
)
def test_a_bad_role_is_one_line_naming_it(tmp_path, monkeypatch, capsys, argv, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        tune_main(["--out", str(tmp_path / "t"), *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_flags_override_keras_tuners_variables():
    env = {
        "KERASTUNER_TUNER_ID": "tuner3",
        "KERASTUNER_ORACLE_IP": "10.0.0.1",
        "KERASTUNER_ORACLE_PORT": "8000",
    }
    assert TunerRole.from_environ(env) == TunerRole("tuner3", "10.0.0.1:8000")
    role = TunerRole.from_environ(
        {**env, "KERASTUNER_ORACLE_PORT": "x"}, tuner_id="chief", oracle_address="[::1]:9000"
    )
    assert role.is_chief and role.environ() == {
        "KERASTUNER_TUNER_ID": "chief",
        "KERASTUNER_ORACLE_IP": "[::1]",
        "KERASTUNER_ORACLE_PORT": "9000",
    }
    assert not TunerRole.from_environ({}).distributed


def test_a_chief_refuses_an_address_it_cannot_listen_on():
    class Tuner:  # what serve_oracle uses of a tuner before it listens
        oracle, project_dir = object(), "search"

        def save(self):
            pass

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(RuntimeError, match=rf"^{address}: the chief cannot listen there"):
            serve_oracle(Tuner(), TunerRole("chief", address))


def test_keras_tuner_sees_the_role_only_inside_the_search(monkeypatch):
    from emotf.tuning.distributed import ENV_NAMES, keras_tuner_environment

    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner7")
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT", raising=False)
    with keras_tuner_environment(TunerRole("chief", "127.0.0.1:8000")):
        assert [os.environ.get(n) for n in ENV_NAMES] == ["chief", "127.0.0.1", "8000"]
    with keras_tuner_environment(TunerRole()):  # one process: keras-tuner sees no role
        assert [os.environ.get(n) for n in ENV_NAMES] == [None, None, None]
    assert [os.environ.get(n) for n in ENV_NAMES] == ["tuner7", None, None]


def test_a_worker_without_its_chief_names_the_oracle_within_the_deadline(tmp_path):
    """No chief listening: one line naming the oracle's address after --oracle_timeout_seconds,
    not keras-tuner's silent wait for the oracle (which has no deadline)."""
    address = f"127.0.0.1:{free_port()}"
    argv = [
        *search_argv(tmp_path, tmp_path / "search"),
        "--tuner-id",
        "tuner1",
        "--oracle-address",
        address,
        "--oracle_timeout_seconds",
        "3",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "emotf.cli.tune", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1 and "Traceback" not in err, err
    # (TensorFlow's C++ start-up lines, written before emotf can quiet them, left aside)
    assert [line for line in err.splitlines() if line.startswith("emotf")] == [
        f"emotf-tune: error: the chief's oracle ({address}) did not answer within 3 s (start "
        f"emotf-tune --tuner-id chief --oracle-address {address} first, check the address, or "
        "raise --oracle_timeout_seconds)"
    ]
