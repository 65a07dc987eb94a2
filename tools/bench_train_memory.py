"""Peak RSS of training and evaluation, broken down, each configuration in its own process.

    python tools/bench_train_memory.py --records R [--fold 0] [--steps 2] [--items a,b,...]
                                       [--json OUT.json]

Every item runs in a fresh subprocess (`python tools/bench_train_memory.py --child ITEM`); its
peak RSS is the child's `ru_maxrss` (`os.wait4`), so items never share an allocator or
TensorFlow's caches. Memory does not depend on the machine's load; the wall times printed next
to it do. Items (the default model of `emotf.configs.ModelConfig`, N=10, 224x224, batch 16):

    tf                  import TensorFlow, Keras and emotf.model
    model               + build and compile the default model (`Task.compile`)
    step                + `--steps` training steps on random inputs (activations, gradients)
    step-bf16, step-b8, step-xla, step-noonednn
                        the same in mixed_bfloat16, at batch 8, with XLA, without oneDNN
    step-remat, step-rematall
                        the same with `remat` large or all (`emotf.training.remat`; the
                        other step items use none); `step_s`: the wall time of each step
                        after the first (alternate step and step-remat for a time ratio)
    pipeline-B          the training pipeline of `--fold`'s training folds with a shuffle
                        buffer of B clips (`make_dataset(shuffle_buffer=B)`), `--steps`
                        batches, no model: shuffle buffer + parallel map + prefetch
    pipeline-B-p1       the same with one parallel call (`num_parallel_calls=1`)
    predict-eager-C     the default model (random weights) over the first C clips of `--fold`,
                        batch 16, called eagerly per batch (the prediction loop before)
    predict-graph-C     the same through `emotf.evaluation.metrics.predict_clips` (a graph)
    predict-trace-C     the same graph, batch by batch: the peak RSS so far after each batch
                        (`peak_mb_after_clips`), to tell a cost per clip from a peak that
                        is reached within the first batches and stays; `predict-traceK-C`:
                        K clips per model call (`predict_batch`; default
                        `PREDICT_CHUNK_CLIPS`, 16 = the whole batch, as before)
    train               `emotf-train --fold F --epochs 1 --batch-size 16 --steps-per-epoch S`
                        (validation, calibration, test predictions and export included)
    train-eager         the same with the eager prediction loop (monkeypatched): the before
    train-bf16, train-b8  the same with `--precision mixed_bfloat16`, `--batch-size 8`
    train-remat, train-rematall  the same with `--remat large` or `all` (the others: none)
    ...-c<K>            any step or train item with remat: its blocks' backward pass in K slices
                        of the batch (`--remat-chunks K`, `emotf.training.chunked_block`;
                        without the token 1 slice, whole blocks): `step-remat-c16`
    folds-K             `train_all_folds` of the demo model on folds 0..K-1 in one process,
                        `--steps` steps per fold, one epoch; the RSS before each fold

The training items are limited to `--steps` steps per epoch (`--steps-per-epoch`), which the
issue allows for a memory measurement: the peak of a training step is reached in its first
step, and the pipeline's shuffle buffer is full before its first batch; validation and test
predictions still read whole folds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_ITEMS = (
    "tf,model,step,pipeline-512,pipeline-64,pipeline-512-p1,"
    "predict-eager-16,predict-eager-80,predict-graph-16,predict-graph-80,"
    "train-eager,train,folds-2,folds-4"
)


def _rss_mb(field: str = "VmRSS") -> int:
    """Current RSS of this process (`VmHWM`: its peak so far), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) // 1024
    return -1


def _options(item: str) -> dict:
    """The variant tokens of an item name: `bf16` (mixed_bfloat16), `xla` (jit_compile),
    `b8` (batch 8), `noonednn` (TF_ENABLE_ONEDNN_OPTS=0), `p1` (one parallel call), `remat` and
    `rematall` (`TrainerConfig.remat` large and all; none without them), `c<K>` (remat
    chunks, `TrainerConfig.remat_chunks`; 1 without)."""
    tokens = item.split("-")[1:]
    batch = [int(t[1:]) for t in tokens if t.startswith("b") and t[1:].isdigit()]
    chunks = [int(t[1:]) for t in tokens if t.startswith("c") and t[1:].isdigit()]
    return {
        "precision": "mixed_bfloat16" if "bf16" in tokens else "float32",
        "jit_compile": "xla" in tokens,
        "batch": batch[0] if batch else 16,
        "onednn": "noonednn" not in tokens,
        "parallel": 1 if "p1" in tokens else None,
        "remat": "large" if "remat" in tokens else "all" if "rematall" in tokens else "none",
        "chunks": chunks[0] if chunks else 1,
    }


