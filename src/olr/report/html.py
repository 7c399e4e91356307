"""Self-contained HTML report of a run: metrics tables and figures embedded as base64 PNG.

The report reads `metrics.json`, `config.yaml` and `figures/*.png` from a run directory and
writes one HTML file with inline CSS and no external resources. Paper values beside the results
are from Karatsiolis and Kamilaris, ICPRAM 2021.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from olr.errors import DataError, OlrError

logger = logging.getLogger(__name__)

PAPER_PROBE_ACCURACY = 0.916
PAPER_CLASSIFIER_ACCURACY = 0.942
#: Explained variance of the first two principal components of Mouth_Slightly_Open.
PAPER_PCA = {"Mouth_Slightly_Open": (0.675, 0.041)}

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
"""

# Figure file-name prefix -> section key. Files matching none go to "Other figures".
_FIGURE_PREFIXES = (
    ("per_label_accuracy", "per_label_accuracy"),
    ("correlation", "correlation"),
    ("pca", "pca"),
    ("disagreement", "disagreement"),
    ("ablation", "ablation"),
    ("reconstruction", "reconstruction"),
    ("editing", "editing"),
)

_ACCURACY_SERIES = (
    ("teacher", "classifier.test"),
    ("probe", "probe.test"),
    ("untrained probe", "untrained_probe.test"),
    ("majority", "baseline.majority.test"),
)


def _get(metrics: dict, dotted: str):
    """Look up a nested value by a dotted key, or return None when any level is missing."""
    value = metrics
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value) -> str:
    """Format one value as escaped text, floats to 3 decimals and missing values as "n/a"."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.3f}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(item) for item in value)
    if isinstance(value, dict):
        return html.escape(json.dumps(value, sort_keys=True))
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """Build an HTML table, escaping the headers and formatting every cell with `_fmt`."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flatten(value, prefix: str = "") -> list[tuple[str, object]]:
    """List the (dotted key, leaf value) pairs of a nested dict, in insertion order."""
    if not isinstance(value, dict):
        return [(prefix, value)]
    pairs = []
    for key, item in value.items():
        pairs.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return pairs


def _key_values(value: dict | None, skip: Sequence[str] = ()) -> str:
    """Build a two-column table of a nested dict's leaves, leaving out the top-level `skip` keys."""
    if not value:
        return ""
    shown = {key: item for key, item in value.items() if key not in skip}
    if not shown:
        return ""
    return _table(["quantity", "value"], _flatten(shown))


def _heading(text: str, level: int = 3) -> str:
    """Build an escaped HTML heading."""
    return f"<h{level}>{html.escape(text)}</h{level}>"


def _data_section(metrics: dict) -> str:
    """Build the data section: dataset name, image size and split sizes."""
    data = metrics.get("data")
    if not data:
        return ""
    names = data.get("label_names")
    listing = f"<p>Labels: {_fmt(names)}</p>" if names else ""
    return _key_values(data, skip=("label_names",)) + listing


def _accuracy_section(metrics: dict) -> str:
    """Tabulate the mean test accuracy of each model beside the paper's values."""
    paper = {"teacher": PAPER_CLASSIFIER_ACCURACY, "probe": PAPER_PROBE_ACCURACY}
    rows = [
        (name, _get(metrics, f"{key}.mean_accuracy"), paper.get(name))
        for name, key in _ACCURACY_SERIES
    ]
    if all(value is None for _, value, _ in rows):
        return ""
    return _table(["model", "mean test accuracy", "paper"], rows)


def _label_order(metrics: dict, tables: Iterable[dict]) -> list[str]:
    """Order label names as in the dataset, then any others in order of appearance."""
    names = list(_get(metrics, "data.label_names") or [])
    for table in tables:
        names.extend(name for name in table if name not in names)
    return names


def _per_label_section(metrics: dict) -> str:
    """Tabulate per-label test accuracy, one column per model."""
    series = [(name, _get(metrics, f"{key}.per_label")) for name, key in _ACCURACY_SERIES]
    series = [(name, table) for name, table in series if isinstance(table, dict)]
    if not series:
        return ""
    names = _label_order(metrics, (table for _, table in series))
    rows = [[label] + [table.get(label) for _, table in series] for label in names]
    return _table(["label"] + [name for name, _ in series], rows)


def _siamese_section(metrics: dict) -> str:
    """Tabulate the Siamese training diagnostics (loss beside the predict-zero loss)."""
    return _key_values(metrics.get("siamese"))


