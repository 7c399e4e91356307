"""Tests for the synthetic faces: determinism, label model rules, flips, intensities and drawing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional import auroc, spearman_corrcoef

from olr.data.cache import ImageCache
from olr.data.synthetic import (
    GEOMETRY_COLUMNS,
    LABEL_INDEX,
    MEASURABLE_LABELS,
    SYNTHETIC_LABELS,
    generate_synthetic,
    measure_attributes,
    render_faces,
    render_faces_with_geometry,
    sample_attributes,
    write_synthetic_cache,
)
from olr.errors import DataError, OlrError

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
    assert sorted(reopened.truth) == [
        "clean_labels",
        "flipped",
        "geometry",
        "intensities",
        "true_correlation",
    ]
    assert np.array_equal(reopened.truth["flipped"], data.flipped)
    assert np.array_equal(reopened.truth["geometry"], data.geometry)
    assert np.array_equal(reopened.truth["intensities"], data.intensities)
    assert reopened.ids[0] == "synthetic_000000"


def test_geometry_shape_and_range():
    data = generate_synthetic(200, 16, seed=7)
    assert data.geometry.shape == (200, len(GEOMETRY_COLUMNS))
    assert data.geometry.dtype == np.float32
    center_x, center_y, scale, width = data.geometry.T
    assert np.abs(center_x).max() <= 0.06 + 1e-6
    assert center_y.min() >= 0.02 - 1e-6
    assert center_y.max() <= 0.12 + 1e-6
    assert scale.min() >= 0.85 - 1e-6
    assert scale.max() <= 1.0 + 1e-6
    chubby = data.intensities[:, LABEL_INDEX["Chubby"]]
    assert np.allclose(width, 0.47 + 0.13 * chubby)
    # The placement does not depend on the image size.
    assert np.array_equal(generate_synthetic(200, 40, seed=7).geometry, data.geometry)


def test_render_with_geometry_same_images():
    intensities, latents = sample_attributes(6, np.random.default_rng(1))
    images = render_faces(intensities, latents, 24, np.random.default_rng(2))
    again, geometry = render_faces_with_geometry(intensities, latents, 24, np.random.default_rng(2))
    assert np.array_equal(images, again)
    assert geometry.shape == (6, len(GEOMETRY_COLUMNS))


@pytest.fixture(scope="module")
def measured():
    """500 faces of 32 pixels with every measure."""
    data = generate_synthetic(500, 32, seed=0)
    return data, measure_attributes(data.images, data.geometry, list(MEASURABLE_LABELS))


def test_mouth_measure_tracks_opening(measured):
    data, values = measured
    opening = torch.from_numpy(data.intensities[:, LABEL_INDEX["Mouth_Slightly_Open"]])
    rho = spearman_corrcoef(torch.from_numpy(values["Mouth_Slightly_Open"]).float(), opening)
    assert rho > 0.7


def test_bangs_measure_tracks_fringe(measured):
    data, values = measured
    fringe = torch.from_numpy(data.intensities[:, LABEL_INDEX["Bangs"]])
    assert spearman_corrcoef(torch.from_numpy(values["Bangs"]).float(), fringe) > 0.7


@pytest.mark.parametrize("name", MEASURABLE_LABELS)
def test_measure_separates_label(measured, name):
    data, values = measured
    clean = torch.from_numpy(data.clean_labels[:, LABEL_INDEX[name]]).long()
    assert clean.sum() >= 10
    assert auroc(torch.from_numpy(values[name]).float(), clean, task="binary") > 0.85


def _same_face_with(name: str, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face twice, identical except for one label, and return images and geometry."""
    intensities, latents = sample_attributes(1, np.random.default_rng(3))
    intensities[:, [LABEL_INDEX["Wearing_Hat"], LABEL_INDEX["Bald"]]] = 0.0
    pair = np.repeat(intensities, 2, axis=0)
    latents = {key: np.repeat(value, 2) for key, value in latents.items()}
    if name == "Blond_Hair":  # the drawn colour comes from the hair class, not the intensity
        latents["hair_class"] = np.array([0, 1])
    pair[:, LABEL_INDEX[name]] = [low, high]
    images, geometry = [], []
    for row in range(2):  # same rng state per face: same placement, colours and noise
        one = {key: value[row : row + 1] for key, value in latents.items()}
        image, place = render_faces_with_geometry(
            pair[row : row + 1], one, 40, np.random.default_rng(9)
        )
        images.append(image)
        geometry.append(place)
    return np.concatenate(images), np.concatenate(geometry)


@pytest.mark.parametrize("name", MEASURABLE_LABELS)
def test_measure_higher_with_label(name):
    images, geometry = _same_face_with(name, 0.0, 1.0)
    values = measure_attributes(images, geometry, [name])[name]
    assert values[1] > values[0] + 0.02


def test_measure_with_offset_crop(measured):
    data, values = measured
    cropped = data.images[:, 2:-2, 2:-2]
    names = list(MEASURABLE_LABELS)
    same = measure_attributes(cropped, data.geometry, names, offset_pixels=2)
    for name in names:
        assert np.allclose(same[name], values[name], atol=1e-6)
    # Read without the offset, the regions land in the wrong places.
    shifted = measure_attributes(cropped, data.geometry, names)
    assert not np.allclose(shifted["Mouth_Slightly_Open"], values["Mouth_Slightly_Open"])


def test_measure_float_equals_uint8():
    data = generate_synthetic(4, 24, seed=1)
    as_uint8 = measure_attributes(data.images, data.geometry, ["Eyeglasses"])
    as_float = measure_attributes(data.images / 255.0, data.geometry, ["Eyeglasses"])
    assert np.allclose(as_uint8["Eyeglasses"], as_float["Eyeglasses"], atol=1e-6)


def test_measure_bad_input_raises():
    data = generate_synthetic(3, 16, seed=0)
    with pytest.raises(OlrError, match="Smiling"):
        measure_attributes(data.images, data.geometry, ["Smiling"])
    with pytest.raises(DataError, match="geometry"):
        measure_attributes(data.images, data.geometry[:2], ["Bangs"])
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        measure_attributes(data.images * 2.0, data.geometry, ["Bangs"])
    with pytest.raises(OlrError, match="offset_pixels"):
        measure_attributes(data.images, data.geometry, ["Bangs"], offset_pixels=-1)
