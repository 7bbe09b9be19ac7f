"""Drawing of synthetic skin lesions: a lesion is a list of layers of shapes in lesion units.

Lesion units put the lesion's centre at (0, 0) and its mean radius at 1, so one description can
be drawn at any pixel size and framing: sharply and large for the dermoscopy view, small, soft
and with faint structures for the clinical view of the same case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageDraw

from src.data.lesions import LesionBox, box_of_points

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Shape:
    """A filled polygon, a polyline or a set of round dots, in lesion units."""

    kind: str  # "poly" | "line" | "dots"
    points: np.ndarray  # (n, 2) lesion units
    width: float = 0.0  # line width or dot radius, in lesion units


@dataclass
class Layer:
    """Shapes of one colour composited with one opacity, softness and clipping rule."""

    colour: RGB
    shapes: list[Shape] = field(default_factory=list)
    alpha: float = 1.0
    blur: float = 0.0  # Gaussian blur radius in lesion units
    clip: bool = True  # keep inside the lesion outline
    structure: bool = True  # a dermoscopic structure: fades with the view's structure strength


@dataclass
class Lesion:
    """Everything needed to draw one case's lesion, independent of the view."""

    skin: RGB
    outline: np.ndarray  # (n, 2) closed polygon, lesion units
    body: RGB
    border_blur: float  # softness of the lesion border, lesion units
    layers: list[Layer]


@dataclass(frozen=True)
class View:
    """How a lesion is framed in one image."""

    width: int
    height: int
    centre: tuple[float, float]  # pixels
    radius: float  # pixels per lesion unit
    angle: float  # radians
    structure: float  # opacity multiplier for structure layers, 0..1
    blur: float  # whole-image blur radius, pixels
    light: tuple[float, float, float]  # per-channel gain (colour cast / exposure)


def _to_pixels(points: np.ndarray, view: View) -> list[tuple[float, float]]:
    # plain Python: the point sets are tiny and numpy's per-call overhead would dominate
    a, b = view.radius * math.cos(view.angle), view.radius * math.sin(view.angle)
    cx, cy = view.centre
    return [(x * a - y * b + cx, x * b + y * a + cy) for x, y in points.tolist()]


def outline_box(lesion: Lesion, view: View) -> LesionBox:
    """The box of the lesion's outline in `view`, as fractions of the view's width and height."""
    points = np.asarray(_to_pixels(lesion.outline, view))
    return box_of_points(points, view.width, view.height)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, view: View) -> None:
    pts = _to_pixels(shape.points, view)
    if shape.kind == "poly":
        draw.polygon(pts, fill=255)
    elif shape.kind == "line":
        draw.line(pts, fill=255, width=max(1, round(shape.width * view.radius)), joint="curve")
    elif shape.kind == "dots":
        r = max(0.7, shape.width * view.radius)
        for x, y in pts:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}")


def _blur(img: Image.Image, sigma_px: float) -> Image.Image:
    """Gaussian blur; large radii blur a downscaled copy (same look, a fraction of the cost)."""
    if sigma_px < 0.5:
        return img
    arr = np.asarray(img)
    h, w = arr.shape[:2]
    factor = max(1.0, sigma_px / 2.0)
    if factor > 1.5 and min(h, w) / factor >= 4:
        small = cv2.resize(
            arr, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA
        )
        small = cv2.GaussianBlur(small, (0, 0), sigma_px / factor)
        arr = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        arr = cv2.GaussianBlur(arr, (0, 0), sigma_px)
    return Image.fromarray(arr, img.mode)


def _skin(view: View, colour: RGB, rng: np.random.Generator) -> Image.Image:
    """Skin of one colour with smooth low-frequency shading."""
    h, w = view.height, view.width
    coarse = rng.normal(1.0, 0.035, size=(max(2, h // 24), max(2, w // 24), 1))
    small = (np.asarray(colour, dtype=np.float32) * coarse).clip(0, 255).astype(np.uint8)
    return Image.fromarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), "RGB")


def _mask(shapes: list[Shape], view: View) -> Image.Image:
    mask = Image.new("L", (view.width, view.height), 0)
    draw = ImageDraw.Draw(mask)
    for shape in shapes:
        _draw_shape(draw, shape, view)
    return mask


def _lut(img: Image.Image, gains: tuple[float, ...]) -> Image.Image:
    """Multiply each channel of a uint8 image by its gain (clipped)."""
    arr = np.asarray(img)
    out = arr * np.asarray(gains, dtype=np.float32) if arr.ndim == 3 else arr * np.float32(gains[0])
    return Image.fromarray((out + 0.5).clip(0, 255).astype(np.uint8), img.mode)


def _padded_box(mask: Image.Image, pad: int) -> tuple[int, int, int, int] | None:
    box = mask.getbbox()
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return (
        max(0, x0 - pad),
        max(0, y0 - pad),
        min(mask.width, x1 + pad),
        min(mask.height, y1 + pad),
    )


def render(lesion: Lesion, view: View, rng: np.random.Generator) -> Image.Image:
    """Draw `lesion` as seen in `view`; `rng` only varies the skin shading of this view."""
    img = _skin(view, lesion.skin, rng)
    outline = _mask([Shape("poly", lesion.outline)], view)
    img.paste(lesion.body, mask=_blur(outline, lesion.border_blur * view.radius))
    for layer in lesion.layers:
        k = layer.alpha * (view.structure if layer.structure else 1.0)
        if k <= 0.01:
            continue
        sigma = layer.blur * view.radius
        mask = _mask(layer.shapes, view)
        box = _padded_box(mask, int(3 * sigma) + 1)
        if box is None:
            continue
        alpha = _blur(mask.crop(box), sigma)
        if layer.clip:
            alpha = ImageChops.multiply(alpha, outline.crop(box))
        img.paste(layer.colour, box, mask=alpha if k >= 1.0 else _lut(alpha, (k,)))
    img = _blur(img, view.blur)
    return _lut(img, view.light)
