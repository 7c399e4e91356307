"""Pipeline stages that analyse the test embeddings: correlation, PCA, disagreements, report."""

from __future__ import annotations

import logging

import numpy as np

from olr.analysis.embed import load_embeddings
from olr.data.cache import ImageCache
from olr.pipeline.rundir import RunDir

logger = logging.getLogger(__name__)


def truth_for(cache: ImageCache, rows: np.ndarray) -> dict | None:
    """Return the synthetic generator's truth for cache ``rows``, or None for real data."""
    if cache.truth is None:
        return None
    truth = {key: np.asarray(value) for key, value in cache.truth.items()}
    per_image = {k: v[rows] for k, v in truth.items() if v.ndim >= 1 and len(v) == len(cache)}
    return {**truth, **per_image}


def stage_correlation(run: RunDir) -> dict:
    """Correlation of per-label embedding norms against the label correlation (and the truth)."""
    from olr.analysis.correlation import analyse_correlations
    from olr.report.figures import plot_correlation_heatmaps

    test = load_embeddings(run.root / "embeddings" / "test.safetensors")
    cache = ImageCache.open(run.cache_dir)
    truth = truth_for(cache, test.indices)
    true_corr = truth["true_correlation"] if truth else None
    metrics, embedding_corr, label_corr = analyse_correlations(
        test.embeddings, test.labels, test.label_names, true_correlation=true_corr
    )
    np.savez(
        run.stage_dir("correlation") / "matrices.npz",
        embedding=embedding_corr,
        label=label_corr,
    )
    plot_correlation_heatmaps(
        embedding_corr,
        label_corr,
        test.label_names,
        run.figures / "correlation.png",
        true_corr=true_corr,
    )
    logger.info("correlation fidelity %.3f", metrics["fidelity"] or float("nan"))
    return {"correlation": metrics}


def stage_pca(run: RunDir) -> dict:
    """PCA of one label's vectors (figure and numbers) and the table for every label."""
    from olr.analysis.pca import label_pca, pca_table
    from olr.errors import OlrError
    from olr.report.figures import plot_pca_ranking

    analysis = run.config.analysis
    test = load_embeddings(run.root / "embeddings" / "test.safetensors")
    cache = ImageCache.open(run.cache_dir)
    truth = truth_for(cache, test.indices)
    intensities = truth["intensities"] if truth else None
    label = analysis.pca_label
    if label not in test.label_names:
        raise OlrError(
            f"analysis.pca_label {label!r} is not a label of this dataset; "
            f"choose one of {', '.join(test.label_names)}"
        )
    index = test.label_names.index(label)
    result = label_pca(
        test.embeddings[:, index],
        test.labels[:, index],
        analysis.pca_components,
        intensities[:, index] if intensities is not None else None,
    )
    images = np.asarray(cache.images[test.indices])
    plot_pca_ranking(
        images, result.projection, label, run.figures / f"pca_{label}.png", analysis.pca_images
    )
    table = pca_table(test.embeddings, test.labels, test.label_names, intensities)
    chosen = {"explained_variance_ratio": result.explained_variance_ratio, "auc": result.auc}
    if result.spearman_truth is not None:
        chosen["spearman_truth"] = result.spearman_truth
    logger.info("PCA of %s: %s", label, chosen)
    return {"pca": {label: chosen, "label": label, "table": table}}


def stage_disagreement(run: RunDir) -> dict:
    """Test images the probe gets wrong on a label and the teacher gets right."""
    from olr.analysis.disagreement import disagreement_metrics, find_disagreements
    from olr.report.figures import plot_disagreements

    test = load_embeddings(run.root / "embeddings" / "test.safetensors")
    cache = ImageCache.open(run.cache_dir)
    teacher_prob = np.load(run.root / "classifier" / "test_probabilities.npy")
    probe_prob = np.load(run.root / "probe" / "test_probabilities.npy")
    mask = find_disagreements(test.labels, teacher_prob >= 0.5, probe_prob >= 0.5)
    truth = truth_for(cache, test.indices)
    flipped = truth["flipped"].astype(bool) if truth else None
    metrics = disagreement_metrics(mask, test.label_names, flipped)
    images = np.asarray(cache.images[test.indices])
    plot_disagreements(
        images,
        mask,
        test.labels,
        teacher_prob,
        probe_prob,
        test.label_names,
        run.figures / "disagreements.png",
        run.config.analysis.disagreement_examples,
        flipped,
    )
    logger.info("disagreements: %d", metrics["total"])
    return {"disagreement": metrics}


def stage_report(run: RunDir) -> dict:
    """Write the self-contained HTML report."""
    from olr.report.html import write_report

    path = write_report(run.root)
    logger.info("report written to %s", path)
    return {}
