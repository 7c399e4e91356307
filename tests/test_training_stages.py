"""Tests of the prepare stage: settings that would fail after training stop it before decoding."""

import numpy as np
import pytest
from PIL import Image

from olr.config import resolve_config
from olr.errors import DataError
from olr.pipeline.rundir import RunDir
from olr.pipeline.training_stages import stage_prepare


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    lines = ["filename,cat,dog"]
    for index in range(4):
        name = f"{index}.png"
        Image.fromarray(np.full((20, 20, 3), index * 40, np.uint8)).save(root / "images" / name)
        lines.append(f"{name},{index % 2},{1 - index % 2}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def folder_run(tmp_path, folder, **extra):
    data = {"dataset": "folder", "data_root": str(folder), **extra.pop("data", {})}
    run = RunDir(tmp_path / "run", resolve_config("smoke", overrides={"data": data, **extra}))
    run.start("test")
    return run


def test_unknown_pca_label_stops_before_decoding(tmp_path, folder):
    run = folder_run(tmp_path, folder)
    with pytest.raises(DataError, match="analysis.pca_label=NAME with one of cat, dog"):
        stage_prepare(run)
    assert not (run.cache_dir / "images.npy").exists()


def test_person_split_without_groups_rejected(tmp_path, folder):
    run = folder_run(tmp_path, folder, data={"split": "person"}, analysis={"pca_label": "cat"})
    with pytest.raises(DataError, match="data.split=person"):
        stage_prepare(run)
    assert not (run.cache_dir / "images.npy").exists()
