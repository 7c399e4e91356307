"""Measure Siamese training throughput: cached pipeline, model alone, and a naive reference.

The training step is step 2 of Karatsiolis and Kamilaris (ICPRAM 2021). It occludes 2B images,
runs the frozen teacher for p(a) and p(b), and embeds both halves with the Siamese model. The loss
is the MSE between row-wise dot products and p(a) * p(b). Models have random weights, which
costs the same time per step as trained ones. Achieved FLOP/s is the FLOP count of one step
(``torch.utils.flop_counter.FlopCounterMode``) over the measured model-only step time. The peak
is that of a large float32 ``torch.mm`` on the same device, 2 n^3 FLOPs per product.

Example::

    python benchmarks/throughput.py --data-root path/to/celeba-89x109 --image-size 64 \
        --preset cpu --seconds 20 --json out.json

Without ``--data-root`` the built-in synthetic faces are generated into a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.flop_counter import FlopCounterMode

from olr.config import RunConfig, resolve_config, to_dict
from olr.data.cache import ImageCache, prepare_cache
from olr.data.images import decode_image
from olr.errors import OlrError
from olr.models.classifier import Classifier
from olr.models.siamese import olr_loss
from olr.training.batches import CachedImages, make_loader, to_float_images
from olr.training.siamese import SiameseModule

logger = logging.getLogger("olr.benchmarks.throughput")

PIPELINES = ("end_to_end", "model_only", "naive")
PIPELINE_TITLES = {
    "end_to_end": "end to end from the cache",
    "model_only": "model only (batch in memory)",
    "naive": "naive (PIL decode + Python occlusion)",
}
SEED = 0


@dataclass
class Files:
    """Image files and labels that the naive pipeline decodes one by one.

    Attributes:
        paths: N image files.
        labels: (N, L) uint8 labels in {0, 1}.
        crop: the crop passed to ``decode_image``.
    """

    paths: list[Path]
    labels: np.ndarray
    crop: str


class NaiveImages(Dataset):
    """Decode one file per sample with Pillow and cover it with one rectangle drawn in Python.

    Args:
        files: the image files and labels.
        image_size: side S of the decoded images in pixels.
        min_fraction, max_fraction: rectangle side bounds as fractions of the image side.
        fill: ``"black"``, ``"mean"`` or ``"noise"``.
    """

    def __init__(
        self, files: Files, image_size: int, min_fraction: float, max_fraction: float, fill: str
    ) -> None:
        if fill not in ("black", "mean", "noise"):
            raise OlrError(f"unknown occlusion fill {fill!r}; choose black, mean or noise")
        self.files = files
        self.image_size = image_size
        self.bounds = (min_fraction, max_fraction)
        self.fill = fill

    def __len__(self) -> int:
        return len(self.files.paths)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = decode_image(self.files.paths[item], self.image_size, self.files.crop)
        image = np.array(image)  # writable copy
        self._occlude(image)
        return torch.from_numpy(image), torch.from_numpy(self.files.labels[item].copy())

    def _occlude(self, image: np.ndarray) -> None:
        """Fill one random rectangle of an (S, S, 3) uint8 image in place."""
        size = self.image_size
        rect_h = max(1, round(random.uniform(*self.bounds) * size))
        rect_w = max(1, round(random.uniform(*self.bounds) * size))
        top = random.randint(0, size - rect_h)
        left = random.randint(0, size - rect_w)
        patch = image[top : top + rect_h, left : left + rect_w]
        if self.fill == "black":
            patch[:] = 0
        elif self.fill == "mean":
            patch[:] = image.mean(axis=(0, 1)).round().astype(np.uint8)
        else:
            patch[:] = np.random.randint(0, 256, patch.shape, dtype=np.uint8)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``argv`` None reads ``sys.argv``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, help="CelebA root; omit for synthetic faces")
    parser.add_argument("--cache-dir", type=Path, help="reuse or build the image cache here")
    parser.add_argument("--image-size", type=int, help="image side in pixels (preset default)")
    parser.add_argument("--preset", default="cpu", help="model sizes and batch size")
    parser.add_argument("--pairs", type=int, help="pairs per batch (preset default)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per pipeline")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (torch default)")
    parser.add_argument("--synthetic-images", type=int, default=1024)
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n product")
    parser.add_argument("--matmul-seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    return parser.parse_args(argv)


def resolve_settings(args: argparse.Namespace) -> RunConfig:
    """Return the preset's configuration with the command line's image size and batch size."""
    overrides: dict = {"data": {"dataset": "celeba" if args.data_root else "synthetic"}}
    if args.data_root:
        overrides["data"]["data_root"] = str(args.data_root)
    if args.image_size is not None:
        overrides["data"]["image_size"] = args.image_size
    if args.pairs is not None:
        overrides["siamese"] = {"optim": {"batch_size": args.pairs}}
    return resolve_config(args.preset, overrides=overrides)


def select_device(name: str, threads: int | None) -> torch.device:
    """Return the torch device ``name`` after setting the thread count.

    Raises:
        OlrError: when ``cuda`` is requested and no CUDA device is visible.
    """
    if threads is not None:
        if threads < 1:
            raise OlrError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    if name == "cuda" and not torch.cuda.is_available():
        raise OlrError("--device cuda requested, but torch finds no CUDA device; use --device cpu")
    return torch.device(name)


def celeba_data(config: RunConfig, cache_dir: Path) -> tuple[ImageCache, Files]:
    """Build (or reuse) the cache of a CelebA copy and return it with its file list."""
    from olr.data.celeba import load_celeba

    data = config.data
    source = load_celeba(Path(data.data_root), data.labels, tuple(data.drop_labels))
    files = Files(list(source.image_paths), source.labels, source.crop)
    if _reusable(cache_dir, len(source), data.image_size):
        logger.info("reusing the image cache in %s", cache_dir)
        return ImageCache.open(cache_dir), files
    started = time.perf_counter()
    cache = prepare_cache(source, cache_dir, data.image_size, "error", data.prepare_workers)
    logger.info("built the cache in %.1f s", time.perf_counter() - started)
    return cache, files


def _reusable(cache_dir: Path, num_images: int, image_size: int) -> bool:
    if not ImageCache.exists(cache_dir):
        return False
    cache = ImageCache.open(cache_dir)
    return len(cache) == num_images and cache.image_size == image_size


def synthetic_data(config: RunConfig, cache_dir: Path, count: int) -> tuple[ImageCache, Files]:
    """Generate synthetic faces into a cache, and write them as PNG files for the naive path."""
    from olr.data.synthetic import write_synthetic_cache

    cache = write_synthetic_cache(cache_dir, count, config.data.image_size, SEED, 0.0)
    png_dir = cache_dir / "png"
    png_dir.mkdir(exist_ok=True)
    paths = [png_dir / f"{image_id}.png" for image_id in cache.ids]
    for image, path in zip(cache.images, paths):
        Image.fromarray(np.asarray(image)).save(path)
    return cache, Files(paths, np.asarray(cache.labels), "none")


def build_module(config: RunConfig, num_labels: int, device: torch.device):
    """Build the teacher and the Siamese module with random weights, and their optimizer.

    Returns:
        ``(module, optimizer)``: the module in training mode on ``device`` (teacher frozen).
    """
    torch.manual_seed(SEED)
    siamese = config.siamese
    teacher = Classifier(num_labels, config.classifier.model)
    module = SiameseModule.from_stage(num_labels, siamese, teacher)
    module.to(device).train()
    # The training schedule only scales the learning rate, which costs nothing per step.
    optimizer = torch.optim.Adam(
        module.embedder.parameters(), lr=siamese.optim.lr, weight_decay=siamese.optim.weight_decay
    )
    return module, optimizer


def make_step(module: SiameseModule, optimizer, grad_clip: float, loss_fn: Callable):
    """Return a function that runs one optimizer step on a batch.

    Args:
        module: the Siamese module.
        optimizer: the Adam optimizer of its embedder.
        grad_clip: gradient-norm clip as in training; 0 disables it.
        loss_fn: batch -> scalar loss.
    """
    parameters = list(module.embedder.parameters())

    def step(batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(batch)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()

    return step


def naive_loss(module: SiameseModule, batch) -> torch.Tensor:
    """Compute the loss of ``SiameseModule._step`` on images the dataset has occluded already."""
    images, _ = batch
    inputs = to_float_images(images)
    with torch.no_grad():
        probabilities = torch.sigmoid(module.teacher(inputs))
    half = inputs.shape[0] // 2
    targets = probabilities[:half] * probabilities[half : 2 * half]
    embeddings = module.embedder(inputs[: 2 * half])  # (2B, L, k): batch, label, dim
    return olr_loss(embeddings[:half], embeddings[half:], targets)


def endless_batches(loader, device: torch.device) -> Iterator:
    """Yield the loader's batches on ``device``, epoch after epoch."""
    while True:
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def repeated(batch) -> Iterator:
    """Yield the same batch forever."""
    while True:
        yield batch


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that wall-clock times cover it."""
    # NOTE: the cuda path is written for GPUs but has only been run on CPUs so far.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(batches: Iterator, step: Callable, seconds: float, warmup: int, device) -> dict:
    """Run ``warmup`` untimed steps, then steps until ``seconds`` have passed.

    Returns:
        ``steps`` timed and ``seconds`` they took (wall clock, batch fetching included).
    """
    for _ in range(warmup):
        step(next(batches))
    synchronize(device)
    started = time.perf_counter()
    steps = 0
    while time.perf_counter() - started < seconds:
        step(next(batches))
        synchronize(device)
        steps += 1
    return {"steps": steps, "seconds": time.perf_counter() - started}


def rates(timing: dict, pairs: int) -> dict:
    """Turn a step count and duration into pairs per second and milliseconds per step."""
    step_s = timing["seconds"] / timing["steps"]
    return {
        "pairs_per_s": pairs / step_s,
        "step_ms": 1000.0 * step_s,
        "steps": timing["steps"],
        "seconds": timing["seconds"],
    }


def count_step_flops(step: Callable, batch) -> int:
    """Count the FLOPs of one step: Siamese forward and backward plus the teacher forward."""
    with FlopCounterMode(display=False) as counter:
        step(batch)
    return int(counter.get_total_flops())


def matmul_peak(size: int, seconds: float, device: torch.device) -> float:
    """Measure the float32 FLOP/s of repeated ``size`` x ``size`` products (2 n^3 FLOPs each)."""
    generator = torch.Generator().manual_seed(SEED)
    a = torch.rand(size, size, generator=generator).to(device)
    b = torch.rand(size, size, generator=generator).to(device)
    torch.mm(a, b)
    synchronize(device)
    started = time.perf_counter()
    repeats = 0
    while time.perf_counter() - started < seconds:
        torch.mm(a, b)
        repeats += 1
        synchronize(device)
    return 2.0 * size**3 * repeats / (time.perf_counter() - started)


def machine_info(device: torch.device) -> dict:
    """Describe the CPU, memory, torch version, threads and device of this run."""
    info = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def run_pipelines(args, config: RunConfig, cache: ImageCache, files: Files, device) -> dict:
    """Measure the three pipelines and count the FLOPs of one step.

    Returns:
        ``pipelines`` (name -> rates) and ``flops_per_step``.
    """
    siamese = config.siamese
    pairs = siamese.optim.batch_size
    if len(cache) < 2 * pairs:
        raise OlrError(
            f"{len(cache)} images make no full batch of {pairs} pairs; lower --pairs or use "
            "more images"
        )
    module, optimizer = build_module(config, len(cache.label_names), device)
    step = make_step(
        module, optimizer, siamese.optim.grad_clip, lambda batch: module._step(batch)[0]
    )
    dataset = CachedImages(cache.images, cache.labels, np.arange(len(cache)))
    loader = make_loader(
        dataset, 2 * pairs, True, config.data.loader_workers, drop_last=True, seed=SEED
    )
    batches = endless_batches(loader, device)
    memory_batch = next(batches)
    timings = {
        "end_to_end": time_steps(batches, step, args.seconds, args.warmup_steps, device),
        "model_only": time_steps(
            repeated(memory_batch), step, args.seconds, args.warmup_steps, device
        ),
        "naive": time_naive(args, config, files, module, optimizer, device),
    }
    flops = count_step_flops(step, memory_batch)
    return {"pipelines": {n: rates(timings[n], pairs) for n in PIPELINES}, "flops_per_step": flops}


def time_naive(args, config: RunConfig, files: Files, module, optimizer, device) -> dict:
    """Time the reference pipeline: per-sample decoding and occlusion, then the same step."""
    siamese = config.siamese
    random.seed(SEED)
    dataset = NaiveImages(
        files,
        config.data.image_size,
        siamese.occlusion_min,
        siamese.occlusion_max,
        siamese.occlusion_fill,
    )
    loader = make_loader(
        dataset,
        2 * siamese.optim.batch_size,
        True,
        config.data.loader_workers,
        drop_last=True,
        seed=SEED,
    )
    step = make_step(
        module, optimizer, siamese.optim.grad_clip, lambda batch: naive_loss(module, batch)
    )
    batches = endless_batches(loader, device)
    return time_steps(batches, step, args.seconds, args.warmup_steps, device)


def summarize(measured: dict, peak: float) -> dict:
    """Add achieved FLOP/s, utilisation and the cache-over-naive speedup to the measurements."""
    pipelines = measured["pipelines"]
    achieved = measured["flops_per_step"] / (pipelines["model_only"]["step_ms"] / 1000.0)
    speedup = pipelines["end_to_end"]["pairs_per_s"] / pipelines["naive"]["pairs_per_s"]
    return {
        **measured,
        "achieved_flops": achieved,
        "matmul_peak_flops": peak,
        "utilisation": achieved / peak,
        "speedup_cache_vs_naive": speedup,
    }


def settings_info(args, config: RunConfig, cache: ImageCache) -> dict:
    """Describe what was measured: data, sizes, batch, durations and the models."""
    siamese = config.siamese
    return {
        "dataset": config.data.dataset,
        "data_root": str(args.data_root) if args.data_root else None,
        "num_images": len(cache),
        "num_labels": len(cache.label_names),
        "image_size": config.data.image_size,
        "preset": args.preset,
        "pairs_per_batch": siamese.optim.batch_size,
        "images_per_batch": 2 * siamese.optim.batch_size,
        "loader_workers": config.data.loader_workers,
        "seconds": args.seconds,
        "warmup_steps": args.warmup_steps,
        "grad_clip": siamese.optim.grad_clip,
        "matmul_size": args.matmul_size,
        "weights": "random (throughput does not depend on the weight values)",
        "siamese_model": to_dict(siamese.model),
        "teacher_model": to_dict(config.classifier.model),
    }


def format_table(results: dict) -> str:
    """Render the measurements as a fixed-width text table."""
    lines = [f"{'pipeline':<40} {'pairs/s':>10} {'ms/step':>10} {'steps':>7}"]
    for name in PIPELINES:
        row = results["pipelines"][name]
        lines.append(
            f"{PIPELINE_TITLES[name]:<40} {row['pairs_per_s']:>10.1f} "
            f"{row['step_ms']:>10.1f} {row['steps']:>7d}"
        )
    lines += [
        f"FLOPs per step: {results['flops_per_step'] / 1e9:.2f} GFLOP",
        f"achieved (model only): {results['achieved_flops'] / 1e9:.2f} GFLOP/s",
        f"float32 matmul peak: {results['matmul_peak_flops'] / 1e9:.2f} GFLOP/s",
        f"utilisation: {results['utilisation']:.1%}",
        f"speedup end to end vs naive: {results['speedup_cache_vs_naive']:.2f}x",
    ]
    return "\n".join(lines)


def write_json(values: dict, path: Path) -> None:
    """Write ``values`` as JSON through a temporary file, so no half-written file remains."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(values, indent=2), encoding="utf-8")
    temporary.replace(path)


