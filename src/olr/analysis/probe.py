"""Linear probe on flattened label embeddings, and the majority-class baseline.

Karatsiolis and Kamilaris (ICPRAM 2021), step 3: one layer of L sigmoid units trained on the
flattened (L * k) embeddings of the training set and tested on the test set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from olr.errors import OlrError

logger = logging.getLogger(__name__)


def label_accuracy(predictions: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
    """Return ``{"mean_accuracy", "per_label": {name: accuracy}}`` of (N, L) 0/1 predictions."""
    if predictions.shape != labels.shape:
        raise OlrError(f"prediction shape {predictions.shape} != label shape {labels.shape}")
    per_label = (np.asarray(predictions) == np.asarray(labels)).mean(axis=0)
    return {
        "mean_accuracy": float(per_label.mean()),
        "per_label": {name: float(value) for name, value in zip(label_names, per_label)},
    }


def majority_predictions(train_labels: np.ndarray, count: int) -> np.ndarray:
    """Predict each label's most frequent training value for ``count`` images: (count, L) uint8."""
    majority = (np.asarray(train_labels).mean(axis=0) >= 0.5).astype(np.uint8)
    return np.broadcast_to(majority, (count, majority.shape[0])).copy()


@dataclass
class LinearProbe:
    """A fitted probe: feature standardisation plus one linear layer.

    Attributes:
        mean, std: (D,) per-feature statistics of the training embeddings.
        layer: nn.Linear(D, L).
        l2: the L2 penalty chosen on validation.
    """

    mean: torch.Tensor
    std: torch.Tensor
    layer: nn.Linear
    l2: float

    @torch.no_grad()
    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Return (N, L) probabilities for (N, L, k) embeddings."""
        features = torch.from_numpy(np.asarray(embeddings, dtype=np.float32)).flatten(1)
        return torch.sigmoid(self.layer((features - self.mean) / self.std)).numpy()


def _fit_layer(features: torch.Tensor, labels: torch.Tensor, l2: float, max_iter: int) -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(features.shape[1], labels.shape[1])
    optimizer = torch.optim.LBFGS(
        layer.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(layer(features), labels)
        loss = loss + l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return layer


def fit_probe(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    val_embeddings: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    l2_values: tuple[float, ...] = (1e-4, 1e-3, 1e-2),
    max_iter: int = 200,
) -> LinearProbe:
    """Fit the linear probe with L-BFGS, choosing the L2 penalty on the validation split.

    Args:
        train_embeddings: (N, L, k) training embeddings.
        train_labels: (N, L) {0, 1}.
        val_embeddings, val_labels: validation split for the L2 choice; without it the first
            value of ``l2_values`` is used.
        l2_values: candidate penalties on the squared weights.
        max_iter: L-BFGS iterations.

    Returns:
        The LinearProbe with the best validation accuracy.
    """
    features = torch.from_numpy(np.asarray(train_embeddings, dtype=np.float32)).flatten(1)
    targets = torch.from_numpy(np.asarray(train_labels, dtype=np.float32))
    mean = features.mean(dim=0)
    # A constant feature (an always-zero vector entry) gets std 1 so it stays 0 after scaling.
    std = features.std(dim=0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    scaled = (features - mean) / std
    if val_embeddings is None or len(val_embeddings) == 0:
        l2_values = l2_values[:1]
    best: LinearProbe | None = None
    best_accuracy = -1.0
    for l2 in l2_values:
        probe = LinearProbe(mean, std, _fit_layer(scaled, targets, l2, max_iter), l2)
        if len(l2_values) == 1:
            return probe
        predictions = probe.probabilities(val_embeddings) >= 0.5
        accuracy = float((predictions == np.asarray(val_labels).astype(bool)).mean())
        logger.info("probe l2=%g validation accuracy %.4f", l2, accuracy)
        if accuracy > best_accuracy:
            best, best_accuracy = probe, accuracy
    return best
