"""Attribute editing in embedding space: per-label Gaussians, edits and their measured effect.

The method follows Karatsiolis and Kamilaris, ICPRAM 2021. A label is added to an image by
replacing its vector e_l with s times a draw from N(mu_l, Sigma_l), fitted to the images that have
the label. It is removed by setting e_l to zero or to a draw shrunk to a small norm. With fewer
images than twice the dimension, Sigma_l is the Ledoit-Wolf shrinkage estimate (Ledoit and Wolf,
"A well-conditioned estimator for large-dimensional covariance matrices", Journal of Multivariate
Analysis 88, 2004). Embedding axes are (image, label, dim) throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from olr.errors import OlrError

logger = logging.getLogger(__name__)

MIN_COUNT = 2  # a covariance needs at least two samples
JITTER = 1e-6  # relative to the mean variance, so the Cholesky factor exists for any estimate
REMOVE_MODES = ("zero", "shrink")
THRESHOLD = 0.5  # a teacher probability at or above this counts as "label present"


@dataclass
class LabelGaussians:
    """Per-label normal distributions of the label vectors of images that have the label.

    Attributes:
        mean: (L, k) float64 mean of e_l over images with y_l = 1.
        covariance: (L, k, k) float64 covariance, positive definite (jitter added).
        count: (L,) int64 number of images with y_l = 1.
        shrinkage: (L,) float64 Ledoit-Wolf coefficient in [0, 1]; 0 for a sample covariance.
        label_names: L names.
    """

    mean: np.ndarray
    covariance: np.ndarray
    count: np.ndarray
    shrinkage: np.ndarray
    label_names: list[str]

    def usable(self, label_index: int) -> bool:
        """Return whether the label has enough positive images (at least 2) to edit with."""
        return bool(self.count[label_index] >= MIN_COUNT)

    def require_usable(self, label_index: int) -> None:
        """Raise OlrError naming the label if it has fewer than 2 positive images."""
        if not 0 <= label_index < len(self.label_names):
            raise OlrError(
                f"invalid label index {label_index}: there are {len(self.label_names)} labels"
            )
        if not self.usable(label_index):
            raise OlrError(
                f"label {self.label_names[label_index]!r} has {int(self.count[label_index])} "
                f"positive images, so its distribution is undefined: editing needs at least "
                f"{MIN_COUNT}"
            )


def _to_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def ledoit_wolf(samples: np.ndarray) -> tuple[np.ndarray, float]:
    """Estimate a covariance by shrinkage towards a scaled identity (Ledoit and Wolf, 2004).

    With S the sample covariance (divided by n), m = tr(S) / p, d2 = ||S - m I||^2,
    b2 = min(d2, sum_i ||x_i x_i^T - S||^2 / n^2) for centred x_i, and the Frobenius norm
    divided by p, the estimate is (b2 / d2) * m I + (1 - b2 / d2) * S.

    Args:
        samples: (n, p) float, n >= 2.

    Returns:
        (p, p) covariance and the shrinkage coefficient b2 / d2 in [0, 1].
    """
    count, dim = samples.shape
    centred = samples - samples.mean(axis=0)
    sample_cov = centred.T @ centred / count
    scale = np.trace(sample_cov) / dim
    target = scale * np.eye(dim)
    d2 = np.sum((sample_cov - target) ** 2) / dim
    outer = np.einsum("ni,nj->nij", centred, centred)
    b2 = min(d2, np.sum((outer - sample_cov) ** 2) / dim / count**2)
    shrinkage = float(b2 / d2) if d2 > 0 else 0.0
    return shrinkage * target + (1.0 - shrinkage) * sample_cov, shrinkage


def _fit_one(
    vectors: np.ndarray, name: str, threshold: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit mean, covariance (jittered) and shrinkage to the (n, k) vectors of one label."""
    count, dim = vectors.shape
    if count < MIN_COUNT:
        logger.warning(
            "label %r has %d positive images: it cannot be used for editing", name, count
        )
        mean = vectors.mean(axis=0) if count else np.zeros(dim)
        return mean, np.eye(dim) * JITTER, 0.0
    if count < threshold:
        covariance, shrinkage = ledoit_wolf(vectors)
        logger.warning(
            "label %r has only %d positive images for %d dims: Ledoit-Wolf shrinkage %.3f",
            name,
            count,
            dim,
            shrinkage,
        )
    else:
        covariance, shrinkage = np.cov(vectors, rowvar=False).reshape(dim, dim), 0.0
    # An absolute floor keeps all-zero vectors (variance 0) positive definite too.
    jitter = JITTER * max(np.trace(covariance) / dim, 1e-6)
    return vectors.mean(axis=0), covariance + jitter * np.eye(dim), shrinkage


