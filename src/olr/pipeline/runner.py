"""Run the pipeline stages in order, skipping those already done, and time each one."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from olr.errors import OlrError
from olr.pipeline import analysis_stages, training_stages
from olr.pipeline.rundir import RunDir
from olr.training.callbacks import format_seconds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    Attributes:
        name: folder name and ``--from`` value.
        run: function of the RunDir returning the metrics to merge.
        distributed: True when the stage trains with Lightning, so every process of a DDP run
            takes part; other stages run on the primary process only.
        needs_decoder: skipped when ``decoder.enabled`` is false.
    """

    name: str
    run: Callable[[RunDir], dict]
    distributed: bool = False
    needs_decoder: bool = False


def pipeline_stages() -> list[Stage]:
    """Return the stages of ``olr run``, training stages first so DDP processes finish early."""
    from olr.pipeline import reconstruction_stages

    return [
        Stage("prepare", training_stages.stage_prepare),
        Stage("classifier", training_stages.stage_classifier, distributed=True),
        Stage("siamese", training_stages.stage_siamese, distributed=True),
        Stage("embed", training_stages.stage_embed),
        Stage("decoder", reconstruction_stages.stage_decoder, True, needs_decoder=True),
        Stage("autoencoder", reconstruction_stages.stage_autoencoder, True, needs_decoder=True),
        Stage("probe", training_stages.stage_probe),
        Stage("correlation", analysis_stages.stage_correlation),
        Stage("pca", analysis_stages.stage_pca),
        Stage("disagreement", analysis_stages.stage_disagreement),
        Stage("editing", reconstruction_stages.stage_editing, needs_decoder=True),
        Stage("report", analysis_stages.stage_report),
    ]


STAGE_NAMES = (
    "prepare",
    "classifier",
    "siamese",
    "embed",
    "decoder",
    "autoencoder",
    "probe",
    "correlation",
    "pca",
    "disagreement",
    "editing",
    "report",
)


def run_pipeline(
    run: RunDir, stages: list[Stage] | None = None, redo_from: str | None = None
) -> dict:
    """Run ``stages`` in order into ``run``; return the merged metrics.

    Args:
        run: the started run folder.
        stages: the stages to run (default: all of ``olr run``).
        redo_from: a stage name; it and every later stage run again even if done, from scratch
            (their checkpoints are deleted).
    """
    stages = stages or pipeline_stages()
    names = [stage.name for stage in stages]
    if redo_from is not None and redo_from not in names:
        raise OlrError(
            f"unknown stage {redo_from!r} for --redo-from; choose one of {', '.join(names)}"
        )
    redo = names[names.index(redo_from) :] if redo_from else []
    if run.primary:
        for name in redo:
            run.marker(name).unlink(missing_ok=True)
            # A finished stage's last.ckpt would be resumed at its final epoch, so a redone
            # training stage would train nothing.
            shutil.rmtree(run.root / name / "checkpoints", ignore_errors=True)
    last_distributed = max((i for i, s in enumerate(stages) if s.distributed), default=-1)
    for position, stage in enumerate(stages):
        if stage.needs_decoder and not run.config.decoder.enabled:
            continue
        if not run.primary and position > last_distributed:
            break
        if run.is_done(stage.name):
            logger.info("stage %s already done, skipped", stage.name)
            continue
        if not stage.distributed and not run.primary:
            run.wait_for(stage.name)
            continue
        logger.info("stage %s started", stage.name)
        start = time.monotonic()
        metrics = stage.run(run)
        seconds = time.monotonic() - start
        run.finish_stage(stage.name, metrics, seconds)
        logger.info("stage %s done in %s", stage.name, format_seconds(seconds))
    return run.metrics() if run.primary else {}
