"""tf.distribute training (`emotf.training.distribute`, `emotf-train --strategy`): mirrored over two
logical CPU devices, two worker processes on loopback (TF_CONFIG), a killed worker resumed,
the strategy and TF_CONFIG checks.

The distributed runs are subprocesses (a process has one TensorFlow runtime: logical devices
and a multi-worker strategy must be set before anything else), each killed in a `finally`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf
from helpers_workers import ended

from emotf.cli.train import main as train_main
from emotf.training.distribute import (
    ClusterTask,
    check_workers_agree,
    gather_from_workers,
    read_tf_config,
    resolve_strategy,
    scratch_folder,
    task_names,
)

BIG_FOLD, BIG_FOLD_CLIPS = 2, 8  # fold 2 holds 8 clips, the other folds 2
SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI")
EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
TINY = [
    "--fold",
    "3",
    "--epochs",
    "2",
    "--lr_schedule",
    "constant",
    "--learning_rate",
    "0.05",
    "--model.num_segments",
    "2",
    "--model.frame_size",
    "32",
    "--model.spectrogram_shape",
    "16x8",
    "--model.video_stem_width",
    "4",
    "--model.video_widths",
    "4",
    "--model.audio_widths",
    "4,4",
    "--model.fc_units",
    "4",
    "--model.dropout",
    "0",
    "--early_stopping_patience",
    "0",
    "--verbose",
    "0",
]
# Training on fold 2 only (validation: the 8 folds after fold 3): one record file, so the two
# workers shard by data and read the same global batches as one process does.
ONE_FILE = ["--validation_folds", "8", "--batch_size", "2", "--steps_per_epoch", "2"]
TIMEOUT = 240

# The subprocess: optional logical CPU devices; optional record of the epochs it starts and a
# pause after an epoch (the run is then killed there); then `emotf-train` (and optionally the
# same command again with more epochs: a resume).
DRIVER = r"""
import os, sys, time
cpus = int(os.environ.get("DRV_CPUS", "0"))
if cpus:
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration() for _ in range(cpus)])
if os.environ.get("DRV_EPOCHS"):
    import keras
    import emotf.training.train

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            with open(os.environ["DRV_EPOCHS"], "a") as f:
                f.write(f"{epoch}\n")

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == int(os.environ.get("DRV_PAUSE_AFTER", "0")):
                open(os.environ["DRV_EPOCHS"] + ".paused", "w").close()
                time.sleep(600)

    real = emotf.training.train.training_callbacks
    emotf.training.train.training_callbacks = lambda *a, **k: real(*a, **k) + [Record()]
from emotf.cli.train import main
rc = main(sys.argv[1:])
if rc == 0 and os.environ.get("DRV_RESUME_EPOCHS"):  # the same run, resumed for more epochs
    rc = main(sys.argv[1:] + ["--epochs", os.environ["DRV_RESUME_EPOCHS"]])
