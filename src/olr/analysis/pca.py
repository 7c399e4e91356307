"""Principal component analysis of one label's vectors across images.

Karatsiolis and Kamilaris, ICPRAM 2021, run PCA on the Mouth_Slightly_Open vectors of all images:
the first component explains 67.5% of the variance and the projection on it orders the faces
from closed to open mouth. Here the components come from an SVD of the centred vectors. The
ordering is scored with the ROC AUC against the label and, on synthetic data, with the Spearman
correlation against the true intensity.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional import spearman_corrcoef
from torchmetrics.functional.classification import binary_auroc

from olr.analysis.inputs import check_label_embeddings
from olr.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class PcaResult:
    """Result of the PCA of one label's vectors.

    Attributes:
        explained_variance_ratio: variance of each of the first C components over the total
            variance of all k components, with C = min(num_components, k). NaN when the vectors do
            not vary at all.
        components: (C, k) unit principal axes, strongest first (zero rows past the data's rank
            when there are fewer images than dimensions).
        projection: (N,) projection of each centred vector on the first component, signed so
            that higher means the label is present.
        auc: ROC AUC of `projection` against the label, or None when the label is constant.
        spearman_truth: Spearman correlation of `projection` with the true intensity, or None
            when no truth is given or the truth is constant.
    """

    explained_variance_ratio: list[float]
    components: np.ndarray
    projection: np.ndarray
    auc: float | None
    spearman_truth: float | None


def _svd(centred: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (variance ratios, components) of the first `count` axes of centred (N, k) data."""
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    total = variance.sum()
    ratios = np.full(count, math.nan) if total <= 0 else np.zeros(count)
    components = np.zeros((count, centred.shape[1]))
    available = min(count, len(singular))
    if total > 0:
        ratios[:available] = variance[:available] / total
    components[:available] = vt[:available]
    return ratios, components


def _sign_towards_present(
    projection: np.ndarray, present: np.ndarray, vectors: np.ndarray
) -> float:
    """Return +1 or -1 so that the signed projection is higher for images with the label.

    A constant label gives no such direction, so the sign then makes the projection correlate
    positively with the vector norm, which the training target ties to the label's presence.
    """
    if present.min() != present.max():
        return 1.0 if projection[present].mean() >= projection[~present].mean() else -1.0
    norms = np.linalg.norm(vectors, axis=1)
    covariance = np.mean((projection - projection.mean()) * (norms - norms.mean()))
    return 1.0 if covariance >= 0 else -1.0


def _auroc(projection: np.ndarray, present: np.ndarray) -> float:
    """Compute the ROC AUC of a projection against the label with torchmetrics."""
    # binary_auroc passes scores outside [0, 1] through a sigmoid, which saturates to ties for
    # large projections. A min-max rescale keeps the order and avoids that.
    spread = np.ptp(projection)
    scores = (projection - projection.min()) / spread if spread > 0 else np.zeros_like(projection)
    return float(binary_auroc(torch.from_numpy(scores), torch.from_numpy(present).long()))


def _spearman(projection: np.ndarray, truth: np.ndarray) -> float | None:
    """Compute the Spearman correlation with torchmetrics, or None when either side is constant."""
    if np.ptp(truth) == 0 or np.ptp(projection) == 0:
        logger.warning("truth intensity or projection is constant, so Spearman is undefined")
        return None
    value = spearman_corrcoef(torch.from_numpy(projection), torch.from_numpy(truth))
    return float(value)


