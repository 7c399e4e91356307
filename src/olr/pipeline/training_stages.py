"""Pipeline stages that prepare data and train: prepare, classifier, siamese, embed, probe."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from olr.analysis.embed import EmbeddingSet, embed_rows, load_embeddings, save_embeddings
from olr.analysis.probe import fit_probe, label_accuracy, majority_predictions
from olr.config import RunConfig, from_dict, to_dict
from olr.data.cache import ImageCache, prepare_cache
from olr.data.splits import Splits, make_splits
from olr.errors import DataError
from olr.models.classifier import Classifier, ClassifierConfig
from olr.models.io import best_device, load_weights, read_info, save_weights
from olr.models.siamese import SiameseConfig, SiameseEmbedder
from olr.pipeline.rundir import RunDir, write_json
from olr.training.batches import CachedImages, make_loader
from olr.training.siamese import SiameseModule
from olr.training.teacher import TeacherModule
from olr.training.trainer import build_trainer, fit, resume_path

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


def load_source(config: RunConfig):
    """Read the configured dataset's file list and labels (not the pixels).

    Bad label rows are always dropped here and kept in ``source.extra["problems"]``, so that
    ``stage_prepare`` can list them together with the bad images in one error.
    """
    data = config.data
    if data.dataset == "celeba":
        from olr.data.celeba import load_celeba

        source = load_celeba(
            Path(data.data_root),
            label_names=data.labels,
            drop=tuple(data.drop_labels),
            on_bad="skip",
        )
    elif data.dataset == "folder":
        from olr.data.folder import load_folder

        csv = Path(data.labels_csv) if data.labels_csv else None
        source = load_folder(Path(data.data_root), csv, on_bad="skip")
        if data.labels:
            source = select_labels(source, data.labels)
    else:
        raise DataError(f"dataset {data.dataset!r} has no file source")
    if data.max_images is not None and data.max_images < len(source):
        source = subset_source(source, data.max_images)
    return source


def select_labels(source, names: list[str]):
    """Keep the label columns ``names`` of an ImageSource, in that order."""
    missing = [name for name in names if name not in source.label_names]
    if missing:
        raise DataError(
            f"labels not found: {', '.join(missing)}; available: {', '.join(source.label_names)}"
        )
    columns = [source.label_names.index(name) for name in names]
    source.labels = source.labels[:, columns]
    source.label_names = list(names)
    return source


def subset_source(source, count: int):
    """Keep the first ``count`` images of an ImageSource by sorted id."""
    order = np.argsort(np.asarray(source.ids), kind="stable")[:count]
    order.sort()
    source.image_paths = [source.image_paths[i] for i in order]
    source.ids = [source.ids[i] for i in order]
    source.labels = source.labels[order]
    for name in ("groups", "partition"):
        values = getattr(source, name)
        if values is not None:
            setattr(source, name, values[order])
    return source


def stage_prepare(run: RunDir) -> dict:
    """Decode the dataset once into the uint8 cache and draw the splits."""
    config = run.config
    data = config.data
    if data.dataset == "synthetic":
        from olr.data.synthetic import write_synthetic_cache

        cache = write_synthetic_cache(
            run.cache_dir,
            data.synthetic_images,
            data.image_size,
            config.seed,
            data.synthetic_flip_rate,
        )
        skipped = dropped_rows = 0
        check_pca_label(config, cache.label_names)
    else:
        source = load_source(config)
        # Settings that only fail after training are checked before the (long) decoding.
        check_pca_label(config, source.label_names)
        check_split_inputs(config, source.groups, source.partition)
        logger.info("decoding %d images of %s at %d px", len(source), source.name, data.image_size)
        cache = prepare_checked_cache(run, source)
        skipped = len(source) - len(cache)
        dropped_rows = len(source.extra.get("problems", []))
        if dropped_rows:
            logger.warning(
                "dropped %d label rows with problems (--on-bad-image skip)", dropped_rows
            )
    splits = draw_splits(config, cache)
    np.savez(run.stage_dir("prepare") / "splits.npz", **splits_dict(splits))
    sizes = {f"num_{name}": len(getattr(splits, name)) for name in SPLIT_NAMES}
    logger.info("splits: %s", sizes)
    return {
        "data": {
            "dataset": data.dataset,
            "image_size": data.image_size,
            "num_images": len(cache),
            "num_skipped": skipped,
            "num_dropped_rows": dropped_rows,
            "num_labels": len(cache.label_names),
            "label_names": list(cache.label_names),
            "label_frequency": dict(zip(cache.label_names, cache.labels.mean(axis=0).tolist())),
            **sizes,
        }
    }


def check_pca_label(config: RunConfig, label_names: list[str]) -> None:
    """Raise DataError unless ``analysis.pca_label`` is one of the dataset's ``label_names``."""
    label = config.analysis.pca_label
    if label not in label_names:
        raise DataError(
            f"analysis.pca_label {label!r} is not a label of this dataset; pass "
            f"--set analysis.pca_label=NAME with one of {', '.join(label_names)}"
        )


