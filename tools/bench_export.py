"""SavedModel vs LiteRT float32 / float16 / dynamic / int8, side by side, in one run.

    python tools/bench_export.py [--model tiny|default] [--run RUN] [--work DIR]
                                 [--repeats K] [--out FILE.json]

1. Without --run: a synthetic sample (`emotf.synthetic.sample`, --actors actors x --clips
   clips, one actor per fold, seed 0), its records, and a run trained on them (test fold 0,
   validation fold 1, --epochs epochs): `--model tiny` is emotf-demo's CPU-sized model
   (`emotf.demo.DEMO_MODEL`, N = 4), `--model default` is `ModelConfig()` (N = 3, the paper-sized
   widths; slower). With --run, that run and its records' test fold are used instead.
2. Exports the run as a SavedModel (`emotf.serving.export.export_run`) and as LiteRT with each
   quantization (`emotf.serving.litert_convert.export_run_litert`; int8 calibrates on 64 clips
   of the records).
3. Per variant: size on disk; latency per clip at batch 1 (one clip's N sampled segments in,
   its segment probabilities out; the host-side sampling is left out, it is the same code for
   every variant) on 1 and 2 threads, median of K calls after 3 warm-up calls (the SavedModel's
   `predict_segments` in a subprocess per thread count, TensorFlow's intra-op threads set
   before start); held-out accuracy on the test fold's clips (evaluation-mode sampling, label
   = argmax of the mean of the segment softmaxes) and the largest absolute difference of the
   clip probabilities from the Keras model.
Prints a Markdown table and writes the JSON (default WORK/bench_export.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

VARIANTS = ("savedmodel", "none", "float16", "dynamic", "int8")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_run(work: Path, model: str, actors: int, clips: int, epochs: int) -> Path:
    """A synthetic sample -> records -> a trained run under `work` (each step reused)."""
    from emotf.configs import ModelConfig, TrainConfig
    from emotf.demo import DEMO_MODEL
    from emotf.records.build import build_records
    from emotf.records.config import BuildConfig
    from emotf.synthetic.config import SampleConfig
    from emotf.synthetic.sample import make_sample
    from emotf.training.train import train_fold

    sample, records, run = work / "sample", work / "records", work / f"run-{model}"
    if not (sample / "sample.json").exists():
        make_sample(sample, SampleConfig(num_actors=actors, clips_per_actor=clips, seed=0))
    if not (records / "manifest.json").exists():
        build_records(BuildConfig(data_dir=str(sample), out_dir=str(records)))
    if not (run / "model.keras").exists():
        train_fold(
            TrainConfig(
                records=str(records),
                out=str(run),
                fold=0,
                epochs=epochs,
                batch_size=8,
                learning_rate=0.02,
                lr_schedule="cosine",
                early_stopping_patience=0,
                seed=0,
                precision="float32",
                verbose=0,
                model=DEMO_MODEL if model == "tiny" else ModelConfig(),
            )
        )
    return run


def held_out_segments(run_dir: Path) -> tuple[list[dict], list[int]]:
    """The test fold's clips as evaluation-mode segments ({"frames", "audio"}) and labels."""
    from emotf.pipeline import make_dataset
    from emotf.runs.folder import Run

    run = Run(run_dir)
    config = run.train_config()
    fold = run.test_fold()
    fold = config.fold if fold is None else fold
    segments, labels = [], []
    for features, label in make_dataset(
        config.records, [fold], training=False, config=config.sampling, batch_size=1
    ):
        segments.append(
            {"frames": features["frames"][0].numpy(), "audio": features["audio"][0].numpy()}
        )
        labels.append(int(label[0]))
    return segments, labels


