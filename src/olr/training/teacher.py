"""Lightning module that trains the teacher classifier with binary cross-entropy."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MultilabelAccuracy

from olr.config import OptimConfig, from_dict
from olr.models.classifier import Classifier, ClassifierConfig
from olr.training.batches import to_float_images
from olr.training.schedule import adam_with_warmup


class TeacherModule(pl.LightningModule):
    """Multi-label classifier training; ``val/accuracy`` (mean over labels) picks the checkpoint.

    Args:
        num_labels: L.
        model: ClassifierConfig as a dict (kept as a hyperparameter so checkpoints rebuild it).
        optim: OptimConfig as a dict.
    """

    def __init__(self, num_labels: int, model: dict, optim: dict) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optim = from_dict(OptimConfig, optim)
        self.model = Classifier(num_labels, from_dict(ClassifierConfig, model))
        self.val_accuracy = MultilabelAccuracy(num_labels=num_labels, average="macro")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(to_float_images(images))

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        images, labels = batch
        loss = F.binary_cross_entropy_with_logits(self(images), labels.float())
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        images, labels = batch
        logits = self(images)
        self.log("val/loss", F.binary_cross_entropy_with_logits(logits, labels.float()))
        self.val_accuracy(logits, labels.int())
        self.log("val/accuracy", self.val_accuracy, prog_bar=True)

    def configure_optimizers(self):
        return adam_with_warmup(
            self.parameters(),
            self.optim.lr,
            self.optim.weight_decay,
            self.optim.warmup_steps,
            total_steps=int(self.trainer.estimated_stepping_batches),
            cosine=self.optim.cosine,
        )
