"""Tests for the pixel-measured edit check: toy decoders with known effects on synthetic faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from olr.analysis.editing import fit_label_gaussians
from olr.analysis.truth_edits import truth_edit_check
from olr.data.synthetic import (
    LABEL_INDEX,
    MEASURABLE_LABELS,
    SYNTHETIC_LABELS,
    render_faces_with_geometry,
    sample_attributes,
)
from olr.errors import OlrError

SIZE = 24
MOUTH = LABEL_INDEX["Mouth_Slightly_Open"]
NAMES = list(SYNTHETIC_LABELS)


class MouthDecoder(nn.Module):
    """Draws one fixed face whose mouth opening is ||e_mouth|| / (1 + ||e_mouth||)."""

    def __init__(self) -> None:
        super().__init__()
        intensities, self.latents = sample_attributes(1, np.random.default_rng(4))
        intensities[:, [LABEL_INDEX["Wearing_Hat"], LABEL_INDEX["Eyeglasses"]]] = 0.0
        self.base = intensities

    def render(self, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, S, S, 3) uint8 faces and (B, 4) geometry for mouth-vector norms (B,)."""
        images, geometry = [], []
        for norm in norms:
            row = self.base.copy()
            row[:, MOUTH] = norm / (1.0 + norm)
            # The same rng state for every face gives the same placement, colours and noise.
            image, place = render_faces_with_geometry(
                row, self.latents, SIZE, np.random.default_rng(5)
            )
            images.append(image)
            geometry.append(place)
        return np.concatenate(images), np.concatenate(geometry)

    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        norms = embeddings[:, MOUTH].norm(dim=1).cpu().numpy()
        images, _ = self.render(norms)
        decoded = torch.from_numpy(images[:, 1:-1, 1:-1]).permute(0, 3, 1, 2).float() / 255.0
        return decoded, decoded


class ConstantDecoder(nn.Module):
    """Ignores the embedding and returns one fixed image."""

    def __init__(self, image: np.ndarray) -> None:
        super().__init__()
        self.image = torch.from_numpy(image[1:-1, 1:-1]).permute(2, 0, 1).float() / 255.0

    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        decoded = self.image.expand(len(embeddings), -1, -1, -1)
        return decoded, decoded


@pytest.fixture(scope="module")
def toy():
    """20 images, half with each label: present labels have vectors of norm about 3, others 0.1."""
    rng = np.random.default_rng(0)
    count = 20
    labels = np.zeros((count, len(NAMES)), dtype=np.uint8)
    labels[::2] = 1
    embeddings = np.zeros((count, len(NAMES), 2), dtype=np.float32)
    embeddings[..., 0] = np.where(labels == 1, 3.0, 0.1)
    embeddings += 0.2 * labels[..., None] * rng.standard_normal(embeddings.shape)
    decoder = MouthDecoder()
    norms = np.linalg.norm(embeddings[:, MOUTH], axis=1)
    images, geometry = decoder.render(norms)
    intensities = np.repeat(decoder.base, count, axis=0)
    intensities[:, MOUTH] = norms / (1.0 + norms)
    gaussians = fit_label_gaussians(embeddings, labels, NAMES)
    return embeddings, labels, geometry, decoder, gaussians, images, intensities


def _check(toy, decoder=None, **options):
    embeddings, labels, geometry, mouth_decoder, gaussians, images, intensities = toy
    return truth_edit_check(
        embeddings,
        labels,
        geometry,
        decoder or mouth_decoder,
        gaussians,
        NAMES,
        images,
        intensities,
        **options,
    )


def test_add_opens_remove_closes(toy):
    result = _check(toy)
    mouth = result["Mouth_Slightly_Open"]
    assert mouth["measure_spearman_truth"] > 0.9
    assert mouth["measure_auroc_label"] == pytest.approx(1.0)
    assert mouth["real_gap"] > 0
    assert mouth["num_add"] == 10
    assert mouth["num_remove"] == 10
    assert mouth["add_increase_fraction"] == 1.0
    assert mouth["add_mean_change"] > 0
    assert mouth["remove_decrease_fraction"] == 1.0
    assert mouth["remove_mean_change"] < 0


def test_other_measures_unchanged(toy):
    result = _check(toy)
    assert sorted(result) == sorted(MEASURABLE_LABELS)
    for name in ("Eyeglasses", "Bangs", "Blond_Hair"):
        assert result[name]["add_mean_change"] == 0.0
        assert result[name]["add_increase_fraction"] == 0.0
        # The toy faces do not vary in these labels, so their correlation is undefined.
        assert result[name]["measure_spearman_truth"] is None


def test_constant_decoder_changes_nothing(toy):
    images = toy[5]
    result = _check(toy, decoder=ConstantDecoder(images[0]))
    for values in result.values():
        assert values["add_mean_change"] == 0.0
        assert values["add_increase_fraction"] == 0.0
        assert values["remove_mean_change"] == 0.0
        assert values["remove_decrease_fraction"] == 0.0


def test_json_safe_and_limited(toy):
    result = _check(toy, num_images=3)
    json.dumps(result, allow_nan=False)
    assert result["Mouth_Slightly_Open"]["num_add"] == 3
    assert result["Mouth_Slightly_Open"]["num_remove"] == 3


def test_shape_mismatch_raises(toy):
    embeddings, labels, geometry, decoder, gaussians, images, intensities = toy
    with pytest.raises(OlrError, match="geometry"):
        truth_edit_check(
            embeddings, labels, geometry[:5], decoder, gaussians, NAMES, images, intensities
        )
    with pytest.raises(OlrError, match="label names"):
        truth_edit_check(
            embeddings, labels, geometry, decoder, gaussians, NAMES[:3], images, intensities
        )


def test_decoder_size_mismatch_raises(toy):
    odd = ConstantDecoder(np.zeros((SIZE - 1, SIZE - 1, 3), dtype=np.uint8))
    with pytest.raises(OlrError, match="centre"):
        _check(toy, decoder=odd, num_images=2)
