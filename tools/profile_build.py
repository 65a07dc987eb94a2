"""Where the time of `emotf-build-records` goes, stage by stage, in one worker.

    python tools/profile_build.py --clips 40 [--data DIR] [--work-dir W]

Runs what one pool worker runs (`emotf.records.clip_worker.init_worker(..., single_thread=True)`
then `process_clip` over the clips, in this process) on synthetic clips (480x360, 30 fps,
~2.5 s; `emotf.synthetic.sample`, as `tools/bench_build_records.py`; or the CREMA-D-like
folder `--data`), after one warm-up clip, with each stage timed (exclusive time: a stage
called inside another is counted once, in the inner one):

  start-up       TensorFlow import + thread settings, MTCNN load, the warm-up clip (traces)
  decode         PyAV decoding and the constant-rate grid (`open_video` and its frames)
  to RGB         `frame_to_rgb` (PyAV's yuv -> rgb24 conversion, inside decode)
  detection      `FaceTracker.detect`: keyframe resize + MTCNN (P-, R-, O-net)
  tracking       the rest of `StreamTracker`/`ClipReader` (boxes, smoothing), by difference
  crop           `crop_faces` (warpAffine to 224x224)
  JPEG           `encode_jpegs`
  audio          WAV read, checks (`audio_source`, `AudioStream`)
  Example        `make_example` and `SerializeToString`
  main process   what the build's main process does per clip, measured here on the same
                 results: unpickling a worker's result (its pickling is in the worker's
                 share) and `write_shard` (TFRecord write, fsync, SHA-256, sidecar)

Prints a table (seconds, ms per frame, share) and a final JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class Timers:
    """Exclusive wall time per stage: a timed call inside another timed call is subtracted from
    the outer one."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[float]] = []  # [start, time of inner timed calls]

    def _enter(self) -> None:
        self._stack.append([time.perf_counter(), 0.0])

    def _exit(self, name: str) -> None:
        start, inner = self._stack.pop()
        elapsed = time.perf_counter() - start
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - inner
        self.calls[name] = self.calls.get(name, 0) + 1
        if self._stack:
            self._stack[-1][1] += elapsed

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._enter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._exit(name)

        return timed

    def wrap_iter(self, name: str, iterator):
        """An iterator whose every `next` is timed as `name`."""
        while True:
            self._enter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self._exit(name)
            yield item


def install(timers: Timers) -> None:
    """Patch the stage functions where the build calls them (this process only)."""
    from emotf.media import decode, preprocess
    from emotf.media.decode import AudioStream
    from emotf.media.faces import FaceTracker
    from emotf.records import clip_worker, example

    open_video = preprocess.open_video

    def timed_open(*args, **kwargs):
        info, frames = timers.wrap("decode", open_video)(*args, **kwargs)
        return info, timers.wrap_iter("decode", frames)

    preprocess.open_video = timed_open
    decode.frame_to_rgb = timers.wrap("to RGB", decode.frame_to_rgb)
    FaceTracker.detect = timers.wrap("detection", FaceTracker.detect)  # type: ignore[method-assign]
    preprocess.crop_faces = timers.wrap("crop", preprocess.crop_faces)
    clip_worker.encode_jpegs = timers.wrap("JPEG", clip_worker.encode_jpegs)
    preprocess.audio_source = timers.wrap("audio", preprocess.audio_source)
    for method in ("read_until", "samples"):
        setattr(AudioStream, method, timers.wrap("audio", getattr(AudioStream, method)))

    class TimedExample:
        def __init__(self, inner):
            self.inner = inner

        def SerializeToString(self, **kwargs):  # noqa: N802 (the proto's name)
            return timers.wrap("Example", self.inner.SerializeToString)(**kwargs)

    make_example = example.make_example
    example.make_example = lambda record: TimedExample(timers.wrap("Example", make_example)(record))