def label_pca(
    vectors: np.ndarray,
    present: np.ndarray,
    num_components: int = 5,
    truth_intensity: np.ndarray | None = None,
) -> PcaResult:
    """Run PCA on one label's vectors and score it against the label and an optional truth.

    Args:
        vectors: (N, k) vectors of one label, one row per image.
        present: (N,) {0, 1} label of each image.
        num_components: number of leading components to keep.
        truth_intensity: optional (N,) true strength of the attribute (synthetic data).

    Returns:
        A `PcaResult`.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    present = np.asarray(present)
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise DataError(f"invalid vectors shape {vectors.shape}: expected (N, k) with N >= 2")
    if present.shape != (vectors.shape[0],) or not np.isin(present, (0, 1)).all():
        raise DataError(f"present must be ({vectors.shape[0]},) of 0/1, got shape {present.shape}")
    if num_components < 1:
        raise DataError(f"num_components must be at least 1, got {num_components}")
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    # Zero constant dimensions exactly: rounding in the mean would leave a residue as variance.
    centred[:, np.ptp(vectors, axis=0) == 0] = 0.0
    ratios, components = _svd(centred, min(num_components, vectors.shape[1]))
    if math.isnan(ratios[0]):
        logger.warning(
            "label vectors are identical for all %d images, so PCA is undefined", len(vectors)
        )
    present = present.astype(bool)
    projection = centred @ components[0]
    sign = _sign_towards_present(projection, present, vectors)
    projection, components = projection * sign, components.copy()
    components[0] *= sign
    auc = None
    if present.min() != present.max():
        auc = _auroc(projection, present)
    spearman = None
    if truth_intensity is not None:
        truth = np.asarray(truth_intensity, dtype=np.float64)
        if truth.shape != projection.shape:
            raise DataError(
                f"truth_intensity must have shape {projection.shape}, got {truth.shape}"
            )
        spearman = _spearman(projection, truth)
    return PcaResult([float(r) for r in ratios], components, projection, auc, spearman)


def _finite_or_none(value: float | None) -> float | None:
    """Return None for missing or NaN values so that rows are JSON-safe."""
    return None if value is None or not math.isfinite(value) else float(value)


def pca_table(
    embeddings: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    truth_intensities: np.ndarray | None = None,
) -> list[dict]:
    """Run `label_pca` for every label.

    Args:
        embeddings: (N, L, k) embeddings, axes (image, label, dim).
        labels: (N, L) {0, 1} labels.
        label_names: the L label names.
        truth_intensities: optional (N, L) true attribute intensities.

    Returns:
        One JSON-safe row per label: {"label", "evr1", "evr2", "auc", "spearman_truth"}. evr2 is
        None when k = 1.
    """
    embeddings, labels = check_label_embeddings(embeddings, labels, label_names)
    if truth_intensities is not None and np.shape(truth_intensities) != labels.shape:
        raise DataError(
            f"truth_intensities must have shape {labels.shape}, got {np.shape(truth_intensities)}"
        )
    rows = []
    for index, name in enumerate(label_names):
        truth = None if truth_intensities is None else np.asarray(truth_intensities)[:, index]
        result = label_pca(embeddings[:, index], labels[:, index], 2, truth)
        ratios = result.explained_variance_ratio
        rows.append(
            {
                "label": name,
                "evr1": _finite_or_none(ratios[0]),
                "evr2": _finite_or_none(ratios[1]) if len(ratios) > 1 else None,
                "auc": _finite_or_none(result.auc),
                "spearman_truth": _finite_or_none(result.spearman_truth),
            }
        )
    return rows


def rank_positions(projection: np.ndarray, count: int) -> np.ndarray:
    """Pick the images at evenly spaced rank positions, lowest projection first.

    Args:
        projection: (N,) projection values.
        count: number of images to pick. When it exceeds N, every image is returned once, in
            rank order.

    Returns:
        (min(count, N),) int64 indices into `projection`, first the lowest and last the highest.
    """
    projection = np.asarray(projection)
    if projection.ndim != 1 or len(projection) == 0:
        raise DataError(
            f"invalid projection shape {projection.shape}: expected a non-empty (N,) array"
        )
    if count < 1:
        raise DataError(f"count must be at least 1, got {count}")
    order = np.argsort(projection, kind="stable")
    count = min(count, len(order))
    positions = np.round(np.linspace(0, len(order) - 1, count)).astype(np.int64)
    return order[positions]
