"""Reading JPEGs: full decode to RGB arrays, square resizing, and a fast decodability check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from src.config import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from src.utils.errors import UserError

# How an image becomes a network input, in words, exactly as `decode_rgb`, `resize_square` and
# the evaluation transform do it (the ONNX export's sidecar repeats it for its users).
PREPROCESSING = (
    "decode with Pillow (a JPEG at the smallest libjpeg DCT scale, 1/2, 1/4 or 1/8, that keeps "
    "both sides >= image_size); apply the EXIF orientation tag (PIL.ImageOps.exif_transpose); "
    "convert to 8-bit RGB; resize straight to image_size x image_size (no crop, aspect ratio "
    "not kept) with OpenCV cv2.resize, INTER_AREA when the image has more pixels than "
    "image_size x image_size, else INTER_LINEAR; then (pixel/255 - mean) / std per channel"
)


@dataclass(frozen=True)
class ImageLimits:
    """Sizes an image may have, checked from its header before it is decoded."""

    max_pixels: int = MAX_IMAGE_PIXELS  # data.max_image_pixels
    min_side: int = MIN_IMAGE_SIDE  # data.min_image_side

    def check(self, size: tuple[int, int], path: Path) -> None:
        """UserError naming `path` and the key to change if `size` (width, height) is outside."""
        width, height = size
        if width * height > self.max_pixels:
            gib = width * height * 3 / 2**30
            raise UserError(
                f"image {path} is {width}x{height} ({width * height:,} pixels, about {gib:.1f} "
                f"GiB decoded), above data.max_image_pixels={self.max_pixels:,}; shrink the "
                "file, or raise data.max_image_pixels if the memory allows"
            )
        if min(width, height) < self.min_side:
            raise UserError(
                f"image {path} is {width}x{height}, its shorter side below "
                f"data.min_image_side={self.min_side}; replace it with the full-size image, or "
                "lower data.min_image_side if such small images are meant"
            )


DEFAULT_LIMITS = ImageLimits()

_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


def _unreadable(path: Path, err: Exception) -> UserError:
    return UserError(f"cannot decode image {path} ({err}); replace it with a good copy of the file")


def _regular_file(path: Path) -> Path:
    """`path`, if it is a regular file (a FIFO or device would block or never end)."""
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a regular file"
        raise UserError(f"image {path} {what}; point meta.csv at a regular image file")
    return path


def to_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded image of any mode Pillow opens.

    16-bit grayscale ("I;16*", and "I" with values in 0..65535, how 16-bit PNGs and TIFFs
    open) is scaled to 8 bits: Pillow's own conversion clips it, turning it white. Float images
    have no defined range and are refused.
    """
    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise UserError(
                f"image {path} is 32-bit ({img.mode}) with values outside 0..65535; "
                "save it as 8-bit RGB"
            )
        gray = ((arr * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        raise UserError(
            f"image {path} has floating-point pixels (mode F) without a defined range; "
            "save it as 8-bit RGB"
        )
    return np.asarray(img.convert("RGB"))


def decode_rgb(
    path: Path, min_side: int | None = None, limits: ImageLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """The image at `path` as an (H, W, 3) uint8 RGB array, EXIF orientation applied; an image
    outside `limits` is refused from its header, before any pixel is decoded.

    With `min_side`, a JPEG may be decoded at a reduced scale (1/2, 1/4, 1/8: libjpeg's DCT
    scaling, a proper low-pass) as long as both sides stay >= min_side: much cheaper when the
    image is about to be shrunk to min_side anyway.
    """
    try:
        with Image.open(_regular_file(path)) as img:
            limits.check(img.size, path)  # Pillow has read the header only
            if min_side is not None:
                img.draft("RGB", (min_side, min_side))
            return to_rgb(ImageOps.exif_transpose(img), path)
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from None


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize straight to size x size (no crop, aspect ratio not kept), as the public pipelines."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    shrinking = img.shape[0] * img.shape[1] > size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interpolation)


def check_decodable(path: Path, limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """Raise UserError unless `path` decodes within `limits`; JPEGs are decoded at 1/8 scale to
    keep this cheap."""
    try:
        with Image.open(_regular_file(path)) as img:
            limits.check(img.size, path)
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
            if img.mode == "F":
                to_rgb(img, path)  # refused with its one-line reason
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from None
