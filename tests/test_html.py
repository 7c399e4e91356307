"""The HTML report on a hand-written run directory."""

import json

import numpy as np
import pytest
from PIL import Image

from olr.errors import DataError, OlrError
from olr.report.html import write_report

METRICS = {
    "data": {
        "dataset": "celeba",
        "image_size": 64,
        "num_labels": 2,
        "label_names": ["Male", "Young"],
        "num_train": 800,
        "num_val": 100,
        "num_test": 123,
    },
    "classifier": {"test": {"mean_accuracy": 0.9012, "per_label": {"Male": 0.95, "Young": 0.85}}},
    "probe": {"test": {"mean_accuracy": 0.8766, "per_label": {"Male": 0.93, "Young": 0.8234}}},
    "correlation": {
        "fidelity": 0.8123,
        "pairs": [
            {"labels": ["Male", "Big_Nose"], "embedding": 0.5556, "label": 0.4444, "paper": 0.6}
        ],
        "truth": {"embedding_fidelity": 0.7777, "label_fidelity": None},
    },
    "pca": {
        "Mouth_Slightly_Open": {"explained_variance_ratio": [0.6012, 0.0512], "auc": 0.9346},
        "table": [
            {"label": "Male", "evr1": 0.4321, "evr2": 0.1, "auc": 0.99, "spearman_truth": None}
        ],
    },
    "timings": {"siamese": 12.3456},
}


def _run_dir(tmp_path, metrics=METRICS, figure_names=("correlation_heatmap.png",)):
    (tmp_path / "figures").mkdir()
    for name in figure_names:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "figures" / name)
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "config.yaml").write_text("seed: 1\nnote: <b>x</b>\n")
    return tmp_path


def test_report_contents(tmp_path):
    path = write_report(_run_dir(tmp_path, figure_names=("correlation_a.png", "misc.png")))
    assert path == tmp_path / "report.html"
    text = path.read_text()
    for number in (
        "0.901",
        "0.877",
        "0.942",
        "0.916",
        "0.812",
        "0.556",
        "0.444",
        "0.778",
        "0.601",
        "0.675",
        "0.041",
        "0.935",
        "0.432",
        "12.346",
        "123",
    ):
        assert number in text, number
    for title in (
        "Run config",
        "Data",
        "Accuracy",
        "Per-label accuracy",
        "Correlations",
        "PCA",
        "Timings",
        "Other figures",
    ):
        assert f">{title}</h2>" in text, title

    assert text.count("data:image/png;base64,") == 2
    assert "n/a" in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text
    assert "<b>x</b>" not in text
    assert "http://" not in text
    assert "https://" not in text

    # correlation_a.png sits in the correlation section, misc.png in "Other figures".
    correlation = text.index('id="correlation"')
    assert correlation < text.index("correlation_a.png") < text.index('id="pca"')
    assert text.index('id="other"') < text.index("misc.png")


def test_sections_without_metrics_omitted(tmp_path):
    path = write_report(_run_dir(tmp_path), tmp_path / "out" / "r.html")
    text = path.read_text()
    for title in (
        "Disagreements",
        "Editing",
        "Ablation",
        "Reconstruction",
        "Siamese training diagnostics",
        "Other figures",
    ):
        assert f">{title}</h2>" not in text, title
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_editing_ablation_sections(tmp_path):
    metrics = {
        "editing": {
            "add": {"success_rate": 0.6543, "per_label": {"Male": 0.5}},
            "remove": {"success_rate": 0.3211, "per_label": {"Male": 0.25}},
            "off_target": 0.0123,
            "preservation": {"ssim": 0.8888},
            "scales": {"1.5": {"add_success_rate": 0.7001, "remove_success_rate": 0.2}},
        },
        "ablation": {
            "no_occlusion": {"probe_accuracy": 0.8111, "correlation_fidelity": 0.4, "pca_auc": None}
        },
        "disagreement": {
            "per_label": {"Male": 7},
            "total": 7,
            "flipped_precision": 0.5714,
            "flipped_base_rate": 0.05,
        },
    }
    text = write_report(_run_dir(tmp_path, metrics, ())).read_text()
    for number in ("0.654", "0.321", "0.012", "0.889", "0.700", "0.811", "0.571", "0.050"):
        assert number in text, number
    for title in ("Editing", "Ablation", "Disagreements"):
        assert f">{title}</h2>" in text
    assert "no_occlusion" in text
    assert ">Accuracy</h2>" not in text


def test_missing_metrics_raises(tmp_path):
    with pytest.raises(OlrError, match=r"metrics\.json.*olr run"):
        write_report(tmp_path)


def test_invalid_metrics_raises(tmp_path):
    (tmp_path / "metrics.json").write_text('{"data":\n  oops}')
    with pytest.raises(DataError, match="line 2"):
        write_report(tmp_path)
