"""Tests for the synthetic faces: determinism, label model rules, flips, intensities and drawing."""

from __future__ import annotations

import numpy as np
import pytest

from olr.data.cache import ImageCache
from olr.data.synthetic import (
    LABEL_INDEX,
    SYNTHETIC_LABELS,
    generate_synthetic,
    sample_attributes,
    write_synthetic_cache,
)
from olr.errors import OlrError

HAIR = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]


@pytest.fixture(scope="module")
def labels():
    """(50000, L) clean labels from the label model alone, as a dict of columns."""
    intensities, _ = sample_attributes(50_000, np.random.default_rng(11))
    clean = intensities > 0.5
    return {name: clean[:, index] for name, index in LABEL_INDEX.items()}


def test_label_names():
    assert len(SYNTHETIC_LABELS) == 20
    for name in ("Smiling", "Mouth_Slightly_Open", "No_Beard", "Male", "Young", "Bald"):
        assert name in SYNTHETIC_LABELS


def test_deterministic_per_seed():
    first = generate_synthetic(24, 24, seed=3)
    again = generate_synthetic(24, 24, seed=3)
    other = generate_synthetic(24, 24, seed=4)
    assert np.array_equal(first.images, again.images)
    assert np.array_equal(first.labels, again.labels)
    assert np.array_equal(first.intensities, again.intensities)
    assert not np.array_equal(first.images, other.images)
    assert not np.array_equal(first.intensities, other.intensities)


def test_flip_rate_keeps_images():
    clean = generate_synthetic(16, 16, seed=5, flip_rate=0.0)
    noisy = generate_synthetic(16, 16, seed=5, flip_rate=0.3)
    assert np.array_equal(clean.images, noisy.images)
    assert np.array_equal(clean.clean_labels, noisy.clean_labels)
    assert not clean.flipped.any()


def test_shapes_and_types():
    data = generate_synthetic(5, 20, seed=0)
    assert data.images.shape == (5, 20, 20, 3)
    assert data.images.dtype == np.uint8
    assert data.labels.shape == (5, 20)
    assert data.labels.dtype == np.uint8
    assert data.intensities.dtype == np.float32
    assert data.flipped.dtype == bool
    assert data.true_correlation.shape == (20, 20)
    assert data.label_names == list(SYNTHETIC_LABELS)


@pytest.mark.parametrize("size", [8, 100])
def test_any_image_size(size):
    assert generate_synthetic(2, size, seed=0).images.shape == (2, size, size, 3)


def test_beards_only_for_men(labels):
    men = labels["Male"]
    for name in ("Mustache", "Goatee"):
        assert not (labels[name] & ~men).any()
        assert labels[name][men].mean() > 0.05
    assert labels["No_Beard"][~men].all()
    assert not (labels["Mustache"] & labels["No_Beard"]).any()
    assert not (labels["Goatee"] & labels["No_Beard"]).any()


def test_exclusive_labels(labels):
    assert not (labels["Bald"] & labels["Bangs"]).any()
    hair_count = sum(labels[name].astype(int) for name in HAIR)
    assert hair_count.max() == 1
    assert not (labels["Bald"] & (hair_count > 0)).any()


def test_correlated_labels(labels):
    men, young = labels["Male"], labels["Young"]
    assert labels["Wearing_Lipstick"][~men].mean() > 5 * labels["Wearing_Lipstick"][men].mean()
    assert labels["Heavy_Makeup"][~men].mean() > 3 * labels["Heavy_Makeup"][men].mean()
    assert labels["Gray_Hair"][~young].mean() > 3 * labels["Gray_Hair"][young].mean()
    assert labels["Bald"][~young].mean() > 3 * labels["Bald"][young].mean()
    smiling = labels["Smiling"]
    assert (
        labels["Mouth_Slightly_Open"][smiling].mean()
        > 2 * labels["Mouth_Slightly_Open"][~smiling].mean()
    )


def test_true_correlation_matches_sample(labels):
    matrix = generate_synthetic(1, 8, seed=0).true_correlation
    sample = np.corrcoef(
        np.stack([labels[name] for name in SYNTHETIC_LABELS], axis=1), rowvar=False
    )
    assert np.allclose(matrix, matrix.T)
    assert np.allclose(np.diag(matrix), 1.0)
    assert np.abs(matrix - sample).max() < 0.03
    male, lipstick = LABEL_INDEX["Male"], LABEL_INDEX["Wearing_Lipstick"]
    assert matrix[male, lipstick] < -0.5
    assert matrix[LABEL_INDEX["Smiling"], LABEL_INDEX["Mouth_Slightly_Open"]] > 0.3


def test_flip_fraction():
    data = generate_synthetic(1500, 8, seed=1, flip_rate=0.1)
    assert abs(data.flipped.mean() - 0.1) < 0.01
    assert np.array_equal(data.labels, data.clean_labels ^ data.flipped)


def test_intensities_match_clean_labels():
    data = generate_synthetic(2000, 8, seed=2, flip_rate=0.2)
    assert data.intensities.min() >= 0.0
    assert data.intensities.max() <= 1.0
    assert np.array_equal(data.clean_labels, (data.intensities > 0.5).astype(np.uint8))


def test_open_mouth_is_darker():
    size = 48
    data = generate_synthetic(400, size, seed=6)
    opening = data.intensities[:, LABEL_INDEX["Mouth_Slightly_Open"]]
    # The mouth centre lies at 65-73% of the height for every position and scale jitter.
    region = data.images[:, int(0.63 * size) : int(0.76 * size), int(0.4 * size) : int(0.6 * size)]
    brightness = region.astype(float).mean(axis=(1, 2, 3))
    wide, closed = brightness[opening > 0.75], brightness[opening < 0.25]
    assert len(wide) > 20
    assert len(closed) > 20
    assert wide.mean() < closed.mean() - 8


def test_invalid_arguments_raise():
    with pytest.raises(OlrError, match="flip_rate"):
        generate_synthetic(4, 16, flip_rate=1.5)
    with pytest.raises(OlrError, match="image_size"):
        generate_synthetic(4, 4)
    with pytest.raises(OlrError, match="num_images"):
        generate_synthetic(0, 16)


def test_synthetic_cache_truth(tmp_path):
    cache = write_synthetic_cache(tmp_path, num_images=12, image_size=16, seed=0, flip_rate=0.25)
    data = generate_synthetic(12, 16, seed=0, flip_rate=0.25)
    reopened = ImageCache.open(tmp_path)
    assert reopened.meta["source"] == "synthetic"
    assert np.array_equal(cache.images, data.images)
    assert np.array_equal(reopened.labels, data.labels)
    assert sorted(reopened.truth) == ["clean_labels", "flipped", "intensities", "true_correlation"]
    assert np.array_equal(reopened.truth["flipped"], data.flipped)
    assert np.array_equal(reopened.truth["intensities"], data.intensities)
    assert reopened.ids[0] == "synthetic_000000"
