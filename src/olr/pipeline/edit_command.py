"""``olr edit``: add or remove attributes of one image through its label embeddings.

Example: ``olr edit --run runs/a --image 000123.jpg --add Eyeglasses --remove Smiling --scale 1.5``
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from olr.analysis.embed import embed_images, load_embeddings
from olr.data.cache import ImageCache
from olr.errors import OlrError
from olr.pipeline.rundir import RunDir

logger = logging.getLogger(__name__)


def load_image(run: RunDir, image: str, cache: ImageCache) -> np.ndarray:
    """Return the (S, S, 3) uint8 image for a file path or an image id of the run's cache."""
    path = Path(image)
    if path.is_file():
        from olr.data.images import decode_image

        crop = "celeba_square" if run.config.data.dataset == "celeba" else "none"
        return decode_image(path, cache.image_size, crop)
    ids = {name: row for row, name in enumerate(cache.ids)}
    stem_ids = {Path(name).stem: row for row, name in enumerate(cache.ids)}
    row = ids.get(image, stem_ids.get(image))
    if row is None:
        raise OlrError(
            f"--image {image!r} is neither a file nor an image id of {run.root} "
            f"(ids look like {cache.ids[0]!r})"
        )
    return np.asarray(cache.images[row])


def label_indices(names: list[str], requested: list[str], option: str) -> list[int]:
    """Map label names to indices; OlrError lists the valid names for an unknown one."""
    unknown = [name for name in requested if name not in names]
    if unknown:
        raise OlrError(f"{option} {unknown[0]!r} is not a label; choose from {', '.join(names)}")
    return [names.index(name) for name in requested]


def edit_image(
    run: RunDir,
    image: str,
    add: list[str],
    remove: list[str],
    scale: float,
    remove_mode: str,
    seed: int,
    out: Path,
) -> Path:
    """Write original | plain reconstruction | edit side by side to ``out`` (PNG).

    Args:
        run: a run folder with a trained Siamese model and decoder.
        image: an image file or an image id of the run's cache.
        add, remove: label names to add and remove.
        scale: factor on the sampled vectors of added labels.
        remove_mode: ``zero`` or ``shrink``.
        seed: seed of the sampled vectors.
        out: output PNG path.

    Returns:
        The written path.
    """
    from olr.analysis.editing import edit_embeddings, fit_label_gaussians
    from olr.pipeline.reconstruction_stages import load_decoder
    from olr.pipeline.training_stages import load_embedder
    from olr.report.figures import plot_image_grid

    if not add and not remove:
        raise OlrError("nothing to edit: pass --add LABEL and/or --remove LABEL")
    both = sorted(set(add) & set(remove))
    if both:
        raise OlrError(f"label {both[0]!r} is both added and removed; pass it to one of them")
    if not scale > 0:
        raise OlrError(f"--scale must be positive, got {scale}")
    if Path(out).suffix.lower() != ".png":
        raise OlrError(f"--out {out} must end in .png (the edit is written as a PNG figure)")
    cache = ImageCache.open(run.cache_dir)
    names = list(cache.label_names)
    add_idx = label_indices(names, add, "--add")
    remove_idx = label_indices(names, remove, "--remove")
    pixels = load_image(run, image, cache)
    embedder = load_embedder(run.root / "siamese" / "embedder.safetensors")
    decoder = load_decoder(run)
    embedding = torch.from_numpy(embed_images(embedder, pixels[None]))  # (1, L, k)
    train = load_embeddings(run.root / "embeddings" / "train.safetensors")
    # The shrinkage warnings were logged once by the editing stage; one edit need not repeat them.
    editing_logger = logging.getLogger("olr.analysis.editing")
    level = editing_logger.level
    editing_logger.setLevel(logging.ERROR)
    try:
        gaussians = fit_label_gaussians(train.embeddings, train.labels, train.label_names)
    finally:
        editing_logger.setLevel(level)
    edited = edit_embeddings(embedding, gaussians, add_idx, remove_idx, scale, seed, remove_mode)
    with torch.no_grad():
        _, decoded = decoder(torch.cat([embedding, edited]))
    decoded = decoded.permute(0, 2, 3, 1).numpy()
    original = pixels[1:-1, 1:-1].astype(np.float32) / 255.0
    change = " ".join([f"+{n}" for n in add] + [f"-{n}" for n in remove])
    plot_image_grid(
        [np.stack([original, decoded[0], decoded[1]])],
        out,
        column_titles=["original", "reconstruction", f"{change} (x{scale:g})"],
    )
    return Path(out)
