"""Check attribute edits on synthetic faces by measuring the pixels that the edit should change.

The editing method follows Karatsiolis and Kamilaris, ICPRAM 2021: a label is added by replacing
its vector with a draw of its fitted normal distribution and removed by zeroing it. Instead of
asking the teacher classifier whether the edit worked, this check reads the attribute from the
decoded pixels with ``olr.data.synthetic.measure_attributes`` (for example the darkness of the
mouth box), which uses only the generator's geometry. Embedding axes are (image, label, dim).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchmetrics.functional import auroc, spearman_corrcoef

from olr.analysis.editing import LabelGaussians, edit_embeddings
from olr.data.synthetic import LABEL_THRESHOLD, MEASURABLE_LABELS, measure_attributes
from olr.errors import OlrError

logger = logging.getLogger(__name__)


def truth_edit_check(
    embeddings,
    labels,
    geometry: np.ndarray,
    decoder: nn.Module,
    gaussians: LabelGaussians,
    label_names: Sequence[str],
    images: np.ndarray,
    intensities: np.ndarray,
    num_images: int = 32,
    scale: float = 1.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> dict:
    """Measure on the decoded pixels whether add and remove edits change their attribute.

    For each label of ``MEASURABLE_LABELS`` in ``label_names``: the measure's validity on the
    real images (Spearman correlation with the true intensity, and AUROC against the clean
    label, intensity > 0.5); then, on up to ``num_images`` images without the label, the change
    of the measure from the plain to the add-edited reconstruction, and on up to ``num_images``
    images with it, the change from the plain to the remove-edited (zeroed) reconstruction.
    Images are chosen and draws seeded as in ``measure_edits``: a generator seeded with
    (seed, label index) picks the images, and the edit uses seed + label index.

    Args:
        embeddings: (N, L, k) float, axes (image, label, dim).
        labels: (N, L) {0, 1} observed labels, used to pick the images to edit.
        geometry: (N, 4) synthetic face geometry of the same images (cache truth ``geometry``).
        decoder: maps (B, L, k) to (conv_out, rescaled), each (B, 3, S - 2, S - 2). It is
            moved to ``device`` and put in eval mode.
        gaussians: fitted label distributions, labels in ``label_names`` order.
        label_names: L names.
        images: (N, S, S, 3) uint8 real images of the same rows.
        intensities: (N, L) true intensities of the same rows (cache truth ``intensities``).
        num_images: maximum images per label and direction.
        scale: factor on the added draws.
        seed: seed for the image choice and the draws.
        device: where the decoder runs.
        batch_size: images per decoder pass.

    Returns:
        {label: {"measure_spearman_truth", "measure_auroc_label", "real_gap",
        "add_mean_change", "add_increase_fraction", "remove_mean_change",
        "remove_decrease_fraction", "num_add", "num_remove"}}, JSON-safe. ``real_gap`` is the
        mean measure of real images with the clean label minus those without, the size of
        change a perfect edit would make. Values are None where undefined (no image in that
        direction, a label with fewer than 2 positive images, a constant measure).

    NOTE: the validity scores come from real images. Reconstructions are blurrier and min-max
    rescaled, so the size of a change on them compares with ``real_gap`` only roughly.

    Raises:
        OlrError: when the arrays disagree in shape or the decoder output does not fit the
            images.
    """
    vectors = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    present = np.asarray(labels).astype(bool)
    names = list(label_names)
    _check_shapes(vectors, present, geometry, images, intensities, names)
    measured = [name for name in MEASURABLE_LABELS if name in names]
    if not measured:
        logger.warning("no label of %s has a pixel measure %s", names, MEASURABLE_LABELS)
        return {}
    real = measure_attributes(images, geometry, measured)
    device = torch.device(device)
    context = _Context(
        decoder.to(device).eval(),
        device,
        gaussians,
        np.asarray(geometry),
        images.shape[1],
        num_images,
        scale,
        seed,
        batch_size,
    )
    results = {}
    for name in measured:
        index = names.index(name)
        truth = np.asarray(intensities)[:, index]
        results[name] = {**_validity(real[name], truth), **context.edits(vectors, present, index)}
        logger.info("truth edit check %s: %s", name, results[name])
    return results


def _check_shapes(vectors, present, geometry, images, intensities, names) -> None:
    count = len(vectors)
    if vectors.dim() != 3 or present.shape != tuple(vectors.shape[:2]):
        raise OlrError(
            f"embeddings {tuple(vectors.shape)} and labels {present.shape} do not match: "
            "expected (N, L, k) and (N, L)"
        )
    if len(names) != vectors.shape[1]:
        raise OlrError(f"{len(names)} label names for {vectors.shape[1]} labels")
    for what, array, rows in (
        ("geometry", geometry, 2),
        ("images", images, 4),
        ("intensities", intensities, 2),
    ):
        shape = np.shape(array)
        if len(shape) != rows or shape[0] != count:
            raise OlrError(f"{what} has shape {shape}: expected {count} rows, one per embedding")
    if np.shape(intensities)[1] != len(names):
        raise OlrError(
            f"intensities have {np.shape(intensities)[1]} columns for {len(names)} labels"
        )


def _validity(measure: np.ndarray, truth: np.ndarray) -> dict:
    """Spearman correlation with the intensity, AUROC and mean gap against the clean label."""
    clean = truth > LABEL_THRESHOLD
    scores = torch.as_tensor(measure, dtype=torch.float32)
    result = {"measure_spearman_truth": None, "measure_auroc_label": None, "real_gap": None}
    if np.ptp(measure) > 0 and np.ptp(truth) > 0:
        rho = spearman_corrcoef(scores, torch.as_tensor(truth, dtype=torch.float32))
        result["measure_spearman_truth"] = float(rho)
    else:
        # torchmetrics returns 0 for a constant input, which would read as "no relation".
        logger.warning("the measure or the intensity is constant: no Spearman correlation")
    if clean.any() and (~clean).any():
        area = auroc(scores, torch.as_tensor(clean, dtype=torch.long), task="binary")
        result["measure_auroc_label"] = float(area)
        result["real_gap"] = float(measure[clean].mean() - measure[~clean].mean())
    return result


@dataclass
class _Context:
    """Shared state of the edits of every label: decoder, distributions, geometry, settings."""

    decoder: nn.Module
    device: torch.device
    gaussians: LabelGaussians
    geometry: np.ndarray
    image_size: int
    num_images: int
    scale: float
    seed: int
    batch_size: int

    def edits(self, vectors: torch.Tensor, present: np.ndarray, index: int) -> dict:
        """Add the label on images without it and remove it on images with it."""
        result = {key: None for key in _EDIT_KEYS}
        result["num_add"] = result["num_remove"] = 0
        if not self.gaussians.usable(index):
            logger.warning("label %r has too few positive images to edit", self.name(index))
            return result
        without = self.pick(np.flatnonzero(~present[:, index]), index)
        with_label = self.pick(np.flatnonzero(present[:, index]), index)
        if len(without):
            change = self.change(vectors, without, index, add=True)
            result.update(
                add_mean_change=float(change.mean()),
                add_increase_fraction=float((change > 0).mean()),
                num_add=len(without),
            )
        if len(with_label):
            change = self.change(vectors, with_label, index, add=False)
            result.update(
                remove_mean_change=float(change.mean()),
                remove_decrease_fraction=float((change < 0).mean()),
                num_remove=len(with_label),
            )
        return result

    def pick(self, candidates: np.ndarray, index: int) -> np.ndarray:
        """Choose up to num_images rows with a generator seeded (seed, label), as measure_edits."""
        rng = np.random.default_rng([self.seed, index])
        return np.sort(rng.permutation(candidates)[: self.num_images])

    def name(self, index: int) -> str:
        return self.gaussians.label_names[index]

    def change(self, vectors: torch.Tensor, rows: np.ndarray, index: int, add: bool) -> np.ndarray:
        """(n,) measure on the edited reconstruction minus that on the plain one."""
        plain = vectors[torch.as_tensor(rows)]
        edits = ([index], []) if add else ([], [index])
        edited = edit_embeddings(plain, self.gaussians, *edits, self.scale, self.seed + index)
        before = self.measure(plain, rows, index)
        return self.measure(edited, rows, index) - before

    def measure(self, vectors: torch.Tensor, rows: np.ndarray, index: int) -> np.ndarray:
        decoded = self.decode(vectors)
        offset, remainder = divmod(self.image_size - decoded.shape[1], 2)
        if remainder or offset < 0:
            raise OlrError(
                f"decoder output of side {decoded.shape[1]} is not the centre of the "
                f"{self.image_size}-pixel images; use the decoder trained on these images"
            )
        name = self.name(index)
        return measure_attributes(decoded, self.geometry[rows], [name], offset)[name]

    def decode(self, vectors: torch.Tensor) -> np.ndarray:
        """(n, H, W, 3) float32 rescaled reconstructions in [0, 1]."""
        parts = []
        with torch.no_grad():
            for start in range(0, len(vectors), self.batch_size):
                _, rescaled = self.decoder(vectors[start : start + self.batch_size].to(self.device))
                # Rounding in the min-max rescale can leave values a hair outside [0, 1].
                parts.append(rescaled.clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(parts).astype(np.float32)


_EDIT_KEYS = (
    "add_mean_change",
    "add_increase_fraction",
    "remove_mean_change",
    "remove_decrease_fraction",
)
