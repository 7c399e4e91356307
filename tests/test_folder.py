"""Tests for the generic image folder reader: layout, label values, groups and row problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from olr.data.folder import load_folder
from olr.errors import DataError


def write_folder(root: Path, rows: list[str], header="filename,cat,dog,group", subdir="images"):
    images_dir = root / subdir if subdir else root
    images_dir.mkdir(parents=True, exist_ok=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (10, 12), (200, 10, 10)).save(images_dir / name, "JPEG")
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


ROWS = ["c.jpg,1,-1,p2", "a.jpg,-1,1,p1", "b.jpg,1,1,p1"]


def test_folder_labels_by_name(tmp_path):
    source = load_folder(write_folder(tmp_path, ROWS))
    by_id = {i: row.tolist() for i, row in zip(source.ids, source.labels, strict=True)}
    assert by_id == {"c.jpg": [1, 0], "a.jpg": [0, 1], "b.jpg": [1, 1]}
    assert source.label_names == ["cat", "dog"]
    assert source.labels.dtype == np.uint8
    assert [path.name for path in source.image_paths] == source.ids
    assert all(path.parent == tmp_path / "images" for path in source.image_paths)
    assert source.crop == "none"


def test_folder_group_names_to_ids(tmp_path):
    source = load_folder(write_folder(tmp_path, ROWS))
    assert source.groups.dtype == np.int64
    assert source.groups.tolist() == [1, 0, 0]


def test_folder_integer_groups_kept(tmp_path):
    rows = ["a.jpg,1,0,17", "b.jpg,0,0,4", "c.jpg,1,1,17"]
    source = load_folder(write_folder(tmp_path, rows))
    assert source.groups.tolist() == [17, 4, 17]


def test_folder_images_in_root(tmp_path):
    rows = ["a.jpg,1,0", "b.jpg,0,1"]
    source = load_folder(write_folder(tmp_path, rows, header="filename,cat,dog", subdir=None))
    assert source.image_paths[0] == tmp_path / "a.jpg"
    assert source.groups is None
    assert source.labels.tolist() == [[1, 0], [0, 1]]


def test_folder_explicit_csv(tmp_path):
    write_folder(tmp_path, ROWS)
    other = tmp_path / "other.csv"
    other.write_text("filename,smile\na.jpg,1\n")
    source = load_folder(tmp_path, csv_path=other)
    assert source.ids == ["a.jpg"]
    assert source.label_names == ["smile"]


def test_folder_bad_rows_raise(tmp_path):
    rows = [*ROWS, "d.jpg,1,p3", "e.jpg,2,0,p3", "../x.jpg,1,0,p4", "a.jpg,0,0,p1"]
    root = write_folder(tmp_path, rows)
    csv_path = root / "labels.csv"
    with pytest.raises(DataError) as error:
        load_folder(root)
    message = str(error.value)
    assert f"{csv_path}:5: expected 4 columns, found 3" in message
    assert f"{csv_path}:6: unknown label value '2' for cat" in message
    assert f"{csv_path}:7: invalid file name '../x.jpg'" in message
    assert f"{csv_path}:8: duplicate file name a.jpg" in message


def test_folder_bad_rows_skip(tmp_path):
    rows = [*ROWS, "d.jpg,1,p3", "e.jpg,2,0,p3"]
    source = load_folder(write_folder(tmp_path, rows), on_bad="skip")
    assert source.ids == ["c.jpg", "a.jpg", "b.jpg"]
    assert len(source.extra["problems"]) == 2


def test_folder_missing_csv_raises(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="labels.csv not found"):
        load_folder(tmp_path)


def test_folder_header_without_filename(tmp_path):
    root = write_folder(tmp_path, ["a.jpg,1"], header="file,cat")
    with pytest.raises(DataError, match="no 'filename' column"):
        load_folder(root)


def test_folder_header_without_labels(tmp_path):
    root = write_folder(tmp_path, ["a.jpg,p1"], header="filename,group")
    with pytest.raises(DataError, match="no label columns"):
        load_folder(root)
