"""Build Lightning Trainers from the run configuration, identical on CPU, GPU and DDP nodes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from olr.config import TrainerConfig
from olr.errors import OlrError
from olr.training.callbacks import EpochJsonLog, ProgressLog

logger = logging.getLogger(__name__)


def build_trainer(
    config: TrainerConfig,
    stage_dir: Path,
    stage: str,
    max_epochs: int,
    monitor: str,
    mode: str,
    grad_clip: float | None = None,
) -> tuple[pl.Trainer, ModelCheckpoint]:
    """Return a Trainer keeping the best ``monitor`` checkpoint and ``last.ckpt`` in ``stage_dir``.

    Args:
        config: accelerator, devices, nodes, strategy and precision.
        stage_dir: the stage's output folder (checkpoints and ``epochs.jsonl``).
        stage: a name for log lines.
        max_epochs: epochs to train.
        monitor: logged metric that selects the best checkpoint.
        mode: ``min`` or ``max`` for ``monitor``.
        grad_clip: gradient-norm clip value passed to Lightning, or None.

    Returns:
        The trainer and its checkpoint callback (``best_model_path`` after fitting).

    Raises:
        OlrError: when Lightning rejects the accelerator, devices, precision or strategy.
    """
    stage_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = ModelCheckpoint(
        dirpath=stage_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
    )
    try:
        trainer = _make_trainer(config, stage_dir, stage, max_epochs, checkpoint, grad_clip)
    except (ValueError, TypeError, ImportError, MisconfigurationException) as error:
        # Lightning reports a wrong accelerator, device count or precision with its own
        # exception types, so the message names the olr options that set them.
        raise OlrError(
            f"invalid trainer settings (--accelerator {config.accelerator}, --devices "
            f"{config.devices}, trainer.precision {config.precision}, trainer.strategy "
            f"{config.strategy}): {error}; fix these options and rerun"
        ) from error
    return trainer, checkpoint


def _make_trainer(config, stage_dir, stage, max_epochs, checkpoint, grad_clip) -> pl.Trainer:
    """Construct the Lightning Trainer of :func:`build_trainer`."""
    interactive = sys.stderr.isatty()
    return pl.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,
        max_epochs=max_epochs,
        callbacks=[checkpoint, ProgressLog(stage), EpochJsonLog(stage_dir / "epochs.jsonl", stage)],
        logger=False,
        default_root_dir=stage_dir,
        enable_progress_bar=interactive,
        enable_model_summary=False,
        log_every_n_steps=config.log_every_n_steps,
        gradient_clip_val=grad_clip or None,
        num_sanity_val_steps=0,
        deterministic=False,
    )


def fit(trainer: pl.Trainer, module, train_loader, val_loader, ckpt_path: str | None) -> None:
    """Run ``trainer.fit``; turn Lightning's exit on Ctrl-C back into KeyboardInterrupt.

    Lightning 2.6 (``trainer/call.py``) handles SIGINT by stopping the loop and calling
    ``sys.exit(1)``, which would end the command with no message. The CLI instead reports the
    interrupt and how to resume.
    """
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)
    except SystemExit as error:
        if trainer.interrupted:
            raise KeyboardInterrupt from error
        raise
    if trainer.interrupted:
        raise KeyboardInterrupt


def resume_path(stage_dir: Path) -> str | None:
    """Return ``last.ckpt`` of an interrupted stage, so fitting goes on where it stopped."""
    last = stage_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        logger.info("resuming %s from %s", stage_dir.name, last)
        return str(last)
    return None
