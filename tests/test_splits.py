"""Tests for train/val/test splits: sizes, coverage, determinism, groups and partitions."""

from __future__ import annotations

import numpy as np
import pytest

from olr.data.splits import make_splits
from olr.errors import DataError, OlrError


def assert_partition_of(splits, num_images):
    combined = np.concatenate([splits.train, splits.val, splits.test])
    assert np.array_equal(np.sort(combined), np.arange(num_images))
    for side in (splits.train, splits.val, splits.test):
        assert side.dtype == np.int64
        assert np.all(np.diff(side) > 0)


def test_random_split_sizes():
    splits = make_splits(1000, seed=0)
    # 5% of 1000 for test; 5% of the remaining 950 (47.5, rounded up) for val.
    assert splits.sizes() == {"train": 902, "val": 48, "test": 50}
    assert_partition_of(splits, 1000)


def test_random_split_fractions():
    splits = make_splits(200, seed=1, test_fraction=0.25, val_fraction=0.2)
    assert splits.sizes() == {"train": 120, "val": 30, "test": 50}


def test_split_deterministic_per_seed():
    first, again, other = make_splits(500, 3), make_splits(500, 3), make_splits(500, 4)
    assert np.array_equal(first.test, again.test)
    assert np.array_equal(first.val, again.val)
    assert not np.array_equal(first.test, other.test)


def test_group_split_disjoint():
    groups = np.random.default_rng(5).integers(0, 120, 2000)
    splits = make_splits(2000, seed=2, test_fraction=0.1, val_fraction=0.1, groups=groups)
    assert_partition_of(splits, 2000)
    train, val, test = (
        set(groups[side].tolist()) for side in (splits.train, splits.val, splits.test)
    )
    assert not train & val
    assert not train & test
    assert not val & test
    # Whole groups of about 17 images each keep the sizes near the 200 and 180 targets.
    assert abs(len(splits.test) - 200) <= 20
    assert abs(len(splits.val) - 180) <= 20


def test_group_split_deterministic():
    groups = np.arange(300) // 3
    first = make_splits(300, 7, groups=groups, test_fraction=0.1, val_fraction=0.1)
    again = make_splits(300, 7, groups=groups, test_fraction=0.1, val_fraction=0.1)
    assert np.array_equal(first.train, again.train)
    assert first.sizes() == {"train": 243, "val": 27, "test": 30}


def test_official_partition():
    partition = np.array([0, 1, 2, 0, 0, 2, 1, 0], dtype=np.int8)
    splits = make_splits(8, seed=0, partition=partition, use_partition=True)
    assert splits.train.tolist() == [0, 3, 4, 7]
    assert splits.val.tolist() == [1, 6]
    assert splits.test.tolist() == [2, 5]


def test_partition_with_empty_side_raises():
    with pytest.raises(OlrError, match="val, test would be empty"):
        make_splits(4, seed=0, partition=np.zeros(4, dtype=np.int8), use_partition=True)


def test_partition_missing_raises():
    with pytest.raises(OlrError, match="no official partition"):
        make_splits(4, seed=0, use_partition=True)


def test_partition_invalid_value_raises():
    with pytest.raises(DataError, match=r"\[5\]"):
        make_splits(3, seed=0, partition=np.array([0, 1, 5]), use_partition=True)


def test_tiny_dataset_raises_with_sizes():
    with pytest.raises(OlrError) as error:
        make_splits(9, seed=0)
    assert "'test': 0" in str(error.value)
    assert "'train': 9" in str(error.value)


def test_invalid_fraction_raises():
    with pytest.raises(OlrError, match="test_fraction"):
        make_splits(100, seed=0, test_fraction=1.5)


def test_groups_length_mismatch_raises():
    with pytest.raises(DataError, match="groups has shape"):
        make_splits(10, seed=0, groups=np.zeros(9))
