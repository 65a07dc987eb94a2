"""Writing a synthetic sample: every clip's files in parallel, then its `sample.json`.

Shared by the CREMA-D sample (`emotf.synthetic.sample`) and the RAVDESS one
(`emotf.synthetic.ravdess`): the output does not depend on the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

SAMPLE_JSON = "sample.json"
MANY = 24  # from this many files on: two workers and a progress bar by default

Job = TypeVar("Job")


def write_all(
    make: Callable[[Job], dict],
    jobs: Sequence[Job],
    workers: int | None = None,
    progress: bool | None = None,
    unit: str = "clip",
) -> list[dict]:
    """`make(job)` for every job, in job order: in `workers` spawned processes (default: 1 for
    fewer than 24 jobs, else up to 2 or the CPU count), with a tqdm bar (default: from 24 on).
    `make` must be a module-level function (it is pickled to the workers)."""
    many = len(jobs) >= MANY
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if many else 1
    bar = dict(
        total=len(jobs),
        desc="emotf-make-sample",
        unit=unit,
        disable=not (many if progress is None else progress),
    )
    if workers > 1:
        # spawn, not fork: the caller may hold TensorFlow or OpenCV threads.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(tqdm(pool.map(make, jobs), **bar))
    return [make(job) for job in tqdm(jobs, **bar)]


def write_sample_json(out_dir: Path, meta: dict) -> None:
    """`out_dir/sample.json`, written atomically (a reader never sees half of it)."""
    tmp = out_dir / (SAMPLE_JSON + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(out_dir / SAMPLE_JSON)
