"""CPU cost per clip of `emotf.pipeline.make_dataset`, against the decode floor measured in the
same run (and, with `--generator`, a plain Python generator doing the same work).

All sides read the same temporary TFRecord of synthetic clips (75 JPEG face crops of 224x224
and 40000 samples at 16 kHz each, ~2.5 s). The pipeline samples N segments per clip (training
or evaluation mode), decodes the N sampled JPEGs, cuts the N audio windows (the log-mel
spectrogram is computed by the model, on the accelerator: `emotf.model.LogMelSpectrogram`)
and batches. The *floor* is the irreducible part of that work: a tf.data map with the same
parallelism and options over clips already parsed and sampled in memory that only decodes the
N sampled JPEGs and slices the N audio windows, then batches.

    python tools/bench_pipeline.py [--clips 256] [--epochs 3] [--batch-size 16]
                                   [--mode train|eval|both] [--cache] [--generator]
                                   [--shuffle-buffer 512]

CPU time is process CPU time (user + system, `os.times`), not wall time, so other jobs on a
shared machine disturb it less. Prints one JSON line per mode, then a final JSON line with
`cpu_ms_per_clip_train`, `cpu_ms_per_clip_eval`, `cpu_ms_per_clip_floor` and the ratios.
`--cache` reads the records from memory (`make_dataset(cache=True)`, what
`emotf-train --cache-records true` uses). Each mode's line also gives the pipeline's and the
floor's system CPU time and minor page faults per clip (`getrusage`): in training mode the
shuffle buffer is refilled with fresh record buffers at every epoch start, ~180 faults per
buffered clip (docs/sampling.md, "Training mode and the shuffle buffer"); with the default
256 clips, fewer than the 512-clip buffer, every record of every epoch is such a clip.
`--shuffle-buffer` sets `make_dataset(shuffle_buffer=)` (default 512, the library default).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
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
from emotf.configs import SamplingConfig  # noqa: E402
from emotf.pipeline import make_dataset  # noqa: E402
from emotf.records.example import ClipRecord, make_example  # noqa: E402


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
                clip_id=f"{1001 + i % 91}_DFA_ANG_XX",
                actor_id=1001 + i % 91,
                sentence="DFA",
                emotion="ANG",
                label=i % 6,
                intensity="XX",
                fold=0,
                fps=30000 / 1001,
                frames_jpeg=base,
                face_boxes=np.zeros([frames, 4], np.float32),
                face_detected=np.ones([frames], np.int64),
                source_size=(360, 480),
                sample_rate=16000,
                pcm16=(audio * 32767).astype(np.int16),
            )
            writer.write(make_example(clip).SerializeToString())


def python_generator(
    path: Path,
    config: SamplingConfig,
    batch_size: int,
    seed: int,
    training: bool = True,
    records: list[bytes] | None = None,
):
    """The baseline: parse, sample, decode N JPEGs (PIL), log-mel (librosa), batch.

    Reads `records` (serialised Examples in memory) when given, else the file at `path`.
    """
    import librosa
    from PIL import Image

    rng = np.random.default_rng(seed)
    mel_basis = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.fft_length,
        n_mels=config.num_mel_bins,
        fmin=config.lower_edge_hertz,
        fmax=config.upper_edge_hertz or config.sample_rate / 2,
        htk=True,
        norm=None,
    )
    n, length = config.num_segments, config.window_length
    frames_b, specs_b, labels_b = [], [], []
    source = (
        records if records is not None else tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    )
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
        frames = np.stack([np.asarray(Image.open(io.BytesIO(jpegs[i])).convert("RGB")) for i in j])
        specs = []
        for s in starts:
            lo_s = int(np.clip(s + length, 0, len(padded) - length))
            window = padded[lo_s : lo_s + length]
            mag = np.abs(
                librosa.stft(
                    window,
                    n_fft=config.fft_length,
                    hop_length=config.frame_step,
                    win_length=config.frame_length,
                    window="hann",
                    center=False,
                )
            )
            logmel = np.log(mel_basis @ mag + config.log_offset).T  # [time, mel]
            if logmel.shape != (config.time_bins, config.freq_bins):
                logmel = np.asarray(
                    Image.fromarray(logmel).resize(
                        (config.freq_bins, config.time_bins), Image.BILINEAR
                    )
                )
            logmel = (logmel - logmel.mean()) / np.sqrt(logmel.var() + 1e-6)
            specs.append(logmel[..., None].astype(np.float32))
        frames_b.append(frames)
        specs_b.append(np.stack(specs))
        labels_b.append(feat[keys.LABEL].int64_list.value[0])
        if len(labels_b) == batch_size:
            yield (
                {"frames": np.stack(frames_b), "spectrograms": np.stack(specs_b)},
                np.array(labels_b, np.int32),
            )
            frames_b, specs_b, labels_b = [], [], []


def _cpu_seconds() -> float:
    """Process CPU time (user + system of every thread of this process)."""
    t = os.times()
    return t.user + t.system


def _sys_and_faults() -> np.ndarray:
    """(system CPU seconds, minor page faults) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([usage.ru_stime, usage.ru_minflt], np.float64)


