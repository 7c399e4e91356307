"""The teacher: a convolutional multi-label classifier with one sigmoid output per label.

It supplies the probabilities that the Siamese model learns from (Karatsiolis and Kamilaris,
ICPRAM 2021, step 1), and it is the accuracy the linear probe is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from olr.models.trunk import TrunkConfig, build_trunk


@dataclass
class ClassifierConfig:
    """Teacher architecture.

    Attributes:
        trunk: the convolutional trunk.
        dropout: dropout before the output layer; 0.2 curbs overfitting on 10,000 images.
    """

    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    dropout: float = 0.2


class Classifier(nn.Module):
    """Trunk, global average pooling, dropout and a linear layer to L logits.

    Input (B, 3, H, W) floats in [0, 1]; output (B, L) logits (apply a sigmoid for probabilities).
    """

    def __init__(self, num_labels: int, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        self.trunk = build_trunk(self.config.trunk)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(self.config.dropout),
            nn.Linear(self.config.trunk.channels[-1], num_labels),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(images))
