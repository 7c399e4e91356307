"""Split image indices into train, validation and test: seeded random, by group, or official."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from olr.errors import DataError, OlrError


@dataclass
class Splits:
    """Sorted int64 image indices (into the cache) of each side of a split.

    Attributes:
        train: (N_train,) indices.
        val: (N_val,) indices.
        test: (N_test,) indices.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        """Return the number of images per side, keyed ``train``, ``val`` and ``test``."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def make_splits(
    num_images: int,
    seed: int,
    test_fraction: float = 0.05,
    val_fraction: float = 0.05,
    groups: np.ndarray | None = None,
    partition: np.ndarray | None = None,
    use_partition: bool = False,
) -> Splits:
    """Split ``num_images`` indices into train, validation and test.

    The test side gets ``test_fraction`` of all images and the validation side gets
    ``val_fraction`` of the rest, both rounded to the nearest count. With ``groups``, whole
    groups are assigned, so no group has images on two sides, and the sizes are as close to
    those targets as whole groups allow.

    Args:
        num_images: N, the number of images.
        seed: seed of the random assignment; the same arguments give the same split.
        test_fraction: share of all images for test, in (0, 1).
        val_fraction: share of the non-test images for validation, in (0, 1).
        groups: optional (N,) group (person) ids.
        partition: optional (N,) official partition (0 train, 1 val, 2 test).
        use_partition: use ``partition`` as the split instead of a random one.

    Returns:
        The split, each side sorted.

    Raises:
        OlrError: for invalid fractions, a missing partition, or a side that would be empty
            (the message gives the three sizes).
        DataError: for groups or a partition of the wrong length or with values outside 0..2.
    """
    if num_images <= 0:
        raise OlrError(f"cannot split {num_images} images; the dataset is empty")
    if use_partition:
        splits = _partition_splits(num_images, partition)
    else:
        _check_fraction("test_fraction", test_fraction)
        _check_fraction("val_fraction", val_fraction)
        rng = np.random.default_rng(seed)
        if groups is None:
            splits = _random_splits(num_images, test_fraction, val_fraction, rng)
        else:
            groups = _check_length(groups, num_images, "groups")
            splits = _group_splits(groups, test_fraction, val_fraction, rng)
    _check_not_empty(splits, use_partition)
    return splits


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise OlrError(f"{name} must be between 0 and 1 (exclusive), got {value}")


def _check_length(values: np.ndarray, num_images: int, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (num_images,):
        raise DataError(f"{name} has shape {values.shape}, expected ({num_images},)")
    return values


def _round_count(value: float) -> int:
    # Half rounds up, unlike Python's round(), so 0.5 of an image gives one image.
    return int(math.floor(value + 0.5))


def _random_splits(num_images, test_fraction, val_fraction, rng) -> Splits:
    order = rng.permutation(num_images)
    num_test = _round_count(test_fraction * num_images)
    num_val = _round_count(val_fraction * (num_images - num_test))
    return _sorted_splits(
        order[num_test + num_val :], order[num_test : num_test + num_val], order[:num_test]
    )


def _group_splits(groups, test_fraction, val_fraction, rng) -> Splits:
    unique, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = rng.permutation(len(unique))
    num_test = _whole_groups(counts[order], _round_count(test_fraction * len(groups)))
    rest = order[num_test:]
    rest_images = int(counts[rest].sum())
    num_val = _whole_groups(counts[rest], _round_count(val_fraction * rest_images))
    side = np.zeros(len(unique), dtype=np.int8)  # 0 train, 1 val, 2 test, per group
    side[order[:num_test]] = 2
    side[rest[:num_val]] = 1
    image_side = side[inverse.ravel()]
    return _sorted_splits(*(np.flatnonzero(image_side == value) for value in (0, 1, 2)))


def _whole_groups(sizes: np.ndarray, target: int) -> int:
    """Count how many leading groups bring the image total closest to ``target``."""
    if target <= 0:
        return 0
    totals = np.concatenate([[0], np.cumsum(sizes)])
    return int(np.argmin(np.abs(totals - target)))


def _partition_splits(num_images: int, partition: np.ndarray | None) -> Splits:
    if partition is None:
        raise OlrError(
            "use_partition is set but the dataset has no official partition file; "
            "turn use_partition off to make a random split"
        )
    partition = _check_length(partition, num_images, "partition")
    invalid = np.setdiff1d(np.unique(partition), [0, 1, 2])
    if invalid.size:
        raise DataError(f"partition values must be 0, 1 or 2, found {invalid.tolist()}")
    return _sorted_splits(*(np.flatnonzero(partition == value) for value in (0, 1, 2)))


def _sorted_splits(train, val, test) -> Splits:
    return Splits(*(np.sort(np.asarray(side, dtype=np.int64)) for side in (train, val, test)))


def _check_not_empty(splits: Splits, use_partition: bool) -> None:
    sizes = splits.sizes()
    empty = [name for name, size in sizes.items() if size == 0]
    if not empty:
        return
    fix = (
        "use a partition file with all three parts or turn use_partition off"
        if use_partition
        else "use more images or larger test/val fractions"
    )
    raise OlrError(f"split side(s) {', '.join(empty)} would be empty (sizes {sizes}); {fix}")
