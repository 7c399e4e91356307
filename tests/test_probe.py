"""Tests of the linear probe, accuracy bookkeeping and the majority baseline."""

import numpy as np
import pytest

from olr.analysis.probe import fit_probe, label_accuracy, majority_predictions
from olr.errors import OlrError


def _separable(n: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 3)).astype(np.uint8)
    # Label l's vector points one way when present and the other way when absent, plus noise.
    embeddings = (labels[:, :, None] * 2.0 - 1.0) * np.ones((1, 1, 4))
    embeddings = embeddings + 0.1 * rng.standard_normal((n, 3, 4))
    return embeddings.astype(np.float32), labels


def test_probe_on_separable_embeddings_is_near_perfect():
    train_x, train_y = _separable(300, 0)
    val_x, val_y = _separable(100, 1)
    test_x, test_y = _separable(200, 2)
    probe = fit_probe(train_x, train_y, val_x, val_y, l2_values=(1e-4, 1e-2), max_iter=100)
    accuracy = label_accuracy(probe.probabilities(test_x) >= 0.5, test_y, ["a", "b", "c"])
    assert accuracy["mean_accuracy"] > 0.99
    assert set(accuracy["per_label"]) == {"a", "b", "c"}


def test_probe_on_noise_is_near_chance():
    rng = np.random.default_rng(0)
    train_x = rng.standard_normal((400, 2, 3)).astype(np.float32)
    train_y = rng.integers(0, 2, size=(400, 2)).astype(np.uint8)
    test_x = rng.standard_normal((400, 2, 3)).astype(np.float32)
    test_y = rng.integers(0, 2, size=(400, 2)).astype(np.uint8)
    probe = fit_probe(train_x, train_y, max_iter=50)
    accuracy = label_accuracy(probe.probabilities(test_x) >= 0.5, test_y, ["a", "b"])
    assert 0.4 < accuracy["mean_accuracy"] < 0.6


def test_label_accuracy_known_values():
    predictions = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    labels = np.array([[1, 0], [0, 1], [0, 1], [0, 1]])
    accuracy = label_accuracy(predictions, labels, ["x", "y"])
    assert accuracy["per_label"] == {"x": 0.75, "y": 0.75}
    assert accuracy["mean_accuracy"] == 0.75


def test_label_accuracy_rejects_shape_mismatch():
    with pytest.raises(OlrError, match="shape"):
        label_accuracy(np.zeros((2, 2)), np.zeros((2, 3)), ["a", "b", "c"])


def test_majority_predicts_most_frequent_train_value():
    train = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1]])
    predictions = majority_predictions(train, 2)
    assert predictions.tolist() == [[1, 0, 1], [1, 0, 1]]


def test_constant_feature_does_not_break_scaling():
    train_x, train_y = _separable(200, 3)
    train_x[:, 0, :] = 0.0  # an always-zero label vector, as a collapsed label gives
    probe = fit_probe(train_x, train_y, max_iter=50)
    assert np.isfinite(probe.probabilities(train_x)).all()
