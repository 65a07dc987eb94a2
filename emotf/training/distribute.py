"""tf.distribute for `emotf-train`: which strategy, which worker writes, how input is sharded.

`--strategy` (`TrainConfig.strategy`):
    auto          multi_worker when TF_CONFIG names more than one chief/worker task, else
                  mirrored when TensorFlow sees more than one GPU, else one_device;
    one_device    TensorFlow's default strategy (one GPU, or the CPU);
    mirrored      `tf.distribute.MirroredStrategy` over the GPUs of this machine (without a
                  GPU: over its logical CPU devices, which is how the tests run it);
    multi_worker  `tf.distribute.MultiWorkerMirroredStrategy`: one process per machine,
                  the cluster and this process's task read from the TF_CONFIG variable.

`batch_size` is per replica; the dataset is batched at the global batch
(`batch_size x replicas`) and tf.distribute splits each global batch across the replicas. The
learning rate is used as given (never scaled): see docs/training.md for the linear scaling rule.

Only the chief (task "chief", else "worker" 0) writes the run folder. Every worker runs the
same callbacks, because saving weights reads distributed variables in step with the others;
a non-chief writes into its own temporary folder (`worker_scratch`, one name per task and run,
cleared at start-up), deleted after each save and at the end, and restores from the chief's
backup (the run folder must be on storage every worker sees: gs://, NFS). Before training the
workers compare what they see (`agree_with_chief`: the completed epochs, the configuration)
and all refuse in one line when a worker differs from the chief.

Deadlines (`TrainConfig.worker_timeout_seconds`, `--worker_timeout_seconds`, default 300 s):
the cluster must form within it (`start_cluster`: TensorFlow waits in C++ for every task of
TF_CONFIG; on expiry one line names the tasks whose address accepts no connection, "worker 1
(127.0.0.1:12346) did not answer within 300 s", and the process exits with status 1), and each
collective (an all-reduce of a training step, the start-up agreement) must complete within
it (`tf.distribute.experimental.CommunicationOptions(timeout_seconds=...)`; on expiry a
`TimeoutError` naming the workers that do not answer).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from emotf import deadlines
from emotf.configs import STRATEGIES
from emotf.storage import StoragePath, as_path

TF_CONFIG = "TF_CONFIG"
WORKER_TASKS = ("chief", "worker")
# `TrainConfig.worker_timeout_seconds`'s default: start-up and each collective.
DEFAULT_WORKER_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a TF_CONFIG cluster."""

    task_type: str
    task_id: int
    num_workers: int  # chief + worker tasks
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (
            self.task_type == "worker" and self.task_id == 0 and not self.has_chief
        )


def read_tf_config(environ=None) -> ClusterTask | None:
    """The task TF_CONFIG describes (None when the variable is unset or empty).

    Raises:
        ValueError: one line naming TF_CONFIG and what is wrong with it.
    """
    text = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not text:
        return None

    def bad(problem: str):
        return ValueError(
            f"{TF_CONFIG}: {problem}. Expected e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )

    try:
        value = json.loads(text)
    except ValueError as error:
        raise bad(f"not JSON ({error})") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict):
        raise bad("no 'cluster' object")
    cluster, task = value["cluster"], value.get("task")
    for name, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(map(is_host_port, addresses)):
            raise bad(
                f"cluster {name!r} must be a list of 'host:port' strings (a host and a port "
                f"1..65535). Received: {addresses!r}"
            )
    if not isinstance(task, dict) or "type" not in task:
        raise bad("no 'task' object with a 'type' and an 'index'")
    task_type, index = task["type"], task.get("index", 0)
    if task_type not in WORKER_TASKS:
        raise bad(f"task type {task_type!r} cannot train (one of {WORKER_TASKS})")
    if task_type not in cluster:
        raise bad(f"task type {task_type!r} is not in the cluster {sorted(cluster)}")
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not 0 <= index < len(cluster[task_type])
    ):
        raise bad(f"task index {index!r} outside 0..{len(cluster[task_type]) - 1} of {task_type!r}")
    if len(cluster.get("chief", [])) > 1:
        raise bad(f"at most one chief. Received: {cluster['chief']!r}")
    workers = sum(len(cluster.get(name, [])) for name in WORKER_TASKS)
    return ClusterTask(task_type, index, workers, "chief" in cluster)


def is_host_port(address) -> bool:
    """Is `address` 'host:port', with a non-empty host and a port 1..65535 in ASCII digits?
    (An IPv6 host is bracketed: '[::1]:2222'.)"""
    if not isinstance(address, str):
        return False
    host, colon, port = address.rpartition(":")
    return bool(
        colon and host.strip() and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535
    )