def check_split_inputs(config: RunConfig, groups, partition) -> None:
    """Raise DataError when ``data.split`` needs person ids or a partition the data lacks.

    Args:
        config: the run configuration.
        groups: (N,) person or group ids of the dataset, or None.
        partition: (N,) official partition of the dataset, or None.
    """
    split = config.data.split
    if split == "person" and groups is None:
        raise DataError("data.split=person needs identity_CelebA.txt (or a group column)")
    if split == "official" and partition is None:
        raise DataError("data.split=official needs list_eval_partition.txt in the data root")


def prepare_checked_cache(run: RunDir, source) -> ImageCache:
    """Decode ``source`` into the cache; in error mode, list bad rows and bad images together."""
    from olr.data.celeba import summarize_problems

    data = run.config.data
    row_problems = list(source.extra.get("problems", []))
    strict = data.on_bad_image == "error"
    hint = "fix them or pass --on-bad-image skip to drop them"
    try:
        cache = prepare_cache(
            source, run.cache_dir, data.image_size, data.on_bad_image, data.prepare_workers
        )
    except DataError as error:
        if strict and row_problems:
            raise DataError(
                f"invalid label rows, {summarize_problems(row_problems)}\nand {error}"
            ) from error
        raise
    if strict and row_problems:
        # The cache of the good rows must not look like a finished prepare stage.
        shutil.rmtree(run.cache_dir, ignore_errors=True)
        raise DataError(f"invalid label rows, {summarize_problems(row_problems)}\n{hint}")
    return cache


def draw_splits(config: RunConfig, cache: ImageCache) -> Splits:
    """Split the cache rows by the ``data.split`` method."""
    data = config.data
    check_split_inputs(config, cache.groups, cache.partition)
    return make_splits(
        len(cache),
        seed=config.seed,
        test_fraction=data.test_fraction,
        val_fraction=data.val_fraction,
        groups=cache.groups if data.split == "person" else None,
        partition=cache.partition,
        use_partition=data.split == "official",
    )


def splits_dict(splits: Splits) -> dict[str, np.ndarray]:
    return {name: getattr(splits, name) for name in SPLIT_NAMES}


def load_splits(run: RunDir) -> dict[str, np.ndarray]:
    """Return the train, val and test cache rows drawn by the prepare stage."""
    with np.load(run.root / "prepare" / "splits.npz") as handle:
        return {name: handle[name] for name in SPLIT_NAMES}


def split_loader(run: RunDir, cache: ImageCache, rows, batch_size: int, train: bool):
    dataset = CachedImages(cache.images, cache.labels, rows)
    return make_loader(
        dataset,
        batch_size,
        shuffle=train,
        num_workers=run.config.data.loader_workers,
        drop_last=train,
        seed=run.config.seed,
    )


def stage_classifier(run: RunDir) -> dict:
    """Train the teacher, keep the best validation checkpoint, report test accuracy."""
    config = run.config
    stage_dir = run.stage_dir("classifier")
    cache = ImageCache.open(run.cache_dir)
    rows = load_splits(run)
    num_labels = len(cache.label_names)
    torch.manual_seed(config.seed)
    module = TeacherModule(
        num_labels, to_dict(config.classifier.model), to_dict(config.classifier.optim)
    )
    optim = config.classifier.optim
    trainer, checkpoint = build_trainer(
        config.trainer,
        stage_dir,
        "classifier",
        optim.epochs,
        "val/accuracy",
        "max",
        optim.grad_clip,
    )
    fit(
        trainer,
        module,
        split_loader(run, cache, rows["train"], optim.batch_size, train=True),
        split_loader(run, cache, rows["val"], optim.batch_size, train=False),
        resume_path(stage_dir),
    )
    metrics = {}
    if run.primary:
        best = TeacherModule.load_from_checkpoint(checkpoint.best_model_path, map_location="cpu")
        info = {
            "num_labels": num_labels,
            "config": to_dict(config.classifier.model),
            "label_names": list(cache.label_names),
        }
        save_weights(best.model, stage_dir / "model.safetensors", info)
        metrics = evaluate_classifier(run, best.model, cache, rows)
    # Other processes wait here until the teacher file exists for the next stage.
    trainer.strategy.barrier()
    return metrics


