"""keras-tuner's chief/worker mode for `emotf-tune`: which process this is, and the chief's loop.

keras-tuner (1.4) runs one search over several processes, on one machine or many:

    chief    KERASTUNER_TUNER_ID=chief: holds the oracle (the one object that draws the
             hyperparameters and records the scores) behind a gRPC server on
             KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT; trains nothing; blocks until the
             search is over, then writes the trials table and best_config.json
             (emotf.tuning.search).
    workers  KERASTUNER_TUNER_ID=tuner0, tuner1, ...: ask the chief for a trial, train it, report
             its score, ask again, until the chief answers that no trial is left.

All processes read and write the same search folder (`TuneConfig.out`): a shared filesystem or a
`gs://` URL (keras-tuner writes its project through `tf.io.gfile`). `TunerRole` is the process's
part; `keras_tuner_environment` hands it to keras-tuner, which reads only the environment.

A worker waits for the chief's oracle at most `TuneConfig.oracle_timeout_seconds`
(`--oracle_timeout_seconds`, default 300 s) before its first trial (`wait_for_oracle`): then one
line names the address that did not answer. keras-tuner's own calls to the oracle wait without
a deadline (`wait_for_ready`), so this check comes first.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass

from emotf import deadlines
from emotf.bounds import bounded, check_bounds
from emotf.configs import Config

ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
ENV_NAMES = (ENV_TUNER_ID, ENV_ORACLE_IP, ENV_ORACLE_PORT)
CHIEF = "chief"
_WORKER_ID = re.compile(r"tuner\d+")
_ID_HOW = f"--tuner-id or {ENV_TUNER_ID}"
_ADDRESS_HOW = f"--oracle-address HOST:PORT, or {ENV_ORACLE_IP} and {ENV_ORACLE_PORT}"


def split_address(address: str) -> tuple[str, int]:
    """'HOST:PORT' -> (HOST, PORT); HOST may be a name, an IPv4 or a bracketed IPv6 address.

    Raises:
        ValueError: not HOST:PORT with a port in 1..65535 (naming the flag and variables).
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(
            f"the oracle address ({_ADDRESS_HOW}) must be HOST:PORT with a port in 1..65535. "
            f"Received: {address!r}"
        )
    return host, int(port)


@dataclass(frozen=True)
class TunerRole(Config):
    """This process's part in a search (`emotf-tune --tuner-id ... --oracle-address ...`).

    Attributes:
        tuner_id: None = a search in this process alone; "chief" = the oracle's process;
            "tuner0", "tuner1", ... = a worker (each worker its own id).
        oracle_address: HOST:PORT of the chief's oracle: where the chief listens (0.0.0.0 for
            every interface) and where the workers reach it. Required with a tuner id.
    """

    tuner_id: str | None = bounded(
        None,
        help="chief (the oracle's process) or tunerN (a worker); none = a search in this "
        "process alone",
    )
    oracle_address: str | None = bounded(
        None,
        help="HOST:PORT of the chief's oracle: where the chief listens and the workers reach it",
    )

    def __post_init__(self):
        check_bounds(self)
        if self.tuner_id is None:
            if self.oracle_address is not None:
                raise ValueError(
                    f"an oracle address needs a tuner id ({_ID_HOW}): 'chief' for the oracle's "
                    f"process, 'tuner0', 'tuner1', ... for the workers. "
                    f"Received: oracle_address={self.oracle_address!r}"
                )
            return
        if self.tuner_id != CHIEF and not _WORKER_ID.fullmatch(self.tuner_id):
            raise ValueError(
                f"the tuner id ({_ID_HOW}) must be 'chief' or 'tunerN' (tuner0, tuner1, ...). "
                f"Received: {self.tuner_id!r}"
            )
        if self.oracle_address is None:
            who = (
                "the chief needs the address to listen on"
                if self.is_chief
                else (f"worker {self.tuner_id} needs the chief's address")
            )
            raise ValueError(f"{who}: give {_ADDRESS_HOW}")
        split_address(self.oracle_address)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **given) -> TunerRole:
        """The role set by keras-tuner's variables, `given` fields (the flags) taking precedence."""
        environ = os.environ if environ is None else environ
        values = {}
        if ENV_TUNER_ID in environ:
            values["tuner_id"] = environ[ENV_TUNER_ID]
        ip, port = environ.get(ENV_ORACLE_IP), environ.get(ENV_ORACLE_PORT)
        if "oracle_address" not in given and (ip, port) != (None, None):
            if ip is None or port is None:
                raise ValueError(
                    f"{ENV_ORACLE_IP} and {ENV_ORACLE_PORT} go together: set both or neither. "
                    f"Received: {ENV_ORACLE_IP}={ip!r}, {ENV_ORACLE_PORT}={port!r}"
                )
            values["oracle_address"] = f"{ip}:{port}"
        return cls(**{**values, **given})

    @property
    def distributed(self) -> bool:
        return self.tuner_id is not None

    @property
    def is_chief(self) -> bool:
        return self.tuner_id == CHIEF

    @property
    def is_worker(self) -> bool:
        return self.distributed and not self.is_chief

    def environ(self) -> dict[str, str]:
        """keras-tuner's variables for this role ({} for a search in one process)."""
        tuner_id, address = self.tuner_id, self.oracle_address
        if tuner_id is None or address is None:  # a distributed role has both (__post_init__)
            return {}
        host, port = split_address(address)
        return {ENV_TUNER_ID: tuner_id, ENV_ORACLE_IP: host, ENV_ORACLE_PORT: str(port)}