def sample_tasks(args) -> list:
    """ClipTasks of the clips to profile (synthetic, or those of `--data`)."""
    from emotf.records.clip_worker import ClipTask

    if args.data:
        data = Path(args.data)
    else:
        from emotf.synthetic.config import SampleConfig
        from emotf.synthetic.sample import make_sample

        work = Path(args.work_dir or tempfile.mkdtemp(prefix="emotf-profile-"))
        data = work / "data"
        if not (data / "VideoFlash").is_dir():
            n = args.clips + 1
            make_sample(
                data,
                SampleConfig(
                    num_actors=min(n, 91),
                    clips_per_actor=-(-n // 91),
                    min_duration=2.3,
                    max_duration=2.7,
                    median_duration=2.5,
                    seed=1,
                ),
            )
    videos = sorted((data / "VideoFlash").glob("*.flv"))[: args.clips + 1]
    return [
        ClipTask(v.stem, 0, str(v), str(data / "AudioWAV" / f"{v.stem}.wav"), verify_media=False)
        for v in videos
    ]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=40, help="clips timed (after one warm-up clip)")
    p.add_argument("--data", default=None, help="a CREMA-D-like folder (default: synthetic)")
    p.add_argument("--work-dir", default=None, help="keep the synthetic clips here")
    args = p.parse_args(argv)

    tasks = sample_tasks(args)
    startup: dict[str, float] = {}
    t0 = time.perf_counter()
    from emotf.media.faces import FaceTrackerConfig
    from emotf.records import clip_worker

    clip_worker.init_worker(FaceTrackerConfig(), True)  # imports TensorFlow
    startup["import + init"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    assert clip_worker._TRACKER is not None
    _ = clip_worker._TRACKER.detector  # MTCNN weights
    startup["MTCNN load"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    clip_worker.process_clip(tasks[0])
    startup["warm-up clip"] = time.perf_counter() - t2

    timers = Timers()
    install(timers)
    results, worker_s = [], 0.0
    for task in tasks[1:]:
        start = time.perf_counter()
        result = clip_worker.process_clip(task)
        blob = pickle.dumps(result)
        end = time.perf_counter()
        worker_s += end - start  # the worker's share: its result pickled included
        results.append(blob)
    # the main process's share: unpickle and write the shard (one shard of these clips)
    from emotf.records.config import BuildConfig, record_settings
    from emotf.records.shards import write_shard
    from emotf.storage import as_path

    start = time.perf_counter()
    loaded = [pickle.loads(blob) for blob in results]
    unpickle_s = time.perf_counter() - start
    frames = sum(r.num_frames for r in loaded)
    settings = record_settings(BuildConfig(data_dir=".", out_dir="."))
    with tempfile.TemporaryDirectory() as out:
        shard = {"name": "fold-0-of-10-00000", "fold": 0, "clips": tasks[1:]}
        start = time.perf_counter()
        write_shard(as_path(out), shard, iter(loaded), settings, "0" * 64, verify_media=False)
        write_s = time.perf_counter() - start
    start = time.perf_counter()
    for result in loaded:
        pickle.dumps(result)
    pickle_s = time.perf_counter() - start

    stages = dict(timers.seconds)
    stages["pickle result"] = pickle_s
    measured = sum(stages.values())
    stages["tracking + rest"] = max(0.0, worker_s - measured)
    order = [
        "decode",
        "to RGB",
        "detection",
        "tracking + rest",
        "crop",
        "JPEG",
        "audio",
        "Example",
        "pickle result",
    ]
    main_stages = {"unpickle result": unpickle_s, "write shard": write_s}
    rows = [(name, stages.get(name, 0.0), "worker") for name in order]
    rows += [(name, s, "main") for name, s in main_stages.items()]
    total = worker_s + unpickle_s + write_s
    load = os.getloadavg()
    print(f"{len(loaded)} clips, {frames} frames; load average {load[0]:.2f}")
    print(f"{'stage':<18}{'process':<9}{'s':>8}{'ms/frame':>10}{'share':>8}")
    for name, seconds, where in rows:
        print(
            f"{name:<18}{where:<9}{seconds:8.3f}{1000 * seconds / frames:10.3f}"
            f"{100 * seconds / total:7.1f}%"
        )
    print(f"{'total':<27}{total:8.3f}{1000 * total / frames:10.3f}")
    print(f"worker frames/s (one core): {frames / worker_s:.1f}")
    print("start-up: " + ", ".join(f"{k} {v:.2f} s" for k, v in startup.items()))
    out = {
        "clips": len(loaded),
        "frames": frames,
        "load_avg": [round(x, 2) for x in load],
        "worker_s": round(worker_s, 3),
        "worker_frames_per_s": round(frames / worker_s, 1),
        "stages_s": {name: round(s, 3) for name, s, _ in rows},
        "ms_per_frame": {name: round(1000 * s / frames, 3) for name, s, _ in rows},
        "startup_s": {k: round(v, 2) for k, v in startup.items()},
        "detector_calls": timers.calls.get("detection", 0),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