def benchmark(args: argparse.Namespace, work_dir: Path) -> dict:
    """Prepare the data, measure everything and return the results dict."""
    load_before = list(os.getloadavg())
    config = resolve_settings(args)
    device = select_device(args.device, args.threads)
    cache_dir = args.cache_dir or work_dir / "cache"
    if args.data_root:
        cache, files = celeba_data(config, cache_dir)
    else:
        cache, files = synthetic_data(config, cache_dir, args.synthetic_images)
    machine = machine_info(device)
    measured = run_pipelines(args, config, cache, files, device)
    peak = matmul_peak(args.matmul_size, args.matmul_seconds, device)
    # 1, 5 and 15 minute load averages. Values above the core count mean that other processes
    # shared the CPU during the measurement.
    machine["load_average_before"] = load_before
    machine["load_average_after"] = list(os.getloadavg())
    return {"machine": machine, "settings": settings_info(args, config, cache)} | summarize(
        measured, peak
    )


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table, write the JSON if asked, and return the results."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    if args.seconds <= 0:
        raise OlrError(f"--seconds must be positive, got {args.seconds}")
    with tempfile.TemporaryDirectory(prefix="olr-bench-") as work_dir:
        results = benchmark(args, Path(work_dir))
    print(format_table(results))
    if args.json:
        write_json(results, args.json)
        logger.info("wrote %s", args.json)
    return results


if __name__ == "__main__":
    try:
        main()
    except OlrError as error:
        raise SystemExit(f"error: {error}") from error
