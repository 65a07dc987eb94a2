"""Serving speed on CPU: SavedModel latency per clip, and emotf-predict's real-time factor.

    python tools/bench_serving.py [--repeats 10] [--clips 4] [--seconds 2.5] [--compare]
                                  [--no-predict] [--inter-op N] [--intra-op N]
                                  [--onednn default|on|off]

1. Builds the full-size default model (`ModelConfig()`, N = 10; random weights: latency does
   not depend on the weights) and exports it with `emotf.serving.export.export_saved_model` into a
   temporary folder.
2. `serving_default` latency on 2.5 s clips (75 face crops at 30 fps + 40,000 samples at
   16 kHz): per call at batch 1 (p50, p95 over `--repeats` calls after a warm-up; wall time and
   the process's CPU time, which load from other processes disturbs much less) and per clip
   at batch 16 (call time / 16).
   `--compare` also exports the same model without folding BatchNorm (`fold_batchnorm=False`,
   the graph of earlier exports) and times the two alternately, call by call, in this one
   process: the ratio new / old of the medians is the figure to quote on a shared machine.
3. `emotf-predict` end to end (`emotf.serving.predict.predict_files`, one clip per call, model and
   MTCNN already loaded): decode FLV + WAV, face tracking and crops, JPEG round trip, the
   SavedModel; per clip time / clip duration = real-time factor (< 1: faster than real time).
   Clips come from `emotf.synthetic.sample.make_sample` (480x360 FLV1, 30 fps).

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _percentiles(values):
    values = sorted(values)

    def pick(q):
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

    return {
        "p50": round(statistics.median(values), 4),
        "p95": round(pick(0.95), 4),
        "min": round(values[0], 4),
        "n": len(values),
    }


def _serving(tf, saved_model_dir):
    return tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]


def _compare(functions: dict, inputs: dict, repeats: int) -> dict:
    """Time `functions` (name -> serving function) alternately, call by call, on `inputs`:
    wall and process CPU time quantiles per name, the ratios of the first to the second (p50),
    and the load average before and after."""
    for function in functions.values():  # warm-up: allocation, grappler
        function(**inputs)["probabilities"].numpy()
    load = [round(x, 2) for x in os.getloadavg()]
    wall: dict = {name: [] for name in functions}
    cpu: dict = {name: [] for name in functions}
    for i in range(repeats):
        # Alternate who goes first, so neither always follows the other.
        order = list(functions.items()) if i % 2 == 0 else list(functions.items())[::-1]
        for name, function in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            function(**inputs)["probabilities"].numpy()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    out: dict = {
        name: {"wall": _percentiles(wall[name]), "cpu": _percentiles(cpu[name])}
        for name in functions
    }
    first, second = list(functions)
    out["ratio_wall_p50"] = round(out[first]["wall"]["p50"] / out[second]["wall"]["p50"], 3)
    out["ratio_cpu_p50"] = round(out[first]["cpu"]["p50"] / out[second]["cpu"]["p50"], 3)
    out["load"] = [load, [round(x, 2) for x in os.getloadavg()]]
    return out


def _arithmetic_floor(tf, config) -> dict:
    """The least time a call can take here: the model's forward FLOPs per clip
    (`emotf.model.count_flops`: convolutions and dense layers) over the rate this process
    reaches on a 2048x2048 float32 matmul with the same threads (the best case for the
    CPU's FMA units; convolutions reach less)."""
    from emotf.model import count_flops

    a = tf.random.normal((2048, 2048), seed=0)
    matmul = tf.function(lambda: tf.matmul(a, a))
    matmul().numpy()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        matmul().numpy()
        times.append(time.perf_counter() - start)
    rate = 2 * 2048**3 / statistics.median(times)
    flops = count_flops(config)["per_clip"]
    return {
        "gflops_per_clip": round(flops / 1e9, 2),
        "matmul_gflops_per_s": round(rate / 1e9, 1),
        "floor_s": round(flops / rate, 4),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed batch-1 calls")
    parser.add_argument("--batch16-repeats", type=int, default=3, help="timed batch-16 calls")
    parser.add_argument("--clips", type=int, default=4, help="synthetic clips for emotf-predict")
    parser.add_argument("--seconds", type=float, default=2.5, help="clip duration")
    parser.add_argument("--work-dir", default=None, help="keep the model and clips here")
    parser.add_argument(
        "--compare", action="store_true", help="time the unfolded export alternately (ratio)"
    )
    parser.add_argument("--no-predict", action="store_true", help="skip emotf-predict (step 3)")
    parser.add_argument("--inter-op", type=int, default=0, help="TF inter-op threads (0: TF's)")
    parser.add_argument("--intra-op", type=int, default=0, help="TF intra-op threads (0: TF's)")
    parser.add_argument(
        "--onednn",
        choices=("default", "on", "off"),
        default="on",
        help="TF_ENABLE_ONEDNN_OPTS for this process (on: as emotf-predict runs; default: "
        "TensorFlow's choice for the CPU, off on this AVX2 machine)",
    )
    args = parser.parse_args(argv)
    if args.onednn != "default":  # read once, when TensorFlow is imported (below)
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"

    import keras  # after --onednn: TensorFlow reads TF_ENABLE_ONEDNN_OPTS when imported
    import numpy as np
    import tensorflow as tf

    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)

    from emotf.configs import ModelConfig, SamplingConfig
    from emotf.model import build_model
    from emotf.serving.export import export_saved_model
    from emotf.serving.predict import Predictor, predict_files
    from emotf.synthetic.sample import SampleConfig, make_sample

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_serving_"))
    report = {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "tensorflow": tf.__version__,
        "clip_seconds": args.seconds,
        "threads": {"inter_op": args.inter_op or "default", "intra_op": args.intra_op or "default"},
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }
    config = ModelConfig()
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = build_model(config)
    saved = export_saved_model(
        model,
        SamplingConfig(num_segments=config.num_segments),
        work / "model",
        model_config=config.to_dict(),
    )
    report["export_s"] = round(time.perf_counter() - start, 2)
    baseline = None
    if args.compare:
        baseline = export_saved_model(
            model,
            SamplingConfig(num_segments=config.num_segments),
            work / "model_unfolded",
            model_config=config.to_dict(),
            fold_batchnorm=False,
        )
    report["model"] = {
        "num_segments": config.num_segments,
        "parameters": int(model.count_params()),
        "weights": "random (latency only)",
    }
    del model
    print(f"exported {saved} in {report['export_s']} s", flush=True)

    serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
    fps, rate = 30.0, 16000
    frames_per_clip, samples_per_clip = int(args.seconds * fps), int(args.seconds * rate)
    rng = np.random.default_rng(0)

    def batch(b):
        return {
            "frames": tf.constant(
                rng.integers(0, 256, [b, frames_per_clip, 224, 224, 3], dtype=np.uint8)
            ),
            "num_frames": tf.fill([b], frames_per_clip),
            "fps": tf.fill([b], fps),
            "waveform": tf.constant(rng.normal(0, 0.1, [b, samples_per_clip]).astype(np.float32)),
            "num_samples": tf.fill([b], samples_per_clip),
            "sample_rate": tf.fill([b], rate),
        }

    if baseline is not None:
        unfolded, inputs = _serving(tf, baseline), batch(1)
        report["compare_batch1"] = _compare(
            {"folded": serve, "unfolded": unfolded}, inputs, args.repeats
        )
        report["compare_batch1"]["max_abs_diff_probabilities"] = float(
            np.abs(serve(**inputs)["probabilities"] - unfolded(**inputs)["probabilities"]).max()
        )
        quantiles = report["compare_batch1"]
        print(
            f"batch 1, alternating: folded p50 {quantiles['folded']['wall']['p50']:.4f} s, "
            f"unfolded {quantiles['unfolded']['wall']['p50']:.4f} s: ratio "
            f"{quantiles['ratio_wall_p50']:.3f} (CPU time {quantiles['ratio_cpu_p50']:.3f}), "
            f"load {quantiles['load']}",
            flush=True,
        )
    for size, repeats in ((1, args.repeats), (16, args.batch16_repeats)):
        inputs = batch(size)
        serve(**inputs)[
            "probabilities"
        ].numpy()  # warm-up (first call traces nothing, but allocates)
        times, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            serve(**inputs)["probabilities"].numpy()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        per_clip = [t / size for t in times]
        quantiles = report[f"savedmodel_batch{size}_per_clip_s"] = _percentiles(per_clip)
        report[f"savedmodel_batch{size}_cpu_per_clip_s"] = _percentiles([c / size for c in cpu])
        print(
            f"SavedModel batch {size:2d}: per clip p50 {quantiles['p50']:.3f} s, "
            f"p95 {quantiles['p95']:.3f} s",
            flush=True,
        )
        del inputs
    report["load_savedmodel"] = [round(x, 2) for x in os.getloadavg()]
    report["floor"] = _arithmetic_floor(tf, config)
    print(
        f"arithmetic floor: {report['floor']['gflops_per_clip']} GFLOPs per clip at the "
        f"{report['floor']['matmul_gflops_per_s']} GFLOP/s of a large matmul here: "
        f"{report['floor']['floor_s'] * 1000:.1f} ms per clip",
        flush=True,
    )
    if args.no_predict:
        print(json.dumps(report))
        return 0

    # emotf-predict end to end on synthetic FLV + WAV clips of the same duration.
    sample_dir = work / "sample"
    videos = make_sample(
        sample_dir,
        SampleConfig(
            num_actors=1,
            clips_per_actor=args.clips + 1,
            min_duration=args.seconds,
            max_duration=args.seconds,
            median_duration=args.seconds,
        ),
        workers=1,
        progress=False,
    )
    predictor = Predictor(saved.parent)
    wav = lambda v: sample_dir / "AudioWAV" / f"{v.stem}.wav"  # noqa: E731
    predict_files(None, videos[:1], [wav(videos[0])], predictor=predictor)  # warm-up: MTCNN load
    rows = []
    for video in videos[1:]:
        start = time.perf_counter()
        (result,) = predict_files(None, [video], [wav(video)], predictor=predictor, batch_size=1)
        wall = time.perf_counter() - start
        if "error" in result:
            print(f"{video.name}: {result['error']}", file=sys.stderr)
            continue
        timings = result["timings_s"]
        rows.append(
            {
                "clip": video.name,
                "duration_s": result["duration_s"],
                "wall_s": round(wall, 3),
                "rtf": round(wall / result["duration_s"], 3),
                **timings,
            }
        )
        print(
            f"emotf-predict {video.name}: {wall:.2f} s for {result['duration_s']:.2f} s "
            f"(RTF {wall / result['duration_s']:.2f}; decode {timings['decode_video_s']:.2f}, "
            f"audio {timings['load_audio_s']:.2f}, faces {timings['faces_s']:.2f}, "
            f"model {timings['model_s']:.2f})",
            flush=True,
        )
    if rows:

        def stage(key):
            return round(statistics.median(r[key] for r in rows), 3)

        report["predict_end_to_end"] = {
            "clips": len(rows),
            "median_wall_s": stage("wall_s"),
            "median_rtf": stage("rtf"),
            "max_rtf": max(r["rtf"] for r in rows),
            "median_stage_s": {
                k: stage(k) for k in ("decode_video_s", "load_audio_s", "faces_s", "model_s")
            },
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
