"""Decoding: every mode Pillow opens gives the right RGB pixels or a one-line refusal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from src.data.images import ImageLimits, check_decodable, decode_rgb
from src.utils.errors import UserError

H, W = 36, 40  # both sides above data.min_image_side's default
RAMP = np.linspace(0, 255, H * W).reshape(H, W).astype(np.uint8)
RGB = np.stack([RAMP, RAMP[::-1], (RAMP // 2 + 60).astype(np.uint8)], axis=-1)


def _saved(tmp_path, img: Image.Image, fmt: str) -> tuple:
    path = tmp_path / f"img.{fmt.lower()}"
    img.save(path, format=fmt)
    return path, Image.open(path)


EIGHT_BIT = [  # mode, format that stores it; reference: Pillow's own conversion of the file
    ("1", "PNG"),
    ("L", "PNG"),
    ("LA", "PNG"),
    ("P", "PNG"),
    ("RGB", "PNG"),
    ("RGBA", "PNG"),
    ("CMYK", "TIFF"),
    ("CMYK", "JPEG"),
    ("YCbCr", "TIFF"),
    ("LAB", "TIFF"),
    ("RGB", "JPEG"),
    ("L", "JPEG"),
]


@pytest.mark.parametrize(("mode", "fmt"), EIGHT_BIT)
def test_eight_bit_modes_decode_like_pillows_conversion(tmp_path, mode: str, fmt: str) -> None:
    source = Image.fromarray(RGB).convert(mode)
    path, stored = _saved(tmp_path, source, fmt)
    assert stored.mode == mode
    expected = np.asarray(stored.convert("RGB"))
    got = decode_rgb(path)
    assert got.dtype == np.uint8 and got.shape == (H, W, 3)
    np.testing.assert_array_equal(got, expected)
    check_decodable(path)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_grayscale_is_scaled_not_clipped_to_white(tmp_path, fmt: str) -> None:
    values = (RAMP.astype(np.uint16) * 257).astype(np.uint16)  # the 8-bit ramp at 16 bits
    values[0, 0], values[0, 1] = 0, 65535
    path, stored = _saved(tmp_path, Image.fromarray(values), fmt)
    assert stored.mode in ("I;16", "I;16B", "I;16L", "I")
    got = decode_rgb(path)
    expected = np.round(values / 257).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(got[..., channel], expected)
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) > 10


def test_float_images_are_refused_in_one_line(tmp_path) -> None:
    path, _ = _saved(tmp_path, Image.fromarray(RAMP.astype(np.float32) / 255), "TIFF")
    for read in (decode_rgb, check_decodable):
        with pytest.raises(UserError, match=r"floating-point pixels \(mode F\)") as err:
            read(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_thirty_two_bit_values_out_of_range_are_refused(tmp_path) -> None:
    values = RAMP.astype(np.int32) * 1000
    path, stored = _saved(tmp_path, Image.fromarray(values), "TIFF")
    assert stored.mode == "I"
    with pytest.raises(UserError, match=r"outside 0\.\.65535"):
        decode_rgb(path)


def test_a_fifo_is_refused_without_opening_it(tmp_path) -> None:
    import os

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    for read in (decode_rgb, check_decodable):
        with pytest.raises(UserError, match="is not a regular file"):
            read(fifo)


# ------------------------------------------------------------------ size limits (from the header)
def _png_claiming(tmp_path, width: int, height: int):
    """A small PNG whose header claims width x height: Pillow reports that size on open, and
    decoding it would fail (the pixel data is for the small image), so a refusal that names the
    size limit shows the size was read from the header, before any decoding."""
    import struct
    import zlib

    path, _ = _saved(tmp_path, Image.fromarray(RGB), "PNG")
    data = bytearray(path.read_bytes())
    start = 12  # signature (8), IHDR length (4); then b"IHDR", width, height, 5 more bytes
    assert data[start : start + 4] == b"IHDR"
    data[start + 4 : start + 12] = struct.pack(">II", width, height)
    ihdr = bytes(data[start : start + 17])
    data[start + 17 : start + 21] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))
    return path


def test_a_huge_image_is_refused_from_its_header_naming_the_key(tmp_path) -> None:
    path = _png_claiming(tmp_path, 13000, 13000)  # under Pillow's own bomb limit
    with Image.open(path) as img:
        assert img.size == (13000, 13000)
    for read in (decode_rgb, check_decodable):
        with pytest.raises(UserError, match=r"above data\.max_image_pixels=40,000,000") as err:
            read(path)
        message = str(err.value)
        assert str(path) in message and "13000x13000" in message and "\n" not in message
    # The limit is the caller's (data.max_image_pixels): a larger one lets the file through to
    # decoding, which then fails on the pixel data this header does not have.
    with pytest.raises(UserError, match=r"^cannot decode image"):
        decode_rgb(path, limits=ImageLimits(max_pixels=13000 * 13000))


def test_a_tiny_image_is_refused_not_upscaled(tmp_path) -> None:
    path = tmp_path / "one_pixel.jpg"
    Image.new("RGB", (1, 1), (200, 100, 50)).save(path)
    for read in (decode_rgb, check_decodable):
        expected = r"is 1x1, its shorter side below data\.min_image_side=32"
        with pytest.raises(UserError, match=expected):
            read(path)
    wide = tmp_path / "strip.png"
    Image.new("RGB", (400, 20)).save(wide)  # the shorter side counts
    with pytest.raises(UserError, match=r"is 400x20, its shorter side below"):
        decode_rgb(wide)
    assert decode_rgb(path, limits=ImageLimits(min_side=1)).shape == (1, 1, 3)
