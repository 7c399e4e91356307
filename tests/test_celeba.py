"""Tests for the CelebA readers: the three layouts, the text and CSV formats, and row problems."""

from __future__ import annotations

import csv
import logging
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from olr.data.celeba import (
    CELEBA_LABELS,
    DEFAULT_DROPPED_LABELS,
    find_celeba_layout,
    load_celeba,
    read_celeba_attributes,
    read_identities,
    read_partition,
)
from olr.errors import DataError, OlrError

REAL_SUBSET = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "celeba-89x109"
IDS = [f"{index:06d}.jpg" for index in range(1, 7)]
# (6, 40) labels in {0, 1}, fixed so that every layout must reproduce them.
LABELS = np.random.default_rng(7).integers(0, 2, (len(IDS), len(CELEBA_LABELS))).astype(np.uint8)
PERSONS = {image_id: 100 + index % 3 for index, image_id in enumerate(IDS)}
PARTS = {image_id: index % 3 for index, image_id in enumerate(IDS)}


def _signed(row: np.ndarray) -> list[str]:
    return ["1" if value else "-1" for value in row]


def write_attr_txt(path: Path, order=None, count=None, sep=" ", newline="\n", extra_rows=()):
    order = range(len(IDS)) if order is None else order
    lines = [str(len(IDS) if count is None else count), " ".join(CELEBA_LABELS)]
    lines += [sep.join([IDS[index], *_signed(LABELS[index])]) for index in order]
    lines += list(extra_rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode())


def write_attr_csv(path: Path, order=None, extra_rows=()):
    order = range(len(IDS)) if order is None else order
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", *CELEBA_LABELS])
        for index in order:
            writer.writerow([IDS[index], *_signed(LABELS[index])])
        for row in extra_rows:
            writer.writerow(row)