def _model_and_trainer(
    precision: str = "float32", jit_compile: bool = False, remat: str = "none", chunks: int = 1
):
    # In-function imports: the parent process never imports TensorFlow.
    import keras

    from emotf.configs import TrainConfig
    from emotf.model import build_model, training_model
    from emotf.training.precision import precision_policy
    from emotf.training.remat import apply_remat
    from emotf.training.schedules import make_schedule

    config = TrainConfig()
    keras.utils.set_random_seed(0)
    with precision_policy(precision):
        model = build_model(config.model, config.sampling)
        trainer = training_model(model)
        apply_remat(trainer, remat, chunks)
        trainer.compile(
            optimizer=keras.optimizers.SGD(make_schedule(config.trainer, 100), momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=jit_compile,
        )
    return config, model, trainer


def _random_batch(config, batch: int = 16):
    # In-function imports: children only.
    import numpy as np

    from emotf.model import model_sampling

    rng = np.random.default_rng(0)
    n, s = config.model.num_segments, config.model.frame_size
    length = model_sampling(config.model).window_length
    x = {
        "frames": rng.integers(0, 256, (batch, n, s, s, 3), dtype=np.uint8),
        "audio": rng.normal(0, 0.1, (batch, n, length)).astype("float32"),
    }
    return x, rng.integers(0, 6, batch).astype("int32")


def _clip_subset(records: str, fold: int, count: int):
    # In-function imports: children only.
    from emotf.runs.data import clip_ids

    names = sorted(clip_ids(records, [fold]))
    if len(names) < count:
        raise SystemExit(f"fold {fold} has {len(names)} clips, fewer than {count}")
    return names[:count]


def _train_argv(args, out: str) -> list[str]:
    return [
        "--records",
        args.records,
        "--fold",
        str(args.fold),
        "--epochs",
        "1",
        "--steps-per-epoch",
        str(args.steps),
        "--verbose",
        "0",
        "--out",
        out,
    ]


def child(item: str, args) -> dict:
    """Run one item in this process; returns what it measured besides the peak."""
    marks: dict = {}
    opts = _options(item)
    if not opts["onednn"]:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # before TensorFlow is imported
    if item == "tf":
        import keras  # noqa: F401  (in-function: the item measures this import)
        import tensorflow  # noqa: F401  (in-function: the item measures this import)

        import emotf.model  # noqa: F401  (in-function: the item measures this import)
    elif item == "model" or item.startswith("step"):
        config, _, trainer = _model_and_trainer(
            opts["precision"], opts["jit_compile"], opts["remat"], opts["chunks"]
        )
        marks["rss_after_build_mb"] = _rss_mb()
        if item.startswith("step"):
            x, y = _random_batch(config, opts["batch"])
            times, losses = [], []
            for _ in range(args.steps):
                start = time.perf_counter()
                losses.append(float(trainer.train_on_batch(x, y, return_dict=True)["loss"]))
                times.append(round(time.perf_counter() - start, 2))
            marks["step_s"], marks["losses"] = times[1:], losses
    elif item.startswith("pipeline-"):
        from emotf import pipeline  # in-function: children only
        from emotf.configs import TrainConfig  # in-function: children only
        from emotf.runs.data import config_split  # in-function: children only

        parts = item.split("-")
        config = TrainConfig(records=args.records, fold=args.fold)
        ds = pipeline.make_dataset(
            args.records,
            config_split(config).train.folds,
            training=True,
            config=config.sampling,
            batch_size=16,
            shuffle_buffer=int(parts[1]),
            num_parallel_calls=opts["parallel"],
        )
        marks["batches"] = sum(1 for _ in ds.take(args.steps))
    elif item.startswith("predict-"):
        from emotf import pipeline  # in-function: children only
        from emotf.evaluation.metrics import predict_clips  # in-function: children only

        _, mode, count = item.split("-")
        config, model, _ = _model_and_trainer()
        names = _clip_subset(args.records, args.fold, int(count))
        ds = pipeline.make_dataset(
            args.records,
            [args.fold],
            training=False,
            config=config.sampling,
            batch_size=16,
            with_metadata=True,
            clip_ids=names,
        )
        if mode == "graph":
            marks["clips"] = len(predict_clips(model, ds).labels)
        elif mode.startswith("trace"):
            from emotf.evaluation import metrics  # in-function: children only
            from emotf.system import trim_heap  # in-function: children only

            chunk = int(mode[len("trace") :] or metrics.PREDICT_CHUNK_CLIPS)
            infer, clips, trace = metrics.inference_function(model), 0, []
            for inputs, labels, _ in ds:
                metrics.predict_batch(infer, inputs, chunk)
                trim_heap()  # as predict_clips does after each batch
                clips += len(labels)
                trace.append([clips, _rss_mb("VmHWM")])
            marks["clips"], marks["peak_mb_after_clips"] = clips, trace
        else:
            clips = 0
            for inputs, labels, _ in ds:
                model(inputs, training=False)
                clips += len(labels)
            marks["clips"] = clips
    elif item.startswith("train"):
        from emotf.cli import train as train_cli  # in-function: children only

        if "eager" in item:
            from emotf.evaluation import metrics  # in-function: children only

            metrics.inference_function = lambda model: lambda inputs: model(inputs, training=False)
        with tempfile.TemporaryDirectory() as tmp:
            argv = _train_argv(args, str(Path(tmp) / "run"))
            argv += ["--precision", opts["precision"], "--batch-size", str(opts["batch"])]
            argv += ["--remat", opts["remat"], "--remat-chunks", str(opts["chunks"])]
            code = train_cli.main(argv)
        marks["exit_code"] = code
    elif item.startswith("folds-"):
        from emotf.configs import TrainConfig  # in-function: children only
        from emotf.demo import DEMO_MODEL  # in-function: children only
        from emotf.training import train  # in-function: children only

        folds = range(int(item.split("-")[1]))
        before = []
        fit_fold = train.train_fold

        def fold_and_rss(*a, **k):
            before.append(_rss_mb())  # after the previous fold was freed
            return fit_fold(*a, **k)

        train.train_fold = fold_and_rss
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(
                records=args.records,
                out=str(Path(tmp) / "cv"),
                epochs=1,
                batch_size=16,
                steps_per_epoch=args.steps,
                verbose=0,
                export=False,
                model=DEMO_MODEL,
            )
            train.train_all_folds(config, folds=folds)
        marks["rss_before_each_fold_mb"] = before
    else:
        raise SystemExit(f"unknown item {item!r}")
    return marks


def measure(item: str, args) -> dict:
    """Run `item` in a subprocess; its peak RSS (ru_maxrss) and wall time."""
    argv = [sys.executable, __file__, "--child", item, "--records", args.records]
    argv += ["--fold", str(args.fold), "--steps", str(args.steps)]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    marks = json.loads(lines[-1]) if lines else {"error": err.strip().splitlines()[-3:]}
    return {
        "item": item,
        "peak_rss_mb": usage.ru_maxrss // 1024,
        "wall_s": round(wall, 1),
        "exit": proc.returncode,
        **marks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", required=True, help="a CREMA-D records folder (10 folds)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2, help="training steps (batches) per item")
    parser.add_argument("--items", default=DEFAULT_ITEMS)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)), flush=True)
        return
    rows = []
    print(f"load average {os.getloadavg()}", flush=True)
    for item in args.items.split(","):
        row = measure(item, args)
        rows.append(row)
        extra = {k: v for k, v in row.items() if k not in ("item", "peak_rss_mb", "wall_s")}
        print(f"{item:<20}{row['peak_rss_mb']:>8} MB {row['wall_s']:>8} s  {extra}", flush=True)
    result = {"load_average_end": os.getloadavg(), "steps": args.steps, "items": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
