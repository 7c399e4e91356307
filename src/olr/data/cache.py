"""Decode a dataset once into a memory-mapped uint8 image array with its labels and metadata.

A cache directory contains ``images.npy`` (N, S, S, 3) uint8 RGB, ``labels.npy`` (N, L) uint8,
optionally ``groups.npy`` (N,) int64, ``partition.npy`` (N,) int8 and ``truth.npz`` (generative
ground truth of synthetic data), and ``meta.json``. Every file is written under a temporary name
and renamed, and ``meta.json`` is written last, so a cache without it is incomplete.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from olr.data.celeba import check_on_bad, summarize_problems
from olr.data.images import decode_image
from olr.data.source import ImageSource
from olr.errors import DataError, OlrError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Paths per worker task: large enough to amortise inter-process transfer, small enough that
# a chunk of 178 x 178 images (about 24 MB) stays cheap to send back.
CHUNK_SIZE = 256
PROGRESS_INTERVAL_S = 5.0
OPTIONAL_FILES = ("groups.npy", "partition.npy", "truth.npz")
PREPARE_HINT = "run `olr prepare` to build it"


@dataclass
class ImageCache:
    """An opened cache directory; ``images`` is a read-only memory map, not loaded into memory.

    Attributes:
        root: the cache directory.
        images: (N, S, S, 3) uint8 RGB memory map (``mmap_mode="r"``).
        labels: (N, L) uint8 labels in {0, 1}.
        ids: the N image ids, in row order.
        label_names: the L label names, in column order.
        image_size: S, the side of every image in pixels.
        groups: (N,) int64 group (person) ids, or None.
        partition: (N,) int8 official partition (0 train, 1 val, 2 test), or None.
        truth: arrays of ``truth.npz`` by name, or None when the file is absent.
        meta: the parsed ``meta.json``.
    """

    root: Path
    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    label_names: list[str]
    image_size: int
    groups: np.ndarray | None
    partition: np.ndarray | None
    truth: dict[str, np.ndarray] | None
    meta: dict

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def exists(cache_dir: Path) -> bool:
        """Return whether ``cache_dir`` contains a completely written cache."""
        cache_dir = Path(cache_dir)
        required = ("meta.json", "images.npy", "labels.npy")
        return all((cache_dir / name).is_file() for name in required)

    @classmethod
    def open(cls, cache_dir: Path) -> ImageCache:
        """Open a cache directory written by :func:`prepare_cache` or :func:`write_cache`.

        Args:
            cache_dir: the cache directory.

        Returns:
            The opened cache, with images memory-mapped read-only.

        Raises:
            DataError: when the directory is missing, incomplete, of another format
                version, or its arrays disagree with ``meta.json``.
        """
        cache_dir = Path(cache_dir)
        meta = _read_meta(cache_dir)
        missing = [
            name for name in ("images.npy", "labels.npy") if not (cache_dir / name).is_file()
        ]
        if missing:
            raise DataError(f"image cache {cache_dir} lacks {', '.join(missing)}; {PREPARE_HINT}")
        cache = cls(
            root=cache_dir,
            images=np.load(cache_dir / "images.npy", mmap_mode="r"),
            labels=np.load(cache_dir / "labels.npy"),
            ids=list(meta["ids"]),
            label_names=list(meta["label_names"]),
            image_size=int(meta["image_size"]),
            groups=_load_optional(cache_dir / "groups.npy"),
            partition=_load_optional(cache_dir / "partition.npy"),
            truth=_load_truth(cache_dir / "truth.npz"),
            meta=meta,
        )
        _check_consistent(cache)
        return cache


def _read_meta(cache_dir: Path) -> dict:
    if not cache_dir.is_dir():
        raise DataError(f"image cache {cache_dir} not found; {PREPARE_HINT}")
    meta_path = cache_dir / "meta.json"
    if not meta_path.is_file():
        raise DataError(f"image cache {cache_dir} is incomplete (no meta.json); {PREPARE_HINT}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{meta_path}: invalid JSON ({error}); {PREPARE_HINT} again") from error
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(
            f"image cache {cache_dir} has format version {version}, expected {FORMAT_VERSION}; "
            f"{PREPARE_HINT} again"
        )
    for key in ("ids", "label_names", "image_size", "num_images"):
        if key not in meta:
            raise DataError(f"{meta_path}: missing key {key!r}; {PREPARE_HINT} again")
    return meta


def _load_optional(path: Path) -> np.ndarray | None:
    return np.load(path) if path.is_file() else None


def _load_truth(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def _check_consistent(cache: ImageCache) -> None:
    count, size = len(cache.ids), cache.image_size
    expected = {
        "images.npy": (cache.images.shape, (count, size, size, 3)),
        "labels.npy": (cache.labels.shape, (count, len(cache.label_names))),
    }
    if cache.groups is not None:
        expected["groups.npy"] = (cache.groups.shape, (count,))
    if cache.partition is not None:
        expected["partition.npy"] = (cache.partition.shape, (count,))
    for name, (shape, expected_shape) in expected.items():
        if tuple(shape) != expected_shape:
            raise DataError(
                f"image cache {cache.root}: {name} has shape {tuple(shape)}, expected "
                f"{expected_shape} from meta.json; {PREPARE_HINT} again"
            )
    if cache.meta["num_images"] != count:
        raise DataError(f"image cache {cache.root}: meta.json num_images disagrees with its ids")


def prepare_cache(
    source: ImageSource,
    cache_dir: Path,
    image_size: int,
    on_bad_image: str = "error",
    num_workers: int = 2,
) -> ImageCache:
    """Decode every image of ``source`` once into ``cache_dir`` and open the result.

    Images are decoded in chunks of ``CHUNK_SIZE`` paths by a process pool and written straight
    into a memory-mapped ``images.npy``, so memory use does not grow with the dataset
    (200,000 images at 178 x 178 make a 19 GB file).

    Args:
        source: the dataset description (paths, ids, labels, crop).
        cache_dir: output directory, created if needed; an existing cache there is replaced.
        image_size: side S of the cached images in pixels.
        on_bad_image: ``"error"`` raises one DataError listing every missing, unreadable or
            truncated file and writes no cache. ``"skip"`` drops those images and records
            them in ``meta.json`` under ``"skipped"``.
        num_workers: decoding processes; 0 decodes in the calling process.

    Returns:
        The opened cache, rows in source order without the skipped images.

    Raises:
        DataError: for bad images in error mode, or when every image is bad.
        OlrError: for invalid arguments or an inconsistent source.
    """
    check_on_bad(on_bad_image)
    _check_source(source, image_size, num_workers)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _invalidate(cache_dir)
    temporary = cache_dir / "images.tmp.npy"
    try:
        kept, skipped = _decode_into(temporary, source, image_size, num_workers)
        _finish_images(temporary, cache_dir, source, kept, skipped, on_bad_image)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    keep = np.asarray(kept, dtype=bool)
    ids = [image_id for image_id, flag in zip(source.ids, keep, strict=True) if flag]
    groups = _subset(source.groups, keep)
    partition = _subset(source.partition, keep)
    _write_tables(cache_dir, source.labels[keep], groups, partition, truth=None)
    _write_meta(cache_dir, ids, source.label_names, image_size, source.name, skipped, source.crop)
    logger.info("image cache %s: %d images of %d x %d", cache_dir, len(ids), image_size, image_size)
    return ImageCache.open(cache_dir)


def _check_source(source: ImageSource, image_size: int, num_workers: int) -> None:
    count = len(source.ids)
    if count == 0:
        raise OlrError(f"dataset {source.name!r} contains no images")
    if len(source.image_paths) != count:
        raise OlrError(f"dataset {source.name!r}: {len(source.image_paths)} paths for {count} ids")
    if source.labels.shape != (count, len(source.label_names)):
        raise OlrError(
            f"dataset {source.name!r}: labels have shape {source.labels.shape}, expected "
            f"({count}, {len(source.label_names)})"
        )
    if source.labels.min() < 0 or source.labels.max() > 1:
        raise OlrError(f"dataset {source.name!r}: labels must be 0 or 1")
    if image_size <= 0:
        raise OlrError(f"image_size must be a positive number of pixels, got {image_size}")
    if num_workers < 0:
        raise OlrError(f"num_workers must be 0 (in-process) or more, got {num_workers}")


def _invalidate(cache_dir: Path) -> None:
    # Removing meta.json first marks the directory incomplete while it is being rewritten.
    (cache_dir / "meta.json").unlink(missing_ok=True)


def _subset(values: np.ndarray | None, keep: np.ndarray) -> np.ndarray | None:
    return None if values is None else np.asarray(values)[keep]


def _decode_into(
    path: Path, source: ImageSource, image_size: int, num_workers: int
) -> tuple[list[bool], list[dict]]:
    """Decode all images into a new ``.npy`` at ``path``, packing good images at the front.

    Returns:
        A keep flag per source image and ``{"file", "reason"}`` for each bad one.
    """
    count = len(source.ids)
    images = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.uint8, shape=(count, image_size, image_size, 3)
    )
    kept = [True] * count
    skipped: list[dict] = []
    write_position = 0
    progress = _Progress(count)
    for start, decoded, bad in _decoded_chunks(source, image_size, num_workers):
        images[write_position : write_position + len(decoded)] = decoded
        write_position += len(decoded)
        for offset, file, reason in bad:
            kept[start + offset] = False
            skipped.append({"file": file, "reason": reason})
        progress.update(start + len(decoded) + len(bad))
    images.flush()
    del images
    return kept, skipped


def _decoded_chunks(source: ImageSource, image_size: int, num_workers: int):
    """Yield ``(start, images, bad)`` per chunk, in source order."""
    paths = [str(path) for path in source.image_paths]
    tasks = [
        (start, paths[start : start + CHUNK_SIZE], image_size, source.crop)
        for start in range(0, len(paths), CHUNK_SIZE)
    ]
    if num_workers == 0:
        yield from map(_decode_chunk, tasks)
        return
    workers = min(num_workers, len(tasks))
    # spawn, not fork: forking a process that already runs torch threads can deadlock.
    # ProcessPoolExecutor raises BrokenProcessPool when a worker dies (for example when it
    # is killed for memory), where multiprocessing.Pool would wait forever.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        # At most two chunks per worker are in flight, so decoded chunks cannot pile up in
        # memory when writing is slower than decoding. Results are taken in task order,
        # which the packing of good images relies on.
        remaining = iter(tasks)
        pending = deque(pool.submit(_decode_chunk, task) for task in islice(remaining, 2 * workers))
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool as error:
                raise OlrError(
                    "an image decoding worker process died (killed for memory, or the main "
                    "script could not be imported in a spawned process); retry with fewer "
                    "workers or num_workers=0"
                ) from error
            for task in islice(remaining, 1):
                pending.append(pool.submit(_decode_chunk, task))
            yield result


def _decode_chunk(task: tuple[int, list[str], int, str]):
    """Decode one chunk into its start, (n_good, S, S, 3) images and ``(offset, file, reason)``."""
    start, paths, image_size, crop = task
    good, bad = [], []
    for offset, path in enumerate(paths):
        try:
            good.append(decode_image(Path(path), image_size, crop))
        except DataError as error:
            bad.append((offset, path, _reason(str(error), path)))
    shape = (len(good), image_size, image_size, 3)
    return start, np.stack(good) if good else np.zeros(shape, dtype=np.uint8), bad


def _reason(message: str, path: str) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class _Progress:
    """Log decoded count, rate and estimated time left every ``PROGRESS_INTERVAL_S`` seconds."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.last_log = self.started

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last_log < PROGRESS_INTERVAL_S and done < self.total:
            return
        self.last_log = now
        rate = done / max(now - self.started, 1e-9)
        remaining = (self.total - done) / rate if rate > 0 else float("inf")
        logger.info(
            "decoded %d/%d images (%.0f images/s, about %s left)",
            done,
            self.total,
            rate,
            _format_duration(remaining),
        )


