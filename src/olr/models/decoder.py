"""Reconstruction decoder from label embeddings to images, and an autoencoder with the same head.

The layer pattern is the reconstruction decoder of Karatsiolis and Kamilaris, ICPRAM 2021. A dense
layer feeds a 6 x 6 x 512 map, and five stride-2 transposed convolutions follow, each with a 3 x 3
convolution after it. One of those is "valid" and trims 24 to 22 pixels. A 3-channel output
convolution, ReLU after every layer and a per-image min-max rescale finish it, so a 178-pixel input
gives a 176-pixel output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from olr.errors import OlrError

KERNEL_SIZE = 3  # every convolution in the paper's decoder table is 3 x 3
VALID_TRIM = KERNEL_SIZE - 1  # pixels a "valid" 3 x 3 convolution removes from each side length
MIN_IMAGE_SIZE = 16  # below this the stack has fewer than two upsampling stages
OUTPUT_ACTIVATIONS = ("relu", "none")


@dataclass
class DecoderConfig:
    """Widths and options of the decoder; defaults reproduce the paper's table."""

    width: int = 512  # channels of the dense layer's reshaped map (6 x 6 x 512 in the paper)
    first_channels: int = 128  # the first transposed convolution outputs 128 maps in the paper
    channels: int = 64  # every later layer of the table has 64 maps
    last_channels: int = 32  # the convolution before the output layer has 32 maps
    out_channels: int = 3  # RGB
    min_base_size: int = 4  # smallest base map; the paper's 6 x 6 base is the 178-pixel case
    output_activation: str = "relu"  # the paper states "All activations are ReLU"; "none" is linear
    rescale_eps: float = 1e-8  # keeps the min-max rescale finite on a constant image


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a decoder plan.

    Attributes:
        kind: "dense", "reshape", "conv_transpose", "conv" or "output".
        out_size: side length of the output map in pixels (None for "dense").
        channels: output channels (output features for "dense").
        kernel: kernel side length (0 for "dense" and "reshape").
        stride: convolution stride (0 for "dense" and "reshape").
        padding: "same" or "valid" ("" for "dense" and "reshape").
        output_padding: PyTorch output_padding of a transposed convolution: 1 doubles the size,
            0 gives 2 * size - 1 (used once to reach an odd output size).
    """

    kind: str
    out_size: int | None
    channels: int
    kernel: int = 0
    stride: int = 0
    padding: str = ""
    output_padding: int = 0


def _stage_count(target: int, min_base_size: int) -> int:
    """Return the largest number of doublings whose base map is at least min_base_size pixels."""
    stages = 1
    while math.ceil(target / 2 ** (stages + 1)) >= min_base_size:
        stages += 1
    return stages


def _valid_stages(deficit: int, stages: int) -> list[bool]:
    """Choose the stages whose convolution is "valid" so that they remove `deficit` pixels.

    A valid convolution after stage i (1-based) removes VALID_TRIM pixels that the later
    doublings multiply by 2 ** (stages - i), so the deficit is written in that binary basis.
    """
    assert deficit % VALID_TRIM == 0
    assert deficit < VALID_TRIM * 2**stages
    units = deficit // VALID_TRIM
    return [bool(units >> (stages - i) & 1) for i in range(1, stages + 1)]


def decoder_plan(image_size: int, config: DecoderConfig | None = None) -> list[LayerSpec]:
    """Describe the decoder layers whose output is (image_size - 2) pixels square.

    The base map is the deepest one (most doublings) with at least `config.min_base_size` pixels.
    Stride-2 "same" transposed convolutions double the size, and "valid" convolutions (-2 pixels)
    are placed to remove the excess exactly. An odd target size uses output_padding 0 on the last
    transposed convolution. For 178 this is the paper's table layer by layer.

    Args:
        image_size: input image side length S in pixels; the output is S - 2.
        config: channel widths; defaults to DecoderConfig().

    Returns:
        LayerSpec list: "dense", "reshape", then per stage "conv_transpose" and "conv", then
        "output".

    Raises:
        OlrError: if image_size is below 16.
    """
    config = config or DecoderConfig()
    if image_size < MIN_IMAGE_SIZE:
        raise OlrError(
            f"image size {image_size} is too small for the decoder: use at least {MIN_IMAGE_SIZE}"
        )
    target = image_size - 2
    odd = target % 2 == 1
    even_target = target + 1 if odd else target
    stages = _stage_count(even_target, config.min_base_size)
    base = math.ceil(even_target / 2**stages)
    valid = _valid_stages(base * 2**stages - even_target, stages)

    plan = [
        LayerSpec("dense", None, config.width * base * base),
        LayerSpec("reshape", base, config.width),
    ]
    size = base
    for stage in range(stages):
        last = stage == stages - 1
        output_padding = 0 if (odd and last) else 1
        size = 2 * size - 1 + output_padding
        up_channels = config.first_channels if stage == 0 else config.channels
        plan.append(
            LayerSpec("conv_transpose", size, up_channels, KERNEL_SIZE, 2, "same", output_padding)
        )
        padding = "valid" if valid[stage] else "same"
        size -= VALID_TRIM if valid[stage] else 0
        conv_channels = config.last_channels if last else config.channels
        plan.append(LayerSpec("conv", size, conv_channels, KERNEL_SIZE, 1, padding))
    plan.append(LayerSpec("output", size, config.out_channels, KERNEL_SIZE, 1, "same"))
    assert size == target
    return plan


def _conv_layer(spec: LayerSpec, in_channels: int) -> nn.Module:
    """Build the PyTorch layer for one convolution entry of a plan."""
    pad = KERNEL_SIZE // 2 if spec.padding == "same" else 0
    if spec.kind == "conv_transpose":
        return nn.ConvTranspose2d(
            in_channels,
            spec.channels,
            spec.kernel,
            stride=spec.stride,
            padding=pad,
            output_padding=spec.output_padding,
        )
    return nn.Conv2d(in_channels, spec.channels, spec.kernel, stride=spec.stride, padding=pad)


def rescale_min_max(images: torch.Tensor, eps: float) -> torch.Tensor:
    """Rescale each image to [0, 1] by (x - min) / (max - min + eps) over all pixels and channels.

    Args:
        images: (B, C, H, W) float.
        eps: added to the range so that a constant image maps to zeros instead of NaN.

    Returns:
        (B, C, H, W) float in [0, 1].
    """
    flat = images.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return (images - low) / (high - low + eps)


class DecoderHead(nn.Module):
    """Decoder from a flat feature vector (B, F) to images (B, 3, S - 2, S - 2)."""

    def __init__(self, in_features: int, image_size: int, config: DecoderConfig | None = None):
        super().__init__()
        self.config = config or DecoderConfig()
        if self.config.output_activation not in OUTPUT_ACTIVATIONS:
            raise OlrError(
                f"invalid decoder output_activation {self.config.output_activation!r}: "
                f"use one of {OUTPUT_ACTIVATIONS}"
            )
        self.plan = decoder_plan(image_size, self.config)
        dense, reshape = self.plan[0], self.plan[1]
        self.base_shape = (reshape.channels, reshape.out_size, reshape.out_size)
        self.dense = nn.Linear(in_features, dense.channels)
        layers: list[nn.Module] = []
        in_channels = reshape.channels
        for spec in self.plan[2:]:
            layers.append(_conv_layer(spec, in_channels))
            if spec.kind != "output" or self.config.output_activation == "relu":
                layers.append(nn.ReLU())
            in_channels = spec.channels
        self.convs = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode flat features.

        Args:
            features: (B, F) float.

        Returns:
            conv_out: (B, 3, S - 2, S - 2) output of the last convolution (after its activation).
            rescaled: (B, 3, S - 2, S - 2) conv_out min-max rescaled per image to [0, 1].
        """
        maps = torch.relu(self.dense(features)).view(-1, *self.base_shape)
        conv_out = self.convs(maps)
        return conv_out, rescale_min_max(conv_out, self.config.rescale_eps)