def _epoch(make_iter) -> np.ndarray:
    """(wall seconds, process CPU seconds, clips, system CPU seconds, minor faults) of one pass."""
    clips, wall, cpu, sys_faults = 0, time.perf_counter(), _cpu_seconds(), _sys_and_faults()
    for features, _labels in make_iter():
        clips += features["frames"].shape[0]
    return np.array(
        [time.perf_counter() - wall, _cpu_seconds() - cpu, clips, *(_sys_and_faults() - sys_faults)]
    )


def _time_alternating(iters: dict, epochs: int) -> dict:
    """Alternate epochs of the sides so all see the same background load (shared machine)."""
    for make_iter in iters.values():
        _epoch(make_iter)  # warm-up: tracing, file cache, imports
    totals = {name: np.zeros(5) for name in iters}
    for _ in range(epochs):
        for name, make_iter in iters.items():
            totals[name] += _epoch(make_iter)
    return totals


def floor_dataset(path: Path, config: SamplingConfig, batch_size: int) -> tf.data.Dataset:
    """The floor: decode the N sampled JPEGs and slice the N audio windows, nothing else.

    Records are parsed and their evaluation-mode frames and window starts computed here, before
    timing; the timed dataset maps (same parallelism and options as `make_dataset`) over the
    N JPEG strings, the waveform and the N starts of each clip, and batches.
    """
    from emotf.records.example import parse_example
    from emotf.sampling import (
        audio_window_starts,
        extract_audio_windows,
        gather_frames,
        segment_frame_indices,
    )
    from emotf.system import available_cpus

    jpegs, waves, starts = [], [], []
    for raw in tf.data.TFRecordDataset(str(path)):
        rec = parse_example(raw)
        idx = segment_frame_indices(rec[keys.PARSED_NUM_FRAMES], config, training=False)
        _, st = audio_window_starts(idx, rec[keys.VIDEO_FPS], config.sample_rate, config, False)
        jpegs.append(tf.gather(rec[keys.VIDEO_FRAMES], idx).numpy())
        waves.append(rec[keys.PARSED_WAVEFORM].numpy())
        starts.append(st.numpy())
    labels = np.zeros(len(jpegs), np.int32)
    ds = tf.data.Dataset.from_tensor_slices(
        (np.stack(jpegs), np.stack(waves), np.stack(starts), labels)
    )
    every = tf.range(config.num_segments)

    def decode_and_slice(jpeg, wave, start, label):
        frames = gather_frames(jpeg, every, config)
        audio = extract_audio_windows(wave, start, config.window_length)
        return {"frames": frames, "audio": audio}, label

    ds = ds.map(decode_and_slice, num_parallel_calls=available_cpus(), deterministic=True)
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return ds.batch(batch_size, drop_remainder=False).prefetch(2).with_options(options)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--mode", choices=("train", "eval", "both"), default="both")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="records in memory (make_dataset cache=True; generator: a list)",
    )
    parser.add_argument(
        "--generator",
        action="store_true",
        help="also time the one-thread Python generator (numpy/PIL/librosa)",
    )
    parser.add_argument(
        "--shuffle-buffer",
        type=int,
        default=512,
        help="make_dataset(shuffle_buffer=) in training mode (library default 512)",
    )
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
        if args.cache and args.generator:
            in_memory = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
        floor = floor_dataset(path, config, args.batch_size)
        for mode in modes:
            training = mode == "train"
            dataset = make_dataset(
                path,
                [0],
                training=training,
                config=config,
                batch_size=args.batch_size,
                seed=0,
                cache=args.cache,
                shuffle_buffer=args.shuffle_buffer,
            )
            # Each iterator factory binds this mode's dataset and flag (B023).
            iters = {"pipeline": lambda dataset=dataset: dataset, "floor": lambda: floor}
            if args.generator:
                iters["generator"] = lambda training=training: python_generator(
                    path, config, args.batch_size, 0, training, in_memory
                )
            totals = _time_alternating(iters, args.epochs)
            results.append(_result(mode, totals, cores, args, size_mb))
            print(json.dumps(results[-1]), flush=True)
    summary = {f"cpu_ms_per_clip_{r['mode']}": r["cpu_ms_per_clip"] for r in results}
    floors = [r["cpu_ms_per_clip_floor"] for r in results]
    summary["cpu_ms_per_clip_floor"] = round(float(np.mean(floors)), 2)
    for r in results:
        summary[f"{r['mode']}_over_floor"] = round(
            r["cpu_ms_per_clip"] / summary["cpu_ms_per_clip_floor"], 2
        )
        summary[f"clips_per_s_{r['mode']}"] = r["pipeline_clips_per_s"]
    summary.update(
        cores=cores,
        clips=args.clips,
        epochs=args.epochs,
        batch_size=args.batch_size,
        cache=args.cache,
        shuffle_buffer=args.shuffle_buffer,
        record_mb=round(size_mb, 1),
    )
    print(json.dumps(summary), flush=True)
    return summary