sys.exit(rc)
"""


def write_records(out: Path) -> Path:
    """Record shards of random clips (one actor per fold), valid CREMA-D names, a manifest."""
    from emotf.records.example import ClipRecord, make_example
    from emotf.records.manifest import seal_records

    rng = np.random.default_rng(0)
    out.mkdir()
    for fold in range(10):
        with tf.io.TFRecordWriter(str(out / f"fold-{fold}-of-10-00000.tfrecord")) as writer:
            for c in range(BIG_FOLD_CLIPS if fold == BIG_FOLD else 2):
                label, t = (fold + c) % 6, 12
                frames = [
                    tf.io.encode_jpeg(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).numpy()
                    for _ in range(t)
                ]
                clip = ClipRecord(
                    clip_id=f"{1001 + fold}_{SENTENCES[c]}_{EMOTIONS[label]}_XX",
                    actor_id=1001 + fold,
                    sentence=SENTENCES[c],
                    emotion=EMOTIONS[label],
                    label=label,
                    intensity="XX",
                    fold=fold,
                    fps=10.0,
                    frames_jpeg=frames,
                    face_boxes=np.zeros((t, 4), np.float32),
                    face_detected=np.ones(t, np.int64),
                    source_size=(360, 480),
                    sample_rate=16000,
                    pcm16=rng.normal(0, 3000, 24000).astype(np.int16),
                )
                writer.write(make_example(clip).SerializeToString())
    seal_records(out)
    return out


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Processes:
    """Subprocesses of one test, all killed on exit (no orphans)."""

    def __init__(self, driver: Path):
        self.driver, self.running = driver, []

    def start(self, args, log: Path, **env) -> subprocess.Popen:
        base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        base["TF_CPP_MIN_LOG_LEVEL"] = "2"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, str(self.driver), *map(str, args)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**base, **env},
            )
        self.running.append(process)
        return process

    def workers(self, args, out: Path, logs: Path, tag: str, **env) -> list[subprocess.Popen]:
        """Two `--strategy multi_worker` processes on loopback (worker 0 is the chief)."""
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
        return [
            self.start(
                [*args, "--strategy", "multi_worker", "--out", out],
                logs / f"{tag}-worker{i}.log",
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                **{k: v.format(i=i) for k, v in env.items()},
            )
            for i in range(2)
        ]

    def kill_all(self):
        for process in self.running:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def wait_ok(processes, logs: list[Path]):
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=TIMEOUT) == 0, log.read_text()[-3000:]


def weights(path: Path) -> dict:
    found = {}
    with h5py.File(path) as f:
        f.visititems(
            lambda k, v: found.__setitem__(k, np.array(v)) if isinstance(v, h5py.Dataset) else None
        )
    return found


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("distribute")
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    return {"root": root, "records": write_records(root / "records"), "driver": driver}


@pytest.fixture(scope="module")
def mirrored_run(cluster_env):
    """One process, MirroredStrategy over 2 logical CPU devices, 2 clips per replica: epoch 1,
    then the same run resumed for epoch 2 (as the killed multi-worker run below is)."""
    root = cluster_env["root"]
    procs = Processes(cluster_env["driver"])
    try:
        log = root / "mirrored.log"
        process = procs.start(
            [
                "--records",
                cluster_env["records"],
                *TINY,
                *ONE_FILE,
                "--epochs",
                "1",
                "--strategy",
                "mirrored",
                # The chunked recomputation (emotf.training.chunked_block) in each replica.
                "--remat",
                "large",
                "--remat_chunks",
                "3",
                "--export",
                "false",
                "--out",
                root / "mirrored",
            ],
            log,
            DRV_CPUS="2",
            DRV_RESUME_EPOCHS="2",
        )
        wait_ok([process], [log])
    finally:
        procs.kill_all()
    return root / "mirrored"


def test_mirrored_over_two_logical_cpus_trains_with_the_global_batch(mirrored_run):
    metrics = json.loads((mirrored_run / "metrics.json").read_text())
    assert metrics["strategy"] == "mirrored" and metrics["replicas"] == 2
    assert metrics["workers"] == 1 and metrics["batch_size_per_replica"] == 2
    assert metrics["global_batch_size"] == 4 and metrics["epochs_run"] == 2
    # The learning rate is the configured one: emotf never scales it by the replicas.
    assert metrics["learning_rate"] == 0.05
    config = json.loads((mirrored_run / "config.json").read_text())["config"]
    assert config["remat"] == "large" and config["remat_chunks"] == 3
    log = (mirrored_run / "training_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1"]


def test_two_workers_killed_after_epoch_1_resume_and_match_one_process(
    cluster_env, mirrored_run, tmp_path
):
    """Two worker processes on loopback (one replica each) train epoch 1 and stop (its backup
    written); worker 1 is killed, then the chief; both restart and train epoch 2 only, the
    chief writes metrics.json and the SavedModel, the other worker nothing in the run folder.

    The result is compared with one process with two replicas run the same way (epoch 1, then
    resumed): same global batch (2 x 2 clips); same data, since the training part is one
    record file, so data sharding gives worker i the i-th half of each global batch, as
    MirroredStrategy gives replica i; same steps per epoch (a multi-worker run repeats its
    data, so both set --steps_per_epoch). The validation part (8 files) is sharded by file.
    Gradients are all-reduced over 2 replicas either way: the final weights agree to 1e-6
    (measured: identical). Against --strategy one_device with --batch_size 4 they differ by
    ~0.04 (BatchNorm statistics are per replica: 2 clips, not 4).
    """
    procs = Processes(cluster_env["driver"])
    out, scratch, epochs = (
        tmp_path / "run",
        str(tmp_path / "tmp{i}"),
        str(tmp_path / "{tag}-epochs{i}"),
    )
    args = ["--records", cluster_env["records"], *TINY, *ONE_FILE]
    for i in range(2):  # the workers' temporary folders (TMPDIR), the same for both starts
        Path(scratch.format(i=i)).mkdir()
    try:
        first = procs.workers(
            args,
            out,
            tmp_path,
            "first",
            DRV_EPOCHS=epochs.replace("{tag}", "first"),
            DRV_PAUSE_AFTER="1",
            TMPDIR=scratch,
        )
        paused = [Path(epochs.format(tag="first", i=i) + ".paused") for i in range(2)]
        deadline = time.time() + TIMEOUT
        while not all(p.exists() for p in paused):
            assert time.time() < deadline and all(p.poll() is None for p in first), (
                tmp_path / "first-worker0.log"
            ).read_text()[-3000:]
            time.sleep(0.2)
        for process in (first[1], first[0]):  # kill the worker, then the chief
            process.kill()
            process.wait(timeout=30)
        assert not (out / "metrics.json").exists()
        # The killed non-chief left its scratch folder (one name per task and run) ...
        left = list(Path(scratch.format(i=1)).glob("emotf-*"))
        assert (
            len(left) == 1 and left[0].name.startswith("emotf-worker1-") and any(left[0].iterdir())
        )
        second = procs.workers(
            args,
            out,
            tmp_path,
            "second",
            DRV_EPOCHS=epochs.replace("{tag}", "second"),
            TMPDIR=scratch,
        )
        logs = [tmp_path / f"second-worker{i}.log" for i in range(2)]
        wait_ok(second, logs)
    finally:
        procs.kill_all()
    # Resumed after the last completed epoch: epoch 2 ran once, epoch 1 was not repeated.
    for i in range(2):
        assert Path(epochs.format(tag="first", i=i)).read_text().split() == ["0"]
        assert Path(epochs.format(tag="second", i=i)).read_text().split() == ["1"]
    log = (out / "training_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "multi_worker" and metrics["workers"] == 2
    assert (
        metrics["replicas"] == 2
        and metrics["global_batch_size"] == 4
        and metrics["epochs_run"] == 2
    )
    assert (out / "export" / "1" / "saved_model.pb").is_file()  # the chief exported the SavedModel
    # The temperature is fitted on every validation clip (8 folds x 2), not the chief's share.
    assert json.loads((out / "calibration.json").read_text())["clips"] == 16
    chief, worker = (path.read_text() for path in logs)
    assert "worker:1: trained 2 epochs; the chief writes" in worker
    assert "the training data has 1 record shard(s) for 2 workers" in chief
    assert "the validation data has" not in chief  # 8 files for 2 workers: by file
    # The non-chief's checkpoints went to its own temporary folder, deleted; none in the run;
    # ... and the restart cleared the killed one's (the same name) before deleting its own.
    # (Only the killed processes' autograph files are left in TMPDIR.)
    assert list(Path(scratch.format(i=1)).glob("emotf-*")) == []
    assert sorted(p.name for p in (out / "backup").iterdir()) == [
        "latest.weights.h5",
        "training_metadata.json",
    ]
    for part in ("train", "validation"):  # one writer each run (killed + restarted): 2 files
        assert len(list((out / "tensorboard" / part).iterdir())) == 2
    one, two = (
        weights(mirrored_run / "backup" / "latest.weights.h5"),
        weights(out / "backup" / "latest.weights.h5"),
    )
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_allclose(two[key], one[key], atol=1e-6, err_msg=key)
    rows = [
        [
            dict(zip(lines[0].split(","), map(float, row.split(",")), strict=True))
            for row in lines[1:]
        ]
        for lines in ((mirrored_run / "training_log.csv").read_text().splitlines(), log)
    ]
    for a, b in zip(*rows, strict=False):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["accuracy"] == b["accuracy"]


def test_file_sharding_gives_each_worker_its_own_record_files(cluster_env):
    from emotf.configs import SamplingConfig
    from emotf.pipeline import make_dataset

    sampling = SamplingConfig(
        num_segments=1,
        frame_size=32,
        window_seconds=0.128,
        frame_length=64,
        frame_step=16,
        fft_length=64,
        num_mel_bins=8,
    )
    folds = [0, 1, 2, 5]
    shares = [
        np.concatenate(
            [
                meta["fold"].numpy()
                for _, _, meta in make_dataset(
                    cluster_env["records"],
                    folds,
                    training=False,
                    config=sampling,
                    batch_size=16,
                    with_metadata=True,
                    shard=(2, i),
                )
            ]
        ).tolist()
        for i in range(2)
    ]
    # Files in name order, fold-0, fold-1, fold-2, fold-5: worker 0 reads 0 and 2, worker 1 1 and 5.
    assert sorted(shares[0]) == [0, 0] + [BIG_FOLD] * BIG_FOLD_CLIPS and sorted(shares[1]) == [
        1,
        1,
        5,
        5,
    ]
    with pytest.raises(ValueError, match="share 0 of 5 of 4 record files"):
        make_dataset(cluster_env["records"], folds, training=False, config=sampling, shard=(5, 0))


def _task(workers: int) -> ClusterTask:
    return ClusterTask("worker", 0, workers)


@pytest.mark.parametrize(
    "name,task,gpus,expected",
    [
        ("auto", _task(2), 0, "multi_worker"),
        ("auto", _task(1), 4, "mirrored"),
        ("auto", None, 2, "mirrored"),
        ("auto", None, 1, "one_device"),
        ("mirrored", None, 0, "mirrored"),
        ("one_device", _task(1), 2, "one_device"),
        ("multi_worker", _task(2), 0, "multi_worker"),
    ],
)
def test_auto_strategy(name, task, gpus, expected):
    assert resolve_strategy(name, task, gpus) == expected


@pytest.mark.parametrize("strategy", ["one_device", "mirrored"])
def test_a_single_process_strategy_under_a_multi_task_tf_config_is_one_line(
    strategy, monkeypatch, capsys, tmp_path
):
    """Every process would be its own chief and write the run folder: refused."""
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    )
    assert train_main(["--strategy", strategy, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert (
        f"TF_CONFIG names 2 chief/worker tasks but --strategy {strategy} trains each process alone"
        in err
    )
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_tf_config_is_read_and_checked():
    cluster = {"chief": ["h:1"], "worker": ["h:2", "h:3"]}
    chief = read_tf_config(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})}
    )
    worker = read_tf_config(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}
    )
    assert chief.is_chief and chief.num_workers == 3 and not worker.is_chief
    assert read_tf_config({}) is None


@pytest.mark.parametrize(
    "tf_config,problem",
    [
        ("{not json", "not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster' object"),
        ('{"cluster": {"worker": ["h:1"]}}', "no 'task' object"),
        (
            '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 1}}',
            "task index 1 outside 0..0",
        ),
        ('{"cluster": {"worker": ["h"]}, "task": {"type": "worker", "index": 0}}', "'host:port'"),
        (
            '{"cluster": {"worker": ["2222"]}, "task": {"type": "worker", "index": 0}}',
            "'host:port'",
        ),
        (
            '{"cluster": {"worker": [":2222"]}, "task": {"type": "worker", "index": 0}}',
            "'host:port'",
        ),
        (
            '{"cluster": {"worker": ["h:0"]}, "task": {"type": "worker", "index": 0}}',
            "port 1..65535",
        ),
        (
            '{"cluster": {"worker": ["h:65536"]}, "task": {"type": "worker", "index": 0}}',
            "port 1..65535",
        ),
        (
            '{"cluster": {"worker": ["h:\uff11\uff12"]}, "task": {"type": "worker", "index": 0}}',
            "port 1..65535",
        ),
        (
            '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": true}}',
            "task index True",
        ),
        (
            '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": "0"}}',
            "task index '0'",
        ),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "ps", "index": 0}}', "cannot train"),
    ],
)
def test_bad_tf_config_is_one_line(tf_config, problem, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert train_main(["--strategy", "multi_worker", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("emotf-train: error: TF_CONFIG: ") and problem in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_multi_worker_without_tf_config_and_a_bad_strategy_are_one_line(
    monkeypatch, capsys, tmp_path
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert train_main(["--strategy", "multi_worker", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "--strategy multi_worker reads the cluster from TF_CONFIG, which is not set" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--strategy", "two_gpus", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "invalid choice: 'two_gpus'" in err[-1] and "'multi_worker'" in err[-1]


def test_tf_config_addresses():
    from emotf.training.distribute import is_host_port

    assert all(map(is_host_port, ["h:1", "10.0.0.2:65535", "[::1]:2222"]))
    assert not any(
        map(
            is_host_port,
            ["h", "h:", ":1", " :1", "h:0", "h:65536", "h:+1", "h:1 ", "h:\u0661", 2222, None],
        )
    )


def test_workers_that_see_another_run_state_or_config_refuse_in_one_line():
    tasks = ["worker:0", "worker:1", "worker:2"]
    same = {"config": 7, "completed_epochs": 3}
    check_workers_agree([same, same, same], tasks, "gs://b/run")  # agree: nothing raised
    # A worker whose run folder is on its own disk sees no backup: it would start at epoch 0.
    with pytest.raises(ValueError) as error:
        check_workers_agree([same, same, {"config": 7, "completed_epochs": 0}], tasks, "/local/run")
    assert str(error.value) == (
        "workers disagree: worker:2 sees 0 completed epochs in /local/run, the chief 3: the run "
        "folder must be on storage every worker reads (gs:// or NFS)"
    )
    # Another configuration (e.g. --batch_size) is named first: another --out shows as epochs too.
    with pytest.raises(
        ValueError,
        match="^workers disagree: worker:1 runs another configuration "
        "than the chief .*same command$",
    ):
        check_workers_agree([same, {"config": 8, "completed_epochs": 0}, same], tasks, "run")
    with pytest.raises(
        ValueError, match=r"worker:1 sees the finished folds \[0\] in cv, the chief \[0, 2\]"
    ):
        check_workers_agree(
            [{"config": 1, "finished_folds": 0b101}, {"config": 1, "finished_folds": 1}],
            tasks[:2],
            "cv",
        )


def test_gather_from_workers_and_task_names_on_one_process():
    """The all-gather the check runs on (a multi-worker run gathers the same way over its
    collective ops: exercised by the two-worker test above); one row per worker."""
    strategy = tf.distribute.get_strategy()
    assert gather_from_workers(strategy, {"config": 2**59 + 3, "completed_epochs": 4}) == [
        {"completed_epochs": 4, "config": 2**59 + 3}
    ]
    assert task_names(strategy) == ["chief:0"]


def test_a_killed_workers_scratch_folder_is_cleared_at_the_next_start(tmp_path):
    first = scratch_folder("worker1", "gs://b/run", root=str(tmp_path))
    (first / "backup").mkdir()
    (first / "backup" / "latest.weights.h5").write_bytes(b"x")  # killed: left behind
    again = scratch_folder("worker1", "gs://b/run", root=str(tmp_path))
    assert again == first and again.is_dir() and again.iterdir() == []
    assert first.name.startswith("emotf-worker1-")
    others = {
        scratch_folder("worker2", "gs://b/run", root=str(tmp_path)),
        scratch_folder("worker1", "gs://b/run2", root=str(tmp_path)),
    }
    assert first not in others and len(others) == 2  # one folder per task and run


# === Deadlines: one worker of two started ===


def start_alone(cluster_env, tmp_path, *flags) -> tuple[subprocess.Popen, int, int]:
    """Worker 1 of a two-worker TF_CONFIG on loopback, worker 0 never started; returns the
    process once its own port answers (its start-up is waiting for worker 0), with both ports."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TF_CPP_MIN_LOG_LEVEL")}
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emotf.cli.train",
            "--records",
            str(cluster_env["records"]),
            *TINY,
            "--strategy",
            "multi_worker",
            "--out",
            str(tmp_path / "run"),
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    end = time.monotonic() + 120
    while time.monotonic() < end and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", ports[1]), timeout=1).close()
            return process, *ports
        except OSError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"worker 1 never listened: {process.communicate()}")


