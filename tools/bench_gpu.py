"""Training throughput on the device present: model-bound, end to end, and the input pipeline.

    python tools/bench_gpu.py [--records DIR] [--batch-size 16] [--seconds 8] [--budget-s 270]
    python tools/bench_gpu.py --smoke      # tiny model, few steps, on the CPU (CI)

For float32 and the device's mixed precision (mixed_float16 on a GPU, mixed_bfloat16 on a
CPU), each with and without XLA (`jit_compile`), it measures training clips/s

- model-bound: `fit` on one in-memory synthetic batch repeated (uint8 frames, float32 audio
  windows: the model computes the spectrograms), so no input cost at all;
- end to end: `fit` on `emotf.pipeline.make_dataset` over TFRecords (training mode, records
  cached in memory); without `--records` it writes synthetic records itself with
  `emotf.records.example.make_example` (2.5 s clips, 75 JPEG frames, 16 kHz audio);

and the pipeline alone (all cores, no model). Each setting's `bound` is "input" when the
pipeline alone is slower than the model-bound rate, else "model"; `end_to_end_over_model`
shows how much of the model-bound rate the real input reaches.

The model is the full-size `ModelConfig()` (N = 10, 224x224 frames, 1.28 s windows) unless
`--smoke`. Self-contained: no network, nothing outside the repository and its venv. Each
setting compiles its training step once (the model-bound and end-to-end runs share it);
`--budget-s` skips the settings that would start after that many seconds. Prints one line per
measurement and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from emotf.configs import ModelConfig, SamplingConfig
from emotf.model import build_model, training_model  # noqa: E402
from emotf.pipeline import make_dataset  # noqa: E402
from emotf.records.example import ClipRecord, make_example  # noqa: E402
from emotf.system import available_cpus  # noqa: E402
from emotf.training.precision import precision_policy  # noqa: E402

TINY = dict(
    num_segments=2,
    frame_size=32,
    spectrogram_shape=(48, 32),
    video_stem_width=4,
    video_widths=(8,),
    audio_widths=(4, 8),
    fc_units=8,
)


def device_kind() -> str:
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def device_name() -> str:
    if device_kind() == "GPU":
        details = tf.config.experimental.get_device_details(
            tf.config.list_physical_devices("GPU")[0]
        )
        return str(details.get("device_name", "GPU"))
    return platform.processor() or platform.machine()


def write_records(
    path: Path,
    clips: int,
    frame_size: int,
    seconds: float = 2.5,
    fps: float = 30000 / 1001,
    rate: int = 16000,
) -> Path:
    """Synthetic clips (smooth face-like JPEG frames, a tone plus noise) as one fold-0 shard."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:frame_size, 0:frame_size].astype(np.float32) / frame_size
    num_frames, samples = int(seconds * fps), int(seconds * rate)
    jpegs = []
    for k in range(num_frames):
        face = np.exp(-(((y - 0.5 - 0.02 * math.sin(k / 7)) / 0.3) ** 2 + ((x - 0.5) / 0.25) ** 2))
        img = np.stack([200 * face + 30, 160 * face + 40, 140 * face + 60], -1)
        img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        jpegs.append(tf.io.encode_jpeg(img, quality=90).numpy())
    t = np.arange(samples) / rate
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(clips):
            audio = 0.3 * np.sin(2 * np.pi * (150 + 10 * i) * t) + rng.normal(0, 0.05, samples)
            clip = ClipRecord(
                clip_id=f"{1001 + i % 91}_DFA_ANG_XX",
                actor_id=1001 + i % 91,
                sentence="DFA",
                emotion="ANG",
                label=i % 6,
                intensity="XX",
                fold=0,
                fps=fps,
                frames_jpeg=jpegs,
                face_boxes=np.zeros([num_frames, 4], np.float32),
                face_detected=np.ones([num_frames], np.int64),
                source_size=(360, 480),
                sample_rate=rate,
                pcm16=(audio * 32767).clip(-32768, 32767).astype(np.int16),
            )
            writer.write(make_example(clip).SerializeToString())
    return path


def synthetic_batch(model: ModelConfig, sampling: SamplingConfig, batch: int):
    rng = np.random.default_rng(0)
    n, s = model.num_segments, model.frame_size
    x = {
        "frames": tf.constant(rng.integers(0, 256, (batch, n, s, s, 3), dtype=np.uint8)),
        "audio": tf.constant(
            rng.normal(0, 0.1, (batch, n, sampling.window_length)).astype("float32")
        ),
    }
    return x, tf.constant(rng.integers(0, 6, batch).astype("int32"))


def _timed_fit(trainer, dataset, steps: int) -> float:
    start = time.perf_counter()
    trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start


def _rate(trainer, dataset, batch: int, seconds: float, min_steps: int, max_steps: int) -> dict:
    """clips/s of `fit` over `dataset` after a short warm-up, for about `seconds`."""
    probe_steps = min_steps
    probe = _timed_fit(trainer, dataset, probe_steps)
    steps = int(min(max_steps, max(min_steps, seconds / max(probe / probe_steps, 1e-6))))
    elapsed = _timed_fit(trainer, dataset, steps)
    return {
        "clips_per_s": round(batch * steps / elapsed, 2),
        "steps": steps,
        "step_ms": round(1000 * elapsed / steps, 2),
    }