def wait_for_oracle(role: TunerRole, timeout_seconds: float) -> None:
    """A worker: wait until the chief's oracle accepts a connection at `role.oracle_address`
    (retried with a backoff); nothing for the chief or a one-process search.

    Raises:
        TimeoutError: one line naming the oracle's address, when it did not answer within
            `timeout_seconds`.
    """
    address = role.oracle_address
    if not role.is_worker or address is None:  # a worker has an address (TunerRole checks it)
        return
    oracle = {"the chief's oracle": address}
    if deadlines.wait_for_peers(oracle, timeout_seconds):
        raise TimeoutError(
            deadlines.no_answer(oracle, list(oracle), timeout_seconds)
            + f" (start emotf-tune --tuner-id chief --oracle-address {role.oracle_address} "
            f"first, check the address, or raise --oracle_timeout_seconds)"
        )


@contextmanager
def keras_tuner_environment(role: TunerRole) -> Iterator[None]:
    """Set keras-tuner's variables to `role` (none of them for a one-process search) for the
    duration, then put back what was there: keras-tuner reads the role only from them."""
    saved = {name: os.environ.get(name) for name in ENV_NAMES}
    for name in ENV_NAMES:
        os.environ.pop(name, None)
    os.environ.update(role.environ())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def serve_oracle(
    tuner, role: TunerRole, poll_seconds: float = 0.2, grace_seconds: float = 5.0
) -> None:
    """The chief: serve `tuner.oracle` on `role.oracle_address` until the search is over.

    keras-tuner's own chief loop (`Tuner.search` under KERASTUNER_TUNER_ID=chief) is this one
    with a 20 s poll once the last trial is handed out, a server that is never stopped and a
    failed bind that goes unnoticed; this one polls every `poll_seconds`, refuses an address it
    cannot listen on, and stops the server (letting answers in flight finish) on the way out,
    also when interrupted. Over when every trial is handed out (a worker was told to stop), no
    trial is running and every worker that asked for a trial was told to stop.

    Raises:
        RuntimeError: the address cannot be listened on (in use, not this machine's).
    """
    # grpc and keras-tuner's internals serve the distributed search only: not loaded otherwise.
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief

    tuner.save()  # oracle.json and chief.json, as keras-tuner's chief does before serving
    # One call at a time (as keras-tuner's); no SO_REUSEPORT, which would let a second chief
    # bind the same port and share the workers' calls with the first.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=1), options=[("grpc.so_reuseport", 0)]
    )
    servicer = OracleServicer(tuner.oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(role.oracle_address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise RuntimeError(
            f"{role.oracle_address}: the chief cannot listen there (port in use, or not an "
            "address of this machine)"
        )
    server.start()
    print(f"oracle of {tuner.project_dir} listening on {role.oracle_address}", flush=True)
    try:
        while not (servicer.stop_triggered and exit_chief(tuner.oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace_seconds).wait()
    # The oracle saves itself before it lets go of an ended trial, and in a one-process search
    # the tuner saves it again after; here nobody would, and a reload of oracle.json would run
    # the last trial again.
    tuner.save()
