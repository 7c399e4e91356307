"""Torch datasets and loaders over the memory-mapped image cache.

Images stay uint8 (H, W, 3) until they reach the training device, where ``to_float_images`` turns
them into (B, 3, H, W) floats in [0, 1]; that keeps host-to-device copies four times smaller.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class MemmapImages(Dataset):
    """Base of datasets whose ``images`` attribute is a read-only memmap of the cache."""

    def __getstate__(self) -> dict:
        # A memmap pickles as a full in-memory copy (19 GB for CelebA at 178 px), so spawned
        # loader workers get the file name instead and map the file again.
        state = dict(self.__dict__)
        if isinstance(self.images, np.memmap) and self.images.filename:
            state["images"] = None
            state["images_file"] = self.images.filename
        return state

    def __setstate__(self, state: dict) -> None:
        images_file = state.pop("images_file", None)
        self.__dict__.update(state)
        if images_file is not None:
            self.images = np.load(images_file, mmap_mode="r")


class CachedImages(MemmapImages):
    """Images and labels of one split of the cache.

    Args:
        images: (N, S, S, 3) uint8 array (usually a read-only memmap).
        labels: (N, L) uint8 {0, 1} array.
        indices: which rows of the cache belong to the split.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> None:
        self.images = images
        self.labels = labels
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.indices[item]
        # np.array copies the row out of the memmap so the tensor owns writable memory.
        image = torch.from_numpy(np.array(self.images[row]))
        label = torch.from_numpy(np.array(self.labels[row]))
        return image, label


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """Convert (B, H, W, 3) uint8 images to (B, 3, H, W) floats in [0, 1]; floats pass through."""
    if images.dtype == torch.uint8:
        return images.permute(0, 3, 1, 2).float().div_(255.0)
    return images


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    drop_last: bool = False,
    seed: int = 0,
) -> DataLoader:
    """Build a DataLoader; Lightning adds a DistributedSampler itself under DDP."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
