"""The same emotf code and benchmarks on two installed stacks, side by side, in one run.

    python tools/bench_stacks.py --old /path/old-venv/bin/python --new .venv/bin/python \
        --code /path/to/checkout-of-the-previous-commit [--quick]

Each benchmark of `CODE/tools/` runs once per interpreter, back to back (old, then new), with
`PYTHONPATH=CODE` so both run identical emotf code and only the stack (TensorFlow, Keras,
numpy, ...) differs. Benchmarks: build records (tool vs naive frames/s, ratio, IoU), input
pipeline (clips per CPU-second), training clips/s (float32, mixed_bfloat16), SavedModel p50.
Prints a Markdown table and, last, one JSON line with every figure and new/old ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# name -> (tool arguments, {figure: path in the tool's last JSON line}); --quick shrinks them.
BENCHMARKS = {
    "build_records": (
        ["bench_build_records.py", "--clips", "12", "--naive-clips", "3", "--workers", "2"],
        {
            "tool frames/s": "tool_frames_per_s",
            "naive frames/s": "naive_frames_per_s",
            "ratio": "ratio",
            "mean IoU": "mean_iou",
        },
    ),
    "pipeline": (
        ["bench_pipeline.py", "--clips", "128", "--epochs", "2", "--mode", "train"],
        {
            "pipeline clips/CPU-s": "pipeline_clips_per_cpu_s",
            "pipeline clips/s": "pipeline_clips_per_s",
        },
    ),
    "train": (
        ["bench_train.py", "--precisions", "float32,mixed_bfloat16", "--steps", "3"],
        {
            "float32 clips/s": "results[precision=float32].clips_per_s",
            "mixed_bfloat16 clips/s": "results[precision=mixed_bfloat16].clips_per_s",
        },
    ),
    "serving": (
        ["bench_serving.py", "--repeats", "10", "--clips", "2"],
        {
            "SavedModel p50 s per clip, batch 1": "savedmodel_batch1_per_clip_s.p50",
            "emotf-predict real-time factor (median)": "median_rtf",
        },
    ),
}


def _get(values, dotted: str):
    """`a.b` for nested keys; `a[k=v]` picks the list item of `a` whose `k` equals `v`."""
    for part in dotted.split("."):
        if "[" in part:
            name, _, selector = part.partition("[")
            key, _, wanted = selector.rstrip("]").partition("=")
            items = values.get(name, []) if isinstance(values, dict) else []
            values = next((i for i in items if str(i.get(key)) == wanted), None)
        elif isinstance(values, dict):
            values = values.get(part)
        else:
            return None
        if values is None:
            return None
    return values


def _find(values, key: str):
    """`key` in the JSON (see `_get`), else the first nested entry named like its last part."""
    direct = _get(values, key)
    if direct is not None or "[" in key:
        return direct
    leaf = key.split(".")[-1]
    stack = [values]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if leaf in node and not isinstance(node[leaf], dict):
                return node[leaf]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def run_tool(
    python: str, code: Path, args: list[str], timeout: int
) -> tuple[dict | None, float, str]:
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.run(
        [python, str(code / "tools" / args[0]), *args[1:]],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line), wall, ""
            except json.JSONDecodeError:
                continue
    return None, wall, (proc.stderr or proc.stdout)[-800:]


def stack_versions(python: str) -> dict:
    script = (
        "import json, numpy, tensorflow as tf, keras; print(json.dumps({'tensorflow': "
        "tf.__version__, 'keras': keras.__version__, 'numpy': numpy.__version__}))"
    )
    out = subprocess.run(
        [python, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="python of the old stack's venv")
    parser.add_argument("--new", default=sys.executable, help="python of the new stack's venv")
    parser.add_argument("--code", required=True, help="the emotf checkout both run")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--timeout", type=int, default=1800)
    args = parser.parse_args(argv)
    code = Path(args.code).resolve()
    result = {
        "code": str(code),
        "stacks": {"old": stack_versions(args.old), "new": stack_versions(args.new)},
        "figures": {},
    }
    rows = []
    for name in args.only.split(","):
        tool_args, figures = BENCHMARKS[name]
        outputs = {}
        for side in ("old", "new"):
            values, wall, error = run_tool(getattr(args, side), code, tool_args, args.timeout)
            outputs[side] = values
            print(
                f"{name} on {side}: {wall:.0f} s{'' if values else ' FAILED: ' + error}",
                file=sys.stderr,
                flush=True,
            )
        for label, key in figures.items():
            old, new = (_find(outputs[s], key) if outputs[s] else None for s in ("old", "new"))
            ratio = (
                new / old
                if isinstance(old, (int, float)) and isinstance(new, (int, float)) and old
                else None
            )
            result["figures"][f"{name}: {label}"] = {"old": old, "new": new, "new_over_old": ratio}
            rows.append(
                f"| {name} | {label} | {old} | {new} | {'' if ratio is None else f'{ratio:.2f}'} |"
            )
    print("| benchmark | figure | old stack | new stack | new / old |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
