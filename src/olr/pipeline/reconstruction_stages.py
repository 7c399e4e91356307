"""Pipeline stages that decode embeddings back to images and measure attribute edits.

Karatsiolis and Kamilaris (ICPRAM 2021), items 5 and 6 of their evaluation. A decoder is trained
on the frozen embeddings of the training split. An edit replaces one label's vector with a sample
of that label's fitted normal distribution (add) or with zero (remove).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from olr.analysis.embed import load_embeddings
from olr.config import from_dict, to_dict
from olr.data.cache import ImageCache
from olr.models.decoder import Autoencoder, Decoder, DecoderConfig
from olr.models.io import best_device, load_weights, read_info, save_weights
from olr.pipeline.rundir import RunDir, write_json
from olr.training.batches import CachedImages, MemmapImages, make_loader, to_float_images
from olr.training.trainer import build_trainer, fit, resume_path

logger = logging.getLogger(__name__)

FIGURE_IMAGES = 8
EDIT_FIGURE_LABELS = (
    "Eyeglasses",
    "Smiling",
    "Mouth_Slightly_Open",
    "Chubby",
    "Narrow_Eyes",
    "Mustache",
    "Wearing_Hat",
    "Bangs",
    "Blond_Hair",
    "Male",
)


class EmbeddedImages(MemmapImages):
    """Pairs of (label embeddings (L, k) float32, image (S, S, 3) uint8) of one split."""

    def __init__(self, embeddings: np.ndarray, images: np.ndarray, indices: np.ndarray) -> None:
        self.embeddings = embeddings
        self.images = images
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int):
        image = torch.from_numpy(np.array(self.images[self.indices[item]]))
        return torch.from_numpy(np.array(self.embeddings[item])), image


def embedded_split(run: RunDir, cache: ImageCache, split: str) -> EmbeddedImages:
    data = load_embeddings(run.root / "embeddings" / f"{split}.safetensors")
    return EmbeddedImages(data.embeddings, cache.images, data.indices)


def load_decoder(run: RunDir) -> Decoder:
    """Rebuild the trained decoder of a run from ``decoder/decoder.safetensors``."""
    path = run.root / "decoder" / "decoder.safetensors"
    info = read_info(path)
    decoder = Decoder(
        info["num_labels"],
        info["dim"],
        info["image_size"],
        from_dict(DecoderConfig, info["config"]),
    )
    return load_weights(decoder, path).eval()


def fit_reconstruction(run: RunDir, stage: str, module, train_set, val_set) -> str:
    """Train ``module`` with the decoder settings; return the best checkpoint path."""
    optim = run.config.decoder.optim
    trainer, checkpoint = build_trainer(
        run.config.trainer,
        run.stage_dir(stage),
        stage,
        optim.epochs,
        "val_ssim",
        "max",
        optim.grad_clip,
    )
    loader = make_loader(
        train_set,
        optim.batch_size,
        True,
        run.config.data.loader_workers,
        drop_last=True,
        seed=run.config.seed,
    )
    val_loader = make_loader(val_set, optim.batch_size, False, run.config.data.loader_workers)
    fit(trainer, module, loader, val_loader, resume_path(run.stage_dir(stage)))
    return checkpoint.best_model_path


def stage_decoder(run: RunDir) -> dict:
    """Train the decoder on frozen train embeddings; report test MSE, PSNR and SSIM."""
    from olr.report.figures import plot_image_grid
    from olr.training.reconstruction import ReconstructionModule, evaluate_reconstruction

    settings = run.config.decoder
    cache = ImageCache.open(run.cache_dir)
    train_set, val_set = embedded_split(run, cache, "train"), embedded_split(run, cache, "val")
    num_labels, dim = train_set.embeddings.shape[1:]
    torch.manual_seed(run.config.seed)
    decoder = Decoder(num_labels, dim, cache.image_size, settings.model)
    module = ReconstructionModule(decoder, lr=settings.optim.lr, alpha=settings.alpha)
    best_path = fit_reconstruction(run, "decoder", module, train_set, val_set)
    metrics = {}
    if run.primary:
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
        info = {
            "num_labels": int(num_labels),
            "dim": int(dim),
            "image_size": cache.image_size,
            "config": to_dict(settings.model),
        }
        save_weights(decoder, run.stage_dir("decoder") / "decoder.safetensors", info)
        device = best_device(run.config.trainer.accelerator)
        test_set = embedded_split(run, cache, "test")
        decoder.to(device)
        check_alive(
            decoder, (e for e, _ in make_loader(test_set, 128, shuffle=False)), "decoder", device
        )
        metrics = {
            "reconstruction": {
                "test": evaluate_reconstruction(
                    decoder, ((e, i) for e, i in make_loader(test_set, 128, shuffle=False))
                )
            }
        }
        originals, reconstructions = reconstruct_examples(decoder, test_set, device)
        plot_image_grid(
            [originals, reconstructions],
            run.figures / "reconstruction.png",
            row_titles=["test image", "decoded from E"],
            title="Test images and their reconstructions from the label embeddings",
        )
        decoder.cpu()
    run_barrier()
    return metrics


def check_alive(model, batches, stage: str, device) -> None:
    """Raise TrainingError when a decoder's output is constant on every image of the batches.

    With a ReLU after the output layer, an output layer pushed negative gives 0 everywhere, the
    min-max rescale then has no range and no gradient flows, so training cannot recover.
    NOTE: it runs on the primary process only, so in a DDP run the other processes wait at the
    next barrier until they time out when it raises.
    """
    from olr.errors import TrainingError

    constant = total = 0
    model.eval()
    with torch.no_grad():
        for inputs in batches:
            conv_out, _ = model(inputs.to(device))
            spread = conv_out.flatten(1).amax(dim=1) - conv_out.flatten(1).amin(dim=1)
            constant += int((spread <= 1e-6).sum())
            total += len(spread)
    if total and constant == total:
        raise TrainingError(
            f"the {stage} output is constant on all {total} test images (dead output layer); "
            "set decoder.model.output_activation=none or lower decoder.optim.lr, then rerun "
            f"with --redo-from {stage}"
        )


def reconstruct_examples(decoder, test_set: EmbeddedImages, device, count: int = FIGURE_IMAGES):
    """Return (count, S-2, S-2, 3) cropped originals and reconstructions in [0, 1]."""
    count = min(count, len(test_set))
    embeddings = torch.from_numpy(np.asarray(test_set.embeddings[:count])).to(device)
    with torch.no_grad():
        _, rescaled = decoder.eval()(embeddings)
    images = np.asarray(test_set.images[test_set.indices[:count]])[:, 1:-1, 1:-1] / 255.0
    return images.astype(np.float32), rescaled.permute(0, 2, 3, 1).cpu().numpy()


def run_barrier() -> None:
    """Wait for every process of a distributed run (no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def stage_autoencoder(run: RunDir) -> dict:
    """Train an autoencoder with the same bottleneck size (L * k) as the reference."""
    from olr.training.reconstruction import AutoencoderModule, evaluate_reconstruction

    settings = run.config.decoder
    if not settings.autoencoder:
        return {}
    cache = ImageCache.open(run.cache_dir)
    rows = _splits(run)
    num_labels = len(cache.label_names)
    bottleneck = num_labels * run.config.siamese.model.dim
    torch.manual_seed(run.config.seed)
    autoencoder = Autoencoder(cache.image_size, bottleneck, settings.model)
    module = AutoencoderModule(autoencoder, lr=settings.optim.lr, alpha=settings.alpha)
    train_set = CachedImages(cache.images, cache.labels, rows["train"])
    val_set = CachedImages(cache.images, cache.labels, rows["val"])
    best_path = fit_reconstruction(run, "autoencoder", module, train_set, val_set)
    metrics = {}
    if run.primary:
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
        device = best_device(run.config.trainer.accelerator)
        autoencoder.to(device)
        test_set = CachedImages(cache.images, cache.labels, rows["test"])
        check_alive(
            autoencoder,
            (to_float_images(i) for i, _ in make_loader(test_set, 128, shuffle=False)),
            "autoencoder",
            device,
        )
        result = evaluate_reconstruction(
            autoencoder, (images for images, _ in make_loader(test_set, 128, shuffle=False))
        )
        metrics = {"reconstruction": {"autoencoder": {**result, "bottleneck": bottleneck}}}
        autoencoder.cpu()
    run_barrier()
    return metrics


def _splits(run: RunDir) -> dict:
    from olr.pipeline.training_stages import load_splits

    return load_splits(run)


def stage_editing(run: RunDir) -> dict:
    """Fit one normal distribution per label and measure add and remove edits on test images."""
    from olr.analysis.editing import fit_label_gaussians, measure_edits
    from olr.pipeline.training_stages import load_teacher

    cache = ImageCache.open(run.cache_dir)
    train = load_embeddings(run.root / "embeddings" / "train.safetensors")
    test = load_embeddings(run.root / "embeddings" / "test.safetensors")
    gaussians = fit_label_gaussians(train.embeddings, train.labels, train.label_names)
    decoder, teacher = load_decoder(run), load_teacher(run)
    device = best_device(run.config.trainer.accelerator)
    editing = run.config.editing
    metrics = measure_edits(
        test.embeddings,
        test.labels,
        decoder,
        teacher,
        gaussians,
        tuple(editing.scales),
        editing.num_images,
        run.config.seed,
        device,
    )
    metrics["shrunk_labels"] = [
        name for name, s in zip(gaussians.label_names, gaussians.shrinkage) if s > 0
    ]
    truth = truth_check(run, cache, test, decoder, gaussians, device)
    if truth is not None:
        metrics["truth"] = truth
    write_json(run.stage_dir("editing") / "editing.json", metrics)
    plot_edit_figures(run, decoder.cpu(), gaussians, test, cache, metrics)
    return {"editing": metrics}


def truth_check(run: RunDir, cache, test, decoder, gaussians, device) -> dict | None:
    """On synthetic data, measure edits in pixels through the generator's face geometry."""
    if cache.truth is None or "geometry" not in cache.truth:
        return None
    from olr.analysis.truth_edits import truth_edit_check

    rows = test.indices
    return truth_edit_check(
        test.embeddings,
        test.labels,
        np.asarray(cache.truth["geometry"])[rows],
        decoder,
        gaussians,
        test.label_names,
        np.asarray(cache.images[rows]),
        np.asarray(cache.truth["intensities"])[rows],
        run.config.editing.num_images,
        seed=run.config.seed,
        device=device,
    )


def plot_edit_figures(run: RunDir, decoder, gaussians, test, cache, metrics: dict) -> None:
    """Draw rows of growing edit scale and the success rate per scale."""
    from olr.analysis.editing import edit_image_rows
    from olr.report.figures import plot_bar_table, plot_image_grid

    names = test.label_names
    scales = list(run.config.editing.scales)
    chosen = [n for n in EDIT_FIGURE_LABELS if n in names and gaussians.usable(names.index(n))]
    chosen = chosen[:6] or [n for i, n in enumerate(names) if gaussians.usable(i)][:6]
    rows, titles = [], []
    for label in chosen:
        index = names.index(label)
        without = np.flatnonzero(test.labels[:, index] == 0)
        if len(without) == 0:
            continue
        embedding = torch.from_numpy(np.asarray(test.embeddings[without[0]]))
        rows.append(edit_image_rows(embedding, decoder, gaussians, index, scales, run.config.seed))
        titles.append(f"+{label}")
    if rows:
        plot_image_grid(
            rows,
            run.figures / "editing_scale.png",
            row_titles=titles,
            column_titles=["reconstruction"] + [f"scale {s:g}" for s in scales],
            title="Adding a label: its vector replaced by a sample times the scale",
        )
    success = {
        f"add x{key}": value.get("add_success_rate")
        for key, value in metrics.get("scales", {}).items()
    }
    success = {k: v for k, v in success.items() if v is not None}
    if success:
        plot_bar_table(
            success,
            run.figures / "editing_success.png",
            "Edit success rate by scale (teacher crosses 0.5)",
            "scale of the added sample",
        )
