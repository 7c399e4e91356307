"""Tests for the per-label Gaussians, embedding edits and the measured effect of edits."""

import logging

import numpy as np
import pytest
import torch
from torch import nn

from olr.analysis.editing import (
    edit_embeddings,
    edit_image_rows,
    fit_label_gaussians,
    ledoit_wolf,
    measure_edits,
    sample_label_vectors,
)
from olr.errors import OlrError

NAMES = ["Smiling", "Bald"]


def _toy_embeddings(count: int = 40, seed: int = 0):
    """Return (N, 2, 3) embeddings: a present label's vector is near (3, 0, 0), absent is zero."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((count, 2)) < 0.5).astype(np.uint8)
    labels[0] = (0, 1)
    labels[1] = (1, 0)
    vectors = np.array([3.0, 0.0, 0.0]) + 0.1 * rng.standard_normal((count, 2, 3))
    return torch.tensor(vectors * labels[:, :, None], dtype=torch.float32), labels


class ToyDecoder(nn.Module):
    """Paint rows 0-2 with tanh(||e_0||) and rows 3-5 with tanh(||e_1||) of a 6 x 6 image."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, embeddings):
        values = torch.tanh(embeddings.norm(dim=2))
        rows = values.repeat_interleave(3, dim=1)
        image = rows[:, None, :, None].expand(-1, 3, 6, 6)
        return image, image


class RegionTeacher(nn.Module):
    """Logit of label l is 20 * (mean brightness of its rows - 0.5) on the padded 8 x 8 image."""

    def forward(self, images):
        assert images.shape[-2:] == (8, 8)
        top = images[:, 0, 1:4].mean(dim=(1, 2))
        bottom = images[:, 0, 4:7].mean(dim=(1, 2))
        return 20 * (torch.stack([top, bottom], dim=1) - 0.5)


class ConstantTeacher(nn.Module):
    """Ignore the image: label 0 always has logit -5, label 1 always +5."""

    def forward(self, images):
        return torch.tensor([-5.0, 5.0]).expand(len(images), 2)


@pytest.fixture
def toy():
    embeddings, labels = _toy_embeddings()
    return embeddings, labels, fit_label_gaussians(embeddings, labels, NAMES)


def test_edit_nothing_is_identity(toy):
    embeddings, _, gaussians = toy
    assert torch.equal(edit_embeddings(embeddings, gaussians, [], []), embeddings)


def test_remove_zeroes_only_that_label(toy):
    embeddings, _, gaussians = toy
    edited = edit_embeddings(embeddings, gaussians, [], [1])
    assert torch.count_nonzero(edited[:, 1]) == 0
    assert torch.equal(edited[:, 0], embeddings[:, 0])


def test_add_replaces_only_that_label(toy):
    embeddings, _, gaussians = toy
    edited = edit_embeddings(embeddings, gaussians, [0], [])
    assert torch.equal(edited[:, 1], embeddings[:, 1])
    assert torch.allclose(edited[:, 0].norm(dim=1), torch.full((40,), 3.0), atol=0.5)


def test_shrink_sets_norm(toy):
    embeddings, _, gaussians = toy
    edited = edit_embeddings(embeddings, gaussians, [], [0], remove_mode="shrink", shrink_norm=0.05)
    assert torch.allclose(edited[:, 0].norm(dim=1), torch.full((40,), 0.05), atol=1e-6)


def test_same_seed_same_edit(toy):
    embeddings, _, gaussians = toy
    first = edit_embeddings(embeddings, gaussians, [0], [], seed=3)
    second = edit_embeddings(embeddings, gaussians, [0], [], seed=3)
    other = edit_embeddings(embeddings, gaussians, [0], [], seed=4)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_scale_multiplies_draw(toy):
    embeddings, _, gaussians = toy
    plain = edit_embeddings(embeddings, gaussians, [0], [], scale=1.0, seed=5)
    strong = edit_embeddings(embeddings, gaussians, [0], [], scale=1.5, seed=5)
    assert torch.allclose(strong[:, 0], 1.5 * plain[:, 0])


