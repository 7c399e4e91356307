"""Callbacks that log progress with rate and ETA, and one JSON line per epoch."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import lightning.pytorch as pl

logger = logging.getLogger(__name__)


def format_seconds(seconds: float) -> str:
    """Format a duration as ``1h02m03s``, ``2m03s`` or ``3s``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _scalar_metrics(trainer: pl.Trainer, prefix: str = "") -> dict[str, float]:
    values = {}
    for key, value in trainer.callback_metrics.items():
        if key.startswith(prefix):
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                continue
    return values


class ProgressLog(pl.Callback):
    """Log step, metrics, throughput and ETA every ``every_seconds`` through ``logging``.

    Args:
        stage: name printed at the start of each line.
        every_seconds: minimum time between two lines.
    """

    def __init__(self, stage: str, every_seconds: float = 15.0) -> None:
        self.stage = stage
        self.every_seconds = every_seconds

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.monotonic()
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        now = time.monotonic()
        if now - self._last < self.every_seconds or not trainer.is_global_zero:
            return
        self._last = now
        done = trainer.global_step - self._start_step
        total = trainer.estimated_stepping_batches - self._start_step
        rate = done / max(now - self._start, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        metrics = " ".join(
            f"{k.split('/')[-1]}={v:.4g}" for k, v in _scalar_metrics(trainer, "train/").items()
        )
        logger.info(
            "%s epoch %d step %d/%d %s | %.2f steps/s, ETA %s",
            self.stage,
            trainer.current_epoch,
            trainer.global_step,
            trainer.estimated_stepping_batches,
            metrics,
            rate,
            format_seconds(eta),
        )


class EpochJsonLog(pl.Callback):
    """Append one JSON line per epoch (epoch, step, elapsed seconds, logged metrics) to a file."""

    def __init__(self, path: Path, stage: str) -> None:
        self.path = Path(path)
        self.stage = stage

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        record = {
            "stage": self.stage,
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "elapsed_s": round(time.monotonic() - self._start, 2),
            **_scalar_metrics(trainer),
        }
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        logger.info("%s epoch %d done: %s", self.stage, trainer.current_epoch, json.dumps(record))
