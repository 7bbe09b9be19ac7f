"""Where the lesion is in each image of a dataset, when that is known: `lesions.csv` at the
dataset's root (the synthetic generators write it; real datasets have none).

One row per image file: its path relative to the dataset root and the bounding box of the
lesion's outline as fractions of the image's width and height (x0, y0, x1, y1). Fractions hold
for any resize of the whole image, so the box also locates the lesion in the S x S model input.
The file sits beside the dataset's own files, which stay exactly as their format defines them;
it is not one of the files a run reads, so it is not part of the data fingerprint.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.utils.errors import UserError
from src.utils.io import atomic_path

LESIONS_FILE = "lesions.csv"
COLUMNS = ("image", "x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class LesionBox:
    """A lesion's bounding box in fractions of its image's width (x) and height (y)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def mask(self, height: int, width: int) -> np.ndarray:
        """bool [height, width]: the pixels whose centres lie in the box, for the image
        resized (straight, as the loaders do) to height x width."""
        xs = (np.arange(width) + 0.5) / width
        ys = (np.arange(height) + 0.5) / height
        inside_x = (xs >= self.x0) & (xs <= self.x1)
        inside_y = (ys >= self.y0) & (ys <= self.y1)
        return inside_y[:, None] & inside_x[None, :]


def box_of_points(points: np.ndarray, width: int, height: int) -> LesionBox:
    """The box of pixel coordinates `points` [n, 2] (x, y) in a width x height image, clipped
    to the image."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return LesionBox(
        float(np.clip(x0 / width, 0, 1)),
        float(np.clip(y0 / height, 0, 1)),
        float(np.clip(x1 / width, 0, 1)),
        float(np.clip(y1 / height, 0, 1)),
    )


def write_lesion_boxes(root: Path, boxes: Mapping[str, LesionBox]) -> Path:
    """Write `root/lesions.csv` ({image path relative to root: box}), rows sorted by path."""
    path = root / LESIONS_FILE
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for image in sorted(boxes):
            b = boxes[image]
            writer.writerow([image, *(f"{v:.5f}" for v in (b.x0, b.y0, b.x1, b.y1))])
    return path


def _box(row: dict[str, str], where: str) -> LesionBox:
    try:
        values = [float(row[c]) for c in COLUMNS[1:]]
    except (KeyError, TypeError, ValueError):
        raise UserError(
            f"{where}: x0, y0, x1, y1 must be numbers (fractions of the image size), got "
            f"{[row.get(c) for c in COLUMNS[1:]]}"
        ) from None
    x0, y0, x1, y1 = values
    if not all(math.isfinite(v) and 0 <= v <= 1 for v in values) or x0 > x1 or y0 > y1:
        raise UserError(
            f"{where}: the box {values} must hold fractions in [0, 1] with x0 <= x1, y0 <= y1"
        )
    return LesionBox(x0, y0, x1, y1)


def read_lesion_boxes(root: str | Path) -> dict[Path, LesionBox]:
    """{resolved image path: box} from `root/lesions.csv`; empty when the dataset has none."""
    path = Path(root).expanduser() / LESIONS_FILE
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header, rows = list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path}: cannot read the lesion boxes ({err})") from None
    if header != list(COLUMNS):
        raise UserError(f"{path}: expected the columns {list(COLUMNS)}, got {header}")
    return {
        (path.parent / row["image"]).resolve(): _box(row, f"{path} line {number}")
        for number, row in enumerate(rows, start=2)
    }