def fit_label_gaussians(
    embeddings, labels, label_names: Sequence[str], shrinkage_threshold: int | None = None
) -> LabelGaussians:
    """Fit N(mu_l, Sigma_l) to the vectors e_l of the images with y_l = 1, for every label.

    Args:
        embeddings: (N, L, k) float, axes (image, label, dim); torch or numpy.
        labels: (N, L) {0, 1}.
        label_names: L names.
        shrinkage_threshold: labels with fewer positive images than this use the Ledoit-Wolf
            estimate (and a warning is logged); default 2 * k.

    Returns:
        LabelGaussians; labels with fewer than 2 positive images are kept but not usable.

    Raises:
        OlrError: if the shapes disagree.
    """
    vectors = _to_numpy(embeddings).astype(np.float64)
    present = _to_numpy(labels).astype(bool)
    if vectors.ndim != 3 or present.shape != vectors.shape[:2]:
        raise OlrError(
            f"embeddings {vectors.shape} and labels {present.shape} do not match: "
            "expected (N, L, k) and (N, L)"
        )
    if len(label_names) != vectors.shape[1]:
        raise OlrError(f"{len(label_names)} label names for {vectors.shape[1]} labels")
    threshold = 2 * vectors.shape[2] if shrinkage_threshold is None else shrinkage_threshold
    fits = [
        _fit_one(vectors[present[:, i], i], name, threshold) for i, name in enumerate(label_names)
    ]
    return LabelGaussians(
        mean=np.stack([fit[0] for fit in fits]),
        covariance=np.stack([fit[1] for fit in fits]),
        count=present.sum(axis=0).astype(np.int64),
        shrinkage=np.array([fit[2] for fit in fits]),
        label_names=list(label_names),
    )


def sample_label_vectors(
    gaussians: LabelGaussians,
    label_index: int,
    count: int,
    generator: torch.Generator | np.random.Generator,
    scale: float = 1.0,
) -> torch.Tensor:
    """Draw scale * x with x ~ N(mu_l, Sigma_l).

    Args:
        gaussians: fitted distributions.
        label_index: l.
        count: number of draws.
        generator: source of the standard normals; the same state gives the same draws.
        scale: factor s on each draw (s > 1 strengthens an added label).

    Returns:
        (count, k) float32 tensor on the CPU.

    Raises:
        OlrError: if the label has fewer than 2 positive images.
    """
    gaussians.require_usable(label_index)
    dim = gaussians.mean.shape[1]
    if isinstance(generator, np.random.Generator):
        normals = generator.standard_normal((count, dim))
    else:
        normals = torch.randn(count, dim, generator=generator, dtype=torch.float64).numpy()
    factor = np.linalg.cholesky(gaussians.covariance[label_index])
    draws = gaussians.mean[label_index] + normals @ factor.T
    return torch.from_numpy(scale * draws).float()


def _check_indices(indices: Sequence[int], num_labels: int, role: str) -> None:
    for index in indices:
        if not 0 <= index < num_labels:
            raise OlrError(f"invalid label index {index} to {role}: there are {num_labels} labels")


def edit_embeddings(
    embeddings: torch.Tensor,
    gaussians: LabelGaussians,
    add: Sequence[int],
    remove: Sequence[int],
    scale: float = 1.0,
    seed: int = 0,
    remove_mode: str = "zero",
    shrink_norm: float = 0.05,
) -> torch.Tensor:
    """Return a copy of the embeddings with labels added and removed.

    Draws come from one generator seeded with `seed`, first for `add` in order, then for
    `remove`, so the same arguments give the same result.

    Args:
        embeddings: (B, L, k) float, axes (batch, label, dim).
        gaussians: fitted distributions.
        add: label indices whose vectors become scale * x, x ~ N(mu_l, Sigma_l).
        remove: label indices whose vectors become zero ("zero") or a draw rescaled to norm
            shrink_norm ("shrink").
        scale: factor on the added draws.
        seed: generator seed.
        remove_mode: "zero" or "shrink".
        shrink_norm: norm of a removed vector in "shrink" mode.

    Returns:
        (B, L, k) tensor, same dtype and device; equal to the input when add and remove are empty.

    Raises:
        OlrError: on an unknown remove_mode, an invalid index, a label both added and removed,
            or a label with fewer than 2 positive images (except when zeroing it).
    """
    if remove_mode not in REMOVE_MODES:
        raise OlrError(f"invalid remove_mode {remove_mode!r}: use one of {REMOVE_MODES}")
    num_labels = embeddings.shape[1]
    _check_indices(add, num_labels, "add")
    _check_indices(remove, num_labels, "remove")
    if set(add) & set(remove):
        raise OlrError(f"labels {sorted(set(add) & set(remove))} are both added and removed")
    edited = embeddings.clone()
    generator = torch.Generator().manual_seed(seed)
    batch = embeddings.shape[0]
    for index in add:
        draws = sample_label_vectors(gaussians, index, batch, generator, scale)
        edited[:, index] = draws.to(edited)
    for index in remove:
        if remove_mode == "zero":
            edited[:, index] = 0.0
            continue
        draws = sample_label_vectors(gaussians, index, batch, generator)
        draws = shrink_norm * draws / draws.norm(dim=1, keepdim=True).clamp_min(1e-12)
        edited[:, index] = draws.to(edited)
    return edited


