"""Tests of embedding computation and the safetensors embedding file."""

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from olr.analysis.embed import EmbeddingSet, embed_images, load_embeddings, save_embeddings
from olr.errors import DataError
from olr.models.siamese import SiameseConfig, SiameseEmbedder
from olr.models.trunk import TrunkConfig


def test_embeddings_round_trip_and_numpy_readable(tmp_path):
    data = EmbeddingSet(
        embeddings=np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        labels=np.array([[1, 0, 1], [0, 0, 1]], dtype=np.uint8),
        indices=np.array([5, 9]),
        ids=["a.jpg", "b.jpg"],
        label_names=["x", "y", "z"],
    )
    path = tmp_path / "e" / "test.safetensors"
    save_embeddings(path, data)
    loaded = load_embeddings(path)
    assert np.array_equal(loaded.embeddings, data.embeddings)
    assert np.array_equal(loaded.labels, data.labels)
    assert loaded.indices.tolist() == [5, 9]
    assert loaded.ids == ["a.jpg", "b.jpg"]
    assert loaded.label_names == ["x", "y", "z"]
    assert load_file(str(path))["embeddings"].shape == (2, 3, 4)
    assert not list(path.parent.glob("*.tmp"))


def test_missing_embeddings_file_names_it(tmp_path):
    with pytest.raises(DataError, match="nothing.safetensors"):
        load_embeddings(tmp_path / "nothing.safetensors")


def test_embed_images_matches_model_on_floats():
    torch.manual_seed(0)
    model = SiameseEmbedder(3, SiameseConfig(trunk=TrunkConfig(channels=(4, 8)), dim=2))
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    out = embed_images(model, images, batch_size=2)
    model.eval()
    expected = model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    assert out.shape == (5, 3, 2)
    assert np.allclose(out, expected.detach().numpy(), atol=1e-6)
