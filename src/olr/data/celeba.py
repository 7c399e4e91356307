"""Read CelebA (Liu et al., ICCV 2015) attribute, identity and partition files into an ImageSource.

Three directory layouts are recognised: the flat one (files next to ``img_align_celeba/``), the
official download (``Img/``, ``Anno/``, ``Eval/``) and the CSV one (``list_attr_celeba.csv``,
images possibly in ``img_align_celeba/img_align_celeba/``). Labels are joined to images by file
name, never by row order.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from olr.data.source import ImageSource
from olr.errors import DataError, OlrError

logger = logging.getLogger(__name__)

CELEBA_LABELS = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)  # fmt: skip

# Labels left out by default, keeping 38: Karatsiolis and Kamilaris (ICPRAM 2021) drop them because
# the 178 x 178 crop of the aligned images often cuts off the neck.
DEFAULT_DROPPED_LABELS = ("Wearing_Necklace", "Wearing_Necktie")

# CelebA marks presence with 1 and absence with -1; 0 is also read as absent because some
# re-exported copies of the table use 0/1.
LABEL_VALUES = {"-1": 0, "0": 0, "1": 1}
ON_BAD_CHOICES = ("error", "skip")
MAX_LISTED_PROBLEMS = 20
SKIP_HINT = "fix the file or pass `--on-bad-image skip` to drop the bad rows"


@dataclass
class CelebaLayout:
    """Locations of the CelebA files under one root directory.

    Attributes:
        images_dir: directory that contains the ``<id>.jpg`` files.
        attributes_file: ``list_attr_celeba.txt`` or ``list_attr_celeba.csv``.
        partition_file: ``list_eval_partition.txt`` / ``.csv``, or None when absent.
        identity_file: ``identity_CelebA.txt``, or None when absent.
        kind: ``"flat"``, ``"official"`` or ``"csv"``.
    """

    images_dir: Path
    attributes_file: Path
    partition_file: Path | None
    identity_file: Path | None
    kind: str


# (kind, attributes file, images dir, partition file, identity file), relative to the root,
# in the order they are tried.
_LAYOUT_CANDIDATES = (
    ("flat", "list_attr_celeba.txt", "img_align_celeba", "list_eval_partition.txt",
     "identity_CelebA.txt"),
    ("official", "Anno/list_attr_celeba.txt", "Img/img_align_celeba",
     "Eval/list_eval_partition.txt", "Anno/identity_CelebA.txt"),
    ("csv", "list_attr_celeba.csv", "img_align_celeba", "list_eval_partition.csv",
     "identity_CelebA.txt"),
)  # fmt: skip


def check_on_bad(on_bad: str) -> None:
    """Raise OlrError unless ``on_bad`` is ``"error"`` or ``"skip"``."""
    if on_bad not in ON_BAD_CHOICES:
        raise OlrError(f"on_bad must be one of {', '.join(ON_BAD_CHOICES)}, got {on_bad!r}")


def summarize_problems(problems: Sequence[str], limit: int = MAX_LISTED_PROBLEMS) -> str:
    """Format the first ``limit`` problems, one per line, and the total count.

    Args:
        problems: messages of the form ``"path:line: reason"`` or ``"file: reason"``.
        limit: how many to list.

    Returns:
        A multi-line string, for an error message or log entry.
    """
    listed = "\n".join(f"  {problem}" for problem in problems[:limit])
    more = len(problems) - limit
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return f"{len(problems)} problem(s):\n{listed}{tail}"


def handle_problems(problems: list[str], on_bad: str, source: Path) -> None:
    """Raise one DataError for all ``problems`` in error mode, or log their count in skip mode.

    Args:
        problems: row problems found while reading ``source``.
        on_bad: ``"error"`` or ``"skip"``.
        source: the file or directory the problems come from.

    Raises:
        DataError: when there are problems and ``on_bad`` is ``"error"``.
    """
    if not problems:
        return
    if on_bad == "error":
        raise DataError(f"invalid rows in {source}: {summarize_problems(problems)}\n{SKIP_HINT}")
    logger.warning("skipping %d invalid row(s) of %s", len(problems), source)


def parse_label_values(
    values: Sequence[str], names: Sequence[str], where: str
) -> tuple[list[int] | None, str | None]:
    """Convert one row of -1/0/1 label strings to 0/1 integers.

    Args:
        values: the label fields of the row, one per name.
        names: the label names, for the message.
        where: ``"path:line"`` of the row.

    Returns:
        ``(codes, None)`` with a list of 0/1 ints, or ``(None, problem)`` for a row with an
        unknown value.
    """
    codes = [LABEL_VALUES.get(value) for value in values]
    if None not in codes:
        return codes, None
    bad = [
        f"{value!r} for {name}"
        for value, name, code in zip(values, names, codes, strict=True)
        if code is None
    ]
    return None, f"{where}: unknown label value {', '.join(bad[:3])} (expected -1, 0 or 1)"


def find_celeba_layout(root: Path) -> CelebaLayout:
    """Detect which CelebA layout ``root`` uses.

    Args:
        root: the directory the user passed as the CelebA root.

    Returns:
        The first matching layout, tried in the order flat, official, CSV.

    Raises:
        DataError: when ``root`` is missing or matches no layout; the message lists the
            files that were looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CelebA root directory {root} not found")
    looked_for = []
    for kind, attributes, images, partition, identity in _LAYOUT_CANDIDATES:
        if (root / attributes).is_file() and (root / images).is_dir():
            return CelebaLayout(
                images_dir=_resolve_nested_images(root / images),
                attributes_file=root / attributes,
                partition_file=_optional_file(root / partition),
                identity_file=_optional_file(root / identity),
                kind=kind,
            )
        looked_for.append(f"{kind}: {attributes} and {images}/")
    searched = "; ".join(looked_for)
    raise DataError(
        f"no CelebA layout found in {root}; looked for {searched}. "
        "Point the root at the directory that contains these files."
    )