def _correlation_section(metrics: dict) -> str:
    """Build the correlation section: fidelity, the paper's quoted pairs and truth fidelities."""
    corr = metrics.get("correlation")
    if not corr:
        return ""
    parts = [
        _table(["quantity", "value"], [("fidelity (embedding vs label)", corr.get("fidelity"))])
    ]
    pairs = corr.get("pairs") or []
    if pairs:
        rows = [
            (" / ".join(p.get("labels", [])), p.get("embedding"), p.get("label"), p.get("paper"))
            for p in pairs
        ]
        parts += [_heading("Label pairs"), _table(["pair", "embedding", "label", "paper"], rows)]
    if corr.get("truth"):
        parts += [_heading("Against the true correlation"), _key_values(corr["truth"])]
    return "".join(parts)


def _pca_label(name: str, result: dict) -> str:
    """Tabulate one label's explained variance, AUC and Spearman, beside the paper when known."""
    ratios = list(result.get("explained_variance_ratio") or [])
    paper = PAPER_PCA.get(name, ())
    rows = [
        (f"component {i + 1}", ratio, paper[i] if i < len(paper) else None)
        for i, ratio in enumerate(ratios)
    ]
    scores = [(key, result.get(key)) for key in ("auc", "spearman_truth") if key in result]
    return (
        _heading(f"PCA of {name}")
        + _table(["explained variance ratio", "run", "paper"], rows)
        + (_table(["score", "value"], scores) if scores else "")
    )


def _pca_section(metrics: dict) -> str:
    """Build the PCA section: per-label details and the table over all labels."""
    pca = metrics.get("pca")
    if not pca:
        return ""
    parts = [_pca_label(name, result) for name, result in pca.items() if isinstance(result, dict)]
    table = pca.get("table") or []
    if table:
        columns = ("label", "evr1", "evr2", "auc", "spearman_truth")
        parts += [
            _heading("All labels"),
            _table(columns, [[r.get(c) for c in columns] for r in table]),
        ]
    return "".join(parts)


def _disagreement_section(metrics: dict) -> str:
    """Build the disagreement section: counts, and flipped precision beside the base rate."""
    dis = metrics.get("disagreement")
    if not dis:
        return ""
    parts = [_key_values(dis, skip=("per_label",))]
    per_label = dis.get("per_label") or {}
    if per_label:
        rows = sorted(per_label.items(), key=lambda item: -(item[1] or 0))
        parts += [_heading("Per label"), _table(["label", "disagreements"], rows)]
    return "".join(parts)


def _ablation_section(metrics: dict) -> str:
    """Tabulate the ablation results, one row per mode."""
    ablation = metrics.get("ablation")
    if not ablation:
        return ""
    columns = ("probe_accuracy", "correlation_fidelity", "pca_auc")
    rows = [[mode] + [(result or {}).get(c) for c in columns] for mode, result in ablation.items()]
    return _table(("mode",) + columns, rows)


def _reconstruction_section(metrics: dict) -> str:
    """Tabulate reconstruction quality from the embeddings beside a plain autoencoder."""
    recon = metrics.get("reconstruction")
    if not recon:
        return ""
    columns = ["mse", "psnr", "ssim"]
    for result in recon.values():
        columns.extend(key for key in (result or {}) if key not in columns)
    rows = [[name] + [(result or {}).get(c) for c in columns] for name, result in recon.items()]
    return _table(["model"] + columns, rows)


def _editing_section(metrics: dict) -> str:
    """Build the editing section: summary, per-scale and per-label tables."""
    edit = metrics.get("editing")
    if not edit:
        return ""
    summary = [
        ("add success rate", _get(edit, "add.success_rate")),
        ("remove success rate", _get(edit, "remove.success_rate")),
    ]
    for key in ("off_target", "preservation"):
        if key in edit:
            summary.extend(_flatten(edit[key], key.replace("_", " ")))
    parts = [_table(["quantity", "value"], summary)]
    truth = edit.get("truth") or {}
    if truth:
        columns = [
            "measure_spearman_truth",
            "measure_auroc_label",
            "real_gap",
            "add_mean_change",
            "add_increase_fraction",
            "remove_mean_change",
            "remove_decrease_fraction",
        ]
        rows = [
            (label, *((values or {}).get(c) for c in columns)) for label, values in truth.items()
        ]
        parts += [
            _heading("Edits measured in pixels through the synthetic generator's geometry"),
            _table(["label", *(c.replace("_", " ") for c in columns)], rows),
        ]
    scales = edit.get("scales") or {}
    if scales:
        rows = [
            (scale, (r or {}).get("add_success_rate"), (r or {}).get("remove_success_rate"))
            for scale, r in scales.items()
        ]
        parts += [_heading("Per scale"), _table(["scale", "add success", "remove success"], rows)]
    add, remove = _get(edit, "add.per_label") or {}, _get(edit, "remove.per_label") or {}
    if add or remove:
        names = _label_order(metrics, (add, remove))
        rows = [(name, add.get(name), remove.get(name)) for name in names]
        parts += [_heading("Per label"), _table(["label", "add success", "remove success"], rows)]
    return "".join(parts)