def _format_duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "unknown time"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _finish_images(
    temporary: Path,
    cache_dir: Path,
    source: ImageSource,
    kept: list[bool],
    skipped: list[dict],
    on_bad_image: str,
) -> None:
    """Apply the bad-image policy, then move the image file to ``images.npy``."""
    problems = [f"{entry['file']}: {entry['reason']}" for entry in skipped]
    if problems and on_bad_image == "error":
        raise DataError(
            f"bad images in dataset {source.name!r}: {summarize_problems(problems)}\n"
            "fix or remove these files, or pass `--on-bad-image skip` to leave them out"
        )
    num_kept = sum(kept)
    if num_kept == 0:
        raise DataError(
            f"no readable image in dataset {source.name!r}: {summarize_problems(problems)}"
        )
    if problems:
        logger.warning("skipped %d bad image(s) of %d", len(problems), len(kept))
        _shrink_npy(temporary, num_kept)
    os.replace(temporary, cache_dir / "images.npy")


def _shrink_npy(path: Path, num_rows: int) -> None:
    """Cut a ``.npy`` file to its first ``num_rows`` rows in place, without copying the data.

    numpy pads ``.npy`` headers so that the first dimension can change without changing the
    header length, which lets the header be overwritten where it is.
    """
    with open(path, "r+b") as handle:
        version = np.lib.format.read_magic(handle)
        if version != (1, 0):
            raise OlrError(f"{path}: unexpected .npy format version {version}")
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
        data_offset = handle.tell()
        header = io.BytesIO()
        new_header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": fortran_order,
            "shape": (num_rows, *shape[1:]),
        }
        np.lib.format.write_array_header_1_0(header, new_header)
        assert len(header.getvalue()) == data_offset, "numpy header length changed"
        handle.seek(0)
        handle.write(header.getvalue())
        handle.truncate(data_offset + num_rows * int(np.prod(shape[1:])) * dtype.itemsize)


