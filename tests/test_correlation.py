"""Known-answer tests of the label-embedding correlation analysis."""

import math
import warnings

import numpy as np
import pytest

from olr.analysis.correlation import (
    PAPER_PAIRS,
    analyse_correlations,
    correlation_fidelity,
    embedding_norm_correlation,
    label_correlation,
    quoted_pairs,
)
from olr.errors import DataError


def _labels(rng, n=200, size=6):
    """Random correlated {0, 1} labels: each label thresholds a mix of shared factors."""
    factors = rng.normal(size=(n, 3))
    mixing = rng.normal(size=(3, size))
    return (factors @ mixing + 0.5 * rng.normal(size=(n, size)) > 0).astype(np.uint8)


def _norm_copies_labels(rng, labels, k=4):
    """Embeddings e_l = y_l * unit vector * a positive scale fixed per label."""
    units = rng.normal(size=(labels.shape[1], k))
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    scales = rng.uniform(0.2, 3.0, size=labels.shape[1])
    return labels[:, :, None] * units[None] * scales[None, :, None]


def test_norms_copy_labels():
    rng = np.random.default_rng(0)
    labels = _labels(rng)
    emb = embedding_norm_correlation(_norm_copies_labels(rng, labels))
    lab = label_correlation(labels)
    np.testing.assert_allclose(emb, lab, atol=1e-9)
    assert abs(correlation_fidelity(emb, lab) - 1.0) < 1e-9


def test_label_correlation_numpy():
    labels = _labels(np.random.default_rng(1))
    np.testing.assert_allclose(label_correlation(labels), np.corrcoef(labels.T), atol=1e-12)


def test_fidelity_anticorrelated():
    rng = np.random.default_rng(2)
    a = label_correlation(_labels(rng))
    negated = -a
    np.fill_diagonal(negated, 1.0)
    assert abs(correlation_fidelity(a, negated) + 1.0) < 1e-9


def test_fidelity_skips_nan_pairs():
    a = np.array([[1, 0.1, 0.2, 0.3], [0.1, 1, 0.4, 0.5], [0.2, 0.4, 1, 0.6], [0.3, 0.5, 0.6, 1]])
    b = a.copy()
    b[0, 1] = b[1, 0] = np.nan
    b[2, 3] = b[3, 2] = 5.0  # an outlier kept: the result is not 1
    assert correlation_fidelity(a, a) == pytest.approx(1.0)
    assert correlation_fidelity(a, b) < 0.99
    small = a[:3, :3].copy()
    small[0, 1] = small[1, 0] = np.nan
    assert math.isnan(correlation_fidelity(small, small))


def test_constant_label_nan_silently():
    rng = np.random.default_rng(3)
    labels = _labels(rng)
    embeddings = _norm_copies_labels(rng, labels)
    embeddings[:, 2] = 0.0  # label 2's vector is always zero
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corr = embedding_norm_correlation(embeddings)
    assert np.isnan(corr[2]).all()
    assert np.isnan(corr[:, 2]).all()
    others = [0, 1, 3, 4, 5]
    assert np.isfinite(corr[np.ix_(others, others)]).all()
    labels[:, 4] = 1
    assert np.isnan(label_correlation(labels)[4]).all()


def test_constant_nonzero_norm_is_nan():
    rng = np.random.default_rng(5)
    embeddings = rng.normal(size=(7, 3, 2))
    embeddings[:, 1] = [0.1, 0.2]  # the mean of seven equal norms is off by rounding
    corr = embedding_norm_correlation(embeddings)
    assert np.isnan(corr[1]).all()
    assert np.isfinite(corr[0, 2])


def test_quoted_pairs_entries():
    names = ["Male", "Attractive", "Big_Nose", "Smiling", "Heavy_Makeup"]
    emb = np.zeros((5, 5))
    lab = np.zeros((5, 5))
    emb[0, 2] = emb[2, 0] = 0.61
    lab[0, 2] = lab[2, 0] = 0.41
    emb[0, 4] = emb[4, 0] = -0.79
    emb[3, 1] = emb[1, 3] = 0.22
    lab[3, 1] = lab[1, 3] = 0.12
    pairs = quoted_pairs(emb, lab, names)
    assert [p["labels"] for p in pairs] == [
        ["Male", "Big_Nose"],
        ["Male", "Heavy_Makeup"],
        ["Smiling", "Attractive"],
    ]
    assert pairs[0] == {
        "labels": ["Male", "Big_Nose"],
        "embedding": 0.61,
        "label": 0.41,
        "paper": 0.6,
    }
    assert pairs[1]["embedding"] == -0.79
    assert pairs[1]["paper"] == -0.8
    assert pairs[2]["label"] == 0.12
    assert len(PAPER_PAIRS) == 9
    assert PAPER_PAIRS[1] == ("Wearing_Lipstick", "Attractive", 0.7)


def test_analyse_reordered_truth():
    rng = np.random.default_rng(4)
    labels = _labels(rng)
    names = [f"l{i}" for i in range(6)]
    truth = label_correlation(labels)
    order = [5, 3, 1, 0, 2, 4]
    shuffled = truth[np.ix_(order, order)]
    metrics, emb, lab = analyse_correlations(
        _norm_copies_labels(rng, labels), labels, names, shuffled, [names[i] for i in order]
    )
    assert metrics["truth"]["label_fidelity"] == pytest.approx(1.0)
    assert metrics["truth"]["embedding_fidelity"] == pytest.approx(1.0)
    assert metrics["fidelity"] == pytest.approx(1.0)
    assert metrics["pairs"] == []
    assert emb.shape == lab.shape == (6, 6)


def test_analyse_nan_as_none():
    names = ["Male", "Big_Nose", "x"]
    labels = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.uint8)
    embeddings = labels[:, :, None].astype(float)
    metrics, _, _ = analyse_correlations(embeddings, labels, names)
    assert metrics["fidelity"] is None  # only one finite pair
    assert metrics["pairs"][0]["embedding"] == pytest.approx(0.0)


def test_bad_shapes_raise():
    with pytest.raises(DataError):
        embedding_norm_correlation(np.zeros((4, 3)))
    with pytest.raises(DataError):
        label_correlation(np.full((4, 3), 2))
    with pytest.raises(DataError, match="label names"):
        analyse_correlations(np.zeros((4, 3, 2)), np.zeros((4, 3)), ["a", "b"])
