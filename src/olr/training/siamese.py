"""Lightning module that trains the OLR Siamese model on pairs of images.

Karatsiolis and Kamilaris (ICPRAM 2021), step 2: each batch of 2B images is split into B pairs
(a, b); both images are occluded, the frozen teacher gives p(a) and p(b), the target is
t = p(a) * p(b) and the loss is the MSE between t and the row-wise dot products <e_l(a), e_l(b)>.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from olr.config import OptimConfig, SiameseStage, from_dict, to_dict
from olr.errors import TrainingError
from olr.models.classifier import Classifier
from olr.models.siamese import SiameseConfig, SiameseEmbedder, olr_loss
from olr.training.batches import to_float_images
from olr.training.occlusion import occlude
from olr.training.schedule import adam_with_warmup

COLLAPSE_ADVICE = (
    "lower siamese.optim.lr, raise siamese.optim.warmup_steps, keep siamese.model.label_norm=batch "
    "and siamese.model.scale_by_sqrt_dim=true, or try siamese.model.activation=softplus"
)


class SiameseModule(pl.LightningModule):
    """Siamese training with the teacher frozen inside, so one module moves to any device.

    Args:
        num_labels: L.
        model: SiameseConfig as a dict.
        optim: OptimConfig as a dict.
        target: ``occlusion``, ``temperature`` or ``hard``.
        temperature: T of the ``temperature`` target.
        occlusion_min, occlusion_max, occlusion_fill: occlusion settings (``occlusion`` target).
        collapse_fraction: share of all-zero label vectors over an epoch that stops the run.
        teacher: the trained classifier; None only for the ``hard`` target or when restoring.
    """

    def __init__(
        self,
        num_labels: int,
        model: dict,
        optim: dict,
        target: str = "occlusion",
        temperature: float = 4.0,
        occlusion_min: float = 0.33,
        occlusion_max: float = 0.66,
        occlusion_fill: str = "black",
        collapse_fraction: float = 0.999,
        teacher: Classifier | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.optim = from_dict(OptimConfig, optim)
        self.embedder = SiameseEmbedder(num_labels, from_dict(SiameseConfig, model))
        if teacher is None and target != "hard":
            raise TrainingError(f"the {target!r} target needs a trained teacher classifier")
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False).eval()
        self._epoch_zero_fraction: list[float] = []

    @classmethod
    def from_stage(
        cls,
        num_labels: int,
        stage: SiameseStage,
        teacher: Classifier | None,
        target: str | None = None,
    ) -> SiameseModule:
        """Build the module from the ``siamese`` section of the run config.

        Args:
            num_labels: L.
            stage: model, optimizer, target and occlusion settings.
            teacher: the trained classifier, or None for the ``hard`` target.
            target: overrides ``stage.target`` (the ablation trains every mode).
        """
        return cls(
            num_labels,
            to_dict(stage.model),
            to_dict(stage.optim),
            target or stage.target,
            stage.temperature,
            stage.occlusion_min,
            stage.occlusion_max,
            stage.occlusion_fill,
            stage.collapse_fraction,
            teacher=teacher,
        )

    def train(self, mode: bool = True):
        """Switch to training mode but keep the frozen teacher in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed images: uint8 (B, H, W, 3) or float (B, 3, H, W) -> (B, L, k)."""
        return self.embedder(to_float_images(images))

    def pair_targets(self, images: torch.Tensor, labels: torch.Tensor, generator=None):
        """Return the model inputs (2B, 3, H, W) and the joint targets (B, L) of a batch."""
        hp = self.hparams
        half = images.shape[0] // 2
        if hp.target == "occlusion":
            inputs = occlude(
                images, hp.occlusion_min, hp.occlusion_max, hp.occlusion_fill, generator
            )
            with torch.no_grad():
                probabilities = torch.sigmoid(self.teacher(inputs))
        elif hp.target == "temperature":
            inputs = images
            with torch.no_grad():
                probabilities = torch.sigmoid(self.teacher(inputs) / hp.temperature)
        else:
            inputs = images
            probabilities = labels.float()
        targets = probabilities[:half] * probabilities[half : 2 * half]
        return inputs[: 2 * half], targets

    def _step(self, batch, generator=None):
        images, labels = batch
        inputs, targets = self.pair_targets(to_float_images(images), labels, generator)
        embeddings = self.embedder(inputs)  # (2B, L, k)
        half = targets.shape[0]
        loss = olr_loss(embeddings[:half], embeddings[half:], targets)
        zero_fraction = (embeddings.detach().abs().amax(dim=-1) == 0).float().mean()
        return loss, targets, zero_fraction

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        loss, targets, zero_fraction = self._step(batch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"Siamese loss is {loss.item()} at step {self.global_step}; {COLLAPSE_ADVICE}"
            )
        self.log("train/loss", loss, prog_bar=True)
        # Predicting zero for every pair costs mean(t^2); a loss at that level learned nothing.
        self.log("train/predict_zero_loss", targets.pow(2).mean())
        self.log("train/zero_vectors", zero_fraction, prog_bar=True)
        self._epoch_zero_fraction.append(zero_fraction.item())
        return loss

    def on_train_epoch_end(self) -> None:
        if not self._epoch_zero_fraction:
            return
        mean_zero = sum(self._epoch_zero_fraction) / len(self._epoch_zero_fraction)
        self._epoch_zero_fraction = []
        if mean_zero >= self.hparams.collapse_fraction:
            raise TrainingError(
                f"the Siamese model collapsed in epoch {self.current_epoch}: "
                f"{mean_zero:.1%} of label vectors are exactly zero, so every dot product is 0 "
                f"and the embeddings carry nothing; {COLLAPSE_ADVICE}"
            )

    def on_validation_epoch_start(self) -> None:
        # One fixed occlusion draw per validation pass makes val/loss comparable across epochs.
        self._val_generator = torch.Generator(device=self.device).manual_seed(12345)

    def validation_step(self, batch, batch_index: int) -> None:
        loss, targets, zero_fraction = self._step(batch, self._val_generator)
        batch_size = targets.shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=batch_size, sync_dist=True)
        self.log("val/predict_zero_loss", targets.pow(2).mean(), batch_size=batch_size)
        self.log("val/zero_vectors", zero_fraction, batch_size=batch_size)

    def configure_optimizers(self):
        return adam_with_warmup(
            self.embedder.parameters(),
            self.optim.lr,
            self.optim.weight_decay,
            self.optim.warmup_steps,
            total_steps=int(self.trainer.estimated_stepping_batches),
            cosine=self.optim.cosine,
        )