def savedmodel_latency(saved: str, threads: int, repeats: int, segments_file: str) -> list[float]:
    """Seconds per `predict_segments` call on one clip (run in a fresh process)."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    data = np.load(segments_file)
    inputs = {key: tf.constant(data[key][None]) for key in ("frames", "audio")}
    serve = tf.saved_model.load(saved).signatures["predict_segments"]
    for _ in range(3):
        serve(**inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        serve(**inputs)["probabilities"].numpy()
        times.append(time.perf_counter() - start)
    return times


def litert_latency(path: str, threads: int, repeats: int, segment: dict) -> list[float]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner()
    for _ in range(3):
        runner(**segment)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(**segment)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "default"), default="tiny")
    parser.add_argument("--run", help="an existing emotf-train run (default: train one)")
    parser.add_argument("--work", default="runs/bench_export")
    parser.add_argument("--actors", type=int, default=5)
    parser.add_argument("--clips", type=int, default=12, help="clips per actor")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per latency")
    parser.add_argument("--out", help="JSON file (default WORK/bench_export.json)")
    parser.add_argument(
        "--_savedmodel-latency", nargs=3, dest="sm_latency", help=argparse.SUPPRESS
    )  # internal: SAVED THREADS SEGMENTS.npz
    args = parser.parse_args(argv)
    if args.sm_latency:
        saved, threads, segments_file = args.sm_latency
        print(json.dumps(savedmodel_latency(saved, int(threads), args.repeats, segments_file)))
        return 0

    import numpy as np

    from emotf.runs.folder import Run
    from emotf.serving.export import export_run
    from emotf.serving.litert_convert import export_run_litert

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    run_dir = (
        Path(args.run)
        if args.run
        else make_run(work, args.model, args.actors, args.clips, args.epochs)
    )
    prepared_s = time.time() - started
    segments, labels = held_out_segments(run_dir)
    keras_model = Run(run_dir).load_model()
    keras_probs = np.stack(
        [
            keras_model({k: v[None] for k, v in s.items()}, training=False)["probabilities"][0]
            for s in segments
        ]
    )
    np.savez(work / "segment.npz", **segments[0])

    exports = {"savedmodel": export_run(run_dir, work / "export")}
    for quantize in VARIANTS[1:]:
        exports[quantize] = export_run_litert(run_dir, work / f"litert-{quantize}", quantize)

    results = {}
    for variant, path in exports.items():
        path = Path(str(path))
        row = {"path": str(path), "size_bytes": _size(path)}
        if variant == "savedmodel":
            import tensorflow as tf

            serve = tf.saved_model.load(str(path)).signatures["predict_segments"]
            probs = np.stack(
                [
                    serve(
                        frames=tf.constant(s["frames"][None]), audio=tf.constant(s["audio"][None])
                    )["probabilities"][0]
                    for s in segments
                ]
            )
            for threads in (1, 2):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--repeats",
                        str(args.repeats),
                        "--_savedmodel-latency",
                        str(path),
                        str(threads),
                        str(work / "segment.npz"),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                times = json.loads(out.stdout.strip().splitlines()[-1])
                row[f"latency_ms_{threads}_threads"] = 1e3 * statistics.median(times)
        else:
            from ai_edge_litert.interpreter import Interpreter

            runner = Interpreter(model_path=str(path), num_threads=2).get_signature_runner()
            probs = np.stack([runner(**s)["segment_probabilities"].mean(0) for s in segments])
            for threads in (1, 2):
                times = litert_latency(str(path), threads, args.repeats, segments[0])
                row[f"latency_ms_{threads}_threads"] = 1e3 * statistics.median(times)
        row["held_out_accuracy"] = float(np.mean(np.argmax(probs, -1) == np.array(labels)))
        row["max_abs_diff_vs_keras"] = float(np.abs(probs - keras_probs).max())
        results[variant] = row

    report = {
        "run": str(run_dir),
        "model": args.model if not args.run else "run",
        "held_out_clips": len(labels),
        "repeats": args.repeats,
        "keras_held_out_accuracy": float(np.mean(np.argmax(keras_probs, -1) == np.array(labels))),
        "num_segments": int(segments[0]["frames"].shape[0]),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "prepare_s": round(prepared_s, 1),
        "total_s": round(time.time() - started, 1),
        "variants": results,
    }
    out = Path(args.out) if args.out else work / "bench_export.json"
    out.write_text(json.dumps(report, indent=1))
    print(
        "| variant | size (KB) | ms/clip, 1 thread | ms/clip, 2 threads | held-out accuracy "
        "| max abs diff vs Keras |\n|---|---|---|---|---|---|"
    )
    for variant, row in results.items():
        name = "SavedModel" if variant == "savedmodel" else f"LiteRT {variant}"
        print(
            f"| {name} | {row['size_bytes'] / 1024:.0f} | {row['latency_ms_1_threads']:.2f} "
            f"| {row['latency_ms_2_threads']:.2f} | {row['held_out_accuracy']:.3f} "
            f"| {row['max_abs_diff_vs_keras']:.2e} |"
        )
    print(
        f"({len(labels)} held-out clips, Keras accuracy {report['keras_held_out_accuracy']:.3f};"
        f" load average {report['load_average'][0]:.2f} on {report['cpus']} CPUs; "
        f"{report['total_s']:.0f} s)"
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
