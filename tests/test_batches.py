"""Tests of the cache-backed training dataset."""

import pickle

import numpy as np
import torch

from olr.training.batches import CachedImages, to_float_images


def test_memmap_dataset_pickles_by_file_name(tmp_path):
    path = tmp_path / "images.npy"
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(6, 4, 4, 3))
    images[:] = np.arange(6, dtype=np.uint8)[:, None, None, None]
    images.flush()
    labels = np.eye(6, 2, dtype=np.uint8)
    dataset = CachedImages(np.load(path, mmap_mode="r"), labels, np.array([4, 1]))
    payload = pickle.dumps(dataset)
    assert len(payload) < 2000
    restored = pickle.loads(payload)
    image, label = restored[0]
    assert image.shape == (4, 4, 3)
    assert int(image[0, 0, 0]) == 4
    assert torch.equal(label, torch.from_numpy(labels[4]))


def test_to_float_images_layout_and_range():
    images = torch.full((2, 3, 5, 3), 255, dtype=torch.uint8)
    floats = to_float_images(images)
    assert floats.shape == (2, 3, 3, 5)
    assert float(floats.max()) == 1.0
