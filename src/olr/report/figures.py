"""Matplotlib figures of a run: correlation heatmaps, PCA rankings, disagreements, image grids.

Each function draws on its own `matplotlib.figure.Figure` (Agg canvas, no pyplot state), writes a
PNG to a temporary file next to the target and renames it, so a figure is never half-written.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from olr.analysis.pca import rank_positions
from olr.errors import DataError

logger = logging.getLogger(__name__)

_DPI = 100
# Size of one heatmap cell in inches. With 7-point tick labels, 38 label names stay legible
# (checked by eye on the CelebA label names).
_CELL_INCHES = 0.24
_LABEL_FONT = 7


def _new_figure(width: float, height: float) -> Figure:
    """Create a figure of the given size in inches on its own Agg canvas, independent of pyplot."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path | str) -> Path:
    """Write `fig` as PNG to `path` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(temporary, format="png", dpi=_DPI)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("wrote figure %s", path)
    return path


def _as_float_image(image: np.ndarray) -> np.ndarray:
    """Convert an (H, W, 3) image to float in [0, 1], dividing uint8 values by 255."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"invalid image shape {image.shape}: expected (H, W, 3) RGB")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.min() < -1e-6 or image.max() > 1 + 1e-6:
        raise DataError(
            f"float images must lie in [0, 1], got range [{image.min():.3g}, {image.max():.3g}]"
        )
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def _show_image(ax, image: np.ndarray, title: str | None = None, fontsize: int = 8) -> None:
    """Draw one image without axis ticks."""
    ax.imshow(_as_float_image(image), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def _heatmap(fig: Figure, ax, matrix: np.ndarray, names: Sequence[str], title: str) -> None:
    """Draw one labelled (L, L) correlation heatmap with NaN cells in grey."""
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.75")
    image = ax.imshow(
        np.ma.masked_invalid(matrix), cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest"
    )
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, labels=list(names), rotation=90, fontsize=_LABEL_FONT)
    ax.set_yticks(ticks, labels=list(names), fontsize=_LABEL_FONT)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)


def plot_correlation_heatmaps(
    embedding_corr: np.ndarray,
    label_corr: np.ndarray,
    label_names: Sequence[str],
    path: Path | str,
    true_corr: np.ndarray | None = None,
) -> Path:
    """Plot side-by-side heatmaps of the embedding-norm, label and (optional) true correlations.

    Args:
        embedding_corr: (L, L) Pearson correlation of per-label embedding norms.
        label_corr: (L, L) Pearson correlation of labels.
        label_names: the L label names.
        path: output PNG path.
        true_corr: optional (L, L) ground-truth correlation, same label order, drawn third.

    Returns:
        The written path.
    """
    matrices = [("embedding norms", embedding_corr), ("labels", label_corr)]
    if true_corr is not None:
        matrices.append(("ground truth", true_corr))
    size = len(label_names)
    for title, matrix in matrices:
        if np.shape(matrix) != (size, size):
            raise DataError(
                f"{title} matrix has shape {np.shape(matrix)}, expected ({size}, {size})"
            )
    # Leave room around each square panel for the rotated label names (1.3 inches at 7 points).
    panel = max(3.0, size * _CELL_INCHES) + 1.6
    fig = _new_figure(panel * len(matrices) + 0.5, panel + 0.6)
    axes = fig.subplots(1, len(matrices))
    for ax, (title, matrix) in zip(np.atleast_1d(axes), matrices, strict=True):
        _heatmap(fig, ax, np.asarray(matrix, dtype=float), label_names, f"Correlation: {title}")
    fig.tight_layout()
    return _save(fig, path)


def plot_pca_ranking(
    images: np.ndarray, projection: np.ndarray, label: str, path: Path | str, count: int = 10
) -> Path:
    """Plot a row of images at evenly spaced ranks of the first principal component's projection.

    Args:
        images: (N, H, W, 3) uint8 images, same order as `projection`.
        projection: (N,) projection on the first principal component (higher = label present).
        label: the label name for the title.
        path: output PNG path.
        count: number of images to show (at most N).

    Returns:
        The written path.
    """
    images, projection = np.asarray(images), np.asarray(projection)
    if images.ndim != 4 or len(images) != len(projection):
        raise DataError(
            f"invalid images shape {images.shape}: expected (N, H, W, 3) with N = {len(projection)}"
        )
    indices = rank_positions(projection, count)
    ranks = np.argsort(np.argsort(projection, kind="stable"), kind="stable")
    fig = _new_figure(1.4 * len(indices) + 0.4, 2.3)
    axes = np.atleast_1d(fig.subplots(1, len(indices)))
    for ax, index in zip(axes, indices, strict=True):
        _show_image(ax, images[index], f"rank {ranks[index]}\n{projection[index]:.3f}")
    fig.suptitle(f"{label}: images ordered by first principal component (low to high)")
    fig.tight_layout()
    return _save(fig, path)


def _disagreement_title(name: str, label: int, teacher: float, probe: float, flip: str) -> str:
    """Build the title of one disagreement example."""
    return f"{name}\nlabel {label}, teacher {teacher:.2f}\nprobe {probe:.2f}{flip}"


def _message_figure(message: str, path: Path | str) -> Path:
    """Write a small figure that only shows `message`."""
    fig = _new_figure(5, 1.5)
    fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=14)
    return _save(fig, path)