def test_unknown_remove_mode_raises(toy):
    embeddings, _, gaussians = toy
    with pytest.raises(OlrError, match="remove_mode"):
        edit_embeddings(embeddings, gaussians, [], [0], remove_mode="flip")


def test_add_and_remove_same_label_raises(toy):
    embeddings, _, gaussians = toy
    with pytest.raises(OlrError, match="both added and removed"):
        edit_embeddings(embeddings, gaussians, [0], [0])


def test_sample_mean_near_mu():
    rng = np.random.default_rng(0)
    vectors = rng.multivariate_normal([1.0, -2.0, 0.5], np.diag([0.5, 1.0, 2.0]), size=500)
    gaussians = fit_label_gaussians(vectors[:, None, :], np.ones((500, 1)), ["A"])
    draws = sample_label_vectors(gaussians, 0, 20000, np.random.default_rng(1))
    assert draws.shape == (20000, 3)
    assert np.allclose(draws.mean(dim=0).numpy(), gaussians.mean[0], atol=0.05)


def test_torch_generator_reproducible(toy):
    _, _, gaussians = toy
    first = sample_label_vectors(gaussians, 0, 4, torch.Generator().manual_seed(2))
    second = sample_label_vectors(gaussians, 0, 4, torch.Generator().manual_seed(2))
    assert torch.equal(first, second)


def test_few_samples_positive_definite(caplog):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5, 1, 8))
    with caplog.at_level(logging.WARNING):
        gaussians = fit_label_gaussians(vectors, np.ones((5, 1)), ["Chubby"])
    np.linalg.cholesky(gaussians.covariance[0])
    assert gaussians.shrinkage[0] > 0
    assert "Chubby" in caplog.text
    assert "5 positive images" in caplog.text


def test_many_samples_match_true_covariance():
    rng = np.random.default_rng(0)
    truth = np.array([[1.0, 0.5, 0.0], [0.5, 2.0, -0.3], [0.0, -0.3, 0.5]])
    vectors = rng.multivariate_normal(np.zeros(3), truth, size=20000)
    gaussians = fit_label_gaussians(vectors[:, None, :], np.ones((20000, 1)), ["A"])
    assert gaussians.shrinkage[0] == 0
    assert np.allclose(gaussians.covariance[0], truth, atol=0.06)


def test_ledoit_wolf_keeps_trace():
    vectors = np.random.default_rng(0).standard_normal((6, 10))
    covariance, shrinkage = ledoit_wolf(vectors)
    centred = vectors - vectors.mean(axis=0)
    assert 0 < shrinkage <= 1
    assert np.trace(covariance) == pytest.approx(np.trace(centred.T @ centred / 6))


def test_unusable_label_raises():
    embeddings, labels = _toy_embeddings()
    labels[:, 1] = 0
    labels[0, 1] = 1
    gaussians = fit_label_gaussians(embeddings, labels, NAMES)
    assert not gaussians.usable(1)
    with pytest.raises(OlrError, match="'Bald' has 1 positive images"):
        edit_embeddings(embeddings, gaussians, [1], [])


def test_measure_edits_succeed(toy):
    embeddings, labels, gaussians = toy
    result = measure_edits(embeddings, labels, ToyDecoder(), RegionTeacher(), gaussians)
    assert result["add"]["success_rate"] == 1.0
    assert result["add"]["per_label"] == {"Smiling": 1.0, "Bald": 1.0}
    assert result["remove"]["success_rate"] == 1.0
    assert result["remove"]["per_label"] == {"Smiling": 1.0, "Bald": 1.0}
    assert result["add"]["mean_delta"] > 0.99
    assert result["remove"]["mean_delta"] < -0.99
    assert result["off_target"] == 0.0
    # Half the image changes from 0 to about tanh(3) = 0.995.
    assert result["preservation"] == pytest.approx(0.4975, abs=0.005)
    assert set(result["scales"]) == {"0.5", "1.0", "1.5", "2.0"}
    assert result["scales"]["0.5"] == {"add_success_rate": 1.0, "remove_success_rate": 1.0}
    assert result["usable_labels"] == NAMES
    assert result["num_images"] == 32


