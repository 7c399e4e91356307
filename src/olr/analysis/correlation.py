"""Label-to-label Pearson correlations of embedding norms and of dataset labels.

Karatsiolis and Kamilaris, ICPRAM 2021, take for every image the norm of each label's vector and
report the Pearson correlation of these norms across images for a few label pairs. This module
computes the full (L, L) table and the same table for the binary labels. It also measures how
closely the two agree: the correlation of their off-diagonal entries, called fidelity here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from olr.analysis.inputs import check_label_embeddings
from olr.errors import DataError

logger = logging.getLogger(__name__)

#: Label pairs and the correlation of their embedding norms reported by Karatsiolis and Kamilaris.
PAPER_PAIRS: tuple[tuple[str, str, float], ...] = (
    ("Big_Lips", "Attractive", 0.3),
    ("Wearing_Lipstick", "Attractive", 0.7),
    ("Bald", "Attractive", -0.2),
    ("Double_Chin", "Gray_Hair", 0.5),
    ("Young", "Bald", -0.3),
    ("High_Cheekbones", "Attractive", 0.3),
    ("Male", "Big_Nose", 0.6),
    ("Male", "Heavy_Makeup", -0.8),
    ("Smiling", "Attractive", 0.2),
)


def _pearson_columns(values: np.ndarray) -> np.ndarray:
    """Correlate the columns of a (N, L) matrix (Pearson), giving NaN for constant columns."""
    # Test constancy exactly (max == min): the mean of equal floats can differ from them by
    # rounding, and dividing that residue by its own tiny norm would fake a correlation.
    constant = np.ptp(values, axis=0) == 0
    centred = values - values.mean(axis=0, keepdims=True)
    centred[:, constant] = 0.0
    scale = np.sqrt((centred**2).sum(axis=0))
    normalised = centred / np.where(constant, 1.0, scale)
    corr = normalised.T @ normalised
    corr[constant, :] = np.nan
    corr[:, constant] = np.nan
    return np.clip(corr, -1.0, 1.0)


def embedding_norm_correlation(embeddings: np.ndarray) -> np.ndarray:
    """Compute the Pearson correlation across images of the per-label vector norms.

    Args:
        embeddings: (N, L, k) float array, axes (image, label, dim).

    Returns:
        (L, L) float64 correlation matrix. A label whose vector norm is the same for every image
        (for example a vector that is always zero) has no defined correlation: its row and column,
        diagonal included, are NaN.
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 3:
        raise DataError(
            f"invalid embeddings shape {embeddings.shape}: expected (N, L, k), one (L, k) "
            "matrix per image"
        )
    if embeddings.shape[0] < 2:
        raise DataError(f"need at least 2 images to correlate, got {embeddings.shape[0]}")
    norms = np.linalg.norm(embeddings.astype(np.float64), axis=2)
    return _pearson_columns(norms)


def label_correlation(labels: np.ndarray) -> np.ndarray:
    """Compute the Pearson correlation across images between binary labels.

    Args:
        labels: (N, L) array of {0, 1}.

    Returns:
        (L, L) float64 correlation matrix. A label with the same value on every image gives a NaN
        row and column.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise DataError(f"invalid labels shape {labels.shape}: expected (N, L)")
    if labels.shape[0] < 2:
        raise DataError(f"need at least 2 images to correlate, got {labels.shape[0]}")
    if not np.isin(labels, (0, 1)).all():
        raise DataError("labels must contain only 0 and 1: convert -1/1 labels to 0/1 first")
    return _pearson_columns(labels.astype(np.float64))


def correlation_fidelity(a: np.ndarray, b: np.ndarray) -> float:
    """Compute the Pearson correlation between the upper-triangle entries of two matrices.

    Args:
        a: (L, L) matrix.
        b: (L, L) matrix, same label order as `a`.

    Returns:
        The correlation over label pairs (i < j) where both entries are finite. NaN when fewer
        than 3 such pairs exist or when either set of entries is constant.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape:
        raise DataError(f"need two square matrices of the same shape, got {a.shape} and {b.shape}")
    rows, cols = np.triu_indices(a.shape[0], k=1)
    x, y = a[rows, cols], b[rows, cols]
    valid = np.isfinite(x) & np.isfinite(y)
    if valid.sum() < 3:
        return math.nan
    corr = _pearson_columns(np.stack([x[valid], y[valid]], axis=1))
    return float(corr[0, 1])


