"""Known-answer tests of probe-versus-teacher disagreements."""

import numpy as np
import pytest

from olr.analysis.disagreement import disagreement_metrics, find_disagreements
from olr.errors import DataError

LABELS = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]])
TEACHER = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [1, 1, 0]])
PROBE = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 1], [1, 1, 0]])


def test_mask_hand_built():
    mask = find_disagreements(LABELS, TEACHER, PROBE)
    expected = np.array(
        [[True, False, False], [True, False, False], [False, True, True], [False, False, False]]
    )
    np.testing.assert_array_equal(mask, expected)


def test_counts():
    mask = find_disagreements(LABELS, TEACHER, PROBE)
    metrics = disagreement_metrics(mask, ["a", "b", "c"])
    assert metrics == {"per_label": {"a": 2, "b": 1, "c": 1}, "total": 4, "num_images": 4}


def test_flipped_precision_base_rate():
    mask = find_disagreements(LABELS, TEACHER, PROBE)
    flipped = np.zeros((4, 3), dtype=bool)
    flipped[0, 0] = flipped[2, 2] = True  # two disagreement cells
    flipped[3, 1] = True  # one flip the probe did not catch
    metrics = disagreement_metrics(mask, ["a", "b", "c"], flipped)
    assert metrics["flipped_precision"] == pytest.approx(2 / 4)
    assert metrics["flipped_base_rate"] == pytest.approx(3 / 12)
    assert metrics["flipped_recall"] == pytest.approx(2 / 3)


def test_no_disagreements():
    mask = np.zeros((2, 2), dtype=bool)
    metrics = disagreement_metrics(mask, ["a", "b"], np.zeros((2, 2), dtype=bool))
    assert metrics["total"] == 0
    assert metrics["flipped_precision"] is None
    assert metrics["flipped_recall"] is None
    assert metrics["flipped_base_rate"] == 0.0


def test_bad_input_raises():
    with pytest.raises(DataError, match="probe_pred"):
        find_disagreements(LABELS, TEACHER, PROBE[:2])
    with pytest.raises(DataError, match="0 and 1"):
        find_disagreements(LABELS, TEACHER, PROBE * 0.7)
    with pytest.raises(DataError):
        disagreement_metrics(np.zeros((2, 3), dtype=bool), ["a", "b"])
