"""Every figure function writes a readable PNG on tiny data."""

import numpy as np
import pytest
from PIL import Image

from olr.analysis.correlation import label_correlation
from olr.errors import DataError
from olr.report import figures


def _open(path, min_width=100, min_height=60):
    """Open a written PNG and check its size; return (width, height)."""
    assert path.is_file()
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width >= min_width
    assert height >= min_height
    assert not list(path.parent.glob(".*.tmp"))
    return width, height


def _images(n, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_heatmap_38_labels(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"Label_Name_{i:02d}" for i in range(38)]
    labels = (rng.random((100, 38)) > 0.5).astype(np.uint8)
    labels[:, 7] = 0  # a constant label: NaN row drawn grey
    corr = label_correlation(labels)
    path = figures.plot_correlation_heatmaps(corr, corr, names, tmp_path / "correlation.png", corr)
    width, height = _open(path)
    # Three panels with 38 rows each need at least 0.2 inch (20 px at 100 dpi) per label row.
    assert height >= 38 * 20
    assert width >= 3 * 38 * 20
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    grey = (np.abs(pixels.astype(int) - 191) <= 2).all(axis=2)
    assert grey.sum() > 1000


def test_heatmap_shape_mismatch(tmp_path):
    with pytest.raises(DataError):
        figures.plot_correlation_heatmaps(np.eye(3), np.eye(2), ["a", "b", "c"], tmp_path / "x.png")


def test_pca_ranking(tmp_path):
    projection = np.linspace(-1, 1, 12)
    path = figures.plot_pca_ranking(_images(12), projection, "Smiling", tmp_path / "pca.png", 5)
    _open(path, min_width=300)


def test_disagreements_and_empty(tmp_path):
    rng = np.random.default_rng(1)
    mask = np.zeros((6, 3), dtype=bool)
    mask[0, 1] = mask[2, 0] = mask[5, 2] = True
    labels = (rng.random((6, 3)) > 0.5).astype(np.uint8)
    teacher, probe = rng.random((6, 3)), rng.random((6, 3))
    flipped = mask.copy()
    args = (labels, teacher, probe, ["a", "b", "c"])
    path = figures.plot_disagreements(_images(6), mask, *args, tmp_path / "d.png", flipped=flipped)
    _open(path)
    empty = figures.plot_disagreements(
        _images(6), ~np.ones((6, 3), bool), *args, tmp_path / "e.png"
    )
    _open(empty)


def test_per_label_accuracy(tmp_path):
    names = [f"l{i}" for i in range(10)]
    series = {
        "teacher": {n: 0.9 for n in names},
        "probe": {n: 0.85 for n in names},
        "untrained probe": {n: 0.8 for n in names[:5]},
        "majority": {n: 0.7 for n in names},
    }
    _open(figures.plot_per_label_accuracy(series, tmp_path / "per_label_accuracy.png"))


def test_image_grid_uint8_and_float(tmp_path):
    rows = [_images(4), _images(3).astype(np.float32) / 255.0]
    path = figures.plot_image_grid(
        rows, tmp_path / "grid.png", ["input", "output"], ["a", "b", "c", "d"], "Reconstruction"
    )
    _open(path)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        figures.plot_image_grid([rows[1] * 2], tmp_path / "bad.png")


def test_bar_table(tmp_path):
    values = {"0.5": 0.4, "1.0": 0.7, "1.5": None}
    _open(figures.plot_bar_table(values, tmp_path / "bars.png", "Edit success", "scale"))