def quoted_pairs(
    embedding_corr: np.ndarray, label_corr: np.ndarray, label_names: Sequence[str]
) -> list[dict]:
    """Look up the paper's label pairs in the embedding and label correlation matrices.

    Args:
        embedding_corr: (L, L) correlation of embedding norms.
        label_corr: (L, L) correlation of labels.
        label_names: the L label names, in matrix order.

    Returns:
        One dict per entry of `PAPER_PAIRS` whose two labels are both in `label_names`, in
        `PAPER_PAIRS` order: {"labels": [a, b], "embedding": float, "label": float,
        "paper": float}. Entries may be NaN where a label is constant.
    """
    index = {name: i for i, name in enumerate(label_names)}
    pairs = []
    for first, second, paper in PAPER_PAIRS:
        if first not in index or second not in index:
            continue
        i, j = index[first], index[second]
        pairs.append(
            {
                "labels": [first, second],
                "embedding": float(embedding_corr[i, j]),
                "label": float(label_corr[i, j]),
                "paper": paper,
            }
        )
    return pairs


def _json_safe(value):
    """Replace NaN and infinite floats by None, recursively, so that json.dump writes valid JSON."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _align_truth(
    true_correlation: np.ndarray, truth_label_names: Sequence[str] | None, label_names: list[str]
) -> np.ndarray:
    """Reorder a ground-truth (M, M) correlation matrix to the order of `label_names`."""
    true_correlation = np.asarray(true_correlation, dtype=np.float64)
    if truth_label_names is None:
        if true_correlation.shape != (len(label_names), len(label_names)):
            raise DataError(
                f"true correlation has shape {true_correlation.shape} but there are "
                f"{len(label_names)} labels; pass truth_label_names to reorder it"
            )
        return true_correlation
    index = {name: i for i, name in enumerate(truth_label_names)}
    missing = [name for name in label_names if name not in index]
    if missing:
        raise DataError(f"true correlation is missing labels {missing}: it must cover every label")
    order = [index[name] for name in label_names]
    return true_correlation[np.ix_(order, order)]


def analyse_correlations(
    embeddings: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    true_correlation: np.ndarray | None = None,
    truth_label_names: Sequence[str] | None = None,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Compute both correlation tables, their fidelity and the paper's quoted pairs.

    Args:
        embeddings: (N, L, k) embeddings, axes (image, label, dim).
        labels: (N, L) {0, 1} labels of the same images.
        label_names: the L label names.
        true_correlation: optional (M, M) correlation of the generating factors (synthetic data).
        truth_label_names: names of the rows of `true_correlation`. None means the order of
            `label_names`.

    Returns:
        (metrics, embedding_corr, label_corr): metrics is JSON-safe (NaN written as None) with
        keys "fidelity", "pairs" and, when a true matrix is given, "truth" with
        "embedding_fidelity" and "label_fidelity".
    """
    label_names = list(label_names)
    embeddings, labels = check_label_embeddings(embeddings, labels, label_names)
    embedding_corr = embedding_norm_correlation(embeddings)
    label_corr = label_correlation(labels)
    metrics: dict = {
        "fidelity": correlation_fidelity(embedding_corr, label_corr),
        "pairs": quoted_pairs(embedding_corr, label_corr, label_names),
    }
    if true_correlation is not None:
        truth = _align_truth(true_correlation, truth_label_names, label_names)
        metrics["truth"] = {
            "embedding_fidelity": correlation_fidelity(embedding_corr, truth),
            "label_fidelity": correlation_fidelity(label_corr, truth),
        }
    constant = int(np.isnan(np.diag(embedding_corr)).sum())
    if constant:
        logger.warning(
            "%d label(s) have a constant vector norm, so their correlations are NaN", constant
        )
    return _json_safe(metrics), embedding_corr, label_corr
