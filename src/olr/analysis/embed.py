"""Compute label embeddings of images and read or write them as safetensors files.

File format: ``embeddings/<split>.safetensors``, readable with ``safetensors.numpy.load_file``.
Its tensors are ``embeddings`` (N, L, k) float32 in (image, label, dim) order, ``labels`` (N, L)
uint8 and ``indices`` (N,) int64 rows of the image cache. Its metadata holds ``label_names`` and
``ids`` as JSON lists.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from torch import nn

from olr.errors import DataError
from olr.training.batches import to_float_images

logger = logging.getLogger(__name__)


@dataclass
class EmbeddingSet:
    """Embeddings of one split.

    Attributes:
        embeddings: (N, L, k) float32, (image, label, dim).
        labels: (N, L) uint8 {0, 1}.
        indices: (N,) int64 rows of the image cache.
        ids: N image ids.
        label_names: L names.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    ids: list[str]
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@torch.inference_mode()
def embed_images(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Embed in-memory images with a Siamese embedder, unoccluded.

    Args:
        model: maps (B, 3, H, W) floats in [0, 1] to (B, L, k).
        images: (N, H, W, 3) uint8 array or tensor, or (N, 3, H, W) floats in [0, 1].
        batch_size: images per forward pass.
        device: where the model runs.

    Returns:
        (N, L, k) float32 array, (image, label, dim).
    """
    was_training = model.training
    model.eval().to(device)
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        if isinstance(chunk, np.ndarray):
            chunk = torch.from_numpy(np.array(chunk, copy=True))
        outputs.append(model(to_float_images(chunk.to(device))).float().cpu())
    model.train(was_training)
    if not outputs:
        raise DataError("no images to embed")
    return torch.cat(outputs).numpy()


def embed_rows(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Embed the cache ``rows`` of a (memory-mapped) image array chunk by chunk.

    Returns:
        (len(rows), L, k) float32 array.
    """
    parts = []
    step = batch_size * 8
    for start in range(0, len(rows), step):
        chunk_rows = rows[start : start + step]
        parts.append(embed_images(model, np.asarray(images[chunk_rows]), batch_size, device))
        logger.debug("embedded %d/%d images", start + len(chunk_rows), len(rows))
    return np.concatenate(parts)


def save_embeddings(path: Path, data: EmbeddingSet) -> None:
    """Write an EmbeddingSet to ``path`` (safetensors) through a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {
            "embeddings": np.ascontiguousarray(data.embeddings, dtype=np.float32),
            "labels": np.ascontiguousarray(data.labels, dtype=np.uint8),
            "indices": np.ascontiguousarray(data.indices, dtype=np.int64),
        },
        str(tmp),
        metadata={"label_names": json.dumps(data.label_names), "ids": json.dumps(data.ids)},
    )
    os.replace(tmp, path)


def load_embeddings(path: Path) -> EmbeddingSet:
    """Read an EmbeddingSet written by ``save_embeddings``; DataError names a missing file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"embeddings file not found: {path}; run `olr embed` or `olr run` first")
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    return EmbeddingSet(
        embeddings=tensors["embeddings"],
        labels=tensors["labels"],
        indices=tensors["indices"],
        ids=json.loads(metadata.get("ids", "[]")),
        label_names=json.loads(metadata.get("label_names", "[]")),
    )