def test_measure_edits_blind_teacher(toy):
    embeddings, labels, gaussians = toy
    result = measure_edits(embeddings, labels, ToyDecoder(), ConstantTeacher(), gaussians)
    assert result["add"]["per_label"] == {"Smiling": 0.0, "Bald": None}
    assert result["remove"]["per_label"] == {"Smiling": None, "Bald": 0.0}
    assert result["add"]["success_rate"] == 0.0
    assert result["remove"]["success_rate"] == 0.0
    assert result["add"]["mean_delta"] == 0.0


def test_measure_edits_reproducible(toy):
    embeddings, labels, gaussians = toy
    first = measure_edits(embeddings, labels, ToyDecoder(), RegionTeacher(), gaussians, seed=1)
    second = measure_edits(embeddings, labels, ToyDecoder(), RegionTeacher(), gaussians, seed=1)
    assert first == second


def test_measure_edits_skips_unusable():
    embeddings, labels = _toy_embeddings()
    labels[:, 1] = 0
    gaussians = fit_label_gaussians(embeddings, labels, NAMES)
    result = measure_edits(embeddings, labels, ToyDecoder(), RegionTeacher(), gaussians)
    assert result["usable_labels"] == ["Smiling"]
    assert result["add"]["per_label"]["Bald"] is None
    assert result["add"]["per_label"]["Smiling"] == 1.0


def test_image_rows_shape_and_order(toy):
    embeddings, _, gaussians = toy
    rows = edit_image_rows(embeddings[0], ToyDecoder(), gaussians, 0, [0.5, 1.0], seed=0)
    assert rows.shape == (3, 6, 6, 3)
    assert rows.dtype == np.float32
    # Image 0 lacks label 0, so the plain row is dark and the edits brighten rows 0-2.
    assert rows[0, :3].max() == 0.0
    assert 0.0 < rows[1, 0, 0, 0] < rows[2, 0, 0, 0]
    assert np.array_equal(rows[1, 3:], rows[0, 3:])


def test_few_samples_well_conditioned():
    vectors = np.random.default_rng(0).standard_normal((5, 1, 8))
    gaussians = fit_label_gaussians(vectors, np.ones((5, 1)), ["Chubby"])
    covariance = gaussians.covariance[0]
    # Five samples give a rank-4 sample covariance, so only shrinkage lifts the lowest eigenvalue.
    floor = gaussians.shrinkage[0] * np.trace(covariance) / 8
    assert np.linalg.eigvalsh(covariance).min() >= 0.99 * floor
    assert floor > 0.01


class CountingTeacher(RegionTeacher):
    """RegionTeacher that records how many images each call receives."""

    def __init__(self):
        super().__init__()
        self.batch_sizes = []

    def forward(self, images):
        self.batch_sizes.append(len(images))
        return super().forward(images)


def test_measure_edits_caps_images(toy):
    embeddings, labels, gaussians = toy
    teacher = CountingTeacher()
    result = measure_edits(
        embeddings, labels, ToyDecoder(), teacher, gaussians, num_images=3, batch_size=2
    )
    assert result["num_images"] == 3
    assert max(teacher.batch_sizes) == 2
    # Per label: add (plain + 4 scales) and remove (plain + edit) on 3 images in batches of 2.
    assert len(teacher.batch_sizes) == 2 * (5 + 2) * 2
    assert sum(teacher.batch_sizes) == 2 * (5 + 2) * 3
