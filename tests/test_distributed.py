"""A real two-process DDP run on the CPU (gloo), as several GPUs or nodes would run it."""

import json
import subprocess
import sys


def test_two_process_ddp_run(tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "olr.cli",
        "run",
        "--preset",
        "smoke",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--set",
        "trainer.strategy=ddp",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["probe"]["test"]["mean_accuracy"] <= 1.0
    assert "ssim" in metrics["reconstruction"]["test"]
    assert (out / "report.html").exists()
    # Only the primary process logs stage lines, so each appears once.
    assert result.stderr.count("stage siamese started") == 1
