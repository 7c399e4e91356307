"""Tests for the reconstruction target, loss, Lightning modules and test metrics."""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.image import structural_similarity_index_measure

from olr.errors import OlrError
from olr.models.decoder import Autoencoder, Decoder, DecoderConfig
from olr.training.reconstruction import (
    AutoencoderModule,
    ReconstructionModule,
    evaluate_reconstruction,
    reconstruction_loss,
    reconstruction_target,
)

TINY = DecoderConfig(width=8, first_channels=8, channels=4, last_channels=4)


def _trainer() -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _tiny_data(size: int = 16, count: int = 8):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.rand(count, 2, 4, generator=generator)
    images = torch.randint(0, 256, (count, size, size, 3), generator=generator, dtype=torch.uint8)
    return embeddings, images


def test_target_crops_uint8():
    images = torch.arange(2 * 5 * 5 * 3, dtype=torch.int64).remainder(256).to(torch.uint8)
    images = images.reshape(2, 5, 5, 3)
    target = reconstruction_target(images)
    assert target.shape == (2, 3, 3, 3)
    expected = images[:, 1:-1, 1:-1, :].permute(0, 3, 1, 2).float() / 255
    assert torch.equal(target, expected)


def test_target_crops_float():
    images = torch.rand(2, 3, 6, 6)
    assert torch.equal(reconstruction_target(images), images[:, :, 1:-1, 1:-1])


def test_target_rejects_bad_shape():
    with pytest.raises(OlrError, match="expected uint8"):
        reconstruction_target(torch.zeros(2, 6, 6, 3))


def test_loss_zero_when_equal():
    image = torch.rand(2, 3, 20, 20)
    assert reconstruction_loss(image, image, image).item() == pytest.approx(0.0, abs=1e-6)


def test_loss_known_value():
    generator = torch.Generator().manual_seed(1)
    conv_out = torch.rand(2, 3, 20, 20, generator=generator)
    rescaled = torch.rand(2, 3, 20, 20, generator=generator)
    target = torch.rand(2, 3, 20, 20, generator=generator)
    channel_ssims = [
        structural_similarity_index_measure(
            conv_out[b, c][None, None], target[b, c][None, None], data_range=1.0, kernel_size=7
        )
        for b in range(2)
        for c in range(3)
    ]
    ssim = torch.stack(channel_ssims).mean()
    mse = ((rescaled - target) ** 2).sum() / rescaled.numel()
    expected = 0.3 * (1 - ssim) + 0.7 * mse
    loss = reconstruction_loss(conv_out, rescaled, target, alpha=0.3)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_rejects_bad_alpha():
    image = torch.rand(1, 3, 20, 20)
    with pytest.raises(OlrError, match="alpha"):
        reconstruction_loss(image, image, image, alpha=1.5)


def test_decoder_module_trains():
    torch.manual_seed(0)
    embeddings, images = _tiny_data()
    loader = DataLoader(TensorDataset(embeddings, images), batch_size=4)
    module = ReconstructionModule(Decoder(2, 4, 16, TINY), lr=1e-3)
    trainer = _trainer()
    trainer.fit(module, loader, loader)
    assert trainer.global_step == 3
    assert math.isfinite(trainer.callback_metrics["train_loss"].item())
    for name in ("val_mse", "val_psnr", "val_ssim"):
        assert math.isfinite(trainer.callback_metrics[name].item())


def test_decoder_module_test_metrics():
    embeddings, images = _tiny_data()
    loader = DataLoader(TensorDataset(embeddings, images), batch_size=4)
    module = ReconstructionModule(Decoder(2, 4, 16, TINY))
    results = _trainer().test(module, loader, verbose=False)[0]
    assert set(results) == {"test_mse", "test_psnr", "test_ssim"}


def test_autoencoder_module_trains():
    torch.manual_seed(0)
    _, images = _tiny_data()
    loader = DataLoader(TensorDataset(images), batch_size=4)
    model = Autoencoder(16, 8, TINY, encoder_channels=(4, 4))
    trainer = _trainer()
    trainer.fit(AutoencoderModule(model, lr=1e-3), loader, loader)
    assert math.isfinite(trainer.callback_metrics["train_loss"].item())


def test_evaluate_matches_hand_mse():
    embeddings, images = _tiny_data()
    decoder = Decoder(2, 4, 16, TINY)
    batches = [(embeddings[:4], images[:4]), (embeddings[4:], images[4:])]
    metrics = evaluate_reconstruction(decoder, batches)
    with torch.no_grad():
        _, rescaled = decoder(embeddings)
    expected = ((rescaled - reconstruction_target(images)) ** 2).mean().item()
    assert set(metrics) == {"mse", "psnr", "ssim"}
    assert metrics["mse"] == pytest.approx(expected, rel=1e-5)
    assert metrics["psnr"] == pytest.approx(-10 * math.log10(expected), rel=1e-4)


def test_evaluate_autoencoder_images_only():
    _, images = _tiny_data()
    model = Autoencoder(16, 8, TINY, encoder_channels=(4, 4))
    metrics = evaluate_reconstruction(model, [images[:4], images[4:]])
    assert all(math.isfinite(value) for value in metrics.values())


def test_evaluate_empty_raises():
    with pytest.raises(OlrError, match="no batches"):
        evaluate_reconstruction(Decoder(2, 4, 16, TINY), [])