def finish(process: subprocess.Popen, within: float) -> tuple[int, list[str], float]:
    """(exit status, emotf's stderr lines, seconds it took) of a process given `within` s."""
    rc, err, seconds = ended(process, within)
    lines = [line for line in err.splitlines() if line.startswith("emotf-train")]
    assert "Traceback" not in err, err
    return rc, lines, seconds


def test_a_worker_whose_peer_never_starts_names_it_within_the_deadline(cluster_env, tmp_path):
    process, missing, _ = start_alone(cluster_env, tmp_path, "--worker_timeout_seconds", "5")
    rc, lines, seconds = finish(process, within=5 + 20)
    assert rc == 1 and seconds < 5 + 5
    assert lines == [
        f"emotf-train: error: worker 0 (127.0.0.1:{missing}) did not answer within "
        "5 s (start every task of TF_CONFIG, or raise --worker_timeout_seconds)"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_end_a_worker_waiting_for_its_peer(cluster_env, tmp_path, signum):
    process, _, _ = start_alone(cluster_env, tmp_path, "--worker_timeout_seconds", "600")
    time.sleep(1)
    process.send_signal(signum)
    rc, lines, seconds = finish(process, within=30)
    assert rc == 128 + signum and seconds < 10
    assert lines == [f"emotf-train: interrupted (signal {signum})"]