def _device_of(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _reconstruct(
    decoder: nn.Module,
    teacher: nn.Module,
    embeddings: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> tuple[np.ndarray, torch.Tensor]:
    """Decode embeddings and score them: (n, L) teacher probabilities and (n, 3, S-2, S-2) images.

    The decoded image is one pixel short on each side, so it is padded back to S by repeating the
    border before it goes to the teacher.
    """
    probabilities, images = [], []
    with torch.no_grad():
        for start in range(0, len(embeddings), batch_size):
            chunk = embeddings[start : start + batch_size].to(device)
            _, rescaled = decoder(chunk)
            logits = teacher(F.pad(rescaled, (1, 1, 1, 1), mode="replicate"))
            probabilities.append(torch.sigmoid(logits).cpu())
            images.append(rescaled.cpu())
    return torch.cat(probabilities).numpy(), torch.cat(images)


def _pick(candidates: np.ndarray, num_images: int, seed: int, label_index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, label_index])
    return np.sort(rng.permutation(candidates)[:num_images])


def _rate(successes: int, eligible: int) -> float | None:
    return successes / eligible if eligible else None


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [value for value in values if value is not None]
    return float(np.mean(kept)) if kept else None


@dataclass
class _EditContext:
    decoder: nn.Module
    teacher: nn.Module
    gaussians: LabelGaussians
    batch_size: int
    device: torch.device
    seed: int


def _measure_add(context: _EditContext, embeddings: torch.Tensor, label: int, scales) -> dict:
    """Score adding one label at each scale on images without it; returns per-scale results."""
    plain_p, plain_images = _reconstruct(
        context.decoder, context.teacher, embeddings, context.batch_size, context.device
    )
    eligible = plain_p[:, label] < THRESHOLD
    others = np.arange(plain_p.shape[1]) != label
    results = {}
    for scale in scales:
        edited = edit_embeddings(
            embeddings, context.gaussians, [label], [], scale, context.seed + label
        )
        edit_p, edit_images = _reconstruct(
            context.decoder, context.teacher, edited, context.batch_size, context.device
        )
        successes = int(np.sum(eligible & (edit_p[:, label] >= THRESHOLD)))
        off_target = None
        if others.any():
            off_target = float(np.mean(np.abs(edit_p - plain_p)[:, others]))
        results[scale] = {
            "rate": _rate(successes, int(eligible.sum())),
            "delta": float(np.mean(edit_p[:, label] - plain_p[:, label])),
            "off_target": off_target,
            "preservation": float((edit_images - plain_images).abs().mean()),
        }
    return results


def _measure_remove(context: _EditContext, embeddings: torch.Tensor, label: int) -> dict:
    """Score zeroing one label's vector on images with it."""
    plain_p, _ = _reconstruct(
        context.decoder, context.teacher, embeddings, context.batch_size, context.device
    )
    edited = edit_embeddings(embeddings, context.gaussians, [], [label], seed=context.seed + label)
    edit_p, _ = _reconstruct(
        context.decoder, context.teacher, edited, context.batch_size, context.device
    )
    eligible = plain_p[:, label] >= THRESHOLD
    successes = int(np.sum(eligible & (edit_p[:, label] < THRESHOLD)))
    return {
        "rate": _rate(successes, int(eligible.sum())),
        "delta": float(np.mean(edit_p[:, label] - plain_p[:, label])),
    }


def _summarise(
    names: list[str], add: dict, remove: dict, scales, num_images: int, usable: list[str]
) -> dict:
    """Assemble the metrics.json "editing" object from per-label results."""

    def at_scale(scale: float, key: str) -> list:
        return [add[name][scale][key] for name in add]

    add_rates = {name: add[name][1.0]["rate"] if name in add else None for name in names}
    remove_rates = {name: remove[name]["rate"] if name in remove else None for name in names}
    remove_rate = _mean(list(remove_rates.values()))
    return {
        "add": {
            "success_rate": _mean(list(add_rates.values())),
            "per_label": add_rates,
            "mean_delta": _mean(at_scale(1.0, "delta")),
        },
        "remove": {
            "success_rate": remove_rate,
            "per_label": remove_rates,
            "mean_delta": _mean([result["delta"] for result in remove.values()]),
        },
        "off_target": _mean(at_scale(1.0, "off_target")),
        "preservation": _mean(at_scale(1.0, "preservation")),
        "scales": {
            str(scale): {
                "add_success_rate": _mean(at_scale(scale, "rate")),
                "remove_success_rate": remove_rate,
            }
            for scale in scales
        },
        "num_images": num_images,
        "usable_labels": usable,
    }


def measure_edits(
    embeddings,
    labels,
    decoder: nn.Module,
    teacher: nn.Module,
    gaussians: LabelGaussians,
    scales: Sequence[float] = (0.5, 1.0, 1.5, 2.0),
    num_images: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> dict:
    """Measure with a teacher classifier whether adding and removing labels works.

    For each usable label, up to num_images images without it (for add) and with it (for remove)
    are drawn with a generator seeded by (seed, label index). An edit succeeds when the teacher's
    probability of the label on the reconstruction crosses 0.5 the right way: from below 0.5 to
    at least 0.5 for add, the reverse for remove. Only images whose plain reconstruction starts on
    the right side count. Removal zeroes the vector, so its rate does not depend on the scale.

    Args:
        embeddings: (N, L, k) float, axes (image, label, dim).
        labels: (N, L) {0, 1} ground truth used to pick the images.
        decoder: maps (B, L, k) to (conv_out, rescaled), each (B, 3, S - 2, S - 2).
        teacher: maps float images (B, 3, S, S) in [0, 1] to logits (B, L).
        gaussians: fitted distributions.
        scales: factors on the added draws.
        num_images: maximum images per label and direction.
        seed: seed for the image choice and the draws (label l uses seed + l).
        device: where decoder and teacher run; both are moved there and put in eval mode.
        batch_size: images per forward pass.

    Returns:
        {"add": {"success_rate", "per_label", "mean_delta"}, "remove": {same}, "off_target",
        "preservation", "scales": {str(s): {"add_success_rate", "remove_success_rate"}},
        "num_images", "usable_labels"}. Rates are fractions, and per-label rates are None for
        labels that are unusable or have no eligible image; means skip None. "add",
        "off_target" (mean |change| of the other labels' probabilities) and "preservation" (mean
        absolute pixel difference in [0, 1] between edited and plain reconstruction) use scale 1.
    """
    vectors = torch.as_tensor(embeddings, dtype=torch.float32)
    present = _to_numpy(labels).astype(bool)
    if vectors.dim() != 3 or present.shape != tuple(vectors.shape[:2]):
        raise OlrError(
            f"embeddings {tuple(vectors.shape)} and labels {present.shape} do not match: "
            "expected (N, L, k) and (N, L)"
        )
    device = torch.device(device)
    context = _EditContext(
        decoder.to(device).eval(), teacher.to(device).eval(), gaussians, batch_size, device, seed
    )
    scales = [float(scale) for scale in scales]
    all_scales = sorted(set(scales) | {1.0})
    names = gaussians.label_names
    usable = [i for i in range(len(names)) if gaussians.usable(i)]
    add, remove = {}, {}
    for label in usable:
        without = _pick(np.flatnonzero(~present[:, label]), num_images, seed, label)
        with_label = _pick(np.flatnonzero(present[:, label]), num_images, seed, label)
        if len(without):
            add[names[label]] = _measure_add(context, vectors[without], label, all_scales)
        if len(with_label):
            remove[names[label]] = _measure_remove(context, vectors[with_label], label)
    result = _summarise(names, add, remove, scales, num_images, [names[i] for i in usable])
    logger.info(
        "editing: add success %s, remove success %s",
        result["add"]["success_rate"],
        result["remove"]["success_rate"],
    )
    return result


def edit_image_rows(
    embedding: torch.Tensor,
    decoder: nn.Module,
    gaussians: LabelGaussians,
    label_index: int,
    scales: Sequence[float],
    seed: int,
) -> np.ndarray:
    """Decode one image plainly and with a label added at each scale, for a figure.

    All edits share one draw (same seed), so the rows show that draw growing with the scale.

    Args:
        embedding: (L, k) float, axes (label, dim).
        decoder: maps (B, L, k) to (conv_out, rescaled); run in eval mode on its own device.
        gaussians: fitted distributions.
        label_index: label to add.
        scales: factors on the draw.
        seed: draw seed.

    Returns:
        (len(scales) + 1, S - 2, S - 2, 3) float32 in [0, 1]: the plain reconstruction first.
    """
    base = torch.as_tensor(embedding, dtype=torch.float32).unsqueeze(0)
    rows = [base] + [
        edit_embeddings(base, gaussians, [label_index], [], scale, seed) for scale in scales
    ]
    decoder.eval()
    with torch.no_grad():
        _, rescaled = decoder(torch.cat(rows).to(_device_of(decoder)))
    return rescaled.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