def _rate(total) -> tuple[float, float]:
    """(wall clips/s, CPU ms per clip) of (wall s, cpu s, clips, ...) totals."""
    wall, cpu, clips = total[:3]
    return clips / wall, 1000.0 * cpu / clips


def _sys_ms_and_faults(total) -> tuple[float, float]:
    """(system CPU ms per clip, minor page faults per clip) of `_epoch` totals."""
    clips, sys_s, faults = total[2:5]
    return round(1000.0 * sys_s / clips, 2), round(faults / clips, 1)


def _result(mode, totals, cores, args, size_mb) -> dict:
    pipe_rate, pipe_ms = _rate(totals["pipeline"])
    floor_rate, floor_ms = _rate(totals["floor"])
    out = {
        "mode": mode,
        "pipeline_clips_per_s": round(pipe_rate, 1),
        "cpu_ms_per_clip": round(pipe_ms, 2),
        "floor_clips_per_s": round(floor_rate, 1),
        "cpu_ms_per_clip_floor": round(floor_ms, 2),
        "over_floor": round(pipe_ms / floor_ms, 2),
        "cores": cores,
    }
    (out["sys_ms_per_clip"], out["minflt_per_clip"]) = _sys_ms_and_faults(totals["pipeline"])
    (out["sys_ms_per_clip_floor"], out["minflt_per_clip_floor"]) = _sys_ms_and_faults(
        totals["floor"]
    )
    if "generator" in totals:
        gen_rate, gen_ms = _rate(totals["generator"])
        out.update(
            generator_clips_per_s=round(gen_rate, 1),
            generator_cpu_ms_per_clip=round(gen_ms, 2),
            ratio=round(pipe_rate / gen_rate, 2),
            cpu_ratio=round(gen_ms / pipe_ms, 2),
        )
    return out


if __name__ == "__main__":
    main()
