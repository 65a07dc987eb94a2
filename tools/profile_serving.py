"""Where the time of one `serving_default` call goes: per-op times of a batch-1 call, by part.

    python tools/profile_serving.py [--model DIR] [--calls 5] [--top 15] [--no-fold]

Exports the full-size default model (`ModelConfig()`, N = 10, random weights) unless `--model`
names a SavedModel, feeds one 2.5 s clip (75 crops at 30 fps, 40,000 samples at 16 kHz) and
traces `--calls` calls with TensorFlow's step statistics (`RunOptions.FULL_TRACE` on the
SavedModel loaded into a session: the graph as grappler optimised it, every node of the
per-clip map included). Ops are summed by part:

    checks       the input Asserts and EnsureShapes
    sampling     the per-clip map: segment frame indices, gathering N of the T crops, cutting
                 the N audio windows
    log_mel      the model's log_mel layer (STFT, magnitude, mel, log, normalisation)
    video        the video branch of the core (convs, BatchNorm, ReLU, pooling)
    audio        the audio branch of the core
    head         fusion, fully connected layers, softmax, segment consensus, labels
    other        everything else

Op times are per-op wall times; ops of the two branches run at the same time on two cores,
so the parts add up to more than the call's wall time (also printed). The last line printed is
one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

PARTS = (
    ("log_mel", re.compile(r"(^|/)log_mel[^/]*/")),
    ("video", re.compile(r"/video_[^/]*/|(^|/)core[^/]*/Cast")),
    ("audio", re.compile(r"/audio_[^/]*/")),
    ("sampling", re.compile(r"(^|/)map/")),
    (
        "head",
        re.compile(
            r"/(fusion|dropout|fc|classifier|softmax|split_segments|probabilities|"
            r"scores|segment_probabilities|merge_\w+|stack_segments|branch_\d+)"
        ),
    ),
    ("checks", re.compile(r"assert|Assert|EnsureShape|VerifyFinite|CheckNumerics")),
)
_MODEL_SCOPE = re.compile(r"twin_av_\w+?_n\d+(_\d+)?/")


def kind_of(node_name: str, op: str) -> str | None:
    """The layer kind of a branch op: conv (a fused Conv2D + bias + ReLU included),
    batchnorm, relu, pool; None for other ops."""
    if "Conv2D" in op:  # Conv2D, _FusedConv2D, oneDNN's _MklNative(Fused)Conv2D
        return "conv"
    if "_bn" in node_name:
        return "batchnorm"
    if "Relu" in op:
        return "relu"
    if "MaxPool" in op:
        return "pool"
    return None


def part_of(node_name: str, op: str) -> str:
    """The part (`PARTS`) a traced node belongs to, by its name scope and op type."""
    for part, pattern in PARTS:
        if pattern.search(node_name) or (part == "checks" and pattern.search(op)):
            return part
    return "other"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a SavedModel version folder to profile")
    parser.add_argument("--calls", type=int, default=5, help="traced calls (after 3 warm-ups)")
    parser.add_argument("--top", type=int, default=15, help="print the N costliest ops")
    parser.add_argument(
        "--no-fold", action="store_true", help="export without folding BatchNorm (the old graph)"
    )
    parser.add_argument("--seconds", type=float, default=2.5, help="clip duration")
    args = parser.parse_args(argv)

    import keras  # after the environment above: TensorFlow reads it at import
    import numpy as np
    import tensorflow as tf

    from emotf.configs import ModelConfig, SamplingConfig
    from emotf.model import build_model
    from emotf.serving.export import export_saved_model

    model_dir, work = args.model, None
    if model_dir is None:
        config = ModelConfig()
        keras.utils.set_random_seed(0)
        work = Path(tempfile.mkdtemp(prefix="profile_serving_"))
        model_dir = str(
            export_saved_model(
                build_model(config),
                SamplingConfig(num_segments=config.num_segments),
                work / "model",
                model_config=config.to_dict(),
                fold_batchnorm=not args.no_fold,
            )
        )
    tf.compat.v1.disable_eager_execution()
    session = tf.compat.v1.Session()
    graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], model_dir)
    signature = graph.signature_def["serving_default"]
    fps, rate = 30.0, 16000
    frames, samples = int(args.seconds * fps), int(args.seconds * rate)
    rng = np.random.default_rng(0)
    inputs = {
        "frames": rng.integers(0, 256, [1, frames, 224, 224, 3], dtype=np.uint8),
        "num_frames": [frames],
        "fps": [fps],
        "waveform": rng.normal(0, 0.1, [1, samples]).astype(np.float32),
        "num_samples": [samples],
        "sample_rate": [rate],
    }
    feed = {signature.inputs[k].name: v for k, v in inputs.items()}
    fetch = signature.outputs["probabilities"].name
    for _ in range(3):
        session.run(fetch, feed)
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    per_op: collections.Counter = collections.Counter()
    walls = []
    load_before = os.getloadavg()
    for _ in range(args.calls):
        metadata = tf.compat.v1.RunMetadata()
        start = time.perf_counter()
        session.run(fetch, feed, options=options, run_metadata=metadata)
        walls.append(time.perf_counter() - start)
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                name = re.sub(r"^(StatefulPartitionedCall(_\d+)?/)+", "", node.node_name)
                op = node.timeline_label.split(" = ")[-1].split("(")[0]
                micros = node.op_end_rel_micros - node.op_start_rel_micros
                per_op[(name, op)] += micros / 1000 / args.calls
    parts: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    for (name, op), ms in per_op.items():
        part = part_of(name, op)
        parts[part] += ms
        kind = kind_of(name, op) if part in ("video", "audio") else None
        if kind is not None:
            kinds[f"{part} {kind}"] += ms
    total = sum(parts.values())
    walls.sort()
    report = {
        "model": model_dir,
        "calls": args.calls,
        "wall_ms_p50": round(walls[len(walls) // 2] * 1000, 1),
        "op_ms_total": round(total, 1),
        "parts_ms": {k: round(v, 1) for k, v in parts.most_common()},
        "parts_share": {k: round(v / total, 3) for k, v in parts.most_common()},
        "branch_kinds_ms": {k: round(v, 1) for k, v in sorted(kinds.items()) if v >= 0.05},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"{model_dir}: wall p50 {report['wall_ms_p50']} ms per call (traced), op time by part:")
    for part, ms in parts.most_common():
        print(f"  {part:9s} {ms:8.1f} ms  {ms / total:6.1%}")
    print("branch ops by kind:")
    for kind, ms in sorted(kinds.items()):
        if ms >= 0.05:
            print(f"  {kind:17s} {ms:8.1f} ms  {ms / total:6.1%}")
    print(f"top {args.top} ops:")
    for (name, op), ms in per_op.most_common(args.top):
        short = _MODEL_SCOPE.sub("", name)[:80]
        print(f"  {ms:8.2f} ms  {op:14s} {short}")
    print(json.dumps(report))
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