def write_table(path: Path, table: dict[str, int], header: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if header is None:
        path.write_text("".join(f"{key} {value}\n" for key, value in table.items()))
    else:
        rows = "".join(f"{key},{value}\n" for key, value in table.items())
        path.write_text(f"image_id,{header}\n{rows}")


def write_images(images_dir: Path):
    images_dir.mkdir(parents=True, exist_ok=True)
    for index, image_id in enumerate(IDS):
        Image.new("RGB", (18, 22), (index * 30, 80, 120)).save(images_dir / image_id, "JPEG")


def build_flat(root: Path) -> Path:
    write_images(root / "img_align_celeba")
    write_attr_txt(root / "list_attr_celeba.txt")
    write_table(root / "identity_CelebA.txt", PERSONS)
    write_table(root / "list_eval_partition.txt", PARTS)
    return root


def build_official(root: Path) -> Path:
    write_images(root / "Img" / "img_align_celeba")
    write_attr_txt(root / "Anno" / "list_attr_celeba.txt")
    write_table(root / "Anno" / "identity_CelebA.txt", PERSONS)
    write_table(root / "Eval" / "list_eval_partition.txt", PARTS)
    return root


def build_csv(root: Path) -> Path:
    write_images(root / "img_align_celeba" / "img_align_celeba")
    write_attr_csv(root / "list_attr_celeba.csv")
    write_table(root / "list_eval_partition.csv", PARTS, header="partition")
    return root


def labels_by_id(source) -> dict[str, list[int]]:
    return {image_id: row.tolist() for image_id, row in zip(source.ids, source.labels, strict=True)}


def expected_by_id(columns: list[int]) -> dict[str, list[int]]:
    return {image_id: LABELS[index, columns].tolist() for index, image_id in enumerate(IDS)}


DEFAULT_COLUMNS = [i for i, name in enumerate(CELEBA_LABELS) if name not in DEFAULT_DROPPED_LABELS]


@pytest.mark.parametrize("builder", [build_flat, build_official, build_csv])
def test_layouts_give_same_labels(tmp_path, builder):
    source = load_celeba(builder(tmp_path))
    assert labels_by_id(source) == expected_by_id(DEFAULT_COLUMNS)
    assert len(source.label_names) == 38
    assert source.crop == "celeba_square"
    assert source.name == "celeba"
    assert [path.name for path in source.image_paths] == source.ids
    assert all(path.is_file() for path in source.image_paths)
    assert source.partition.tolist() == [PARTS[image_id] for image_id in source.ids]


def test_layout_kinds_and_files(tmp_path):
    flat = find_celeba_layout(build_flat(tmp_path / "flat"))
    official = find_celeba_layout(build_official(tmp_path / "official"))
    kaggle = find_celeba_layout(build_csv(tmp_path / "csv"))
    assert (flat.kind, official.kind, kaggle.kind) == ("flat", "official", "csv")
    assert official.identity_file == tmp_path / "official" / "Anno" / "identity_CelebA.txt"
    assert kaggle.images_dir == tmp_path / "csv" / "img_align_celeba" / "img_align_celeba"
    assert kaggle.identity_file is None
    assert kaggle.partition_file == tmp_path / "csv" / "list_eval_partition.csv"


def test_groups_from_identity_file(tmp_path):
    source = load_celeba(build_flat(tmp_path))
    assert source.groups.dtype == np.int64
    assert source.groups.tolist() == [PERSONS[image_id] for image_id in source.ids]
    assert load_celeba(build_csv(tmp_path / "csv")).groups is None


def test_unknown_layout_lists_candidates(tmp_path):
    (tmp_path / "list_attr_celeba.txt").write_text("0\n")
    with pytest.raises(DataError) as error:
        find_celeba_layout(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    for expected_text in ("img_align_celeba/", "Anno/list_attr_celeba.txt", "list_attr_celeba.csv"):
        assert expected_text in message


def test_missing_root_raises(tmp_path):
    with pytest.raises(DataError, match="not found"):
        find_celeba_layout(tmp_path / "absent")


@pytest.mark.parametrize("fmt", ["txt", "csv"])
def test_shuffled_rows_stay_aligned(tmp_path, fmt):
    order = list(range(len(IDS)))
    random.Random(3).shuffle(order)
    path = tmp_path / f"list_attr_celeba.{fmt}"
    if fmt == "txt":
        write_attr_txt(path, order=order)
    else:
        write_attr_csv(path, order=order)
    ids, names, labels, problems = read_celeba_attributes(path)
    assert ids == [IDS[index] for index in order]
    assert names == list(CELEBA_LABELS)
    assert labels.dtype == np.uint8
    assert labels.shape == (len(IDS), 40)
    assert {i: row.tolist() for i, row in zip(ids, labels, strict=True)} == expected_by_id(
        list(range(40))
    )
    assert problems == []


def test_shuffled_rows_load_by_name(tmp_path):
    root = build_flat(tmp_path)
    write_attr_txt(root / "list_attr_celeba.txt", order=[5, 2, 0, 4, 1, 3])
    source = load_celeba(root)
    assert labels_by_id(source) == expected_by_id(DEFAULT_COLUMNS)
    assert source.groups.tolist() == [PERSONS[image_id] for image_id in source.ids]


def test_crlf_and_mixed_spaces(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    write_attr_txt(path, sep="  \t ", newline="\r\n")
    ids, _, labels, _ = read_celeba_attributes(path)
    assert ids == IDS
    assert np.array_equal(labels, LABELS)


def test_count_mismatch_warns(tmp_path, caplog):
    path = tmp_path / "list_attr_celeba.txt"
    write_attr_txt(path, count=999)
    with caplog.at_level(logging.WARNING, logger="olr.data.celeba"):
        ids, _, labels, _ = read_celeba_attributes(path)
    assert "999" in caplog.text
    assert ids == IDS
    assert np.array_equal(labels, LABELS)


def test_zero_reads_as_absent(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    row = " ".join(["000009.jpg", "0", "1"] + ["-1"] * 38)
    write_attr_txt(path, count=7, extra_rows=[row])
    ids, _, labels, _ = read_celeba_attributes(path)
    assert ids[-1] == "000009.jpg"
    assert labels[-1, :3].tolist() == [0, 1, 0]


BAD_TXT_ROWS = [" ".join(["000010.jpg"] + ["1"] * 39), " ".join(["000011.jpg", "2"] + ["1"] * 39)]


def test_bad_txt_rows_raise(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    write_attr_txt(path, count=8, extra_rows=BAD_TXT_ROWS)
    with pytest.raises(DataError) as error:
        read_celeba_attributes(path)
    message = str(error.value)
    # Rows start on line 3: six good rows (lines 3-8), then the two bad ones.
    assert f"{path}:9: expected 41 columns" in message
    assert f"{path}:10: unknown label value '2'" in message
    assert "--on-bad-image skip" in message
    assert "2 problem(s)" in message


def test_bad_txt_rows_skip(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    write_attr_txt(path, count=8, extra_rows=BAD_TXT_ROWS)
    ids, _, labels, problems = read_celeba_attributes(path, on_bad="skip")
    assert ids == IDS
    assert np.array_equal(labels, LABELS)
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}:9:")
    assert problems[1].startswith(f"{path}:10:")


def test_bad_csv_rows_raise_and_skip(tmp_path):
    path = tmp_path / "list_attr_celeba.csv"
    bad = [["000010.jpg", *(["1"] * 39)], ["000011.jpg", "2", *(["1"] * 39)]]
    write_attr_csv(path, extra_rows=bad)
    with pytest.raises(DataError) as error:
        read_celeba_attributes(path)
    assert f"{path}:8: expected 41 columns" in str(error.value)
    assert f"{path}:9: unknown label value '2'" in str(error.value)
    ids, _, _, problems = read_celeba_attributes(path, on_bad="skip")
    assert ids == IDS
    assert len(problems) == 2


def test_duplicate_id_is_problem(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    duplicate = " ".join([IDS[0], *_signed(1 - LABELS[0])])
    write_attr_txt(path, count=7, extra_rows=[duplicate])
    with pytest.raises(DataError, match="duplicate image id 000001.jpg"):
        read_celeba_attributes(path)
    ids, _, labels, problems = read_celeba_attributes(path, on_bad="skip")
    assert ids == IDS
    assert np.array_equal(labels[0], LABELS[0])
    assert len(problems) == 1


def test_path_in_id_is_problem(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    write_attr_txt(path, count=7, extra_rows=[" ".join(["../x.jpg"] + ["1"] * 40)])
    with pytest.raises(DataError, match="invalid image file name"):
        read_celeba_attributes(path)


def test_invalid_on_bad_raises(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    write_attr_txt(path)
    with pytest.raises(OlrError, match="on_bad"):
        read_celeba_attributes(path, on_bad="ignore")


def test_label_selection_order(tmp_path):
    source = load_celeba(build_flat(tmp_path), label_names=["Smiling", "Male", "Wearing_Necktie"])
    columns = [CELEBA_LABELS.index(name) for name in ("Smiling", "Male", "Wearing_Necktie")]
    assert source.label_names == ["Smiling", "Male", "Wearing_Necktie"]
    assert labels_by_id(source) == expected_by_id(columns)


def test_default_drops_two_labels(tmp_path):
    names = load_celeba(build_flat(tmp_path)).label_names
    assert "Wearing_Necklace" not in names
    assert "Wearing_Necktie" not in names
    assert names == [CELEBA_LABELS[index] for index in DEFAULT_COLUMNS]


def test_unknown_label_name_raises(tmp_path):
    with pytest.raises(DataError) as error:
        load_celeba(build_flat(tmp_path), label_names=["Smiling", "Smiling_Wide"])
    assert "Smiling_Wide" in str(error.value)
    assert "valid names: 5_o_Clock_Shadow" in str(error.value)


def test_missing_image_keeps_path(tmp_path):
    root = build_flat(tmp_path)
    (root / "img_align_celeba" / IDS[2]).unlink()
    source = load_celeba(root)
    assert source.ids == IDS
    assert not source.image_paths[2].exists()


def test_missing_identity_entry(tmp_path):
    root = build_flat(tmp_path)
    write_table(root / "identity_CelebA.txt", {k: v for k, v in PERSONS.items() if k != IDS[1]})
    with pytest.raises(DataError, match="no entry for image 000002.jpg"):
        load_celeba(root)
    source = load_celeba(root, on_bad="skip")
    assert source.ids == [image_id for image_id in IDS if image_id != IDS[1]]
    assert labels_by_id(source) == {
        k: v for k, v in expected_by_id(DEFAULT_COLUMNS).items() if k != IDS[1]
    }
    assert len(source.extra["problems"]) == 1


def test_read_identities_and_partition(tmp_path):
    write_table(tmp_path / "identity_CelebA.txt", PERSONS)
    write_table(tmp_path / "list_eval_partition.csv", PARTS, header="partition")
    write_table(tmp_path / "list_eval_partition.txt", PARTS)
    assert read_identities(tmp_path / "identity_CelebA.txt") == PERSONS
    assert read_partition(tmp_path / "list_eval_partition.csv") == PARTS
    assert read_partition(tmp_path / "list_eval_partition.txt") == PARTS


def test_invalid_partition_value_raises(tmp_path):
    path = tmp_path / "list_eval_partition.txt"
    path.write_text("000001.jpg 0\n000002.jpg 3\n000003.jpg x\n")
    with pytest.raises(DataError) as error:
        read_partition(path)
    assert f"{path}:2: partition 3 is not one of 0, 1, 2" in str(error.value)
    assert f"{path}:3: partition 'x' is not an integer" in str(error.value)


def test_real_subset_labels():
    if not REAL_SUBSET.is_dir():
        pytest.skip(f"CelebA subset not present at {REAL_SUBSET}")
    source = load_celeba(REAL_SUBSET)
    assert len(source) == 10_000
    assert len(source.label_names) == 38
    lines = (REAL_SUBSET / "list_attr_celeba.txt").read_text().splitlines()
    names = lines[1].split()
    raw = {line.split()[0]: line.split()[1:] for line in lines[2:4]}
    for image_id, values in raw.items():
        row = source.labels[source.ids.index(image_id)]
        for name, value in zip(source.label_names, row, strict=True):
            assert value == (values[names.index(name)] == "1"), (image_id, name)
    assert source.groups[source.ids.index("000001.jpg")] == 2880
    assert source.image_paths[0].is_file()
