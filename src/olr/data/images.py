"""Decode image files into square RGB uint8 arrays: read with Pillow, crop to a square, resize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from olr.errors import DataError, OlrError

CROPS = ("celeba_square", "none")

# LANCZOS is antialiased when downscaling, so thin details (glasses frames, hair) alias less
# than with BILINEAR.
RESAMPLE = Image.Resampling.LANCZOS


def crop_box(width: int, height: int, crop: str) -> tuple[int, int, int, int]:
    """Compute the square region to keep from a ``width`` x ``height`` image.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        crop: ``"celeba_square"`` keeps the vertically centred square whose side is the
            width (178 x 178 from CelebA's aligned 178 x 218 images, 89 x 89 from 89 x 109);
            ``"none"`` keeps the centred square whose side is the shorter dimension.

    Returns:
        The box ``(left, top, right, bottom)`` in pixels, as Pillow's ``Image.crop`` takes it.

    Raises:
        OlrError: for an unknown crop name.
        DataError: for ``"celeba_square"`` on an image wider than it is tall.
    """
    if crop == "celeba_square":
        if height < width:
            raise DataError(
                f"crop 'celeba_square' needs an image at least as tall as it is wide, got "
                f"{width}x{height}; use crop 'none' for this dataset"
            )
        top = (height - width) // 2
        return 0, top, width, top + width
    if crop == "none":
        side = min(width, height)
        left = (width - side) // 2
        top = (height - side) // 2
        return left, top, left + side, top + side
    raise OlrError(f"unknown crop {crop!r}; valid crops: {', '.join(CROPS)}")


def decode_image(path: Path, image_size: int, crop: str) -> np.ndarray:
    """Read an image file, convert it to RGB, crop it to a square and resize it.

    Args:
        path: the image file (any format Pillow reads).
        image_size: side S of the output in pixels.
        crop: ``"celeba_square"`` or ``"none"``, see :func:`crop_box`.

    Returns:
        (S, S, 3) uint8 array, rows x columns x RGB.

    Raises:
        DataError: when the file is missing, is not an image, or is truncated; the message
            starts with the file path.
        OlrError: when ``image_size`` is not positive or the crop is unknown.
    """
    if image_size <= 0:
        raise OlrError(f"image_size must be a positive number of pixels, got {image_size}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Pillow would then pad cut files with grey instead of failing, and the cache would
        # silently contain damaged images.
        raise OlrError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (some imported code set it); "
            "set it back to False so that truncated images are reported"
        )
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except UnidentifiedImageError as error:
        raise DataError(f"{path}: not an image file Pillow can read") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error})") from error
    try:
        box = crop_box(rgb.width, rgb.height, crop)
    except DataError as error:
        raise DataError(f"{path}: {error}") from error
    square = rgb.crop(box)
    if square.width != image_size:
        square = square.resize((image_size, image_size), RESAMPLE)
    return np.asarray(square, dtype=np.uint8)
