"""Known-answer tests of the per-label PCA."""

import numpy as np
import pytest

from olr.analysis.pca import label_pca, pca_table, rank_positions
from olr.errors import DataError


def _rank_r(rng, n=60, k=8, r=3):
    """(n, k) vectors whose centred matrix has rank r."""
    return rng.normal(size=(n, r)) @ rng.normal(size=(r, k)) + rng.normal(size=k)


def test_rank_r_nonzero_ratios():
    rng = np.random.default_rng(0)
    vectors = _rank_r(rng)
    present = (rng.random(60) > 0.5).astype(int)
    full = label_pca(vectors, present, num_components=8)
    ratios = np.array(full.explained_variance_ratio)
    assert len(ratios) == 8
    assert (ratios[:3] > 1e-6).all()
    np.testing.assert_allclose(ratios[3:], 0.0, atol=1e-6)
    assert ratios.sum() == pytest.approx(1.0, abs=1e-9)
    assert (np.diff(ratios) <= 1e-12).all()
    np.testing.assert_allclose(full.components @ full.components[:3].T, np.eye(8)[:, :3], atol=1e-9)
    assert len(label_pca(vectors, present, num_components=20).explained_variance_ratio) == 8


def test_one_dimensional_signal():
    vectors = np.outer(np.arange(10.0), [3.0, 4.0])
    result = label_pca(vectors, np.arange(10) >= 5, num_components=2)
    assert result.explained_variance_ratio[0] == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(result.components[0]), [0.6, 0.8], atol=1e-12)


def test_label_projection_auc_one():
    rng = np.random.default_rng(1)
    present = (rng.random(40) > 0.4).astype(int)
    direction = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    vectors = present[:, None] * direction[None] + 1e-3 * rng.normal(size=(40, 3))
    result = label_pca(vectors, present)
    assert result.auc == pytest.approx(1.0)
    assert result.projection[present == 1].min() > result.projection[present == 0].max()
    flipped = label_pca(-vectors, present)
    assert flipped.auc == pytest.approx(1.0)
    np.testing.assert_allclose(flipped.projection, result.projection, atol=1e-9)


def test_auc_large_projections():
    vectors = np.array([[100.0], [200.0], [300.0], [400.0]])
    result = label_pca(vectors, np.array([0, 1, 0, 1]))
    assert result.auc == pytest.approx(0.75)


def test_constant_label_signs_by_norm():
    rng = np.random.default_rng(2)
    scale = rng.uniform(0.5, 2.0, size=30)
    vectors = scale[:, None] * np.array([[0.0, 1.0]])
    for sign in (1.0, -1.0):
        result = label_pca(sign * vectors, np.ones(30, dtype=int))
        assert result.auc is None
        assert np.corrcoef(result.projection, scale)[0, 1] > 0.99


def test_spearman_monotone_truth():
    rng = np.random.default_rng(3)
    truth = rng.uniform(size=50)
    vectors = np.stack([np.exp(3 * truth), rng.normal(scale=1e-4, size=50)], axis=1)
    result = label_pca(vectors, (truth > 0.5).astype(int), truth_intensity=truth)
    assert result.spearman_truth == pytest.approx(1.0, abs=1e-6)
    assert label_pca(vectors, truth > 0.5).spearman_truth is None


def test_identical_vectors_nan_ratios():
    vectors = np.tile([0.1, 0.2, 0.3], (7, 1))
    result = label_pca(vectors, np.arange(7) % 2)
    assert np.isnan(result.explained_variance_ratio).all()
    assert result.auc == pytest.approx(0.5)


def test_pca_table_rows():
    rng = np.random.default_rng(4)
    labels = (rng.random((50, 2)) > 0.5).astype(np.uint8)
    embeddings = np.zeros((50, 2, 3))
    embeddings[:, 0, 0] = labels[:, 0] + 0.01 * rng.normal(size=50)
    rows = pca_table(embeddings, labels, ["a", "b"])
    assert [row["label"] for row in rows] == ["a", "b"]
    assert rows[0]["auc"] == pytest.approx(1.0)
    assert rows[0]["evr1"] == pytest.approx(1.0)
    assert rows[0]["evr2"] == pytest.approx(0.0, abs=1e-9)
    assert rows[1]["evr1"] is None  # vectors all zero
    assert rows[1]["spearman_truth"] is None
    assert set(rows[0]) == {"label", "evr1", "evr2", "auc", "spearman_truth"}


def test_rank_positions():
    projection = np.array([5.0, 1.0, 3.0, 9.0, 7.0, 0.0, 2.0])
    np.testing.assert_array_equal(rank_positions(projection, 3), [5, 2, 3])
    np.testing.assert_array_equal(rank_positions(projection, 2), [5, 3])
    assert len(rank_positions(projection, 50)) == 7


def test_bad_input_raises():
    with pytest.raises(DataError):
        label_pca(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(DataError):
        label_pca(np.zeros((5, 2)), np.zeros(5), truth_intensity=np.zeros(3))
    with pytest.raises(DataError):
        rank_positions(np.zeros(3), 0)
