"""tools/bench_gpu.py --smoke: every measurement runs on the CPU and the summary names the bound."""

import json

from tests.helpers_tools import load_tool


def test_bench_gpu_smoke_runs_every_kind_of_measurement(capsys):
    bench = load_tool("bench_gpu")
    summary = bench.main(["--smoke"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(summary))  # the final line is the summary
    assert summary["device"] == "CPU"  # conftest hides GPUs
    assert summary["pipeline_clips_per_s"] > 0 and summary["pipeline_cpu_ms_per_clip"] > 0
    settings = {(r["precision"], r["jit_compile"]) for r in summary["settings"]}
    assert settings == {("float32", False), ("mixed_bfloat16", True)}
    for r in summary["settings"]:
        assert r["model_clips_per_s"] > 0 and r["end_to_end_clips_per_s"] > 0
        assert r["bound"] in ("input", "model")
