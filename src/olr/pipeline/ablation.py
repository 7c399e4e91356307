"""``olr ablate``: one teacher, one Siamese model per target mode, compared on the same budget.

Karatsiolis and Kamilaris (ICPRAM 2021) report that occluding the inputs softens the teacher's
targets better than a raised temperature; hard labels (t = y(a) * y(b)) are the control.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from olr.config import TARGET_MODES
from olr.errors import OlrError
from olr.pipeline.rundir import RunDir
from olr.pipeline.runner import pipeline_stages, run_pipeline
from olr.training.callbacks import format_seconds

logger = logging.getLogger(__name__)


def link_teacher_run(run: RunDir, teacher_run: Path) -> None:
    """Reuse the cache, splits and teacher of a finished run through symbolic links."""
    teacher_run = Path(teacher_run).resolve()
    check_same_data(run, teacher_run)
    for name in ("cache", "prepare", "classifier"):
        source = teacher_run / name
        if not (source / "done.json").exists() and name != "cache":
            raise OlrError(f"{teacher_run} has no finished {name!r} stage; finish that run first")
        target = run.root / name
        if target.is_symlink() or target.exists():
            continue
        os.symlink(source, target, target_is_directory=True)
    for key in ("data", "classifier", "baseline"):
        values = json.loads((teacher_run / "metrics.json").read_text()).get(key)
        if values is not None:
            run.merge_metrics({key: values})


def check_same_data(run: RunDir, teacher_run: Path) -> None:
    """Raise OlrError when ``teacher_run`` used other data, split seed or teacher settings."""
    import yaml

    from olr.config import to_dict
    from olr.pipeline.rundir import changed_keys

    config_path = teacher_run / "config.yaml"
    if not config_path.exists():
        raise OlrError(f"--teacher-run {teacher_run} is not a run folder (no config.yaml)")
    previous = yaml.safe_load(config_path.read_text()) or {}
    current = to_dict(run.config)
    changed = sorted(
        key
        for section in ("seed", "data", "classifier")
        for key in changed_keys({section: previous.get(section)}, {section: current[section]})
    )
    if changed:
        raise OlrError(
            f"--teacher-run {teacher_run} used other settings ({', '.join(changed[:6])}); pass "
            "the same data options, seed and preset as that run"
        )


def ablate_mode(run: RunDir, mode: str) -> dict:
    """Train, embed and evaluate one target mode; return its ablation metrics."""
    from olr.analysis.correlation import analyse_correlations
    from olr.analysis.embed import load_embeddings
    from olr.analysis.pca import label_pca
    from olr.pipeline.training_stages import (
        embed_splits,
        load_embedder,
        load_teacher,
        probe_embeddings,
        train_siamese,
    )

    stage = f"siamese_{mode}"
    teacher = load_teacher(run) if mode != "hard" else None
    _, siamese_metrics = train_siamese(run, stage, mode, teacher)
    folder = run.root / f"embeddings_{mode}"
    embed_splits(run, load_embedder(run.root / stage / "embedder.safetensors"), folder)
    probe, _ = probe_embeddings(run, folder)
    test = load_embeddings(folder / "test.safetensors")
    correlation, _, _ = analyse_correlations(test.embeddings, test.labels, test.label_names)
    label = run.config.analysis.pca_label
    pca_auc = None
    if label in test.label_names:
        index = test.label_names.index(label)
        pca_auc = label_pca(test.embeddings[:, index], test.labels[:, index]).auc
    norms = np.linalg.norm(test.embeddings, axis=-1)
    return {
        "probe_accuracy": probe["test"]["mean_accuracy"],
        "correlation_fidelity": correlation["fidelity"],
        "pca_auc": pca_auc,
        "pca_label": label,
        "train_loss": siamese_metrics.get("train_loss"),
        "val_loss": siamese_metrics.get("val_loss"),
        "zero_vector_fraction": float((norms == 0).mean()),
    }


def run_ablation(run: RunDir, modes: list[str], teacher_run: Path | None = None) -> dict:
    """Prepare data and teacher (or reuse ``teacher_run``'s), then ablate each target mode."""
    unknown = [mode for mode in modes if mode not in TARGET_MODES]
    if unknown or not modes:
        raise OlrError(f"unknown target modes {unknown}; choose from {', '.join(TARGET_MODES)}")
    if teacher_run is not None:
        link_teacher_run(run, teacher_run)
    else:
        base = [s for s in pipeline_stages() if s.name in ("prepare", "classifier")]
        run_pipeline(run, base)
    for mode in modes:
        stage = f"ablation_{mode}"
        if run.is_done(stage):
            logger.info("ablation of %s already done, skipped", mode)
            continue
        start = time.monotonic()
        metrics = ablate_mode(run, mode)
        seconds = time.monotonic() - start
        logger.info("ablation %s done in %s: %s", mode, format_seconds(seconds), metrics)
        run.stage_dir(stage)
        run.finish_stage(stage, {"ablation": {mode: metrics}}, seconds)
    if run.primary:
        from olr.report.html import write_report

        write_report(run.root)
    return run.metrics()
