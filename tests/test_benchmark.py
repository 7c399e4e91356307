"""Tests of the throughput benchmark script on tiny synthetic data and tiny models."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


def load_script():
    spec = importlib.util.spec_from_file_location("olr_benchmark_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the defining module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_main_writes_json(tmp_path):
    throughput = load_script()
    out = tmp_path / "out.json"
    # The smoke preset's models and 32 px images keep each step to milliseconds on one thread.
    argv = [
        "--preset", "smoke", "--synthetic-images", "24", "--pairs", "4", "--seconds", "0.2",
        "--warmup-steps", "1", "--threads", "1", "--matmul-size", "64",
        "--matmul-seconds", "0.1", "--json", str(out),
    ]  # fmt: skip
    returned = throughput.main(argv)

    results = json.loads(out.read_text())
    assert results == returned
    expected_keys = {
        "machine", "settings", "pipelines", "flops_per_step", "achieved_flops",
        "matmul_peak_flops", "utilisation", "speedup_cache_vs_naive",
    }  # fmt: skip
    assert set(results) == expected_keys
    assert {"cpu_model", "cores", "torch_version", "threads", "device"} <= set(results["machine"])
    assert results["machine"]["threads"] == 1
    assert results["settings"]["pairs_per_batch"] == 4
    assert results["settings"]["image_size"] == 32

    pipelines = results["pipelines"]
    assert set(pipelines) == {"end_to_end", "model_only", "naive"}
    for row in pipelines.values():
        assert row["steps"] >= 1
        # 4 pairs per step: pairs/s times seconds per step gives the batch back.
        assert math.isclose(row["pairs_per_s"] * row["step_ms"] / 1000.0, 4.0, rel_tol=1e-9)

    model_s = pipelines["model_only"]["step_ms"] / 1000.0
    assert results["flops_per_step"] > 0
    assert math.isclose(results["achieved_flops"], results["flops_per_step"] / model_s)
    assert math.isclose(
        results["utilisation"], results["achieved_flops"] / results["matmul_peak_flops"]
    )
    speedup = pipelines["end_to_end"]["pairs_per_s"] / pipelines["naive"]["pairs_per_s"]
    assert math.isclose(results["speedup_cache_vs_naive"], speedup)
