"""Print the headline numbers of an ``olr run`` or ``olr ablate`` folder as Markdown tables.

Example: ``python benchmarks/results_tables.py runs/celeba64``. docs/RESULTS.md quotes its output,
so every number there is read from a run's metrics.json rather than typed in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PAPER = {"probe": 0.916, "classifier": 0.942}


def fmt(value) -> str:
    """Format a number with 3 decimals, lists element-wise, and missing values as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def get(metrics: dict, path: str):
    """Return the value at a dotted ``path`` of nested dicts, or None."""
    value = metrics
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def table(header: list[str], rows: list[list]) -> str:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def accuracy_table(metrics: dict) -> str:
    rows = [
        ["teacher classifier", get(metrics, "classifier.test.mean_accuracy"), PAPER["classifier"]],
        [
            "linear probe on OLR embeddings",
            get(metrics, "probe.test.mean_accuracy"),
            PAPER["probe"],
        ],
        [
            "linear probe on an untrained network",
            get(metrics, "untrained_probe.test.mean_accuracy"),
            None,
        ],
        ["majority value per label", get(metrics, "baseline.majority.test.mean_accuracy"), None],
    ]
    return table(["model", "mean test accuracy", "paper"], rows)


def sections(metrics: dict) -> list[str]:
    """Return the Markdown blocks for every section the metrics contain."""
    out = []
    data = metrics.get("data", {})
    if data:
        out.append(
            table(
                ["images", "train", "val", "test", "labels", "image size"],
                [
                    [
                        data.get("num_images"),
                        data.get("num_train"),
                        data.get("num_val"),
                        data.get("num_test"),
                        data.get("num_labels"),
                        data.get("image_size"),
                    ]
                ],
            )
        )
    if get(metrics, "probe.test.mean_accuracy") is not None:
        out.append(accuracy_table(metrics))
    siamese = metrics.get("siamese")
    if siamese:
        out.append(
            table(
                ["Siamese train loss", "predict-zero loss", "zero vectors", "val loss"],
                [
                    [
                        siamese.get("train_loss"),
                        siamese.get("predict_zero_loss"),
                        siamese.get("zero_vector_fraction"),
                        siamese.get("val_loss"),
                    ]
                ],
            )
        )
    correlation = metrics.get("correlation")
    if correlation:
        out.append(
            f"correlation fidelity (norm vs label correlation): {fmt(correlation['fidelity'])}"
        )
        if correlation.get("truth"):
            out.append(
                table(
                    ["against the generator's true correlations", "fidelity"],
                    [
                        [
                            "embedding norm correlation",
                            correlation["truth"].get("embedding_fidelity"),
                        ],
                        [
                            "label correlation of the same images",
                            correlation["truth"].get("label_fidelity"),
                        ],
                    ],
                )
            )
        pairs = correlation.get("pairs") or []
        if pairs:
            out.append(
                table(
                    ["labels", "embedding norms", "labels", "paper"],
                    [
                        [" / ".join(p["labels"]), p["embedding"], p["label"], p["paper"]]
                        for p in pairs
                    ],
                )
            )
    pca = metrics.get("pca")
    if pca and pca.get("label") in pca:
        chosen = pca[pca["label"]]
        out.append(
            table(
                ["PCA label", "explained variance (first 5)", "AUC", "Spearman truth"],
                [
                    [
                        pca["label"],
                        chosen.get("explained_variance_ratio"),
                        chosen.get("auc"),
                        chosen.get("spearman_truth"),
                    ]
                ],
            )
        )
    disagreement = metrics.get("disagreement")
    if disagreement:
        out.append(
            table(
                ["disagreement cells", "images", "flipped precision", "flipped base rate"],
                [
                    [
                        disagreement.get("total"),
                        disagreement.get("num_images"),
                        disagreement.get("flipped_precision"),
                        disagreement.get("flipped_base_rate"),
                    ]
                ],
            )
        )
    reconstruction = metrics.get("reconstruction")
    if reconstruction:
        rows = [
            [name, *(get(reconstruction, f"{key}.{m}") for m in ("mse", "psnr", "ssim"))]
            for name, key in (
                ("decoder on OLR embeddings", "test"),
                ("autoencoder, same bottleneck", "autoencoder"),
            )
        ]
        out.append(table(["test reconstruction", "MSE", "PSNR (dB)", "SSIM"], rows))
    editing = metrics.get("editing")
    if editing:
        out.append(
            table(
                ["add success", "remove success", "off-target |dp|", "preservation"],
                [
                    [
                        get(editing, "add.success_rate"),
                        get(editing, "remove.success_rate"),
                        editing.get("off_target"),
                        editing.get("preservation"),
                    ]
                ],
            )
        )
        scales = editing.get("scales") or {}
        out.append(
            table(
                ["scale", "add success", "remove success"],
                [
                    [scale, v.get("add_success_rate"), v.get("remove_success_rate")]
                    for scale, v in scales.items()
                ],
            )
        )
        truth = editing.get("truth") or {}
        if truth:
            keys = [
                "measure_spearman_truth",
                "measure_auroc_label",
                "real_gap",
                "add_mean_change",
                "add_increase_fraction",
                "remove_mean_change",
                "remove_decrease_fraction",
            ]
            out.append(
                table(["label", *keys], [[k, *(v.get(c) for c in keys)] for k, v in truth.items()])
            )
    ablation = metrics.get("ablation")
    if ablation:
        out.append(
            table(
                [
                    "target mode",
                    "probe accuracy",
                    "correlation fidelity",
                    "PCA AUC",
                    "zero vectors",
                ],
                [
                    [
                        mode,
                        v.get("probe_accuracy"),
                        v.get("correlation_fidelity"),
                        v.get("pca_auc"),
                        v.get("zero_vector_fraction"),
                    ]
                    for mode, v in ablation.items()
                ],
            )
        )
    timings = metrics.get("timings")
    if timings:
        out.append(
            table(
                ["stage", "seconds"],
                [[k, v] for k, v in timings.items()] + [["total", sum(timings.values())]],
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with metrics.json")
    args = parser.parse_args(argv)
    path = args.run / "metrics.json"
    if not path.exists():
        print(f"error: {path} not found; run `olr run` first", file=sys.stderr)
        return 2
    print("\n\n".join(sections(json.loads(path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
