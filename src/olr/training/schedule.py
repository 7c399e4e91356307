"""Optimizers with a linear learning-rate warm-up, shared by the trained stages."""

from __future__ import annotations

import torch


def adam_with_warmup(parameters, lr: float, weight_decay: float, warmup_steps: int) -> dict:
    """Return a ``configure_optimizers`` dict: Adam with a linear warm-up over ``warmup_steps``."""
    optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if warmup_steps <= 0:
        return {"optimizer": optimizer}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup_steps)
    )
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
    }
