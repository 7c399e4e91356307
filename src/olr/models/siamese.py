"""The OLR Siamese embedding model: one k-dimensional vector per label per image.

Karatsiolis and Kamilaris (ICPRAM 2021), step 2. A convolutional trunk feeds a label-specific
convolution with L x k output maps, one group of k maps per label. Global average pooling of each
map and a reshape give (batch, label, dim). Dot products of the same label's vectors of two
images are trained to match the probability that the label is present in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from olr.errors import OlrError
from olr.models.trunk import TrunkConfig, build_trunk

ACTIVATIONS = ("relu", "softplus", "none")
NORMS = ("batch", "none")


@dataclass
class SiameseConfig:
    """Siamese model settings.

    Attributes:
        trunk: the convolutional trunk before the label layer.
        dim: k, the size of each label vector; Karatsiolis and Kamilaris use 32.
        label_kernel: kernel size of the label-specific convolution.
        label_norm: ``"batch"`` normalises the L*k maps before the activation, with a learnable
            gain (``norm_gain``). Without it (and without ``scale_by_sqrt_dim``), 30% of the
            label vectors of a CelebA run were exactly zero after two epochs, because a map
            pushed below zero gets no gradient through the ReLU.
        norm_gain: initial gain of that normalisation.
        activation: ``"relu"`` (vectors are non-negative, absent labels can reach exactly zero),
            ``"softplus"`` or ``"none"``.
        scale_by_sqrt_dim: divide vectors by sqrt(k), so dot products start near the [0, 1]
            range of the targets instead of k times above it.
    """

    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    dim: int = 32
    label_kernel: int = 3
    label_norm: str = "batch"
    norm_gain: float = 1.0
    activation: str = "relu"
    scale_by_sqrt_dim: bool = True


class SiameseEmbedder(nn.Module):
    """Map images (B, 3, H, W) in [0, 1] to label embeddings (B, L, k)."""

    def __init__(self, num_labels: int, config: SiameseConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SiameseConfig()
        if config.activation not in ACTIVATIONS:
            raise OlrError(
                f"unknown label activation {config.activation!r}; use one of {ACTIVATIONS}"
            )
        if config.label_norm not in NORMS:
            raise OlrError(f"unknown label norm {config.label_norm!r}; use one of {NORMS}")
        self.num_labels = num_labels
        self.dim = config.dim
        self.trunk = build_trunk(config.trunk)
        maps = num_labels * config.dim
        self.label_conv = nn.Conv2d(
            config.trunk.channels[-1], maps, config.label_kernel, padding=config.label_kernel // 2
        )
        self.label_norm = nn.BatchNorm2d(maps) if config.label_norm == "batch" else nn.Identity()
        if config.label_norm == "batch":
            nn.init.constant_(self.label_norm.weight, config.norm_gain)
        self.activation = {
            "relu": nn.ReLU(),
            "softplus": nn.Softplus(),
            "none": nn.Identity(),
        }[config.activation]
        self.output_scale = 1.0 / math.sqrt(config.dim) if config.scale_by_sqrt_dim else 1.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.trunk(images)
        maps = self.activation(self.label_norm(self.label_conv(features)))  # (B, L*k, f, f)
        pooled = maps.mean(dim=(2, 3))  # (B, L*k)
        # Map j*k .. (j+1)*k - 1 belongs to label j: (B, L*k) -> (B, L, k).
        return pooled.view(-1, self.num_labels, self.dim) * self.output_scale


def pairwise_label_dot(embeddings_a: torch.Tensor, embeddings_b: torch.Tensor) -> torch.Tensor:
    """Return u_l = <e_l(a), e_l(b)> for each pair and label: (B, L, k) x 2 -> (B, L)."""
    return (embeddings_a * embeddings_b).sum(dim=-1)


def olr_loss(embeddings_a: torch.Tensor, embeddings_b: torch.Tensor, targets: torch.Tensor):
    """Mean squared error between row-wise dot products and the joint targets.

    Args:
        embeddings_a, embeddings_b: (B, L, k) embeddings of the two images of each pair.
        targets: (B, L) joint probabilities t = p(a) * p(b).

    Returns:
        Scalar tensor: mean over batch and labels of (u - t)^2.
    """
    return torch.mean((pairwise_label_dot(embeddings_a, embeddings_b) - targets) ** 2)
