"""Cells where the embedding probe is wrong and the teacher classifier is right.

Karatsiolis and Kamilaris, ICPRAM 2021, find that many test images the linear probe on the
embeddings gets wrong while the classifier gets right carry wrong or vague dataset labels. On
data with deliberately flipped labels this module measures that: the share of disagreement
cells that were flipped, beside the share of all cells that were flipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from olr.errors import DataError

logger = logging.getLogger(__name__)


def _binary(name: str, values: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """Check that `values` is a 2-D {0, 1} array of the given shape and return it as int8."""
    values = np.asarray(values)
    if values.ndim != 2 or (shape is not None and values.shape != shape):
        expected = "(N, L)" if shape is None else str(shape)
        raise DataError(f"invalid {name} shape {values.shape}: expected {expected}")
    if not np.isin(values, (0, 1)).all():
        raise DataError(f"{name} must contain only 0 and 1: threshold probabilities at 0.5 first")
    return values.astype(np.int8)


def find_disagreements(
    labels: np.ndarray, teacher_pred: np.ndarray, probe_pred: np.ndarray
) -> np.ndarray:
    """Mark the cells where the probe disagrees with the label and the teacher agrees with it.

    Args:
        labels: (N, L) {0, 1} dataset labels.
        teacher_pred: (N, L) {0, 1} predictions of the classifier that trained the embeddings.
        probe_pred: (N, L) {0, 1} predictions of the linear probe on the embeddings.

    Returns:
        (N, L) bool mask, True where probe_pred != labels and teacher_pred == labels.
    """
    labels = _binary("labels", labels, None)
    teacher = _binary("teacher_pred", teacher_pred, labels.shape)
    probe = _binary("probe_pred", probe_pred, labels.shape)
    return (probe != labels) & (teacher == labels)


def disagreement_metrics(
    mask: np.ndarray, label_names: Sequence[str], flipped: np.ndarray | None = None
) -> dict:
    """Count disagreements and, when the flipped cells are known, how many of them were flipped.

    Args:
        mask: (N, L) bool disagreement mask from `find_disagreements`.
        label_names: the L label names.
        flipped: optional (N, L) bool, True where the dataset label was deliberately flipped.

    Returns:
        {"per_label": {name: count}, "total": int, "num_images": N}; with `flipped` also
        "flipped_precision" (fraction of disagreement cells that were flipped, None without
        disagreements), "flipped_base_rate" (fraction of all cells that were flipped) and
        "flipped_recall" (fraction of flipped cells that are disagreements, None without flips).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.shape[1] != len(label_names):
        raise DataError(
            f"invalid mask shape {mask.shape}: expected (N, {len(label_names)}), a column per label"
        )
    counts = mask.sum(axis=0)
    metrics: dict = {
        "per_label": {name: int(count) for name, count in zip(label_names, counts, strict=True)},
        "total": int(mask.sum()),
        "num_images": int(mask.shape[0]),
    }
    if flipped is None:
        return metrics
    flipped = np.asarray(flipped, dtype=bool)
    if flipped.shape != mask.shape:
        raise DataError(
            f"invalid flipped shape {flipped.shape}: expected the mask shape {mask.shape}"
        )
    both = int((mask & flipped).sum())
    metrics["flipped_precision"] = both / metrics["total"] if metrics["total"] else None
    metrics["flipped_base_rate"] = float(flipped.mean())
    metrics["flipped_recall"] = both / int(flipped.sum()) if flipped.any() else None
    return metrics
