"""Reading JPEGs: full decode to RGB arrays, square resizing, and a fast decodability check."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from src.utils.errors import UserError

_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


def _unreadable(path: Path, err: Exception) -> UserError:
    return UserError(f"cannot decode image {path} ({err}); replace it with a good copy of the file")


def decode_rgb(path: Path, min_side: int | None = None) -> np.ndarray:
    """The image at `path` as an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    With `min_side`, a JPEG may be decoded at a reduced scale (1/2, 1/4, 1/8: libjpeg's DCT
    scaling, a proper low-pass) as long as both sides stay >= min_side: much cheaper when the
    image is about to be shrunk to min_side anyway.
    """
    try:
        with Image.open(path) as img:
            if min_side is not None:
                img.draft("RGB", (min_side, min_side))
            img = ImageOps.exif_transpose(img)
            return np.asarray(img.convert("RGB"))
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from None


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize straight to size x size (no crop, aspect ratio not kept), as the public pipelines."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    shrinking = img.shape[0] * img.shape[1] > size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interpolation)


def check_decodable(path: Path) -> None:
    """Raise UserError unless `path` decodes; JPEGs are decoded at 1/8 scale to keep this cheap."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from None
