"""Per-clip work of `emotf.records.build`: one clip in, one serialised Example (or a skip) out.

`process_clip` turns one planned clip (a `ClipTask` from `emotf.records.build.plan_build`) into a
`ClipResult`: a serialised `tf.train.Example` (`emotf.records.example`) or a skip with the
reason; it never raises for bad input. Both are plain dataclasses, pickled to and from the
spawned workers. `ClipRunner` runs it over many clips, in this process or in a pool of
spawned worker processes (each with its own `FaceTracker`), yields the results in task order and
survives a worker that dies mid-clip (its workers' set-up and exit codes: `emotf.records.pool`).
Everything here is top level so spawned workers can import it; nothing here writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from emotf.configs import SamplingConfig
from emotf.corpora.cremad import ClipNameError, parse_clip_name
from emotf.media.faces import FaceTracker, FaceTrackerConfig, NoFaceError, normalized_boxes
from emotf.media.files import MediaError, encode_jpegs
from emotf.media.preprocess import ClipError, ClipSettings, read_clip
from emotf.media.staging import restore_names, staged
from emotf.records.media_checks import KNOWN_BAD, check_clip
from emotf.records.pool import broken_pool_exit_codes, run_with_deadline, start_worker

# --------------------------------------------------------------------------------------------
# The seam between the build and its workers


@dataclass(frozen=True)
class ClipLabels:
    """What a clip's record says about it besides its media (`emotf.records.example.ClipRecord`):
    the speaker's number, the sentence (statement) code, the class code (`emotion`), its index
    in the corpus's class order (`label`) and the intensity ("" when the corpus has none)."""

    actor_id: int
    sentence: str
    emotion: str
    label: int
    intensity: str

    @classmethod
    def of_cremad(cls, clip_id: str) -> ClipLabels:
        """The labels a CREMA-D clip id spells (`1001_DFA_ANG_XX`).

        Raises:
            ClipNameError: not a CREMA-D clip name.
        """
        name = parse_clip_name(clip_id)
        return cls(name.actor_id, name.sentence, name.emotion, name.label, name.intensity)


@dataclass(frozen=True)
class ClipTask:
    """One planned clip: what a worker needs to turn it into a record.

    Attributes:
        clip_id: the corpus's clip id (CREMA-D: the file stem).
        fold: the fold the record goes to.
        video: the clip's video path.
        audio: its separate audio path (CREMA-D: the WAV, which may not exist), or None: the
            video's own audio track.
        settings: how the clip becomes a record: the build's one `ClipSettings`
            (`emotf.records.config.clip_settings`).
        verify_media: also check both files against the official CREMA-D checksums.
        labels: the record's labels; None: those the CREMA-D clip id spells.
        corpus: the corpus's name (CREMA-D's known bad clips are looked up for "cremad" only).
    """

    clip_id: str
    fold: int
    video: str
    audio: str | None
    settings: ClipSettings = field(default_factory=ClipSettings)
    verify_media: bool = False
    labels: ClipLabels | None = None
    corpus: str = "cremad"

    def record_labels(self) -> ClipLabels:
        """`labels`, or those of the CREMA-D clip id (raises `ClipNameError` if it is none)."""
        return self.labels if self.labels is not None else ClipLabels.of_cremad(self.clip_id)


@dataclass
class ClipResult:
    """What became of one clip: status "ok" with the serialised Example, or "skipped" with the
    file at fault (`path`) and the `reason`. `notes` are warnings either way; `media` the media
    check ({"video": status, "audio": status}) when asked for."""

    clip_id: str
    status: str
    example: bytes | None = None
    num_frames: int = 0
    num_samples: int = 0
    stats: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    path: str = ""
    reason: str = ""
    media: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def skipped(cls, clip_id: str, path, reason: str, notes: list[str] | None = None) -> ClipResult:
        return cls(clip_id, "skipped", path=str(path), reason=reason, notes=list(notes or []))


# --------------------------------------------------------------------------------------------
# One clip (runs in a worker)

_TRACKER: FaceTracker | None = None
# Testing hook: in a pool worker, clips whose id is listed (comma-separated) in this environment
# variable make the worker process exit abruptly (os._exit(1)), like an FFmpeg segfault or the
# OOM killer would. Read only in pool workers, never in the main process.
CRASH_ENV = "EMOTF_TEST_CRASH_CLIPS"
_CRASH_CLIPS: frozenset[str] = frozenset()