def write_cache(
    cache_dir: Path,
    images: np.ndarray,
    labels: np.ndarray,
    ids: list[str],
    label_names: list[str],
    source_name: str,
    groups: np.ndarray | None = None,
    truth: dict[str, np.ndarray] | None = None,
) -> ImageCache:
    """Write in-memory images and labels as a cache directory and open it.

    Args:
        cache_dir: output directory, created if needed; an existing cache there is replaced.
        images: (N, S, S, 3) uint8 RGB images.
        labels: (N, L) uint8 labels in {0, 1}.
        ids: N image ids.
        label_names: L label names.
        source_name: dataset name stored in ``meta.json``.
        groups: optional (N,) int64 group ids.
        truth: optional arrays saved to ``truth.npz`` (any shapes).

    Returns:
        The opened cache.

    Raises:
        OlrError: when the arrays disagree in shape or type.
    """
    _check_arrays(images, labels, ids, label_names, groups)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _invalidate(cache_dir)
    _save_array(cache_dir / "images.npy", images)
    _write_tables(cache_dir, labels, groups, None, truth)
    _write_meta(cache_dir, list(ids), list(label_names), images.shape[1], source_name, [], "none")
    return ImageCache.open(cache_dir)


def _check_arrays(images, labels, ids, label_names, groups) -> None:
    count = len(ids)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise OlrError(f"images must be (N, S, S, 3) uint8, got {images.shape} {images.dtype}")
    if images.shape[1] != images.shape[2] or images.shape[0] != count:
        raise OlrError(f"images must be ({count}, S, S, 3) for {count} ids, got {images.shape}")
    if labels.dtype != np.uint8 or labels.shape != (count, len(label_names)):
        raise OlrError(
            f"labels must be ({count}, {len(label_names)}) uint8, got {labels.shape} {labels.dtype}"
        )
    if labels.size and labels.max() > 1:
        raise OlrError(f"labels must be 0 or 1, found {labels.max()}")
    if groups is not None and np.shape(groups) != (count,):
        raise OlrError(f"groups must have shape ({count},), got {np.shape(groups)}")