def resolve_strategy(name: str, task: ClusterTask | None, num_gpus: int) -> str:
    """The strategy `name` stands for: `auto` resolved (module docstring), others as they are.

    Raises:
        ValueError: an unknown name, multi_worker without TF_CONFIG, or one_device/mirrored
            with a TF_CONFIG of several workers (each process would train alone as the chief).
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}. Received: strategy={name!r}")
    if name == "auto":
        if task is not None and task.num_workers > 1:
            return "multi_worker"
        return "mirrored" if num_gpus > 1 else "one_device"
    if name == "multi_worker" and task is None:
        raise ValueError(
            f"--strategy multi_worker reads the cluster from {TF_CONFIG}, which is "
            "not set (docs/training.md, 'Distributed training')"
        )
    if name in ("one_device", "mirrored") and task is not None and task.num_workers > 1:
        raise ValueError(
            f"{TF_CONFIG} names {task.num_workers} chief/worker tasks but --strategy "
            f"{name} trains each process alone (every process would be the chief and "
            "write the run folder): use --strategy multi_worker (or auto), or unset "
            f"{TF_CONFIG}"
        )
    return name


_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


def make_strategy(
    name: str = "auto", timeout_seconds: float = DEFAULT_WORKER_TIMEOUT_S
) -> tf.distribute.Strategy:
    """The strategy of `--strategy name`; one per process (TensorFlow allows one multi-worker
    strategy per program: create it before any other TensorFlow op), so a second call with
    the same name returns the first one's strategy, whatever its `timeout_seconds`.

    `timeout_seconds` (`TrainConfig.worker_timeout_seconds`): the multi-worker deadlines
    (`start_cluster`).

    Raises:
        ValueError: bad strategy name or TF_CONFIG (one line).
    """
    if name not in _STRATEGIES:
        task = read_tf_config()
        resolved = resolve_strategy(name, task, len(tf.config.list_physical_devices("GPU")))
        if resolved == "multi_worker":
            strategy = start_cluster(timeout_seconds)
        elif resolved == "mirrored":
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        else:
            strategy = tf.distribute.get_strategy()
        _STRATEGIES[name] = strategy
    return _STRATEGIES[name]


def cluster_addresses(environ=None) -> tuple[str, dict[str, str]]:
    """(this task's 'host:port', {"worker 1": 'host:port', "chief": ...} of the other chief
    and worker tasks) from TF_CONFIG.

    Raises:
        ValueError: TF_CONFIG unset or bad (`read_tf_config`).
    """
    if read_tf_config(environ) is None:
        raise ValueError(f"{TF_CONFIG} is not set")
    value = json.loads((os.environ if environ is None else environ)[TF_CONFIG])
    cluster, task = value["cluster"], value["task"]
    me = (task["type"], task.get("index", 0))
    peers = {
        (kind if kind == "chief" else f"{kind} {i}"): address
        for kind in WORKER_TASKS
        for i, address in enumerate(cluster.get(kind, []))
        if (kind, i) != me
    }
    return cluster[me[0]][me[1]], peers


def _hint() -> str:
    return f" (start every task of {TF_CONFIG}, or raise --worker_timeout_seconds)"


def rendezvous(timeout_seconds: float, environ=None) -> None:
    """Wait until every other chief/worker task of TF_CONFIG answers on its port (TCP), while
    this task's own port answers too, so that every task of the cluster sees every other
    before any enters TensorFlow's start-up, which waits in C++ and cannot be interrupted.
    The port is then let go, for TensorFlow's server to take.

    Raises:
        TimeoutError: one line naming the tasks that did not answer within `timeout_seconds`
            ("worker 1 (127.0.0.1:12346) did not answer within 30 s ...").
        RuntimeError: this task's port cannot be listened on (in use).
    """
    own, peers = cluster_addresses(environ)
    port = deadlines.split_host_port(own)[1]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", port))
        listener.listen(64)
    except OSError as error:
        listener.close()
        raise RuntimeError(
            f"{TF_CONFIG}: this task's address {own} cannot be listened on "
            f"({error.strerror or error}): another process holds port {port}"
        ) from None
    try:
        silent = deadlines.wait_for_peers(peers, timeout_seconds)
    finally:
        listener.close()
    if silent:
        raise TimeoutError(deadlines.no_answer(peers, silent, timeout_seconds) + _hint())


def start_cluster(timeout_seconds: float = DEFAULT_WORKER_TIMEOUT_S) -> tf.distribute.Strategy:
    """This process's `MultiWorkerMirroredStrategy` (cluster from TF_CONFIG), within deadlines.

    First `rendezvous`: every task's port must answer within `timeout_seconds` (a Python wait:
    SIGINT and SIGTERM end it at once). Then TensorFlow starts this task's server and waits in
    C++, holding the GIL, until every task has connected: `emotf.deadlines.guarded` gives that
    wait `timeout_seconds` too, after which one line names the tasks that do not answer and the
    process is ended (SIGKILL from the watchdog process: nothing else reaches it there). Each
    collective of the strategy gets the same deadline (`CommunicationOptions`). TensorFlow's
    coordination service installs its own SIGTERM handler on the way: emotf's is put back.
    """
    rendezvous(timeout_seconds)
    _, peers = cluster_addresses()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    otherwise = (
        f"the cluster of {TF_CONFIG} did not form within {timeout_seconds:g} s, although "
        f"every task answers on its port: is each one an emotf-train with the same "
        f"{TF_CONFIG}?"
    )
    with deadlines.guarded(timeout_seconds, peers, otherwise, _hint()):
        strategy = _MultiWorkerMirroredStrategy(communication_options=options)
    deadlines.reclaim_signals()
    strategy.emotf_timeout_seconds = float(timeout_seconds)
    return strategy


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose `reduce` takes `axis=0` on a scalar as `axis=None`.

    Keras 3.15 reduces each step's metric values (scalars, one per replica) across workers with
    `strategy.reduce("MEAN", value, axis=0)`, which TensorFlow refuses for a scalar ("Invalid
    reduction dimension 0 for input with 0 dimensions": found here with Keras 3.15.1 and TF
    2.21; keras-team/keras#20585 reports that Keras 3's fit fails under this strategy). The
    mean over the replicas is what Keras means, and what it computes on one machine
    (`tf.reduce_mean` of the replicas' values).
    """

    def reduce(self, reduce_op, value, axis):
        parts = getattr(value, "values", (value,))
        if (
            axis is not None
            and getattr(parts[0], "shape", None) is not None
            and parts[0].shape.rank == 0
        ):
            axis = None
        return super().reduce(reduce_op, value, axis)


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The `--strategy` name of a strategy object ("one_device" for TensorFlow's default)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    return "mirrored" if isinstance(strategy, tf.distribute.MirroredStrategy) else "one_device"


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Worker processes of the strategy's cluster (1 unless multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(name, [])) for name in WORKER_TASKS)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Does this process write the run folder? (Always, outside a multi-worker cluster.)"""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or num_workers(strategy) <= 1:
        return True
    spec = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in spec


def global_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The batch one step consumes over all replicas: `batch_size` (per replica) x replicas."""
    return int(batch_size) * int(strategy.num_replicas_in_sync)


def worker_scratch(strategy: tf.distribute.Strategy, run_path) -> StoragePath:
    """An empty local temporary folder for a non-chief worker's checkpoints in the run
    `run_path` (the caller deletes it): `scratch_folder` of this process's task."""
    resolver = strategy.cluster_resolver
    return scratch_folder(f"{resolver.task_type}{resolver.task_id}", run_path)


def scratch_folder(task: str, run_path, root: str | None = None) -> StoragePath:
    """`ROOT/emotf-<task>-<hash of run_path>` (ROOT: `root`, else the temporary folder,
    $TMPDIR), emptied: one name per task and run, so a worker killed (SIGKILL) before it
    deleted its folder leaves nothing behind once it is restarted."""
    digest = hashlib.sha256(str(as_path(run_path).resolve()).encode()).hexdigest()[:12]
    folder = Path(root or tempfile.gettempdir()) / f"emotf-{task}-{digest}"
    path = as_path(folder)
    if path.exists():
        path.rmtree()
    path.mkdir()
    return path


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This worker's input pipeline number, 0..workers-1 (the chief first, as tf.distribute
    numbers them)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or num_workers(strategy) <= 1:
        return 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return 0
    return int(resolver.task_id) + (1 if has_chief else 0)