def _optional_file(path: Path) -> Path | None:
    return path if path.is_file() else None


def _resolve_nested_images(images_dir: Path) -> Path:
    # Some archives unpack to img_align_celeba/img_align_celeba/<id>.jpg.
    nested = images_dir / images_dir.name
    if nested.is_dir():
        logger.info("using nested images directory %s", nested)
        return nested
    return images_dir


def read_celeba_attributes(
    path: Path, on_bad: str = "error"
) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Read a CelebA attribute table in the text or the CSV format.

    The text format (``list_attr_celeba.txt``) has the row count on line 1, the label names
    on line 2, then ``<file> v1 .. v40`` separated by any run of spaces or tabs. The CSV format
    (``list_attr_celeba.csv``) has the header ``image_id,<names...>``. Values are -1 (absent),
    1 (present) or 0 (absent). Rows with the wrong number of columns, an unknown value, an
    invalid file name or a duplicate id are problems.

    Args:
        path: the attribute file; a ``.csv`` suffix selects the CSV format.
        on_bad: ``"error"`` raises one DataError listing all problems, ``"skip"`` drops the
            problem rows and returns their messages.

    Returns:
        ``(ids, label_names, labels, problems)``: N file names, K label names (40 for
        CelebA), (N, K) uint8 labels in {0, 1}, and the ``"path:line: reason"`` messages of
        the dropped rows (empty in error mode).

    Raises:
        DataError: for a missing or malformed file, or for row problems in error mode.
    """
    check_on_bad(on_bad)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"attribute file {path} not found")
    reader = _read_attribute_csv if path.suffix.lower() == ".csv" else _read_attribute_txt
    names, rows = reader(path)
    _check_label_names(names, path)
    ids, labels, problems = _collect_label_rows(rows, names)
    handle_problems(problems, on_bad, path)
    if not ids:
        raise DataError(f"attribute file {path} contains no valid image rows")
    return ids, names, np.asarray(labels, dtype=np.uint8).reshape(len(ids), len(names)), problems


def _read_lines(path: Path) -> list[str]:
    try:
        # utf-8-sig drops a byte order mark; splitlines handles both LF and CRLF line ends.
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not a UTF-8 text file ({error})") from error


def _read_attribute_txt(path: Path) -> tuple[list[str], list[tuple[str, list[str]]]]:
    lines = _read_lines(path)
    if len(lines) < 2:
        raise DataError(f"{path}: expected a row count on line 1 and label names on line 2")
    try:
        declared = int(lines[0].strip())
    except ValueError as error:
        raise DataError(f"{path}:1: expected the number of rows, got {lines[0]!r}") from error
    names = lines[1].split()
    rows = [(f"{path}:{number}", line.split()) for number, line in _numbered(lines, start=3)]
    if declared != len(rows):
        logger.warning("%s: line 1 declares %d rows but the file has %d", path, declared, len(rows))
    return names, rows


def _numbered(lines: list[str], start: int) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines[start - 1 :], start=start):
        if line.strip():
            yield number, line


def _read_attribute_csv(path: Path) -> tuple[list[str], list[tuple[str, list[str]]]]:
    header, rows = read_csv_rows(path)
    if not header or header[0] != "image_id":
        raise DataError(f"{path}:1: expected a header starting with 'image_id', got {header!r}")
    return header[1:], rows


def read_csv_rows(path: Path) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Read a CSV file, skipping blank rows and stripping spaces around every field.

    Args:
        path: the CSV file (UTF-8, optionally with a byte order mark).

    Returns:
        ``(header, rows)``: the header fields and, per data row, ``("path:line", fields)``.

    Raises:
        DataError: when the file is not valid UTF-8 or not parseable as CSV.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [field.strip() for field in next(reader, [])]
            rows = [
                (f"{path}:{reader.line_num}", [field.strip() for field in fields])
                for fields in reader
                if any(field.strip() for field in fields)
            ]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: unreadable CSV file ({error})") from error
    return header, rows


def _check_label_names(names: list[str], path: Path) -> None:
    if not names:
        raise DataError(f"{path}: the header contains no label names")
    seen = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: label name {name!r} appears twice in the header")
        seen.add(name)


def _collect_label_rows(
    rows: list[tuple[str, list[str]]], names: list[str]
) -> tuple[list[str], list[int], list[str]]:
    """Parse ``(where, [file, v1..vK])`` rows into ids, flat label codes and problems."""
    ids: list[str] = []
    labels: list[int] = []
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    for where, fields in rows:
        problem = _row_shape_problem(fields, names, where)
        if problem is None and fields[0] in first_seen:
            problem = f"{where}: duplicate image id {fields[0]} (first at {first_seen[fields[0]]})"
        codes = None
        if problem is None:
            codes, problem = parse_label_values(fields[1:], names, where)
        if problem is not None:
            problems.append(problem)
            continue
        first_seen[fields[0]] = where
        ids.append(fields[0])
        labels.extend(codes)
    return ids, labels, problems


def _row_shape_problem(fields: list[str], names: list[str], where: str) -> str | None:
    expected = len(names) + 1
    if len(fields) != expected:
        return (
            f"{where}: expected {expected} columns (file name and {len(names)} labels), "
            f"found {len(fields)}"
        )
    image_id = fields[0]
    if image_id in ("", ".", "..") or "/" in image_id or "\\" in image_id:
        return (
            f"{where}: invalid image file name {image_id!r} (expected a plain name like 000001.jpg)"
        )
    return None


def read_identities(path: Path) -> dict[str, int]:
    """Read ``identity_CelebA.txt`` (``<file> <person id>`` per line) or a CSV with a header.

    Args:
        path: the identity file; a ``.csv`` file has the header ``image_id,<column>``.

    Returns:
        Map from image file name to person id.

    Raises:
        DataError: for a missing file, a malformed or duplicate row (all rows are checked).
    """
    return _read_id_table(path, "person id", allowed=None)


def read_partition(path: Path) -> dict[str, int]:
    """Read ``list_eval_partition.txt`` / ``.csv``: 0 train, 1 validation, 2 test per image.

    Args:
        path: the partition file; a ``.csv`` file has the header ``image_id,partition``.

    Returns:
        Map from image file name to partition number.

    Raises:
        DataError: for a missing file, a malformed or duplicate row, or a value outside 0..2.
    """
    return _read_id_table(path, "partition", allowed=(0, 1, 2))


def _read_id_table(path: Path, value_name: str, allowed: tuple[int, ...] | None) -> dict[str, int]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{value_name} file {path} not found")
    if path.suffix.lower() == ".csv":
        header, rows = read_csv_rows(path)
        if len(header) != 2 or header[0] != "image_id":
            raise DataError(
                f"{path}:1: expected the header 'image_id,<{value_name}>', got {header!r}"
            )
    else:
        rows = [
            (f"{path}:{number}", line.split()) for number, line in _numbered(_read_lines(path), 1)
        ]
    table: dict[str, int] = {}
    problems: list[str] = []
    for where, fields in rows:
        problem = _id_row_problem(fields, table, value_name, allowed, where)
        if problem:
            problems.append(problem)
        else:
            table[fields[0]] = int(fields[1])
    if problems:
        raise DataError(f"invalid rows in {path}: {summarize_problems(problems)}\nfix the file")
    return table


def _id_row_problem(fields, table, value_name, allowed, where) -> str | None:
    if len(fields) != 2:
        return f"{where}: expected 2 columns (file name and {value_name}), found {len(fields)}"
    if fields[0] in table:
        return f"{where}: duplicate image id {fields[0]}"
    try:
        value = int(fields[1])
    except ValueError:
        return f"{where}: {value_name} {fields[1]!r} is not an integer"
    if allowed is not None and value not in allowed:
        return f"{where}: {value_name} {value} is not one of {', '.join(map(str, allowed))}"
    return None


def select_label_columns(
    names: list[str], label_names: list[str] | None, drop: tuple[str, ...], source: Path
) -> list[int]:
    """Choose and order the label columns to keep.

    Args:
        names: the label names in file order.
        label_names: the requested labels in output order, or None for all but ``drop``.
        drop: labels to leave out when ``label_names`` is None.
        source: the attribute file, for messages.

    Returns:
        Column indices into ``names``.

    Raises:
        DataError: for a requested or dropped name that the file does not contain.
        OlrError: for an empty or repeated selection.
    """
    valid = f"valid names: {', '.join(names)}"
    if label_names is None:
        unknown = [name for name in drop if name not in names]
        if unknown:
            raise DataError(
                f"cannot drop unknown label(s) {', '.join(unknown)} in {source}; {valid}"
            )
        return [index for index, name in enumerate(names) if name not in drop]
    if not label_names:
        raise OlrError("label_names is empty; name at least one label or pass None for all")
    if len(set(label_names)) != len(label_names):
        raise OlrError(f"label_names contains a name twice: {label_names}")
    unknown = [name for name in label_names if name not in names]
    if unknown:
        raise DataError(f"unknown label(s) {', '.join(unknown)} for {source}; {valid}")
    return [names.index(name) for name in label_names]


def load_celeba(
    root: Path,
    label_names: list[str] | None = None,
    drop: tuple[str, ...] = DEFAULT_DROPPED_LABELS,
    on_bad: str = "error",
) -> ImageSource:
    """Describe a CelebA copy as an ImageSource, without decoding any image.

    Args:
        root: a directory in the flat, official or CSV layout (see :func:`find_celeba_layout`).
        label_names: labels to keep, in this order; None keeps all but ``drop`` (38 labels).
        drop: labels left out when ``label_names`` is None.
        on_bad: ``"error"`` or ``"skip"`` for invalid rows of the attribute file and for
            images without an identity or partition entry.

    Returns:
        An ImageSource with crop ``"celeba_square"``, name ``"celeba"``, groups from the
        identity file and the partition when those files exist. Paths of images missing on
        disk are kept, so the cache reports them. ``extra`` contains ``layout`` and ``problems``
        (the messages of the skipped rows).

    Raises:
        DataError: for a missing layout, an invalid file, or problems in error mode.
    """
    layout = find_celeba_layout(root)
    ids, names, labels, problems = read_celeba_attributes(layout.attributes_file, on_bad)
    columns = select_label_columns(names, label_names, drop, layout.attributes_file)
    keep = np.ones(len(ids), dtype=bool)
    join_problems: list[str] = []
    groups = _join_table(ids, layout.identity_file, read_identities, keep, join_problems)
    partition = _join_table(ids, layout.partition_file, read_partition, keep, join_problems)
    handle_problems(join_problems, on_bad, root)
    if not keep.any():
        raise DataError(f"no image of {layout.attributes_file} has identity and partition entries")
    kept_ids = [image_id for image_id, kept in zip(ids, keep, strict=True) if kept]
    logger.info(
        "CelebA (%s layout) at %s: %d images, %d labels",
        layout.kind,
        root,
        len(kept_ids),
        len(columns),
    )
    return ImageSource(
        image_paths=[layout.images_dir / image_id for image_id in kept_ids],
        ids=kept_ids,
        label_names=[names[column] for column in columns],
        labels=np.ascontiguousarray(labels[keep][:, columns]),
        groups=None if groups is None else groups[keep].astype(np.int64),
        crop="celeba_square",
        partition=None if partition is None else partition[keep].astype(np.int8),
        name="celeba",
        extra={"layout": layout.kind, "problems": problems + join_problems},
    )


def _join_table(ids, path, reader, keep, problems) -> np.ndarray | None:
    """Look up every id in the table at ``path``; ids without an entry are marked not kept."""
    if path is None:
        return None
    table = reader(path)
    values = np.zeros(len(ids), dtype=np.int64)
    for index, image_id in enumerate(ids):
        value = table.get(image_id)
        if value is None:
            if keep[index]:
                problems.append(f"{path}: no entry for image {image_id}")
            keep[index] = False
        else:
            values[index] = value
    return values