def bench_setting(
    precision: str, jit: bool, model: ModelConfig, sampling: SamplingConfig, records: Path, args
) -> dict:
    keras.utils.set_random_seed(0)
    with precision_policy(precision) as policy:
        trainer = training_model(build_model(model, sampling))
        trainer.compile(
            optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            jit_compile=jit,
        )
        x, y = synthetic_batch(model, sampling, args.batch_size)
        in_memory = tf.data.Dataset.from_tensors((x, y)).repeat()
        start = time.perf_counter()
        _timed_fit(trainer, in_memory, 1)  # compiles the training step (shared below)
        compile_s = time.perf_counter() - start
        model_bound = _rate(
            trainer, in_memory, args.batch_size, args.seconds, args.min_steps, args.max_steps
        )
        pipeline = make_dataset(
            records, [0], training=True, config=sampling, batch_size=args.batch_size, cache=True
        ).repeat()
        end_to_end = _rate(
            trainer, pipeline, args.batch_size, args.seconds, args.min_steps, args.max_steps
        )
    return {
        "precision": policy,
        "jit_compile": jit,
        "compile_s": round(compile_s, 1),
        "model_clips_per_s": model_bound["clips_per_s"],
        "model_step_ms": model_bound["step_ms"],
        "end_to_end_clips_per_s": end_to_end["clips_per_s"],
        "end_to_end_step_ms": end_to_end["step_ms"],
        "end_to_end_over_model": round(end_to_end["clips_per_s"] / model_bound["clips_per_s"], 3),
    }


def bench_pipeline(records: Path, sampling: SamplingConfig, batch: int, seconds: float) -> dict:
    """The input pipeline alone (training mode, records cached, all cores): clips/s, CPU ms."""
    dataset = make_dataset(
        records, [0], training=True, config=sampling, batch_size=batch, cache=True
    ).repeat()
    iterator = iter(dataset)
    for _ in range(3):  # warm-up: tracing, reading the records into the cache
        next(iterator)
    clips, start, cpu = 0, time.perf_counter(), os.times()
    while time.perf_counter() - start < seconds or clips < 4 * batch:
        clips += int(next(iterator)[0]["frames"].shape[0])
    wall, end = time.perf_counter() - start, os.times()
    cpu_s = (end.user + end.system) - (cpu.user + cpu.system)
    return {
        "clips_per_s": round(clips / wall, 1),
        "cpu_ms_per_clip": round(1000 * cpu_s / clips, 2),
        "cores": available_cpus(),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, few steps (CI, CPU)")
    parser.add_argument("--records", help="a folder with fold-0 shards (default: synthetic)")
    parser.add_argument("--clips", type=int, default=256, help="synthetic clips to write")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument(
        "--budget-s", type=float, default=270.0, help="start no new setting after this many seconds"
    )
    args = parser.parse_args(argv)
    args.min_steps, args.max_steps = (1, 2) if args.smoke else (3, 2000)
    if args.smoke:
        args.batch_size, args.seconds, args.clips = 2, 0.0, 8
    began = time.perf_counter()
    kind = device_kind()
    mixed = "mixed_float16" if kind == "GPU" else "mixed_bfloat16"
    model = ModelConfig(**TINY) if args.smoke else ModelConfig()
    t, f = model.spectrogram_shape
    sampling = SamplingConfig(
        num_segments=model.num_segments, frame_size=model.frame_size, time_bins=t, freq_bins=f
    )
    results, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if args.records:
            records = Path(args.records)
        else:
            seconds = 1.5 if args.smoke else 2.5
            records = Path(tmp)
            write_records(
                records / "fold-0-of-10-00000.tfrecord", args.clips, model.frame_size, seconds
            )
        pipeline = bench_pipeline(records, sampling, args.batch_size, max(args.seconds, 0.1))
        print(f"pipeline alone: {pipeline}", flush=True)
        settings = [(p, jit) for p in ("float32", mixed) for jit in (False, True)]
        if args.smoke:  # both precisions and both XLA modes once, for time (CI)
            settings = [("float32", False), (mixed, True)]
        for precision, jit in settings:
            if True:
                if time.perf_counter() - began > args.budget_s:
                    skipped.append({"precision": precision, "jit_compile": jit})
                    continue
                r = bench_setting(precision, jit, model, sampling, records, args)
                r["bound"] = (
                    "input" if pipeline["clips_per_s"] < r["model_clips_per_s"] else "model"
                )
                print(json.dumps(r), flush=True)
                results.append(r)
    summary = {
        "device": kind,
        "device_name": device_name(),
        "model": "tiny (smoke)" if args.smoke else "full ModelConfig()",
        "num_segments": model.num_segments,
        "batch_size": args.batch_size,
        "pipeline_clips_per_s": pipeline["clips_per_s"],
        "pipeline_cpu_ms_per_clip": pipeline["cpu_ms_per_clip"],
        "cores": pipeline["cores"],
        "settings": results,
        "skipped": skipped,
        "best": max(results, key=lambda r: r["end_to_end_clips_per_s"], default=None),
        "total_s": round(time.perf_counter() - began, 1),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
