"""Validation of the (embeddings, labels, label names) triple that every analysis takes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from olr.errors import DataError


def check_label_embeddings(
    embeddings, labels, label_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Return embeddings and labels as arrays after checking that their shapes agree.

    Args:
        embeddings: (N, L, k) array-like, (image, label, dim).
        labels: (N, L) array-like of {0, 1}.
        label_names: L names.

    Raises:
        DataError: when the shapes or the number of names do not match.
    """
    embeddings, labels = np.asarray(embeddings), np.asarray(labels)
    if embeddings.ndim != 3 or labels.shape != embeddings.shape[:2]:
        raise DataError(
            f"embeddings {embeddings.shape} and labels {labels.shape} must be (N, L, k) and (N, L)"
        )
    if len(label_names) != labels.shape[1]:
        raise DataError(
            f"got {len(label_names)} label names for {labels.shape[1]} labels: pass one per column"
        )
    return embeddings, labels