def plot_disagreements(
    images: np.ndarray,
    mask: np.ndarray,
    labels: np.ndarray,
    teacher_prob: np.ndarray,
    probe_prob: np.ndarray,
    label_names: Sequence[str],
    path: Path | str,
    max_examples: int = 16,
    flipped: np.ndarray | None = None,
) -> Path:
    """Plot a grid of (image, label) cells where the probe is wrong and the teacher is right.

    The cells with the largest gap between teacher and probe probability are shown first.

    Args:
        images: (N, H, W, 3) uint8 images.
        mask: (N, L) bool disagreement mask.
        labels: (N, L) {0, 1} dataset labels.
        teacher_prob: (N, L) teacher probabilities in [0, 1].
        probe_prob: (N, L) probe probabilities in [0, 1].
        label_names: the L label names.
        path: output PNG path.
        max_examples: maximum number of cells to show.
        flipped: optional (N, L) bool, True where the dataset label was deliberately flipped.

    Returns:
        The written path. With an empty mask the figure shows "no disagreements".
    """
    mask = np.asarray(mask, dtype=bool)
    for name, array in (
        ("labels", labels),
        ("teacher_prob", teacher_prob),
        ("probe_prob", probe_prob),
    ):
        if np.shape(array) != mask.shape:
            raise DataError(
                f"{name} must have the mask's shape {mask.shape}, got {np.shape(array)}"
            )
    cells = np.argwhere(mask)
    if len(cells) == 0:
        return _message_figure("no disagreements", path)
    gap = np.abs(np.asarray(teacher_prob) - np.asarray(probe_prob))[cells[:, 0], cells[:, 1]]
    cells = cells[np.argsort(-gap, kind="stable")[:max_examples]]
    columns = min(4, len(cells))
    rows = math.ceil(len(cells) / columns)
    fig = _new_figure(2.2 * columns, 3.0 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, (image, label) in zip(axes, cells, strict=False):
        flip = ""
        if flipped is not None:
            flip = "\nflipped" if flipped[image, label] else "\nnot flipped"
        title = _disagreement_title(
            label_names[label],
            int(labels[image, label]),
            float(teacher_prob[image, label]),
            float(probe_prob[image, label]),
            flip,
        )
        _show_image(ax, images[image], title, fontsize=7)
    for ax in axes[len(cells) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path)


def plot_per_label_accuracy(per_label: Mapping[str, Mapping[str, float]], path: Path | str) -> Path:
    """Plot grouped horizontal bars of per-label accuracy for several series.

    Args:
        per_label: {series name: {label name: accuracy in [0, 1]}}. Labels follow the order of
            the first series, then any new ones in order of appearance. Missing values are left
            out.
        path: output PNG path.

    Returns:
        The written path.
    """
    if not per_label:
        raise DataError("per_label is empty: pass at least one series of accuracies")
    names: list[str] = []
    for series in per_label.values():
        names.extend(name for name in series if name not in names)
    count = len(per_label)
    height = 0.8 / count
    fig = _new_figure(8.0, 0.12 * len(names) * max(count, 2) + 1.2)
    ax = fig.subplots()
    positions = np.arange(len(names))
    for offset, (series, values) in enumerate(per_label.items()):
        accuracy = [values.get(name, math.nan) for name in names]
        shift = (offset - (count - 1) / 2) * height
        ax.barh(positions + shift, np.asarray(accuracy, dtype=float), height=height, label=series)
    ax.set_yticks(positions, labels=names, fontsize=_LABEL_FONT + 1)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("accuracy")
    ax.set_title("Per-label test accuracy")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_image_grid(
    rows: Sequence[np.ndarray],
    path: Path | str,
    row_titles: Sequence[str] | None = None,
    column_titles: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Plot a grid of images, one row per array (for reconstructions and edits).

    Args:
        rows: list of (n, H, W, 3) arrays, uint8 or float in [0, 1]. Rows may differ in n.
        path: output PNG path.
        row_titles: optional one title per row, written left of the row.
        column_titles: optional one title per column, written above the first row.
        title: optional figure title.

    Returns:
        The written path.
    """
    if not rows:
        raise DataError("rows is empty: pass at least one row of images")
    if row_titles is not None and len(row_titles) != len(rows):
        raise DataError(f"{len(row_titles)} row titles for {len(rows)} rows")
    columns = max(len(row) for row in rows)
    if column_titles is not None and len(column_titles) != columns:
        raise DataError(f"{len(column_titles)} column titles for {columns} columns")
    fig = _new_figure(1.5 * columns + 0.8, 1.5 * len(rows) + 0.6)
    axes = np.asarray(fig.subplots(len(rows), columns, squeeze=False))
    for r, row in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            if c >= len(row):
                ax.set_axis_off()
                continue
            _show_image(ax, row[c], column_titles[c] if column_titles and r == 0 else None)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_bar_table(
    values: Mapping[str, float | None], path: Path | str, title: str, xlabel: str
) -> Path:
    """Plot a small bar chart with the value written on each bar (e.g. edit success per scale).

    Args:
        values: {category: value}. None or NaN draws no bar and writes "n/a".
        path: output PNG path.
        title: figure title.
        xlabel: name of the category axis.

    Returns:
        The written path.
    """
    if not values:
        raise DataError("values is empty: pass at least one category")
    names = list(values)
    heights = np.asarray([math.nan if v is None else v for v in values.values()], dtype=float)
    fig = _new_figure(max(3.5, 0.8 * len(names) + 1.5), 3.2)
    ax = fig.subplots()
    bars = ax.bar(np.arange(len(names)), np.nan_to_num(heights), tick_label=names)
    texts = ["n/a" if math.isnan(h) else f"{h:.3f}" for h in heights]
    ax.bar_label(bars, labels=texts, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.margins(y=0.15)
    fig.tight_layout()
    return _save(fig, path)
