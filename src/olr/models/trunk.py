"""The convolutional trunk shared in shape by the teacher classifier and the Siamese model."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class TrunkConfig:
    """Shape of a plain VGG-style trunk of 3x3 convolutions in stages.

    Each stage ends in a 2x2 max-pool that halves the map.

    Attributes:
        channels: output channels of each stage; four stages take 64 x 64 input to 4 x 4 maps,
            six take 178 x 178 to 2 x 2.
        convs_per_stage: 3x3 convolutions per stage; one is enough at 64 x 64 on a CPU, two is the
            usual VGG choice on a GPU.
        batch_norm: batch normalisation after each convolution, for stable training at lr 1e-3.
    """

    channels: tuple[int, ...] = (32, 64, 128, 256)
    convs_per_stage: int = 1
    batch_norm: bool = True


def conv_block(in_channels: int, out_channels: int, batch_norm: bool) -> list[nn.Module]:
    """Return a 3x3 'same' convolution, optional batch norm and ReLU as a list of layers."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return layers


def build_trunk(config: TrunkConfig, in_channels: int = 3) -> nn.Sequential:
    """Build the trunk: ``len(config.channels)`` stages, each followed by a 2x2 max-pool.

    Input (B, 3, H, W) in [0, 1]; output (B, channels[-1], H / 2^stages, W / 2^stages) (floored).
    """
    layers: list[nn.Module] = []
    previous = in_channels
    for out_channels in config.channels:
        for _ in range(config.convs_per_stage):
            layers += conv_block(previous, out_channels, config.batch_norm)
            previous = out_channels
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)
