"""Tests for image decoding (crops, bad files) and the decoded image cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from olr.data import cache as cache_module
from olr.data.cache import ImageCache, prepare_cache, write_cache
from olr.data.images import crop_box, decode_image
from olr.data.source import ImageSource
from olr.errors import DataError

RED, BLUE = (230, 20, 20), (20, 40, 220)


def banded_image(width: int, height: int, band: int) -> Image.Image:
    """A blue image whose top and bottom ``band`` rows are red."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:] = BLUE
    pixels[:band] = RED
    pixels[height - band :] = RED
    return Image.fromarray(pixels)


def test_crop_box_celeba_square():
    assert crop_box(178, 218, "celeba_square") == (0, 20, 178, 198)
    assert crop_box(89, 109, "celeba_square") == (0, 10, 89, 99)
    assert crop_box(120, 80, "none") == (20, 0, 100, 80)


def test_celeba_square_removes_bands_exactly(tmp_path):
    path = tmp_path / "face.png"
    banded_image(178, 218, 20).save(path)
    pixels = decode_image(path, 178, "celeba_square")
    assert pixels.shape == (178, 178, 3)
    assert pixels.dtype == np.uint8
    assert np.all(pixels == BLUE)


@pytest.mark.parametrize("size", [89, 64, 32])
def test_celeba_square_jpeg_half_size(tmp_path, size):
    path = tmp_path / "face.jpg"
    banded_image(89, 109, 10).save(path, quality=95)
    pixels = decode_image(path, size, "celeba_square").astype(int)
    assert pixels.shape == (size, size, 3)
    # JPEG blurs the band edge by a few pixels, so only the rows away from it are checked.
    inner = pixels[3:-3]
    assert inner[..., 0].max() < 90
    assert inner[..., 2].min() > 160


def test_crop_none_centres_square(tmp_path):
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :10] = RED
    pixels[:, 50:] = RED
    pixels[:, 10:50] = BLUE
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    assert np.all(decode_image(path, 40, "none") == BLUE)


def test_celeba_square_rejects_landscape(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (60, 40)).save(path)
    with pytest.raises(DataError, match=f"{path}: crop 'celeba_square'"):
        decode_image(path, 32, "celeba_square")


def test_grayscale_converts_to_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (16, 16), 128).save(path)
    pixels = decode_image(path, 8, "none")
    assert pixels.shape == (8, 8, 3)
    assert np.all(pixels == 128)


