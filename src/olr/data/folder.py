"""Read a generic labelled image folder: image files plus a CSV with one 0/1 column per label."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import numpy as np

from olr.data.celeba import check_on_bad, handle_problems, parse_label_values, read_csv_rows
from olr.data.source import ImageSource
from olr.errors import DataError

logger = logging.getLogger(__name__)

FILENAME_COLUMN = "filename"
GROUP_COLUMN = "group"


def load_folder(root: Path, csv_path: Path | None = None, on_bad: str = "error") -> ImageSource:
    """Describe an image folder and its label CSV as an ImageSource, without decoding images.

    The CSV has a ``filename`` column (a path relative to the image directory) and one column
    per label with 0/1 or -1/1 values. An optional ``group`` column (for example a person id)
    lets splits keep all images of a group on one side.

    Args:
        root: the dataset directory; images are read from ``root/images/`` when that exists,
            otherwise from ``root`` itself.
        csv_path: the label CSV; defaults to ``root/labels.csv``.
        on_bad: ``"error"`` raises one DataError listing every invalid row, ``"skip"`` drops
            those rows and stores their messages in ``extra["problems"]``.

    Returns:
        An ImageSource with crop ``"none"`` and name ``"folder"``. Paths of images missing on
        disk are kept, so the cache reports them.

    Raises:
        DataError: for a missing directory or CSV, a header without ``filename`` or labels,
            or invalid rows in error mode.
    """
    check_on_bad(on_bad)
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} not found")
    images_dir = root / "images" if (root / "images").is_dir() else root
    csv_path = Path(csv_path) if csv_path is not None else root / "labels.csv"
    if not csv_path.is_file():
        raise DataError(f"label file {csv_path} not found; pass the CSV path or create it")
    header, rows = read_csv_rows(csv_path)
    label_columns, group_column = _parse_header(header, csv_path)
    ids, labels, group_values, problems = _parse_rows(rows, header, label_columns, group_column)
    handle_problems(problems, on_bad, csv_path)
    if not ids:
        raise DataError(f"label file {csv_path} contains no valid image rows")
    logger.info("image folder %s: %d images, %d labels", images_dir, len(ids), len(label_columns))
    return ImageSource(
        image_paths=[images_dir / image_id for image_id in ids],
        ids=ids,
        label_names=[header[column] for column in label_columns],
        labels=np.asarray(labels, dtype=np.uint8).reshape(len(ids), len(label_columns)),
        groups=None if group_column is None else _group_ids(group_values),
        crop="none",
        name="folder",
        extra={"problems": problems},
    )


def _parse_header(header: list[str], csv_path: Path) -> tuple[list[int], int | None]:
    if FILENAME_COLUMN not in header:
        raise DataError(f"{csv_path}:1: the header has no {FILENAME_COLUMN!r} column: {header}")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"{csv_path}:1: column(s) {', '.join(duplicates)} appear twice")
    if "" in header:
        raise DataError(f"{csv_path}:1: the header has an empty column name")
    group_column = header.index(GROUP_COLUMN) if GROUP_COLUMN in header else None
    label_columns = [
        index for index, name in enumerate(header) if name not in (FILENAME_COLUMN, GROUP_COLUMN)
    ]
    if not label_columns:
        raise DataError(f"{csv_path}:1: the header has no label columns besides {FILENAME_COLUMN}")
    return label_columns, group_column


def _parse_rows(rows, header, label_columns, group_column):
    """Parse CSV rows into ids, flat label codes, group strings and ``"path:line"`` problems."""
    filename_column = header.index(FILENAME_COLUMN)
    label_names = [header[column] for column in label_columns]
    ids, labels, group_values, problems = [], [], [], []
    first_seen: dict[str, str] = {}
    for where, fields in rows:
        problem = _row_problem(fields, header, filename_column, group_column, first_seen, where)
        codes = None
        if problem is None:
            values = [fields[column] for column in label_columns]
            codes, problem = parse_label_values(values, label_names, where)
        if problem is not None:
            problems.append(problem)
            continue
        first_seen[fields[filename_column]] = where
        ids.append(fields[filename_column])
        labels.extend(codes)
        if group_column is not None:
            group_values.append(fields[group_column])
    return ids, labels, group_values, problems


def _row_problem(fields, header, filename_column, group_column, first_seen, where) -> str | None:
    if len(fields) != len(header):
        return f"{where}: expected {len(header)} columns, found {len(fields)}"
    filename = fields[filename_column]
    if not _is_relative_file_name(filename):
        return f"{where}: invalid file name {filename!r} (expected a path inside the image folder)"
    if filename in first_seen:
        return f"{where}: duplicate file name {filename} (first at {first_seen[filename]})"
    if group_column is not None and not fields[group_column]:
        return f"{where}: empty {GROUP_COLUMN} value"
    return None


def _is_relative_file_name(filename: str) -> bool:
    # A name must stay inside the image folder: no absolute paths and no "..".
    path = PurePosixPath(filename.replace("\\", "/"))
    return bool(filename) and not path.is_absolute() and ".." not in path.parts


def _group_ids(values: list[str]) -> np.ndarray:
    """Convert group strings to (N,) int64: integers as written, other names by sorted order."""
    try:
        return np.asarray([int(value) for value in values], dtype=np.int64)
    except ValueError:
        names = sorted(set(values))
        index = {name: number for number, name in enumerate(names)}
        return np.asarray([index[value] for value in values], dtype=np.int64)
