"""Time `emotf.pipeline.make_dataset` against a plain Python generator doing the same work.

Both read the same temporary TFRecord of synthetic clips (75 JPEG face crops of 224x224 and
40000 samples at 16 kHz each, ~2.5 s), sample N segments per clip (training or evaluation
mode), decode the N sampled JPEGs, compute the N log-mel spectrograms (same STFT/mel
parameters) and batch. The generator uses protobuf parsing, PIL, numpy and librosa in one
Python thread, as a straightforward `tf.data.Dataset.from_generator` feed would.

    python tools/bench_pipeline.py [--clips 256] [--epochs 3] [--batch-size 16]
                                   [--mode train|eval|both] [--cache]

`--cache` gives both sides the records in memory: `make_dataset(cache=True)` (what
`emotf-train --cache-records true` uses) and a generator that reads a list of the serialised
records instead of the file.

Prints one JSON line per mode (training, then evaluation with the default `both`): pipeline
and generator clips/s, their ratio, the cores used, the pipeline's clips/s per core, clips
per CPU-second of both and their ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The generator is one Python thread. Left at their defaults, numpy's BLAS/OpenMP pools spin
# on the second core during its epochs and keep spinning into the pipeline's epochs, which
# halved the pipeline's measured speed and made the generator look twice as costly in CPU.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from emotf import keys  # noqa: E402
from emotf.pipeline import make_dataset  # noqa: E402
from emotf.records import ClipRecord, make_example  # noqa: E402
from emotf.sampling import SamplingConfig  # noqa: E402


def _face_like(rng, k: int) -> np.ndarray:
    """A smooth 224x224 image with a little noise: JPEG size close to a real face crop."""
    y, x = np.mgrid[0:224, 0:224].astype(np.float32)
    cy, cx = 112 + 5 * math.sin(k / 7), 112 + 5 * math.cos(k / 5)
    face = np.exp(-(((y - cy) / 70) ** 2 + ((x - cx) / 55) ** 2))
    img = np.stack([200 * face + 30, 160 * face + 40, 140 * face + 60], -1)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_records(path: Path, clips: int, frames: int = 75, samples: int = 40000) -> None:
    rng = np.random.default_rng(0)
    base = [tf.io.encode_jpeg(_face_like(rng, k), quality=90).numpy() for k in range(frames)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(clips):
            t = np.arange(samples) / 16000.0
            audio = 0.3 * np.sin(2 * np.pi * (150 + 10 * i) * t) + rng.normal(0, 0.05, samples)
            clip = ClipRecord(
                clip_id=f"{1001 + i % 91}_DFA_ANG_XX", actor_id=1001 + i % 91, sentence="DFA",
                emotion="ANG", label=i % 6, intensity="XX", fold=0, fps=30000 / 1001,
                frames_jpeg=base, face_boxes=np.zeros([frames, 4], np.float32),
                face_detected=np.ones([frames], np.int64), source_size=(360, 480),
                sample_rate=16000, pcm16=(audio * 32767).astype(np.int16),
            )
            writer.write(make_example(clip).SerializeToString())


def python_generator(path: Path, config: SamplingConfig, batch_size: int, seed: int,
                     training: bool = True, records: list[bytes] | None = None):
    """The baseline: parse, sample, decode N JPEGs (PIL), log-mel (librosa), batch.

    Reads `records` (serialised Examples in memory) when given, else the file at `path`.
    """
    import librosa
    from PIL import Image

    rng = np.random.default_rng(seed)
    mel_basis = librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.fft_length, n_mels=config.num_mel_bins,
        fmin=config.lower_edge_hertz, fmax=config.upper_edge_hertz or config.sample_rate / 2,
        htk=True, norm=None,
    )
    n, length = config.num_segments, config.window_length
    frames_b, specs_b, labels_b = [], [], []
    source = records if records is not None else tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    for raw in source:
        feat = tf.train.Example.FromString(raw).features.feature
        jpegs = feat[keys.VIDEO_FRAMES].bytes_list.value
        fps = feat[keys.VIDEO_FPS].float_list.value[0]
        pcm = np.frombuffer(feat[keys.AUDIO_PCM16].bytes_list.value[0], "<i2")
        wave = pcm.astype(np.float32) / 32768.0
        t = len(jpegs)
        k = np.arange(n)
        lo = k * t // n
        hi = np.maximum((k + 1) * t // n, lo + 1)
        if training:
            j = np.minimum(lo + np.floor(rng.random(n) * (hi - lo)).astype(int), hi - 1)
            centres = j / fps + config.max_offset_seconds * rng.uniform(-1, 1, n)
        else:
            j = (lo + hi - 1) // 2
            centres = j / fps
        starts = np.ceil(config.sample_rate * (centres - config.window_seconds / 2)).astype(int)
        padded = np.pad(wave, (length, length))
        frames = np.stack(
            [np.asarray(Image.open(io.BytesIO(jpegs[i])).convert("RGB")) for i in j]
        )
        specs = []
        for s in starts:
            lo_s = int(np.clip(s + length, 0, len(padded) - length))
            window = padded[lo_s:lo_s + length]
            mag = np.abs(librosa.stft(
                window, n_fft=config.fft_length, hop_length=config.frame_step,
                win_length=config.frame_length, window="hann", center=False,
            ))
            logmel = np.log(mel_basis @ mag + config.log_offset).T  # [time, mel]
            if logmel.shape != (config.time_bins, config.freq_bins):
                logmel = np.asarray(Image.fromarray(logmel).resize(
                    (config.freq_bins, config.time_bins), Image.BILINEAR))
            logmel = (logmel - logmel.mean()) / np.sqrt(logmel.var() + 1e-6)
            specs.append(logmel[..., None].astype(np.float32))
        frames_b.append(frames)
        specs_b.append(np.stack(specs))
        labels_b.append(feat[keys.LABEL].int64_list.value[0])
        if len(labels_b) == batch_size:
            yield {"frames": np.stack(frames_b), "spectrograms": np.stack(specs_b)}, np.array(
                labels_b, np.int32)
            frames_b, specs_b, labels_b = [], [], []


def _epoch(make_iter) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, clips) of one pass."""
    clips, wall, cpu = 0, time.perf_counter(), time.process_time()
    for features, _labels in make_iter():
        clips += features["frames"].shape[0]
    return time.perf_counter() - wall, time.process_time() - cpu, clips


