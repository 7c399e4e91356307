"""Adam with a linear learning-rate warm-up and an optional cosine decay, for the trained stages."""

from __future__ import annotations

import math

import torch


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int, cosine: bool) -> float:
    """Return the factor on the peak learning rate at optimizer step ``step`` (0-based).

    The factor rises linearly from 1 / warmup_steps to 1. With ``cosine`` it then falls along a
    half cosine to 0.05 at ``total_steps``, a floor that keeps late steps useful.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if not cosine or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def adam_with_warmup(
    parameters,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    total_steps: int = 0,
    cosine: bool = False,
) -> dict:
    """Return a ``configure_optimizers`` dict: Adam, linear warm-up, optional cosine decay.

    Args:
        parameters: the parameters to optimise.
        lr: peak learning rate.
        weight_decay: L2 penalty of Adam.
        warmup_steps: optimizer steps of linear warm-up; 0 disables it.
        total_steps: all optimizer steps of the run, for the cosine decay.
        cosine: decay the learning rate along a half cosine after the warm-up.
    """
    optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if warmup_steps <= 0 and not cosine:
        return {"optimizer": optimizer}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, warmup_steps, total_steps, cosine)
    )
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
    }
