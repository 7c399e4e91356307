"""Tests of batched rectangular occlusion."""

import pytest
import torch

from olr.errors import OlrError
from olr.training.occlusion import occlude, rectangle_masks, sample_rectangles


def test_rectangles_inside_image_and_within_fraction_bounds():
    generator = torch.Generator().manual_seed(0)
    height, width = 64, 48
    rects = sample_rectangles(20000, height, width, generator=generator)
    top, left, rect_h, rect_w = rects.unbind(dim=1)
    assert int(top.min()) >= 0
    assert int(left.min()) >= 0
    assert int((top + rect_h).max()) <= height
    assert int((left + rect_w).max()) <= width
    assert int(rect_h.min()) >= round(0.33 * height)
    assert int(rect_h.max()) <= round(0.66 * height)
    assert int(rect_w.min()) >= round(0.33 * width)
    assert int(rect_w.max()) <= round(0.66 * width)


def test_rectangles_cover_size_and_position_range():
    generator = torch.Generator().manual_seed(1)
    rects = sample_rectangles(20000, 64, 64, generator=generator)
    top, left, rect_h, rect_w = rects.unbind(dim=1)
    # Sides reach both ends of [0.33, 0.66] * 64 = [21, 42] and corners reach both image edges.
    assert int(rect_h.min()) == 21
    assert int(rect_h.max()) == 42
    assert int(rect_w.min()) == 21
    assert int(rect_w.max()) == 42
    assert int(top.min()) == 0
    assert int(left.min()) == 0
    assert int((top + rect_h).max()) == 64
    assert int((left + rect_w).max()) == 64
    # Roughly uniform side lengths: the mean is near the centre of the range.
    assert abs(rect_h.float().mean().item() - 31.7) < 0.5


def test_occlude_black_fills_exactly_the_rectangle():
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(8, 3, 32, 40) * 0.5 + 0.5
    occluded = occlude(images, generator=generator)
    generator = torch.Generator().manual_seed(2)
    rects = sample_rectangles(8, 32, 40, generator=generator)
    mask = rectangle_masks(rects, 32, 40).expand(-1, 3, -1, -1)
    assert torch.all(occluded[mask] == 0)
    assert torch.equal(occluded[~mask], images[~mask])
    area = (rects[:, 2] * rects[:, 3]).float() / (32 * 40)
    assert torch.allclose(mask[:, 0].float().mean(dim=(1, 2)), area)


def test_occlude_mean_and_noise_fills():
    images = torch.rand(4, 3, 16, 16)
    mean_filled = occlude(images, fill="mean", generator=torch.Generator().manual_seed(0))
    changed = (mean_filled != images).any(dim=1)
    assert changed.any()
    noise_filled = occlude(images, fill="noise", generator=torch.Generator().manual_seed(0))
    assert noise_filled.shape == images.shape
    assert float(noise_filled.min()) >= 0.0
    assert float(noise_filled.max()) <= 1.0


def test_occlude_rejects_unknown_fill_and_bad_fractions():
    with pytest.raises(OlrError, match="fill"):
        occlude(torch.rand(1, 3, 8, 8), fill="grey")
    with pytest.raises(OlrError, match="fractions"):
        sample_rectangles(2, 8, 8, min_fraction=0.7, max_fraction=0.5)