def init_worker(tracker_config: FaceTrackerConfig, single_thread: bool) -> None:
    """Set up a process that runs `process_clip`: its FaceTracker (MTCNN loads once), and for
    a worker among several (`single_thread`) one TensorFlow/OpenCV thread each."""
    global _TRACKER, _CRASH_CLIPS
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if single_thread:  # a pool worker
        _CRASH_CLIPS = frozenset(c for c in os.environ.get(CRASH_ENV, "").split(",") if c)
    if single_thread:
        # Lazy: this module is imported by every spawned worker; TensorFlow would add ~4 s to
        # each one's start, before its deadline (tests/test_deadlines.py).
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already running in this process (a Beam worker
            pass  # in the driver's process): keep its threads
        cv2.setNumThreads(1)
    _TRACKER = FaceTracker(tracker_config)


def process_clip(task: ClipTask) -> ClipResult:
    """Turn one clip into a serialised Example, or say why it was skipped.

    Returns a `ClipResult`: status "ok" with `example` (bytes), `num_frames`, `num_samples`,
    `stats`, `notes`; or status "skipped" with `path` and `reason`. With `task.verify_media`
    the result also holds `media` = {"video": status, "audio": status}
    (`emotf.records.media_checks`). Never raises for bad input. Video and audio on a URL
    (`gs://...`) are decoded from temporary local copies (`emotf.media.staging`); messages
    name the URL.

    Raises:
        emotf.media.staging.StagingError: a URL could not be copied for another reason than
            its absence (a transient storage error): not the clip's fault, so no skip.
    """
    with contextlib.ExitStack() as stack:
        # A missing URL stages as a missing file (skipped below, as a local one would be);
        # any other storage error raises StagingError: the shard fails, the clip is not lost.
        video = str(stack.enter_context(staged(task.video)))
        audio = None if task.audio is None else str(stack.enter_context(staged(task.audio)))
        result = _process_staged(dataclasses.replace(task, video=video, audio=audio))
    names = {video: task.video}
    if audio is not None and task.audio is not None:
        names[audio] = task.audio
    result.path = restore_names(result.path, names)
    result.reason = restore_names(result.reason, names)
    result.notes = [restore_names(note, names) for note in result.notes]
    return result


def _process_staged(task: ClipTask) -> ClipResult:
    result = _process_clip(task)
    if task.verify_media:
        try:
            result.media = check_clip(task.clip_id, task.video, task.audio or task.video)
        except OSError as error:  # unreadable file: say so, never stop the build
            result.notes.append(f"{task.video}: media check failed ({error})")
    return result


def _process_clip(task: ClipTask) -> ClipResult:
    from emotf.records.example import ClipRecord, make_example  # TensorFlow: lazy (see init_worker)

    window_s = SamplingConfig.window_seconds  # the sampler's default audio window (d)

    clip_id, video_path = task.clip_id, Path(task.video)
    audio_path = video_path if task.audio is None else Path(task.audio)  # None: its own track

    def _skip(path, problem: str, notes: list[str]) -> ClipResult:
        return ClipResult.skipped(clip_id, path, problem, notes)

    if clip_id in _CRASH_CLIPS:
        os._exit(1)  # testing hook (CRASH_ENV)
    notes: list[str] = []
    action, fact = KNOWN_BAD.get(clip_id, ("", "")) if task.corpus == "cremad" else ("", "")
    if action == "skip":
        return _skip(video_path, fact, notes)
    if action == "note":
        notes.append(f"{video_path}: {fact}")
    try:
        labels = task.record_labels()
        # The one preprocessing contract (emotf.media.preprocess), shared with emotf-predict.
        settings = task.settings
        tracker = _TRACKER or FaceTracker(settings.tracker)
        try:
            clip = read_clip(video_path, audio_path, settings, tracker, window_seconds=window_s)
        except (NoFaceError, ClipError) as error:
            return _skip(video_path, str(error).removeprefix(f"{video_path}: "), notes)
        notes += [n if n.startswith(str(audio_path)) else f"{video_path}: {n}" for n in clip.notes]
        if abs(clip.fps - 30000 / 1001) > 0.1 and abs(clip.fps - 30.0) > 0.1:
            notes.append(
                f"{video_path}: video at {clip.fps:g} fps (not 30): kept, the record "
                f"stores the stream's rate"
            )
        record = ClipRecord(
            clip_id=clip_id,
            actor_id=labels.actor_id,
            sentence=labels.sentence,
            emotion=labels.emotion,
            label=labels.label,
            intensity=labels.intensity,
            fold=task.fold,
            fps=clip.fps,
            frames_jpeg=encode_jpegs(clip.crops, settings.jpeg_quality),
            face_boxes=normalized_boxes(clip.boxes, *clip.source_size),
            face_detected=clip.detected,
            source_size=clip.source_size,
            sample_rate=settings.sample_rate,
            pcm16=clip.pcm16,
        )
        stats = dict(clip.stats, frames=len(clip.crops), frames_detected=int(clip.detected.sum()))
        # deterministic: map keys sorted, so the bytes do not depend on the process (a local
        # worker and a Beam worker write the same Example).
        example = make_example(record).SerializeToString(deterministic=True)
        return ClipResult(
            clip_id,
            "ok",
            example=example,
            num_frames=len(clip.crops),
            num_samples=len(clip.pcm16),
            stats=stats,
            notes=notes,
        )
    except (MediaError, ClipNameError) as error:
        return _skip(
            getattr(error, "path", video_path), getattr(error, "problem", str(error)), notes
        )
    except Exception as error:  # noqa: BLE001 (never let one clip stop the build)
        return _skip(video_path, f"unexpected error: {type(error).__name__}: {error}", notes)


# --------------------------------------------------------------------------------------------
# Running clips in worker processes

# `BuildConfig.worker_timeout_seconds`'s default: the most one clip may take in a pool worker.
DEFAULT_CLIP_DEADLINE_S = 1800.0


class ClipRunner:
    """`process_clip` over tasks, results yielded in task order.

    workers == 1: in this process. Otherwise a `ProcessPoolExecutor` of spawned workers (one
    FaceTracker each, created by the initializer) with at most `ahead` clips submitted ahead of
    the consumer, so a slow clip holds back at most that many finished results. When a worker
    dies (segfault in FFmpeg, the OOM killer), every clip whose future failed is retried alone
    in a fresh pool; a clip that kills its worker alone twice in a row is returned as skipped
    ("worker process died while processing ..."). Clips are never lost or returned twice. `work` and
    `initializer` default to `process_clip` and the FaceTracker setup (tests pass cheap ones);
    `work` takes a `ClipTask` (or a subclass of it) and returns a `ClipResult`.

    A clip that takes longer than `deadline_seconds` in a pool worker
    (`BuildConfig.worker_timeout_seconds`, `--worker_timeout_seconds`, default 1800 s) ends
    its worker (`emotf.records.pool.run_with_deadline`) and is skipped at once, its reason
    naming the clip's file and the deadline; the build goes on (the other clips in flight are
    retried as after a crash). With one worker the clips run in this process, without one.

    `max_clips_per_worker` (`BuildConfig.worker_max_clips`, default 500): once a pool has been
    handed that many clips per worker, the clips in flight finish and a fresh pool takes over,
    so memory that grows per clip inside TensorFlow, MTCNN or FFmpeg (a few hundred KB a clip,
    a gigabyte over a worker's ~3,700 clips of the full CREMA-D) is given back; it costs one
    worker start-up (~6 s) per pool. None: a pool lives as long as the run.
    """

    def __init__(
        self,
        tracker: FaceTrackerConfig,
        workers: int,
        ahead: int | None = None,
        *,
        work: Callable[[ClipTask], ClipResult] = process_clip,
        initializer: Callable[[FaceTrackerConfig, bool], None] = init_worker,
        deadline_seconds: float | None = DEFAULT_CLIP_DEADLINE_S,
        max_clips_per_worker: int | None = None,
    ):
        self.tracker, self.workers = tracker, workers
        self.max_clips_per_worker = max_clips_per_worker
        self.handed = 0  # clips submitted to the current pool
        self.ahead = ahead or 3 * workers
        self.work, self.initializer = work, initializer
        self.deadline = deadline_seconds
        self.executor: ProcessPoolExecutor | None = None
        self.procs: dict = {}
        self.markers: str | None = None  # where a worker notes the clip that overran

    def _marker(self, task: ClipTask) -> str:
        if self.markers is None:
            self.markers = tempfile.mkdtemp(prefix="emotf-clip-deadlines-")
        return os.path.join(self.markers, hashlib.sha256(task.clip_id.encode()).hexdigest()[:32])

    def _overran(self, task: ClipTask) -> ClipResult | None:
        """The skip of a clip whose worker was ended by its deadline, else None."""
        if self.markers is None or not os.path.exists(self._marker(task)):
            return None
        return ClipResult.skipped(
            task.clip_id,
            task.video,
            f"not processed within the per-clip deadline of "
            f"{self.deadline:g} s (--worker_timeout_seconds): {task.video} skipped, its worker "
            f"stopped",
        )

    def _start(self) -> None:
        self.executor = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),  # TF: no fork
            initializer=start_worker,
            initargs=(self.initializer, self.tracker, True, os.getpid()),
        )
        self.procs = {}
        self.handed = 0

    def _spent(self) -> bool:
        """The current pool has been handed its share of clips (`max_clips_per_worker`)."""
        limit = self.max_clips_per_worker
        return (
            self.executor is not None and limit is not None and self.handed >= limit * self.workers
        )

    def _submit(self, task: ClipTask):
        if self.executor is None:
            self._start()
        assert self.executor is not None  # set by _start
        try:
            future = self.executor.submit(
                run_with_deadline, self.work, task, self.deadline, self._marker(task)
            )
        except (OSError, ValueError) as error:
            # Python 3.11: a worker that died can close the pool's pipes before the pool is
            # flagged broken; submit, which may spawn a replacement worker, then fails with
            # OSError "handle is closed" or ValueError "bad value(s) in fds_to_keep". Same
            # case as BrokenProcessPool (both seen in CI under load).
            raise BrokenProcessPool(
                f"the pool broke while a clip was submitted ({error})"
            ) from error
        self.procs.update(getattr(self.executor, "_processes", None) or {})
        self.handed += 1
        return future

    def stop(self) -> None:
        """Shut the pool down now (running clips are abandoned; their processes terminated)."""
        if self.executor is None:
            return
        self.procs.update(getattr(self.executor, "_processes", None) or {})
        self.executor.shutdown(wait=False, cancel_futures=True)
        for proc in self.procs.values():
            if proc.exitcode is None:
                proc.terminate()
        for proc in self.procs.values():
            proc.join(timeout=10)
        self.executor.shutdown(wait=True)
        self.executor = None

    def _outcome(self, future) -> tuple[ClipResult | None, BaseException | None]:
        """(result, None), or (None, BrokenProcessPool) if the pool broke under the clip.

        Waits in 1 s steps: in Python 3.11 a clip submitted in the instant its pool breaks can
        be left unresolved forever (`terminate_broken` clears the pending work without the
        submit lock; the pool's manager thread can even die of it, "dictionary changed size
        during iteration", which pytest reports as a thread warning); once the pool is broken
        and its manager thread gone, such a clip counts as broken too instead of hanging.
        """
        while True:
            try:
                return future.result(timeout=1.0), None
            except BrokenProcessPool as error:
                return None, error
            except TimeoutError:
                executor = self.executor
                manager = getattr(executor, "_executor_manager_thread", None)
                if (
                    getattr(executor, "_broken", False)
                    and not future.done()
                    and (manager is None or not manager.is_alive())
                ):
                    return None, BrokenProcessPool("the pool broke as this clip was submitted")

    def _alone(self, task: ClipTask, attempts: int = 2) -> ClipResult:
        """Run one clip with nothing else in flight, in a fresh pool when the last one broke.

        A clip is skipped only if its pool breaks under it `attempts` times in a row, each time
        alone: one break alone can still be a worker of that pool dying while idle (the OOM
        killer, or a clip before it) in the instant before the clip was handed over.
        """
        for _ in range(attempts):
            try:
                future = self._submit(task)
            except BrokenProcessPool:  # the pool's worker died while idle: not this clip's doing
                self.stop()
                future = self._submit(task)
            result, broken = self._outcome(future)
            if result is not None:
                return result
            overran = self._overran(task)
            if overran is not None:
                self.stop()
                return overran
            codes = broken_pool_exit_codes(self.executor, self.procs)
            self.stop()
        return ClipResult.skipped(
            task.clip_id,
            task.video,
            f"worker process died while processing {task.video} (exit code {codes})",
        )

    def _sort_out(self, batch: list) -> Iterator[ClipResult]:
        """Results of a batch whose pool broke: finished clips as they are, the others alone."""
        outcomes = [self._outcome(future) for _, future in batch]
        self.stop()
        for (task, _), (result, _broken) in zip(batch, outcomes, strict=True):
            if result is not None:
                yield result
            else:
                yield self._overran(task) or self._alone(task)

    def run(self, tasks: Iterable[ClipTask]) -> Generator[ClipResult, None, None]:
        if self.workers == 1:
            self.initializer(self.tracker, False)
            yield from map(self.work, tasks)
            return
        remaining = iter(tasks)
        unsubmitted: list[ClipTask] = []  # a task whose submit found the pool broken
        pending: deque = deque()
        try:
            while True:
                while len(pending) < self.ahead:
                    if self._spent():  # a fresh pool once the clips in flight are done
                        if pending:
                            break
                        self.stop()
                    task = unsubmitted.pop() if unsubmitted else next(remaining, None)
                    if task is None:
                        break
                    try:
                        pending.append((task, self._submit(task)))
                    except BrokenProcessPool:  # a worker died since the last result
                        unsubmitted.append(task)
                        if not pending:  # nothing in flight to blame: start a fresh pool
                            self.stop()
                            continue
                        break  # the batch in flight is sorted out below
                if not pending:
                    return
                result, _broken = self._outcome(pending[0][1])
                if result is None:  # the pool broke
                    batch = list(pending)
                    pending.clear()
                    yield from self._sort_out(batch)
                    continue
                pending.popleft()
                yield result
        finally:
            self.stop()
            if self.markers is not None:
                shutil.rmtree(self.markers, ignore_errors=True)
                self.markers = None
