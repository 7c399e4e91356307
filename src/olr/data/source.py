"""The in-memory description of a labelled image dataset before it is decoded into the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ImageSource:
    """Image files joined to their binary labels by file name.

    Attributes:
        image_paths: one path per image, in dataset order.
        ids: the image id of each path (its file name, for example ``000001.jpg``).
        label_names: the L label names, in column order.
        labels: (N, L) uint8 array of 0/1 values, row i for ``ids[i]``.
        groups: (N,) int64 person or group id per image, or None when unknown. Splits
            with ``disjoint_groups`` keep every group on one side.
        crop: ``"celeba_square"`` for CelebA's 178 x 218 aligned images, which are cut to a
            centred square before resizing, or ``"none"``.
        partition: (N,) int8 official partition (0 train, 1 val, 2 test) or None.
        name: a short dataset name for logs and reports.
    """

    image_paths: list[Path]
    ids: list[str]
    label_names: list[str]
    labels: np.ndarray
    groups: np.ndarray | None = None
    crop: str = "none"
    partition: np.ndarray | None = None
    name: str = "dataset"
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)
