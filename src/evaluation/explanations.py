"""Explanation maps of one case, checked against the lesion where it is known.

A map is non-negative over the S x S model input of one image (Grad-CAM, a block's attention
mass, a block's refinement). Where the dataset records the lesion's box (src/data/lesions.py),
`mass_in_lesion` is the share of the map's mass inside the box and `lesion_area_share` the share
of the image the box covers: a map that points at the lesion has mass_in_lesion above the area
share (the pointing game), a map blind to it has them about equal.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from src.data.lesions import LesionBox

IMAGES = {"clin": "clinical", "derm": "dermoscopy"}


@dataclass
class ExplainedMap:
    """One map of one case: what it is, the image it lies on, its values [S, S] (>= 0)."""

    kind: str  # gradcam | attention | refinement
    image: str  # "clin" | "derm"
    values: np.ndarray
    branch: str | None = None  # gradcam: the branch explained (derm | clin | fusion)
    stage: int | None = None  # attention, refinement: the block stage

    @property
    def name(self) -> str:
        """Unique within a case, e.g. "gradcam/fusion/derm", "attention/stage2/clin"."""
        middle = self.branch if self.kind == "gradcam" else f"stage{self.stage}"
        return f"{self.kind}/{middle}/{self.image}"


@dataclass
class ExplainedCase:
    """One case with its prediction for one task and its maps."""

    id: str
    paths: dict[str, str]  # {"clin": file, "derm": file}
    task: str
    classes: list[str]
    probabilities: list[float]  # of `task`'s classes
    predicted: str
    truth: str | None
    boxes: dict[str, LesionBox | None]  # {"clin": .., "derm": ..}; None: not known
    images: dict[str, np.ndarray]  # {"clin": .., "derm": ..}: uint8 [D, D, 3] to draw on
    maps: list[ExplainedMap] = field(default_factory=list)


def upsample(values: np.ndarray, size: int) -> np.ndarray:
    """A [h, w] map bilinearly resized to [size, size] (float32)."""
    return cv2.resize(values.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)


def lesion_numbers(values: np.ndarray, box: LesionBox | None) -> dict[str, float | None]:
    """{"mass_in_lesion", "lesion_area_share"} of a map [S, S] (None without a box; mass None
    for a map without mass)."""
    if box is None:
        return {"mass_in_lesion": None, "lesion_area_share": None}
    mask = box.mask(*values.shape)
    total = float(values.sum())
    mass = float(values[mask].sum()) / total if total > 0 and math.isfinite(total) else None
    return {"mass_in_lesion": mass, "lesion_area_share": float(mask.mean())}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def case_record(case: ExplainedCase, panel: str | None) -> dict[str, Any]:
    """explain.json's entry of one case: what identifies it and each map's numbers."""
    maps = []
    for m in case.maps:
        numbers = lesion_numbers(m.values, case.boxes.get(m.image))
        maps.append(
            {
                "map": m.name,
                "kind": m.kind,
                "image": m.image,
                "branch": m.branch,
                "stage": m.stage,
                **{k: _rounded(v) for k, v in numbers.items()},
            }
        )
    return {
        "id": case.id,
        "clinic": case.paths["clin"],
        "derm": case.paths["derm"],
        "task": case.task,
        "truth": case.truth,
        "predicted": case.predicted,
        "probabilities": {c: round(p, 6) for c, p in zip(case.classes, case.probabilities)},
        "panel": panel,
        "maps": maps,
    }


POINTING_HIT_RATE = 0.75  # the pointing game's bar: see `points_at_lesion`
# A hit needs this much more of the map's mass in the lesion than its area share: a map that is
# uniform but for float rounding (a near-constant attention or refinement map) is no hit.
HIT_MARGIN = 1e-3


def summary(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per map name, over the cases that have the numbers: how many, the mean mass_in_lesion
    and lesion_area_share, and the hit rate (share of cases whose map puts more of its mass in
    the lesion than the lesion's area share)."""
    numbers: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for record in records:
        for m in record["maps"]:
            if m["mass_in_lesion"] is not None and m["lesion_area_share"] is not None:
                numbers[m["map"]].append((m["mass_in_lesion"], m["lesion_area_share"]))
    out = {}
    for name, pairs in sorted(numbers.items()):
        mass, area = np.array(pairs).T
        out[name] = {
            "cases": len(pairs),
            "mean_mass_in_lesion": round(float(mass.mean()), 6),
            "mean_lesion_area_share": round(float(area.mean()), 6),
            "hit_rate": round(float((mass > area + HIT_MARGIN).mean()), 6),
        }
    return out


def points_at_lesion(entry: dict[str, Any]) -> bool:
    """The pointing game over a set of cases (one `summary` entry): the map puts more of its
    mass in the lesion than the lesion's area share, on average and in at least
    POINTING_HIT_RATE of the cases. A map blind to the lesion scores about half."""
    return (
        entry["mean_mass_in_lesion"] > entry["mean_lesion_area_share"] + HIT_MARGIN
        and entry["hit_rate"] >= POINTING_HIT_RATE
    )