def _write_tables(cache_dir, labels, groups, partition, truth) -> None:
    for name in OPTIONAL_FILES:
        (cache_dir / name).unlink(missing_ok=True)
    _save_array(cache_dir / "labels.npy", np.asarray(labels, dtype=np.uint8))
    if groups is not None:
        _save_array(cache_dir / "groups.npy", np.asarray(groups, dtype=np.int64))
    if partition is not None:
        _save_array(cache_dir / "partition.npy", np.asarray(partition, dtype=np.int8))
    if truth is not None:
        temporary = cache_dir / "truth.tmp.npz"
        np.savez(temporary, **truth)
        os.replace(temporary, cache_dir / "truth.npz")


def _save_array(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f"{path.stem}.tmp.npy")
    np.save(temporary, array)
    os.replace(temporary, path)


def _write_meta(cache_dir, ids, label_names, image_size, source_name, skipped, crop) -> None:
    meta = {
        "format_version": FORMAT_VERSION,
        "source": source_name,
        "image_size": int(image_size),
        "crop": crop,
        "num_images": len(ids),
        "label_names": list(label_names),
        "ids": list(ids),
        "skipped": skipped,
    }
    temporary = cache_dir / "meta.tmp.json"
    temporary.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(temporary, cache_dir / "meta.json")
