"""Save and load trained model weights as safetensors with their config in the metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from olr.errors import OlrError


def save_weights(module: nn.Module, path: Path, info: dict) -> None:
    """Write ``module``'s state dict to ``path`` with ``info`` (JSON) in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    save_file(state, str(tmp), metadata={"info": json.dumps(info)})
    os.replace(tmp, path)


def read_info(path: Path) -> dict:
    """Return the ``info`` dict stored by ``save_weights``; OlrError names a missing file."""
    path = Path(path)
    if not path.exists():
        raise OlrError(f"model file not found: {path}; train it with `olr run` first")
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("info", "{}"))


def load_weights(module: nn.Module, path: Path) -> nn.Module:
    """Load weights saved by ``save_weights`` into ``module``; every key must match."""
    state = load_file(str(path))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise OlrError(
            f"weights in {path} do not fit the model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); was it written by another version or config?"
        )
    return module


def best_device(accelerator: str = "auto") -> torch.device:
    """Return the device for single-process work (embedding, analyses) under ``accelerator``."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("auto", "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