def _time_both(pipeline_iter, generator_iter, epochs: int) -> dict:
    """Alternate epochs of the two so both see the same background load (shared machine)."""
    _epoch(pipeline_iter)  # warm-up: tracing, file cache, librosa imports
    _epoch(generator_iter)
    totals = {"pipeline": np.zeros(3), "generator": np.zeros(3)}
    for _ in range(epochs):
        totals["pipeline"] += _epoch(pipeline_iter)
        totals["generator"] += _epoch(generator_iter)
    return totals


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--mode", choices=("train", "eval", "both"), default="both")
    parser.add_argument("--cache", action="store_true",
                        help="records in memory on both sides (make_dataset cache=True)")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    config = SamplingConfig()
    modes = ["train", "eval"] if args.mode == "both" else [args.mode]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fold-0-of-10-00000.tfrecord"
        write_records(path, args.clips)
        size_mb = path.stat().st_size / 1e6
        in_memory = None
        if args.cache:
            in_memory = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
        for mode in modes:
            training = mode == "train"
            dataset = make_dataset(path, [0], training=training, config=config,
                                   batch_size=args.batch_size, seed=0, cache=args.cache)
            totals = _time_both(
                lambda: dataset,
                lambda: python_generator(path, config, args.batch_size, 0, training, in_memory),
                args.epochs,
            )
            results.append(_result(mode, totals, cores, args, size_mb))
            print(json.dumps(results[-1]), flush=True)
    return results


def _result(mode, totals, cores, args, size_mb) -> dict:
    (pipe_s, pipe_cpu, pipe_n), (gen_s, gen_cpu, gen_n) = totals["pipeline"], totals["generator"]
    return {
        "mode": mode,
        "pipeline_clips_per_s": round(pipe_n / pipe_s, 1),
        "generator_clips_per_s": round(gen_n / gen_s, 1),
        "ratio": round((pipe_n / pipe_s) / (gen_n / gen_s), 2),
        "cores": cores,
        "per_core_clips_per_s": round(pipe_n / pipe_s / cores, 1),
        # Clips per CPU-second of this process: what one core would give, less sensitive to
        # other processes on a shared machine than the wall-clock figures above.
        "pipeline_clips_per_cpu_s": round(pipe_n / pipe_cpu, 1),
        "generator_clips_per_cpu_s": round(gen_n / gen_cpu, 1),
        # CPU-time ratio: the wall ratio reachable with every core free is about
        # cores * cpu_ratio (the generator is one thread).
        "cpu_ratio": round((pipe_n / pipe_cpu) / (gen_n / gen_cpu), 2),
        "clips": args.clips,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "record_mb": round(size_mb, 1),
        "cache": args.cache,
    }


if __name__ == "__main__":
    main()