def build_for_fit(trainer, dataset: tf.data.Dataset) -> None:
    """Build the compiled `trainer`'s metric and loss state from `dataset.element_spec`, and
    stop `fit` from probing the data for it.

    Under a tf.distribute strategy Keras 3.15's `fit` first pulls one batch and all-reduces it,
    only to learn the input shapes (`Trainer._maybe_symbolic_build`). Under
    MultiWorkerMirroredStrategy that reduce fails on a dict of inputs ("Attempt to convert a
    value ({'frames': PerReplica...", Keras 3.15.1), and under every strategy it
    costs one more iteration of the dataset, which moves the shuffle and the sampling seeds
    of every later epoch away from a single-device run's. The shapes are in the spec already.
    Nothing changes for a model built outside a strategy scope (Keras builds it when tracing).
    """
    strategy = getattr(trainer, "_distribute_strategy", None)
    if strategy is None:
        return
    with strategy.scope():
        trainer._symbolic_build(data_batch=dataset.element_spec)
    trainer._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


# === Workers agree before training ===


def config_digest(values: Mapping) -> int:
    """A 60-bit hash of a JSON-able mapping (a resolved config), equal on every machine."""
    text = json.dumps(values, sort_keys=True, default=str)
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def task_names(strategy: tf.distribute.Strategy) -> list[str]:
    """The workers' tasks ("chief:0", "worker:0", ...) in `worker_index` order."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    names = [f"{kind}:{i}" for kind in WORKER_TASKS for i in range(len(spec.get(kind, [])))]
    return names or ["chief:0"]


def gather_from_workers(strategy: tf.distribute.Strategy, values: Mapping[str, int]) -> list[dict]:
    """Every worker's `values` (the same keys on each, small ints), one dict per worker in
    `worker_index` order, on every worker: an all-gather (`strategy.gather`) over the replicas;
    a worker with several replicas sends its values once per replica, kept once here."""
    keys = sorted(values)
    row = tf.constant([[worker_index(strategy), *(int(values[k]) for k in keys)]], tf.int64)
    gathered = strategy.gather(strategy.run(lambda: tf.identity(row)), axis=0).numpy()
    by_worker = {int(r[0]): dict(zip(keys, map(int, r[1:]), strict=True)) for r in gathered}
    return [by_worker[i] for i in sorted(by_worker)]


# What a value differing from the chief's means, and what to do (`check_workers_agree`).
DISAGREEMENTS = {
    "config": "{task} runs another configuration than the chief (flags, config file): start "
    "every worker with the same command",
    "completed_epochs": "{task} sees {value} completed epochs in {where}, the chief {chief}: the "
    "run folder must be on storage every worker reads (gs:// or NFS)",
    "finished_folds": "{task} sees the finished folds {value} in {where}, the chief {chief}: the "
    "folder must be on storage every worker reads (gs:// or NFS)",
}


def check_workers_agree(rows: list[dict], tasks: list[str], where) -> None:
    """Refuse when a worker's values (`gather_from_workers`) differ from the chief's (row 0).

    Keys are compared in `DISAGREEMENTS` order (the configuration first: another --out also
    shows as other epochs); `finished_folds` is a bit mask, shown as a list of folds.

    Raises:
        ValueError: one line naming the first worker that differs, its value and the chief's.
    """
    chief = rows[0]
    for key, message in DISAGREEMENTS.items():
        for task, row in zip(tasks[1:], rows[1:], strict=False):
            if key in chief and row.get(key) != chief[key]:
                raise ValueError(
                    "workers disagree: "
                    + message.format(
                        task=task,
                        value=_shown(key, row.get(key)),
                        chief=_shown(key, chief[key]),
                        where=where,
                    )
                )


def _shown(key: str, value):
    """A value of `check_workers_agree` as the message shows it (a fold mask as its folds)."""
    return _folds(value) if key == "finished_folds" and isinstance(value, int) else value


def _folds(mask: int) -> list[int]:
    return [k for k in range(mask.bit_length()) if mask >> k & 1]


def agree_with_chief(strategy: tf.distribute.Strategy, values: Mapping[str, int], where) -> None:
    """In a multi-worker run, `check_workers_agree` on every worker's `values` (every worker
    raises the same error, so none is left waiting); nothing on one machine."""
    if num_workers(strategy) > 1:
        try:
            rows = gather_from_workers(strategy, values)
        except (
            tf.errors.DeadlineExceededError,
            tf.errors.UnavailableError,
            tf.errors.CancelledError,
            tf.errors.AbortedError,
        ) as error:
            raise collective_failed(strategy, error) from None
        check_workers_agree(rows, task_names(strategy), where)


def collective_failed(strategy: tf.distribute.Strategy, error: Exception) -> TimeoutError:
    """One line for a collective that failed or timed out (`error`): the tasks that accept no
    connection now, else TensorFlow's first line."""
    seconds = getattr(strategy, "emotf_timeout_seconds", DEFAULT_WORKER_TIMEOUT_S)
    try:
        _, peers = cluster_addresses()
    except ValueError:
        peers = {}
    silent = deadlines.silent(peers)
    if silent:
        return TimeoutError(deadlines.no_answer(peers, silent, seconds) + _hint())
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return TimeoutError(
        f"a collective of the workers did not complete within {seconds:g} s: {first}"
    )