class Decoder(nn.Module):
    """Decoder from label embeddings (B, L, k) = (batch, label, dim) to reconstructed images."""

    def __init__(
        self, num_labels: int, dim: int, image_size: int, config: DecoderConfig | None = None
    ):
        super().__init__()
        if num_labels < 1 or dim < 1:
            raise OlrError(
                f"invalid embedding shape L={num_labels}, k={dim}: both must be at least 1"
            )
        self.num_labels = num_labels
        self.dim = dim
        self.image_size = image_size
        self.head = DecoderHead(num_labels * dim, image_size, config)

    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode embeddings.

        Args:
            embeddings: (B, L, k) float, axes (batch, label, dim).

        Returns:
            conv_out: (B, 3, S - 2, S - 2) last convolution output, the SSIM term's input.
            rescaled: (B, 3, S - 2, S - 2) per-image min-max rescale, the MSE term's input.

        Raises:
            OlrError: if the embeddings are not (B, L, k) with this decoder's L and k.
        """
        expected = (self.num_labels, self.dim)
        if embeddings.dim() != 3 or tuple(embeddings.shape[1:]) != expected:
            raise OlrError(
                f"decoder expects embeddings of shape (B, {self.num_labels}, {self.dim}), "
                f"got {tuple(embeddings.shape)}"
            )
        return self.head(embeddings.flatten(1))


def default_encoder_channels(stages: int) -> tuple[int, ...]:
    """Return encoder widths 32, 64, 128, ... capped at 256, one per stride-2 convolution."""
    return tuple(min(32 * 2**i, 256) for i in range(stages))


class Autoencoder(nn.Module):
    """Convolutional autoencoder whose bottleneck has as many numbers as an embedding matrix.

    The encoder has one stride-2 3 x 3 convolution with ReLU per decoder stage, so its last map is
    about as small as the decoder's base map, then a linear dense layer to `bottleneck` numbers.
    The decoder head is the same layer stack as Decoder. It is the reference for what a decoder
    reaches when its code is trained for reconstruction, unlike the label embeddings.
    """

    def __init__(
        self,
        image_size: int,
        bottleneck: int,
        config: DecoderConfig | None = None,
        encoder_channels: tuple[int, ...] | None = None,
    ):
        super().__init__()
        if bottleneck < 1:
            raise OlrError(f"invalid autoencoder bottleneck {bottleneck}: must be at least 1")
        self.image_size = image_size
        self.head = DecoderHead(bottleneck, image_size, config)
        stages = sum(spec.kind == "conv_transpose" for spec in self.head.plan)
        channels = encoder_channels or default_encoder_channels(stages)
        layers: list[nn.Module] = []
        in_channels, size = 3, image_size
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, 2, 1), nn.ReLU()]
            in_channels, size = out_channels, (size - 1) // 2 + 1
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.to_code = nn.Linear(in_channels * size * size, bottleneck)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encode images (B, 3, S, S) float in [0, 1] to codes (B, bottleneck)."""
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, self.image_size, self.image_size):
            raise OlrError(
                f"autoencoder expects images of shape (B, 3, {self.image_size}, "
                f"{self.image_size}), got {tuple(images.shape)}"
            )
        return self.to_code(self.encoder(images))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct images.

        Args:
            images: (B, 3, S, S) float in [0, 1].

        Returns:
            conv_out and rescaled, each (B, 3, S - 2, S - 2), as Decoder.forward.
        """
        return self.head(self.encode(images))
