"""Random rectangular occlusion of a whole batch at once, on the device of the batch.

Karatsiolis and Kamilaris (ICPRAM 2021), step 2: each training image is covered by one
rectangle at a random position fully inside the image. Its height and width are drawn
independently and uniformly between 0.33 and 0.66 of the image height and width. Occluding softens
the teacher's over-confident probabilities, so the joint targets carry how labels interact.
"""

from __future__ import annotations

import torch

from olr.errors import OlrError

FILL_MODES = ("black", "mean", "noise")


def sample_rectangles(
    batch_size: int,
    height: int,
    width: int,
    min_fraction: float = 0.33,
    max_fraction: float = 0.66,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw one rectangle per image, fully inside a ``height`` x ``width`` image.

    Args:
        batch_size: number of rectangles B.
        height, width: image size in pixels.
        min_fraction, max_fraction: bounds of each side as a fraction of the image side.
        generator: optional torch generator for reproducible draws (on ``device``).
        device: where the rectangles are drawn.

    Returns:
        (B, 4) int64 tensor of (top, left, rect_height, rect_width) in pixels, with
        ``top + rect_height <= height`` and ``left + rect_width <= width``.
    """
    if not 0.0 < min_fraction <= max_fraction <= 1.0:
        raise OlrError(
            "occlusion fractions must satisfy 0 < min <= max <= 1, "
            f"got {min_fraction}, {max_fraction}"
        )
    u = torch.rand(batch_size, 4, generator=generator, device=device)
    span = max_fraction - min_fraction
    # Round the side lengths, then keep them at least one pixel and at most the image side.
    rect_h = (min_fraction + span * u[:, 0]) * height
    rect_w = (min_fraction + span * u[:, 1]) * width
    rect_h = rect_h.round().clamp(1, height).long()
    rect_w = rect_w.round().clamp(1, width).long()

    # The top-left corner is uniform over the positions that keep the rectangle inside.
    top = (u[:, 2] * (height - rect_h + 1)).floor().long().clamp(max=height - 1)
    left = (u[:, 3] * (width - rect_w + 1)).floor().long().clamp(max=width - 1)
    top = torch.minimum(top, height - rect_h)
    left = torch.minimum(left, width - rect_w)
    return torch.stack([top, left, rect_h, rect_w], dim=1)


def rectangle_masks(rectangles: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Turn (B, 4) rectangles into (B, 1, H, W) boolean masks, True inside the rectangle."""
    rows = torch.arange(height, device=rectangles.device).view(1, height, 1)
    cols = torch.arange(width, device=rectangles.device).view(1, 1, width)
    top, left, rect_h, rect_w = (rectangles[:, i].view(-1, 1, 1) for i in range(4))
    inside_rows = (rows >= top) & (rows < top + rect_h)
    inside_cols = (cols >= left) & (cols < left + rect_w)
    return (inside_rows & inside_cols).unsqueeze(1)


def occlude(
    images: torch.Tensor,
    min_fraction: float = 0.33,
    max_fraction: float = 0.66,
    fill: str = "black",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cover each image of a batch with one random rectangle.

    Args:
        images: (B, C, H, W) float images in [0, 1].
        min_fraction, max_fraction: bounds of each rectangle side as a fraction of the image side.
        fill: ``"black"`` (0), ``"mean"`` (the image's mean colour) or ``"noise"`` (uniform [0, 1]).
        generator: optional torch generator on the images' device.

    Returns:
        (B, C, H, W) occluded copy of ``images``.
    """
    if fill not in FILL_MODES:
        raise OlrError(f"unknown occlusion fill {fill!r}; choose one of {', '.join(FILL_MODES)}")
    batch, channels, height, width = images.shape
    rectangles = sample_rectangles(
        batch, height, width, min_fraction, max_fraction, generator, images.device
    )
    mask = rectangle_masks(rectangles, height, width)  # (B, 1, H, W)
    if fill == "black":
        filler = torch.zeros((), dtype=images.dtype, device=images.device)
    elif fill == "mean":
        filler = images.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    else:
        filler = torch.rand(
            images.shape, generator=generator, device=images.device, dtype=images.dtype
        )
    return torch.where(mask, filler, images)