def _timings_section(metrics: dict) -> str:
    """Tabulate wall-clock seconds per stage."""
    timings = metrics.get("timings")
    if not timings:
        return ""
    return _table(["stage", "seconds"], list(timings.items()))


# (key, title, builder): the order of the report.
_SECTIONS: tuple[tuple[str, str, Callable[[dict], str]], ...] = (
    ("data", "Data", _data_section),
    ("accuracy", "Accuracy", _accuracy_section),
    ("per_label_accuracy", "Per-label accuracy", _per_label_section),
    ("siamese", "Siamese training diagnostics", _siamese_section),
    ("correlation", "Correlations", _correlation_section),
    ("pca", "PCA", _pca_section),
    ("disagreement", "Disagreements", _disagreement_section),
    ("ablation", "Ablation", _ablation_section),
    ("reconstruction", "Reconstruction", _reconstruction_section),
    ("editing", "Editing", _editing_section),
    ("timings", "Timings", _timings_section),
)


def _figure_html(path: Path) -> str:
    """Embed one PNG as a base64 data URI, captioned with its file name."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _group_figures(figure_dir: Path) -> dict[str, list[Path]]:
    """Group the run's PNG files by section key from their file-name prefix ("other" if none)."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(figure_dir.glob("*.png")) if figure_dir.is_dir() else []:
        key = next((k for prefix, k in _FIGURE_PREFIXES if path.name.startswith(prefix)), "other")
        groups.setdefault(key, []).append(path)
    return groups


def _read_metrics(run_dir: Path) -> dict:
    """Load run_dir/metrics.json, with errors that name the file."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise OlrError(f"{path} not found: run `olr run` first to produce the run's metrics")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} line {error.lineno}: invalid JSON ({error.msg})") from error
    if not isinstance(metrics, dict):
        raise DataError(f"{path} must contain a JSON object at the top level")
    return metrics


def _body(run_dir: Path, metrics: dict) -> str:
    """Build all sections of the report, each only when it has metrics or figures."""
    figures = _group_figures(run_dir / "figures")
    parts = [_heading(f"OLR run report: {run_dir.name}", 1)]
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        config = html.escape(config_path.read_text(encoding="utf-8"))
        parts.append(_heading("Run config", 2) + f"<pre>{config}</pre>")
    for key, title, builder in _SECTIONS:
        content = builder(metrics) + "".join(_figure_html(p) for p in figures.get(key, []))
        if content:
            parts.append(f'<section id="{key}">{_heading(title, 2)}{content}</section>')
    if figures.get("other"):
        other = "".join(_figure_html(p) for p in figures["other"])
        parts.append(f'<section id="other">{_heading("Other figures", 2)}{other}</section>')
    return "\n".join(parts)


def write_report(run_dir: Path, out_path: Path | None = None) -> Path:
    """Write the self-contained HTML report of a run.

    Args:
        run_dir: run directory containing metrics.json and optionally config.yaml and figures/*.png.
        out_path: where to write the report (default run_dir/report.html).

    Returns:
        The written path.

    Raises:
        OlrError: metrics.json is missing.
        DataError: metrics.json is not a valid JSON object.
    """
    run_dir = Path(run_dir)
    metrics = _read_metrics(run_dir)
    out_path = Path(out_path) if out_path is not None else run_dir / "report.html"
    title = html.escape(f"OLR report: {run_dir.name}")
    document = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body>\n{_body(run_dir, metrics)}\n</body></html>\n"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(document, encoding="utf-8")
        os.replace(temporary, out_path)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("wrote report %s", out_path)
    return out_path