def write_truncated_jpeg(path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, "JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_jpeg_raises(tmp_path):
    path = tmp_path / "cut.jpg"
    write_truncated_jpeg(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(DataError, match=f"{path}: unreadable or truncated"):
        decode_image(path, 32, "none")


def test_non_image_and_missing_raise(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(DataError, match=f"{text}: not an image"):
        decode_image(text, 32, "none")
    with pytest.raises(DataError, match="file not found"):
        decode_image(tmp_path / "absent.jpg", 32, "none")


def make_source(tmp_path: Path, bad: bool) -> ImageSource:
    """Six images; with ``bad``, images 1, 3 and 4 are missing, truncated and not an image."""
    images_dir = tmp_path / "images"
    images_dir.mkdir(parents=True)
    ids = [f"{index:02d}.jpg" for index in range(6)]
    for index, image_id in enumerate(ids):
        Image.new("RGB", (30, 36), (40 * index, 100, 255 - 40 * index)).save(images_dir / image_id)
    if bad:
        (images_dir / ids[1]).unlink()
        write_truncated_jpeg(images_dir / ids[3])
        (images_dir / ids[4]).write_text("hello")
    labels = np.array([[i % 2, (i // 2) % 2, i == 5] for i in range(6)], dtype=np.uint8)
    return ImageSource(
        image_paths=[images_dir / image_id for image_id in ids],
        ids=ids,
        label_names=["odd", "pair", "last"],
        labels=labels,
        groups=np.arange(6, dtype=np.int64) // 2,
        crop="celeba_square",
        partition=np.array([0, 0, 1, 1, 2, 2], dtype=np.int8),
        name="tiny",
    )


def test_prepare_cache_round_trip(tmp_path):
    source = make_source(tmp_path, bad=False)
    cache = prepare_cache(source, tmp_path / "cache", 16, num_workers=0)
    assert cache.images.shape == (6, 16, 16, 3)
    assert cache.images.dtype == np.uint8
    assert isinstance(cache.images, np.memmap)
    assert cache.ids == source.ids
    assert np.array_equal(cache.labels, source.labels)
    assert np.array_equal(cache.groups, source.groups)
    assert np.array_equal(cache.partition, source.partition)
    assert cache.truth is None
    for index, path in enumerate(source.image_paths):
        assert np.array_equal(cache.images[index], decode_image(path, 16, "celeba_square"))
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["format_version"] == 1
    assert meta["source"] == "tiny"
    assert meta["skipped"] == []
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "groups.npy", "images.npy", "labels.npy", "meta.json", "partition.npy",
    ]  # fmt: skip


def test_prepare_cache_bad_images_raise(tmp_path):
    source = make_source(tmp_path, bad=True)
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataError) as error:
        prepare_cache(source, cache_dir, 16, on_bad_image="error", num_workers=0)
    message = str(error.value)
    for index in (1, 3, 4):
        assert str(source.image_paths[index]) in message
    assert str(source.image_paths[0]) not in message
    assert "3 problem(s)" in message
    assert "--on-bad-image skip" in message
    assert not (cache_dir / "images.npy").exists()
    assert not (cache_dir / "images.tmp.npy").exists()
    assert not ImageCache.exists(cache_dir)


def test_prepare_cache_skip_keeps_alignment(tmp_path):
    source = make_source(tmp_path, bad=True)
    cache = prepare_cache(source, tmp_path / "cache", 16, on_bad_image="skip", num_workers=0)
    kept = [0, 2, 5]
    assert cache.ids == [source.ids[index] for index in kept]
    assert cache.images.shape == (3, 16, 16, 3)
    for row, index in enumerate(kept):
        assert np.array_equal(cache.labels[row], source.labels[index])
        assert cache.groups[row] == source.groups[index]
        assert cache.partition[row] == source.partition[index]
        assert np.array_equal(
            cache.images[row], decode_image(source.image_paths[index], 16, "celeba_square")
        )
    skipped = cache.meta["skipped"]
    assert [entry["file"] for entry in skipped] == [str(source.image_paths[i]) for i in (1, 3, 4)]
    assert "not found" in skipped[0]["reason"]
    assert "truncated" in skipped[1]["reason"]
    assert "not an image" in skipped[2]["reason"]


def test_prepare_cache_worker_pool_matches(tmp_path, monkeypatch):
    source = make_source(tmp_path, bad=True)
    monkeypatch.setattr(cache_module, "CHUNK_SIZE", 2)
    serial = prepare_cache(source, tmp_path / "serial", 12, on_bad_image="skip", num_workers=0)
    pooled = prepare_cache(source, tmp_path / "pooled", 12, on_bad_image="skip", num_workers=2)
    assert pooled.ids == serial.ids
    assert np.array_equal(pooled.images, serial.images)
    assert np.array_equal(pooled.labels, serial.labels)
    assert pooled.meta["skipped"] == serial.meta["skipped"]


def test_failed_prepare_invalidates_old_cache(tmp_path):
    cache_dir = tmp_path / "cache"
    prepare_cache(make_source(tmp_path / "good", bad=False), cache_dir, 8, num_workers=0)
    assert ImageCache.exists(cache_dir)
    with pytest.raises(DataError):
        prepare_cache(make_source(tmp_path / "bad", bad=True), cache_dir, 8, num_workers=0)
    assert not ImageCache.exists(cache_dir)


def test_write_cache_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, (5, 2), dtype=np.uint8)
    truth = {"intensities": rng.random((5, 2), dtype=np.float32), "matrix": np.eye(2)}
    ids = [f"s{i}" for i in range(5)]
    groups = np.array([0, 0, 1, 1, 2])
    written = write_cache(tmp_path, images, labels, ids, ["a", "b"], "unit", groups, truth)
    cache = ImageCache.open(tmp_path)
    assert len(cache) == len(written) == 5
    assert np.array_equal(cache.images, images)
    assert not cache.images.flags.writeable
    assert np.array_equal(cache.labels, labels)
    assert cache.ids == ids
    assert cache.label_names == ["a", "b"]
    assert cache.image_size == 8
    assert cache.groups.dtype == np.int64
    assert np.array_equal(cache.groups, groups)
    assert cache.partition is None
    assert sorted(cache.truth) == ["intensities", "matrix"]
    assert np.array_equal(cache.truth["intensities"], truth["intensities"])
    assert cache.root == tmp_path


def test_rewrite_drops_stale_truth(tmp_path):
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    labels = np.zeros((2, 1), dtype=np.uint8)
    write_cache(tmp_path, images, labels, ["a", "b"], ["x"], "unit", truth={"t": np.ones(2)})
    cache = write_cache(tmp_path, images, labels, ["a", "b"], ["x"], "unit")
    assert cache.truth is None


def test_open_missing_dir_raises(tmp_path):
    with pytest.raises(DataError) as error:
        ImageCache.open(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(error.value)
    assert "olr prepare" in str(error.value)
    assert not ImageCache.exists(tmp_path / "absent")


def test_open_incomplete_dir_raises(tmp_path):
    np.save(tmp_path / "images.npy", np.zeros((1, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="incomplete"):
        ImageCache.open(tmp_path)


def test_open_shape_mismatch_raises(tmp_path):
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    write_cache(tmp_path, images, np.zeros((2, 1), np.uint8), ["a", "b"], ["x"], "unit")
    np.save(tmp_path / "labels.npy", np.zeros((3, 1), dtype=np.uint8))
    with pytest.raises(DataError, match="labels.npy has shape"):
        ImageCache.open(tmp_path)
