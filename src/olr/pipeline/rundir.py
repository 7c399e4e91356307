"""The run folder: resolved config, merged metrics.json, stage markers and process ranks.

A stage is done when ``<out>/<stage>/done.json`` exists. It contains the stage's metrics and run
time, so a rerun of the same command skips it and goes on where an interruption stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from olr.config import RunConfig, merge, to_dict, write_yaml
from olr.errors import OlrError

logger = logging.getLogger(__name__)

# Keys that change where and how fast a run trains, not what it computes, so a rerun may change
# them (for example after `--accelerator gpu` failed on a machine without one).
PLACEMENT_KEYS = {
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.log_every_n_steps",
    "data.prepare_workers",
    "data.loader_workers",
}


def is_primary_process() -> bool:
    """Return True on the process that writes outputs (global rank 0 of a distributed run)."""
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        if os.environ.get(variable, "0") != "0":
            return False
    return True


def json_safe(value: Any) -> Any:
    """Convert numpy scalars and arrays to Python values and NaN or infinity to None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, values: Any) -> None:
    """Write ``values`` as indented JSON through a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(values), indent=2) + "\n")
    os.replace(tmp, path)


def git_commit() -> str | None:
    """Return the git commit of the installed source tree, or None outside a checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


class RunDir:
    """One run folder.

    Args:
        root: the ``--out`` folder.
        config: the resolved configuration.
    """

    def __init__(self, root: Path, config: RunConfig) -> None:
        self.root = Path(root)
        self.config = config
        self.primary = is_primary_process()
        self.figures = self.root / "figures"
        self.cache_dir = self.root / "cache"
        self.metrics_path = self.root / "metrics.json"

    def start(self, command: str) -> None:
        """Create the folder, check that an earlier run in it used the same config, write it."""
        if not self.primary:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(exist_ok=True)
        config_path = self.root / "config.yaml"
        resolved = to_dict(self.config)
        if config_path.exists():
            import yaml

            previous = yaml.safe_load(config_path.read_text()) or {}
            previous.pop("run_info", None)
            changed = sorted(changed_keys(previous, resolved) - PLACEMENT_KEYS)
            # Stages run in order, so before prepare is done nothing depends on the old
            # config: a run stopped by bad input can be fixed with new options in place.
            if changed and not self.is_done("prepare"):
                logger.info("replacing the config of %s, which has no finished stage", self.root)
            elif changed:
                raise OlrError(
                    f"{self.root} contains a run with another config (keys differ: "
                    f"{', '.join(changed[:8])}); use a new --out, or delete {self.root} to restart"
                )
        info = {"command": command, "git_commit": git_commit(), "started": time.ctime()}
        write_yaml({**resolved, "run_info": info}, config_path)
        logger.info("run folder %s (git %s)", self.root, info["git_commit"])

    def stage_dir(self, stage: str) -> Path:
        """Return (and create) the folder of ``stage``."""
        path = self.root / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def marker(self, stage: str) -> Path:
        return self.root / stage / "done.json"

    def is_done(self, stage: str) -> bool:
        return self.marker(stage).exists()

    def finish_stage(self, stage: str, metrics: dict, seconds: float) -> None:
        """Merge a stage's metrics into metrics.json and write its done marker (primary only)."""
        if not self.primary:
            return
        self.merge_metrics({**metrics, "timings": {stage: round(seconds, 2)}})
        write_json(self.marker(stage), {"metrics": metrics, "seconds": seconds})

    def merge_metrics(self, update: dict) -> None:
        """Merge ``update`` into metrics.json."""
        write_json(self.metrics_path, merge(self.metrics(), json_safe(update)))

    def drop_metrics(self, *keys: str) -> None:
        """Remove top-level ``keys`` from metrics.json before a stage writes them anew."""
        if not self.primary:
            return
        metrics = self.metrics()
        for key in keys:
            metrics.pop(key, None)
        write_json(self.metrics_path, metrics)

    def metrics(self) -> dict:
        """Return the current metrics.json contents (empty before the first stage)."""
        if not self.metrics_path.exists():
            return {}
        return json.loads(self.metrics_path.read_text())

    def wait_for(self, stage: str, timeout_s: float = 24 * 3600) -> None:
        """Block a non-primary process until the primary has finished ``stage``."""
        start = time.monotonic()
        while not self.is_done(stage):
            if time.monotonic() - start > timeout_s:
                raise OlrError(f"timed out waiting for stage {stage!r} of {self.root}")
            time.sleep(2.0)


def changed_keys(old: dict, new: dict, prefix: str = "") -> set[str]:
    """Return the dotted paths of the keys whose values differ between two nested dicts."""
    keys = set()
    for key in set(old) | set(new):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys |= changed_keys(a, b, path + ".")
        elif a != b:
            keys.add(path)
    return keys
