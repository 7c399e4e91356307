"""Loss, Lightning modules and test metrics for the reconstruction decoder and the autoencoder.

The loss is the one of Karatsiolis and Kamilaris, ICPRAM 2021. It adds alpha * (1 - SSIM) on the
last convolution output to (1 - alpha) * MSE on its min-max rescale. The target is the input image
with one pixel cropped from each side, and SSIM compares one colour channel at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from olr.errors import OlrError
from olr.models.decoder import Autoencoder, Decoder

logger = logging.getLogger(__name__)

SMALL_IMAGE_SIZE = 64  # below this side length the SSIM window shrinks from 11 to 7 pixels


def ssim_kernel_size(size: int) -> int:
    """Return the Gaussian SSIM window for images of side `size` pixels.

    The 11-pixel window (the torchmetrics default) spans over a third of a 30-pixel image, so
    small images use 7 pixels to keep more local windows.
    """
    return 7 if size < SMALL_IMAGE_SIZE else 11


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """Convert uint8 (B, S, S, 3) HWC images to float (B, 3, S, S) in [0, 1]; float passes through.

    Raises:
        OlrError: if the tensor is neither uint8 (B, S, S, 3) nor float (B, 3, S, S).
    """
    if images.dtype == torch.uint8 and images.dim() == 4 and images.shape[-1] == 3:
        return images.permute(0, 3, 1, 2).float() / 255.0
    if images.is_floating_point() and images.dim() == 4 and images.shape[1] == 3:
        return images
    raise OlrError(
        f"invalid images of dtype {images.dtype} and shape {tuple(images.shape)}: "
        "expected uint8 (B, S, S, 3) or float (B, 3, S, S)"
    )


def reconstruction_target(images: torch.Tensor) -> torch.Tensor:
    """Build the decoder target: the image with one pixel cropped from each side.

    Args:
        images: uint8 (B, S, S, 3) or float (B, 3, S, S) in [0, 1].

    Returns:
        (B, 3, S - 2, S - 2) float in [0, 1].
    """
    return images_to_float(images)[:, :, 1:-1, 1:-1].contiguous()


def reconstruction_loss(
    conv_out: torch.Tensor, rescaled: torch.Tensor, target: torch.Tensor, alpha: float = 0.5
) -> torch.Tensor:
    """Compute alpha * (1 - SSIM(target, conv_out)) + (1 - alpha) * MSE(target, rescaled).

    SSIM (torchmetrics, data_range 1.0) is taken over each colour channel as a separate grey
    image and averaged, and its window follows ssim_kernel_size.

    Args:
        conv_out: (B, 3, H, W) last convolution output.
        rescaled: (B, 3, H, W) per-image min-max rescale of conv_out.
        target: (B, 3, H, W) float in [0, 1].
        alpha: weight of the SSIM term in [0, 1]; the paper uses 0.5.

    Returns:
        Scalar loss tensor.

    Raises:
        OlrError: if alpha is outside [0, 1] or the shapes differ.
    """
    if not 0.0 <= alpha <= 1.0:
        raise OlrError(f"invalid reconstruction alpha {alpha}: use a value in [0, 1]")
    if not conv_out.shape == rescaled.shape == target.shape:
        raise OlrError(
            f"reconstruction shapes differ: conv_out {tuple(conv_out.shape)}, "
            f"rescaled {tuple(rescaled.shape)}, target {tuple(target.shape)}"
        )
    # torchmetrics filters each channel on its own (a grouped convolution) and averages the SSIM
    # maps, which equals the mean of per-channel grey SSIM and runs about 5x faster on a CPU than
    # stacking the channels as grey images.
    ssim = structural_similarity_index_measure(
        conv_out,
        target,
        data_range=1.0,
        kernel_size=ssim_kernel_size(target.shape[-1]),
    )
    return alpha * (1.0 - ssim) + (1.0 - alpha) * F.mse_loss(rescaled, target)


def image_metrics(size: int, sync_on_compute: bool = True) -> MetricCollection:
    """Build MSE, PSNR and RGB SSIM metrics (data_range 1.0) for images of side `size` pixels.

    ``sync_on_compute=False`` is for evaluation on one process of a distributed run: a syncing
    metric would wait in a collective that the other processes never join.
    """
    sync = {"sync_on_compute": sync_on_compute}
    return MetricCollection(
        {
            "mse": MeanSquaredError(**sync),
            "psnr": PeakSignalNoiseRatio(data_range=1.0, **sync),
            "ssim": StructuralSimilarityIndexMeasure(
                data_range=1.0, kernel_size=ssim_kernel_size(size), **sync
            ),
        }
    )


class _ReconstructionBase(pl.LightningModule):
    """Shared training loop: subclasses map a batch to (model input, images)."""

    def __init__(self, model: nn.Module, image_size: int, lr: float, alpha: float):
        super().__init__()
        if lr <= 0:
            raise OlrError(f"invalid reconstruction learning rate {lr}: must be positive")
        self.model = model
        self.lr = lr
        self.alpha = alpha
        self.val_metrics = image_metrics(image_size - 2).clone(prefix="val_")
        self.test_metrics = image_metrics(image_size - 2).clone(prefix="test_")

    def split_batch(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(inputs)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        inputs, images = self.split_batch(batch)
        conv_out, rescaled = self.model(inputs)
        loss = reconstruction_loss(conv_out, rescaled, reconstruction_target(images), self.alpha)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def _evaluate(self, batch, metrics: MetricCollection) -> None:
        inputs, images = self.split_batch(batch)
        _, rescaled = self.model(inputs)
        metrics.update(rescaled, reconstruction_target(images))
        self.log_dict(metrics, batch_size=len(images))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(self.model.parameters(), lr=self.lr)


class ReconstructionModule(_ReconstructionBase):
    """Train a Decoder on batches (embeddings (B, L, k) float, images uint8 (B, S, S, 3)).

    Logs "train_loss" per step, and "val_mse", "val_psnr", "val_ssim" (or "test_*") on the
    rescaled output against the cropped image. The optimizer is RMSprop as in Karatsiolis and
    Kamilaris (2021), whose learning rate is printed without its exponent, so 1e-4 is a default
    of this project.
    """

    def __init__(self, decoder: Decoder, lr: float = 1e-4, alpha: float = 0.5):
        super().__init__(decoder, decoder.image_size, lr, alpha)

    def split_batch(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings, images = batch
        return embeddings.float(), images


class AutoencoderModule(_ReconstructionBase):
    """Train an Autoencoder on batches of images uint8 (B, S, S, 3), with ReconstructionModule's
    loss, logged names and optimizer."""

    def __init__(self, autoencoder: Autoencoder, lr: float = 1e-4, alpha: float = 0.5):
        super().__init__(autoencoder, autoencoder.image_size, lr, alpha)

    def split_batch(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        return images_to_float(images), images


def _batch_pair(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return images_to_float(batch), batch
    if isinstance(batch, list | tuple) and len(batch) == 2:
        return batch[0], batch[1]
    raise OlrError(
        f"invalid reconstruction batch of type {type(batch).__name__}: "
        "expected (inputs, images) or an images tensor"
    )


def evaluate_reconstruction(model: nn.Module, batches: Iterable) -> dict[str, float]:
    """Compute MSE, PSNR and RGB SSIM of a model's rescaled output over a set of batches.

    Args:
        model: a Decoder, Autoencoder or either Lightning module; forward(inputs) returns
            (conv_out, rescaled). It is put in eval mode and run on its parameters' device.
        batches: iterable of (inputs, images) pairs. The inputs are what the model takes
            (embeddings (B, L, k) or float images (B, 3, S, S)), and images are uint8
            (B, S, S, 3) or float (B, 3, S, S). A bare images tensor means (images as float,
            images), the autoencoder case.

    Returns:
        {"mse", "psnr", "ssim"} as floats; PSNR in dB.

    Raises:
        OlrError: if there are no batches.
    """
    device = next(model.parameters()).device
    metrics: MetricCollection | None = None
    model.eval()
    with torch.no_grad():
        for batch in batches:
            inputs, images = _batch_pair(batch)
            target = reconstruction_target(images).to(device)
            if metrics is None:
                metrics = image_metrics(target.shape[-1], sync_on_compute=False).to(device)
            _, rescaled = model(inputs.to(device))
            metrics.update(rescaled, target)
    if metrics is None:
        raise OlrError("no batches to evaluate the reconstruction on: the batch iterable is empty")
    result = {name: float(value) for name, value in metrics.compute().items()}
    logger.info("reconstruction metrics: %s", result)
    return result
