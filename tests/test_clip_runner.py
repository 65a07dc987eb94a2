"""ClipRunner's process pool: order, crash isolation, exit codes, workers dying between clips.

Runs `ClipRunner` with cheap worker functions (tests/helpers_workers.py) so each spawned worker
starts without TensorFlow; `test_build_records.py` runs it on real clips.
"""

import multiprocessing
import os
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import helpers_workers
import pytest

from emotf.media.faces import FaceTrackerConfig
from emotf.records.clip_worker import ClipResult, ClipRunner
from emotf.records.pool import broken_pool_exit_codes


def runner(workers: int = 2, ahead: int = 4) -> ClipRunner:
    return ClipRunner(
        FaceTrackerConfig(),
        workers,
        ahead,
        work=helpers_workers.work,
        initializer=helpers_workers.init,
    )


@pytest.fixture
def busy_interpreter():
    stop = threading.Event()
    threads = helpers_workers.hog_the_interpreter(stop)
    yield
    stop.set()
    for thread in threads:
        thread.join()


def test_exit_code_of_a_dead_worker_is_read_even_on_a_busy_interpreter(busy_interpreter):
    """The pool's manager thread reaps a dead worker; reading its code must not race with it.

    Before the fix about half of these read "unknown" (ECHILD) with three busy threads.
    """
    spawn = multiprocessing.get_context("spawn")
    codes = []
    for _ in range(20):
        executor = ProcessPoolExecutor(1, mp_context=spawn)
        future = executor.submit(os._exit, 3)
        procs = dict(executor._processes)
        with pytest.raises(BrokenProcessPool):
            future.result()
        codes.append(broken_pool_exit_codes(executor, procs))
        executor.shutdown(wait=True)
    assert codes == ["3"] * 20


def test_results_in_task_order_with_crashing_clips_skipped_and_named(busy_interpreter):
    tasks = helpers_workers.tasks({2: "crash", 5: "crash"}, 9)
    results = list(runner().run(tasks))
    assert len(results) == 9
    for i, result in enumerate(results):
        if i in (2, 5):
            assert result.status == "skipped" and result.clip_id == f"c{i}"
            assert result.path == f"/data/c{i}.flv"
            assert result.reason == (
                f"worker process died while processing /data/c{i}.flv (exit code 1)"
            )
        else:
            assert result == ClipResult(f"c{i}", "ok", stats={"pid": result.stats["pid"]})
            assert result.stats["pid"] != os.getpid()  # ran in a spawned worker


def test_a_worker_dying_between_clips_loses_nothing_and_blames_no_clip():
    """The pool breaks while no clip is in flight: the next submit fails (or the next clip's
    future does); either way every clip comes back once, done, in order."""
    tasks = helpers_workers.tasks({1: "die_after", 3: "die_after"}, 6)
    results = []
    for result in runner(workers=2, ahead=1).run(tasks):
        results.append(result)
        threading.Event().wait(0.5)  # a slow consumer: the worker is dead before the next submit
    assert [r.status for r in results] == ["ok"] * 6
    assert [r.clip_id for r in results] == [f"c{i}" for i in range(6)]


def test_one_worker_runs_in_this_process():
    results = list(runner(workers=1).run(helpers_workers.tasks({}, 3)))
    assert {r.stats["pid"] for r in results} == {os.getpid()}


def test_a_worker_dying_between_retried_clips_blames_no_clip():
    """After a crash, suspects are retried one by one in a fresh pool; a worker of that pool
    dying while idle must not get the next retried clip skipped."""
    tasks = helpers_workers.tasks({0: "crash", 1: "die_after"}, 5)
    results = []
    for result in runner(workers=2, ahead=4).run(tasks):
        results.append(result)
        threading.Event().wait(0.5)
    assert [r.status for r in results] == ["skipped", "ok", "ok", "ok", "ok"]
    assert [r.clip_id for r in results[1:]] == ["c1", "c2", "c3", "c4"]


def test_a_clip_left_unresolved_by_a_broken_pool_counts_as_broken():
    """Python 3.11 can leave a clip submitted as its pool breaks unresolved: no hang."""
    from concurrent.futures import Future
    from types import SimpleNamespace

    clip_runner = runner()
    clip_runner.executor = SimpleNamespace(_broken="a worker died", _executor_manager_thread=None)
    result, broken = clip_runner._outcome(Future())  # never resolved
    assert result is None and isinstance(broken, BrokenProcessPool)
    clip_runner.executor = None


def test_a_clip_is_skipped_only_when_it_kills_its_worker_alone_twice(tmp_path):
    """c1 kills its worker in the batch, then once more alone, then works: kept. c3 always
    kills its worker: skipped after its two runs alone."""
    tasks = helpers_workers.tasks({1: "crash_first", 3: "crash"}, 5)
    tasks[1] = replace(tasks[1], marker=str(tmp_path / "c1-crashes"), crashes=2)
    results = list(runner(workers=2, ahead=4).run(tasks))
    assert (tmp_path / "c1-crashes").read_text() == "xx"
    assert [r.status for r in results] == ["ok", "ok", "ok", "skipped", "ok"]


@pytest.mark.parametrize(
    "error", [OSError("handle is closed"), ValueError("bad value(s) in fds_to_keep")]
)
def test_a_submit_that_finds_the_pipes_closed_loses_nothing(monkeypatch, error):
    """Python 3.11 can raise these from `submit` when a worker has just died (both seen in CI
    under load): it is a broken pool, retried in a fresh one, no clip lost."""
    real_submit = ProcessPoolExecutor.submit
    calls = {"n": 0}

    def flaky_submit(self, fn, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise error
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", flaky_submit)
    tasks = helpers_workers.tasks({}, 7)
    results = list(runner().run(tasks))
    assert [r.status for r in results] == ["ok"] * 7
    assert [r.clip_id for r in results] == [t.clip_id for t in tasks]


def test_a_fresh_pool_takes_over_after_each_workers_share_of_clips():
    """max_clips_per_worker: results stay complete and in order; no process does more than a
    pool's share, and the clips are spread over several pools' processes."""
    tasks = helpers_workers.tasks({}, 14)
    recycling = ClipRunner(
        FaceTrackerConfig(),
        2,
        4,
        work=helpers_workers.work,
        initializer=helpers_workers.init,
        max_clips_per_worker=3,
    )
    results = list(recycling.run(tasks))
    assert [r.clip_id for r in results] == [t.clip_id for t in tasks]
    assert all(r.ok for r in results)
    per_process = Counter(r.stats["pid"] for r in results)
    assert max(per_process.values()) <= 3 * 2  # a pool is handed 3 clips per worker
    assert len(per_process) >= 3  # 14 clips need at least three pools of 6