def evaluate_classifier(run: RunDir, model, cache: ImageCache, rows) -> dict:
    """Test accuracy of the teacher and of the majority baseline; saves test probabilities."""
    device = best_device(run.config.trainer.accelerator)
    names = list(cache.label_names)
    results = {}
    for split in ("val", "test"):
        probabilities = predict_probabilities(model, cache.images, rows[split], device)
        if split == "test":
            np.save(run.stage_dir("classifier") / "test_probabilities.npy", probabilities)
        results[split] = label_accuracy(probabilities >= 0.5, cache.labels[rows[split]], names)
    majority = majority_predictions(cache.labels[rows["train"]], len(rows["test"]))
    baseline = label_accuracy(majority, cache.labels[rows["test"]], names)
    logger.info(
        "teacher test accuracy %.4f, majority baseline %.4f",
        results["test"]["mean_accuracy"],
        baseline["mean_accuracy"],
    )
    return {"classifier": results, "baseline": {"majority": {"test": baseline}}}


@torch.inference_mode()
def predict_probabilities(model, images, rows, device, batch_size: int = 256) -> np.ndarray:
    """Return (len(rows), L) sigmoid outputs of a classifier on cache ``rows``."""
    from olr.training.batches import to_float_images

    model.eval().to(device)
    outputs = []
    for start in range(0, len(rows), batch_size):
        chunk = torch.from_numpy(np.asarray(images[rows[start : start + batch_size]]))
        outputs.append(torch.sigmoid(model(to_float_images(chunk.to(device)))).float().cpu())
    return torch.cat(outputs).numpy()


def load_teacher(run: RunDir) -> Classifier:
    """Rebuild the trained teacher from ``classifier/model.safetensors``."""
    path = run.root / "classifier" / "model.safetensors"
    info = read_info(path)
    model = Classifier(info["num_labels"], from_dict(ClassifierConfig, info["config"]))
    return load_weights(model, path).eval()


def load_embedder(path: Path) -> SiameseEmbedder:
    """Rebuild a trained Siamese embedder from its safetensors file."""
    info = read_info(path)
    model = SiameseEmbedder(info["num_labels"], from_dict(SiameseConfig, info["config"]))
    return load_weights(model, path).eval()


def train_siamese(run: RunDir, stage: str, target: str, teacher) -> tuple[SiameseModule, dict]:
    """Fit a Siamese model with target mode ``target`` into ``<out>/<stage>``.

    Returns:
        The trained module and its metrics (empty on non-primary processes).
    """
    config = run.config
    siamese = config.siamese
    stage_dir = run.stage_dir(stage)
    cache = ImageCache.open(run.cache_dir)
    rows = load_splits(run)
    torch.manual_seed(config.seed)
    module = SiameseModule.from_stage(len(cache.label_names), siamese, teacher, target)
    # A batch of 2B images forms B pairs, so one epoch uses every image once.
    pairs = siamese.optim.batch_size
    trainer, checkpoint = build_trainer(
        config.trainer,
        stage_dir,
        stage,
        siamese.optim.epochs,
        "val/loss",
        "min",
        siamese.optim.grad_clip,
    )
    fit(
        trainer,
        module,
        split_loader(run, cache, rows["train"], 2 * pairs, train=True),
        split_loader(run, cache, rows["val"], 2 * pairs, train=False),
        resume_path(stage_dir),
    )
    if not run.primary:
        trainer.strategy.barrier()
        return module, {}
    state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    info = {
        "num_labels": len(cache.label_names),
        "config": to_dict(siamese.model),
        "target": target,
        "label_names": list(cache.label_names),
    }
    save_weights(module.embedder, stage_dir / "embedder.safetensors", info)
    last = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics = {
        "target": target,
        "train_loss": last.get("train/loss"),
        "predict_zero_loss": last.get("train/predict_zero_loss"),
        "zero_vector_fraction": last.get("train/zero_vectors"),
        "val_loss": float(checkpoint.best_model_score)
        if checkpoint.best_model_score is not None
        else None,
        "val_predict_zero_loss": last.get("val/predict_zero_loss"),
        "val_zero_vector_fraction": last.get("val/zero_vectors"),
        "epochs": siamese.optim.epochs,
    }
    logger.info("siamese (%s) metrics %s", target, metrics)
    trainer.strategy.barrier()
    return module, metrics


