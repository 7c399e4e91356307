"""Tests of the run folder: metrics merging, markers and config checks."""

import math

import numpy as np
import pytest

from olr.config import merge, resolve_config
from olr.errors import OlrError
from olr.pipeline.rundir import RunDir, json_safe
from olr.pipeline.runner import Stage, run_pipeline


def test_json_safe_converts_numpy_and_nan():
    value = json_safe({"a": np.float32(0.5), "b": [np.int64(2), math.nan], "c": np.arange(2)})
    assert value == {"a": 0.5, "b": [2, None], "c": [0, 1]}


def test_merge_keeps_siblings():
    merged = merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}, "b": 4})
    assert merged == {"a": {"x": 1, "y": 3}, "b": 4}


def test_stages_run_once_and_merge_metrics(tmp_path):
    calls = []

    def first(run):
        calls.append("first")
        return {"first": {"value": 1}}

    def second(run):
        calls.append("second")
        return {"second": {"value": 2}}

    stages = [Stage("first", first), Stage("second", second)]
    run = RunDir(tmp_path / "run", resolve_config("smoke"))
    run.start("test")
    metrics = run_pipeline(run, stages)
    assert metrics["first"] == {"value": 1}
    assert metrics["second"] == {"value": 2}
    assert set(metrics["timings"]) == {"first", "second"}
    run_pipeline(run, stages)
    assert calls == ["first", "second"]
    run_pipeline(run, stages, redo_from="second")
    assert calls == ["first", "second", "second"]


def test_unknown_redo_stage_is_rejected(tmp_path):
    run = RunDir(tmp_path / "run", resolve_config("smoke"))
    run.start("test")
    with pytest.raises(OlrError, match="--redo-from"):
        run_pipeline(run, [Stage("only", lambda run: {})], redo_from="missing")


def test_changed_config_in_same_folder_is_rejected(tmp_path):
    first = RunDir(tmp_path / "run", resolve_config("smoke"))
    first.start("first")
    first.finish_stage("prepare", {}, 0.0)
    other = resolve_config("smoke", overrides={"seed": 7})
    with pytest.raises(OlrError, match="seed"):
        RunDir(tmp_path / "run", other).start("second")


def test_config_replaced_while_prepare_unfinished(tmp_path):
    RunDir(tmp_path / "run", resolve_config("smoke")).start("first")
    other = resolve_config("smoke", overrides={"seed": 7})
    RunDir(tmp_path / "run", other).start("second")
    assert "seed: 7" in (tmp_path / "run" / "config.yaml").read_text()


def test_redo_deletes_stage_checkpoints(tmp_path):
    seen = []

    def train(run):
        seen.append((run.root / "train" / "checkpoints" / "last.ckpt").exists())
        (run.stage_dir("train") / "checkpoints").mkdir(exist_ok=True)
        (run.root / "train" / "checkpoints" / "last.ckpt").write_text("finished")
        return {}

    run = RunDir(tmp_path / "run", resolve_config("smoke"))
    run.start("test")
    run_pipeline(run, [Stage("train", train)])
    run_pipeline(run, [Stage("train", train)], redo_from="train")
    assert seen == [False, False]


def test_failed_stage_leaves_no_marker(tmp_path):
    def broken(run):
        raise OlrError("bad input")

    run = RunDir(tmp_path / "run", resolve_config("smoke"))
    run.start("test")
    with pytest.raises(OlrError):
        run_pipeline(run, [Stage("broken", broken)])
    assert not run.is_done("broken")
