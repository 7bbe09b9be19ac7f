"""A second synthetic dataset in the paired-CSV layout (`data=synthetic_lesions`), with another
task layout than derm7pt's: an 11-class diagnosis and two binary findings
(src/data/specs/synthetic_lesions.yaml), other split sizes, one `pairs.csv`, and each image's
lesion box in `lesions.csv` (src/data/lesions.py).

    python -m src.data.synthetic --layout paired --out DIR [--seed 0]

The lesions are drawn by the derm7pt stand-in's designer (design.py): the diagnosis picks the
body look and the pigment network, the findings add a blue-white veil and irregular vessels; the
other structures are drawn at random and carry no label. The dermoscopy view shows everything
sharply, the clinical view faintly, as in the derm7pt stand-in.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from src.data.lesions import LesionBox, write_lesion_boxes
from src.data.synthetic.design import design_lesion
from src.data.synthetic.folder import build_folder
from src.data.synthetic.release import pair_photos
from src.data.tasks import load_task_spec
from src.utils.progress import track

log = logging.getLogger(__name__)

SPEC_NAME = "synthetic_lesions"
SPLIT_SIZES = {"train": 300, "valid": 100, "test": 200}
# Relative frequency of the 11 diagnoses (uneven, as in real collections).
DX_WEIGHTS = (6, 9, 3, 4, 10, 14, 4, 7, 3, 2, 3)
FINDING_RATE = 0.3  # share of cases with each finding (more often with melanoma)
COLUMNS = ("case_id", "clinic", "derm", "split", "diagnosis", "blue_white_veil", "atypical_vessels")


def _derm7pt_labels(dx: int, veil: int, vessels: int, rng: np.random.Generator) -> tuple:
    """The derm7pt-style labels the designer draws: DIAG look and pigment network from the
    diagnosis (11 of the 15 combinations), the findings, random unlabelled structures."""
    diag, network = dx % 5, dx // 5
    streaks, pigment, dots = (int(rng.integers(0, 3)) for _ in range(3))
    regression = int(rng.integers(0, 2))
    return (diag, network, streaks, pigment, regression, dots, veil, 2 * vessels)


def _plan(seed: int, sizes: dict[str, int]) -> list[dict]:
    rng = np.random.default_rng([seed, 23])
    spec = load_task_spec(SPEC_NAME)
    dx_task, veil_task, vessel_task = spec.tasks
    weights = np.asarray(DX_WEIGHTS, dtype=float) / sum(DX_WEIGHTS)
    mel = dx_task.classes.index("MEL")
    rows = []
    for split, n in sizes.items():
        for _ in range(n):
            dx = int(rng.choice(len(weights), p=weights))
            rate = min(0.9, FINDING_RATE * (2.5 if dx == mel else 1.0))
            veil, vessels = int(rng.random() < rate), int(rng.random() < rate)
            i = len(rows)
            rows.append(
                {
                    "case_id": f"L{i:04d}",
                    "clinic": f"images/L{i:04d}_clinic.jpg",
                    "derm": f"images/L{i:04d}_derm.jpg",
                    "split": split,
                    "diagnosis": _raw(dx_task, dx),
                    "blue_white_veil": _raw(veil_task, veil),
                    "atypical_vessels": _raw(vessel_task, vessels),
                    "labels": (dx, veil, vessels),
                }
            )
    return rows


def _raw(task, cls: int) -> str:
    return next(raw for raw, name in task.raw_values.items() if name == task.classes[cls])


def _write(tmp: Path, seed: int, sizes: dict[str, int], long_side: tuple[int, int]) -> None:
    rows = _plan(seed, sizes)
    (tmp / "images").mkdir(parents=True)
    boxes: dict[str, LesionBox] = {}
    for i, row in enumerate(track(rows, len(rows), "synthetic dataset: image pairs", log)):
        rng = np.random.default_rng([seed, i, 5])
        lesion = design_lesion(_derm7pt_labels(*row["labels"], rng), "blue areas", rng)
        clin, derm = pair_photos(lesion, rng, long_side)
        assert clin is not None
        for column, photo in (("derm", derm), ("clinic", clin)):
            (tmp / row[column]).write_bytes(photo.data)
            boxes[row[column]] = photo.box
    write_lesion_boxes(tmp, boxes)
    with (tmp / "pairs.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    spec = Path(__file__).parents[1] / "specs" / f"{SPEC_NAME}.yaml"
    shutil.copyfile(spec, tmp / "tasks.yaml")  # the folder is self-contained


def generate_synthetic_pairs(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    long_side: tuple[int, int] = (300, 450),
) -> Path:
    """Write the dataset at `out_dir` (pairs.csv, tasks.yaml, images/), all at once
    (src/data/synthetic/folder.py), and return its path. `sizes`: cases per split (default
    SPLIT_SIZES)."""
    return build_folder(
        out_dir, lambda tmp: _write(tmp, seed, sizes or SPLIT_SIZES, long_side), "pairs.csv"
    )