def stage_siamese(run: RunDir) -> dict:
    """Train the OLR Siamese model with the configured target mode."""
    teacher = load_teacher(run) if run.config.siamese.target != "hard" else None
    _, metrics = train_siamese(run, "siamese", run.config.siamese.target, teacher)
    return {"siamese": metrics} if run.primary else {}


def embed_splits(
    run: RunDir, embedder, folder: Path, splits: tuple[str, ...] = SPLIT_NAMES
) -> None:
    """Embed ``splits`` with ``embedder`` (unoccluded) into ``folder/<split>.safetensors``."""
    cache = ImageCache.open(run.cache_dir)
    rows = load_splits(run)
    device = best_device(run.config.trainer.accelerator)
    for split in splits:
        split_rows = rows[split]
        embeddings = embed_rows(embedder, cache.images, split_rows, device=device)
        save_embeddings(
            folder / f"{split}.safetensors",
            EmbeddingSet(
                embeddings=embeddings,
                labels=np.asarray(cache.labels[split_rows]),
                indices=split_rows,
                ids=[cache.ids[i] for i in split_rows],
                label_names=list(cache.label_names),
            ),
        )
        logger.info("embedded %s: %s", split, embeddings.shape)


def stage_embed(run: RunDir) -> dict:
    """Embed all splits with the trained model and with an untrained one of the same shape."""
    embedder = load_embedder(run.root / "siamese" / "embedder.safetensors")
    embed_splits(run, embedder, run.root / "embeddings")
    # Random convolutional features are a strong baseline, so the probe is reported beside
    # a probe on an untrained network with the same architecture.
    torch.manual_seed(run.config.seed)
    cache = ImageCache.open(run.cache_dir)
    untrained = SiameseEmbedder(len(cache.label_names), run.config.siamese.model)
    embed_splits(run, untrained, run.root / "embeddings" / "untrained")
    test = load_embeddings(run.root / "embeddings" / "test.safetensors")
    norms = np.linalg.norm(test.embeddings, axis=-1)
    return {
        "embeddings": {
            "shape": list(test.embeddings.shape[1:]),
            "test_zero_vector_fraction": float((norms == 0).mean()),
            "test_mean_norm_present": float(norms[test.labels == 1].mean())
            if test.labels.any()
            else None,
            "test_mean_norm_absent": float(norms[test.labels == 0].mean())
            if (test.labels == 0).any()
            else None,
        }
    }


def probe_embeddings(run: RunDir, folder: Path) -> tuple[dict, np.ndarray]:
    """Fit the probe on ``folder``'s train embeddings; return test accuracy and probabilities."""
    sets = {split: load_embeddings(folder / f"{split}.safetensors") for split in SPLIT_NAMES}
    probe = fit_probe(
        sets["train"].embeddings,
        sets["train"].labels,
        sets["val"].embeddings,
        sets["val"].labels,
        tuple(run.config.probe.l2),
        run.config.probe.max_iter,
    )
    names = sets["test"].label_names
    probabilities = probe.probabilities(sets["test"].embeddings)
    metrics = {
        "test": label_accuracy(probabilities >= 0.5, sets["test"].labels, names),
        "train": {
            "mean_accuracy": label_accuracy(
                probe.probabilities(sets["train"].embeddings) >= 0.5, sets["train"].labels, names
            )["mean_accuracy"]
        },
        "l2": probe.l2,
    }
    return metrics, probabilities


def stage_probe(run: RunDir) -> dict:
    """Linear probe on trained and on untrained embeddings, and the per-label accuracy figure."""
    trained, probabilities = probe_embeddings(run, run.root / "embeddings")
    np.save(run.stage_dir("probe") / "test_probabilities.npy", probabilities)
    untrained, _ = probe_embeddings(run, run.root / "embeddings" / "untrained")
    logger.info(
        "probe test accuracy %.4f (untrained network %.4f)",
        trained["test"]["mean_accuracy"],
        untrained["test"]["mean_accuracy"],
    )
    metrics = run.metrics()
    from olr.report.figures import plot_per_label_accuracy

    series = {
        "teacher": metrics["classifier"]["test"]["per_label"],
        "probe": trained["test"]["per_label"],
        "untrained probe": untrained["test"]["per_label"],
        "majority": metrics["baseline"]["majority"]["test"]["per_label"],
    }
    plot_per_label_accuracy(series, run.figures / "per_label_accuracy.png")
    write_json(run.stage_dir("probe") / "per_label.json", series)
    return {"probe": trained, "untrained_probe": untrained}
