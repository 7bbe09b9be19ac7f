"""One PNG panel per explained case: both images, each branch's Grad-CAM and, per block stage,
the attention mass and the refinement, each overlaid on its image (min-max scaled, so a nearly
uniform map shows its small differences) with the lesion box (when known) and its
mass_in_lesion / lesion_area_share (of the unscaled map).

Rows: the two images and the Grad-CAM maps; then one row per (kind, image) of block maps
(AAB: attention mass on the clinical image, refinement on the dermoscopy image; BAB adds the
other direction), one column per block stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from src.data.lesions import LesionBox
from src.evaluation.explanations import (
    IMAGES,
    ExplainedCase,
    ExplainedMap,
    lesion_numbers,
    upsample,
)
from src.utils.io import atomic_path

BRANCH_SYMBOLS = {"derm": "P_D", "clin": "P_C", "fusion": "P_FU"}  # the paper's Eq. 4
_CELL = 2.3  # inches per subplot
_ALPHA = 0.5  # opacity of a map over its image
_UNIFORM = 1e-4  # a map whose range is below this share of its largest value is uniform


def _box(ax: Axes, box: LesionBox | None, size: int) -> None:
    if box is None:
        return
    x0, y0 = box.x0 * size - 0.5, box.y0 * size - 0.5
    w, h = (box.x1 - box.x0) * size, (box.y1 - box.y0) * size
    ax.add_patch(Rectangle((x0, y0), w, h, fill=False, ec="white", ls="--", lw=1.2))


def _title(m: ExplainedMap) -> str:
    if m.kind == "gradcam":
        return f"Grad-CAM {BRANCH_SYMBOLS.get(m.branch or '', m.branch)} on {IMAGES[m.image]}"
    what = "attention mass" if m.kind == "attention" else "refinement"
    return f"stage {m.stage}: {what}"


def _overlay(ax: Axes, case: ExplainedCase, m: ExplainedMap) -> None:
    image = case.images[m.image]
    size = image.shape[0]
    values = upsample(m.values, size)
    low, span = float(values.min()), float(values.max() - values.min())
    # a map uniform to float precision is drawn uniform, not as its magnified rounding noise
    uniform = span <= _UNIFORM * float(np.abs(values).max())
    shown = np.zeros_like(values) if uniform else (values - low) / span
    heat = colormaps["jet"](shown)[..., :3] * 255.0
    blended = (1 - _ALPHA) * image.astype(np.float32) + _ALPHA * heat  # one image to draw
    ax.imshow(blended.astype(np.uint8), interpolation="nearest")
    _box(ax, case.boxes.get(m.image), size)
    numbers = lesion_numbers(m.values, case.boxes.get(m.image))
    note = ""
    if numbers["lesion_area_share"] is not None:
        mass = numbers["mass_in_lesion"]
        shown = "n/a" if mass is None else f"{mass:.2f}"
        note = f"\nin lesion {shown} / area {numbers['lesion_area_share']:.2f}"
    ax.set_title(_title(m) + note, fontsize=8)


def _picture(ax: Axes, case: ExplainedCase, stream: str) -> None:
    image = case.images[stream]
    ax.imshow(image, interpolation="nearest")
    _box(ax, case.boxes.get(stream), image.shape[0])
    ax.set_title(f"{IMAGES[stream]} image", fontsize=8)


def _suptitle(case: ExplainedCase) -> str:
    probs = "  ".join(f"{c} {p:.2f}" for c, p in zip(case.classes, case.probabilities))
    truth = f" (truth {case.truth})" if case.truth is not None else ""
    return f"case {case.id}: {case.task} predicted {case.predicted}{truth}\nP_FI  {probs}"


def save_panel(case: ExplainedCase, path: Path) -> Path:
    """Draw `case`'s panel and save it atomically as PNG at `path`."""
    gradcams = [m for m in case.maps if m.kind == "gradcam"]
    rows_of: dict[tuple[str, str], list[ExplainedMap]] = {}
    for m in case.maps:
        if m.kind != "gradcam":
            rows_of.setdefault((m.kind, m.image), []).append(m)
    first = [("image", s) for s in ("clin", "derm")] + [("map", m) for m in gradcams]
    cols = max([len(first), *(len(v) for v in rows_of.values())])
    rows = 1 + len(rows_of)
    height = _CELL * rows + 0.9
    fig = Figure(figsize=(_CELL * cols, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(  # fixed margins: one draw, unlike a constrained layout
        left=0.03,
        right=0.99,
        bottom=0.35 / height,
        top=1 - 0.75 / height,
        wspace=0.08,
        hspace=0.3,
    )
    grid = fig.add_gridspec(rows, cols)

    def cell(row: int, col: int) -> Axes:  # only the cells drawn get axes (they cost)
        ax = fig.add_subplot(grid[row, col], xticks=[], yticks=[], frame_on=False)
        ax.set_axis_off()
        return ax

    for col, (what, item) in enumerate(first):
        ax = cell(0, col)
        _picture(ax, case, item) if what == "image" else _overlay(ax, case, item)
    for r, ((kind, image), maps) in enumerate(rows_of.items(), start=1):
        for col, m in enumerate(sorted(maps, key=lambda m: m.stage or 0)):
            ax = cell(r, col)
            _overlay(ax, case, m)
            if col == 0:
                label = "attention mass on" if kind == "attention" else "refinement of"
                ax.text(
                    -0.08,
                    0.5,
                    f"{label} {IMAGES[image]}",
                    transform=ax.transAxes,
                    rotation=90,
                    va="center",
                    ha="right",
                    fontsize=8,
                )
    fig.suptitle(_suptitle(case), fontsize=10, y=1 - 0.08 / height, va="top")
    fig.supxlabel(
        "each map min-max scaled (blue low, red high); dashed: the lesion box; numbers: share "
        "of the map's mass in the box / share of the image the box covers",
        fontsize=7,
        y=0.08 / height,
        va="bottom",
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, pil_kwargs={"compress_level": 1})
    return path
