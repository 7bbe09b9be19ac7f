"""A synthetic stand-in for the derm7pt release, in the real `release_v0` format.

    python -m src.data.synthetic --out DIR [--seed 0]

Writes meta/meta.csv (all 19 columns, real raw value strings), the three index files (413/203/395
cases) and images/<FOLDER>/<file> JPEG pairs of varied sizes. Labels follow the real class totals
exactly (DIAG also per split), deterministically from the seed; the images carry label-dependent
structure (design.py beside this file), sharp in dermoscopy, faint in the clinical view. The real
release's quirks are reproduced: one meta.csv path whose folder case differs from the folder on
disk, mixed .jpg/.JPG names, and 9 cases whose clinical image is their dermoscopy image.
Beside them, lesions.csv records each image's lesion box (src/data/lesions.py).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from src.data.cases import SPLITS
from src.data.derm7pt_facts import (
    META_COLUMNS,
    REAL_CLASS_TOTALS,
    REAL_DIAG_SPLIT_COUNTS,
    SPLIT_SIZES,
)
from src.data.lesions import LesionBox, write_lesion_boxes
from src.data.synthetic.design import clinical_view, dermoscopy_view, design_lesion, frame_size
from src.data.synthetic.folder import build_folder
from src.data.synthetic.render import Lesion, View, outline_box, render
from src.data.tasks import load_task_spec
from src.utils.progress import track

log = logging.getLogger(__name__)

N_CASES = sum(SPLIT_SIZES.values())  # 1011
N_DUPLICATE_PAIRS = 9
WORK_SIDE = 320  # lesions are drawn with this long side at most, then resized to the photo size
CASES_PER_FOLDER = 43
DUPLICATE_NOTE = "Clinical missing and replaced with derm"

# Sub-type weights inside the DIAG classes (roughly as in the real release).
_DIAG_RAW_WEIGHTS = {
    "clark nevus": 399,
    "reed or spitz nevus": 79,
    "dermal nevus": 33,
    "blue nevus": 28,
    "congenital nevus": 17,
    "combined nevus": 13,
    "recurrent nevus": 6,
    "melanoma (less than 0.76 mm)": 102,
    "melanoma (in situ)": 64,
    "melanoma (0.76 to 1.5 mm)": 53,
    "melanoma (more than 1.5 mm)": 28,
    "melanoma metastasis": 4,
    "melanoma": 1,
    "vascular lesion": 29,
    "lentigo": 24,
    "dermatofibroma": 20,
    "melanosis": 16,
    "miscellaneous": 8,
}
# Class order from "most worrying" to absent, used to tie the structures loosely to melanoma.
_WORRY_ORDER = {"PN": (2, 1, 0), "RS": (1, 0), "BWV": (1, 0)}  # others: IR, REG, ABS = (2, 1, 0)
_MELANOMA_TIE = 0.8  # strength of the melanoma/atypical-structure correlation
_CONTEXT = {
    "level_of_diagnostic_difficulty": (("low", "medium", "high"), (0.38, 0.37, 0.25)),
    "elevation": (("flat", "palpable", "nodular"), (0.44, 0.44, 0.12)),
    "location": (
        (
            "back",
            "lower limbs",
            "abdomen",
            "upper limbs",
            "chest",
            "head neck",
            "acral",
            "buttocks",
            "genital areas",
        ),
        (0.28, 0.2, 0.12, 0.12, 0.1, 0.09, 0.06, 0.02, 0.01),
    ),
    "sex": (("female", "male"), (0.52, 0.48)),
    "management": (
        ("excision", "clinical follow up", "no further examination"),
        (0.6, 0.29, 0.11),
    ),
}


@dataclass(frozen=True)
class SyntheticCase:
    row: int
    labels: tuple[int, ...]
    raw: dict[str, str]  # task column -> raw meta.csv value
    clinic: str  # path relative to images/ as written in meta.csv
    derm: str
    derm_on_disk: str  # differs from `derm` only for the folder-case quirk
    duplicate: bool


def _assign_splits(rng: np.random.Generator) -> dict[str, list[int]]:
    perm = rng.permutation(N_CASES)
    out, start = {}, 0
    for split in SPLITS:
        out[split] = sorted(int(i) for i in perm[start : start + SPLIT_SIZES[split]])
        start += SPLIT_SIZES[split]
    return out


def _assign_labels(rng: np.random.Generator, splits: dict[str, list[int]]) -> np.ndarray:
    """(N_CASES, 8) class indices with the real totals; structures lean towards melanoma."""
    tasks = load_task_spec("derm7pt").tasks  # the stand-in has the real release's 8 tasks
    labels = np.zeros((N_CASES, len(tasks)), dtype=np.int64)
    for split, rows in splits.items():
        diag = np.repeat(np.arange(5), REAL_DIAG_SPLIT_COUNTS[split])
        labels[rows, 0] = rng.permutation(diag)
    is_mel = labels[:, 0] == tasks[0].classes.index("MEL")
    for t, task in enumerate(tasks[1:], start=1):
        order = np.argsort(-(_MELANOMA_TIE * is_mel + rng.normal(size=N_CASES)), kind="stable")
        worry = _WORRY_ORDER.get(task.name, (2, 1, 0))
        column = np.concatenate(
            [np.full(REAL_CLASS_TOTALS[task.name][c], c) for c in worry]  # worrying first
        )
        labels[order, t] = column
    return labels


def _raw_value(rng: np.random.Generator, task_index: int, cls: int) -> str:
    task = load_task_spec("derm7pt").tasks[task_index]
    options = [raw for raw, abbrev in task.raw_values.items() if abbrev == task.classes[cls]]
    if task_index == 0:
        w = np.array([_DIAG_RAW_WEIGHTS.get(o, 1) for o in options], dtype=float)
        return str(rng.choice(options, p=w / w.sum()))
    return str(rng.choice(options))


def seven_point_score(labels: tuple[int, ...]) -> int:
    """The checklist score: 2 per major criterion (atypical network, veil, atypical vessels),
    1 per minor one (irregular streaks, pigmentation, dots/globules; regression structures)."""
    _, pn, st, pig, rs, dag, bwv, vs = labels
    major = (pn == 2) + (bwv == 1) + (vs == 2)
    minor = (st == 2) + (pig == 2) + (dag == 2) + (rs == 1)
    return int(2 * major + minor)


def _file_name(rng: np.random.Generator, folder: str, number: int) -> str:
    stem = f"{folder}{number:03d}"
    return f"{stem.upper()}.JPG" if rng.random() < 0.07 else f"{stem.capitalize()}.jpg"


def _folder_names(n: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"S{c}L" if i % 2 == 0 else f"S{c.lower()}l" for i, c in enumerate(letters[:n])]


def plan_cases(seed: int) -> tuple[list[SyntheticCase], dict[str, list[int]]]:
    """Labels, raw values and image paths of every case (no images)."""
    rng = np.random.default_rng([seed, 7])
    splits = _assign_splits(rng)
    labels = _assign_labels(rng, splits)
    duplicates = set(rng.choice(N_CASES, N_DUPLICATE_PAIRS, replace=False).tolist())
    folders = _folder_names(-(-N_CASES // CASES_PER_FOLDER))
    # The folder-case quirk: one dermoscopy path in an upper-case folder, spelt "SCl" not "SCL".
    quirk_row = next(r for r in range(2 * CASES_PER_FOLDER, N_CASES) if r not in duplicates)
    cases = []
    counters = dict.fromkeys(folders, 0)
    for row in range(N_CASES):
        folder = folders[row // CASES_PER_FOLDER]
        row_labels = tuple(int(v) for v in labels[row])
        tasks = load_task_spec("derm7pt").tasks
        raw = {t.column: _raw_value(rng, i, row_labels[i]) for i, t in enumerate(tasks)}
        if row in duplicates:
            counters[folder] += 1
            clinic = derm = f"{folder}/{_file_name(rng, folder, counters[folder])}"
        else:
            clinic = f"{folder}/{_file_name(rng, folder, counters[folder] + 1)}"
            derm = f"{folder}/{_file_name(rng, folder, counters[folder] + 2)}"
            counters[folder] += 2
        derm_on_disk = derm
        if row == quirk_row:
            derm = folder[0] + folder[1] + folder[2].lower() + derm[len(folder) :]
        cases.append(
            SyntheticCase(row, row_labels, raw, clinic, derm, derm_on_disk, row in duplicates)
        )
    return cases, splits


def _meta_row(case: SyntheticCase, rng: np.random.Generator) -> dict[str, str]:
    row = {col: "" for col in META_COLUMNS}
    row.update(case.raw)
    for col, (values, p) in _CONTEXT.items():
        row[col] = str(rng.choice(values, p=p))
    if case.labels[0] in (0, 2):  # BCC and melanoma are excised
        row["management"] = "excision"
    row.update(
        case_num=str(case.row + 1),
        seven_point_score=str(seven_point_score(case.labels)),
        clinic=case.clinic,
        derm=case.derm,
        notes=DUPLICATE_NOTE if case.duplicate else "",
    )
    return row


@dataclass(frozen=True)
class Photo:
    """One synthetic photo: JPEG bytes and where the lesion's outline lies in it."""

    data: bytes
    box: LesionBox


def photo(
    lesion: Lesion,
    make_view: Callable[[np.random.Generator, int, int], View],
    rng: np.random.Generator,
    long_side: tuple[int, int],
) -> Photo:
    """Draw `lesion` framed by `make_view` at a small working size, resize to the photo size,
    encode as JPEG."""
    w, h = frame_size(rng, long_side)
    scale = min(1.0, WORK_SIDE / max(w, h))
    view = make_view(rng, round(w * scale), round(h * scale))
    arr = np.asarray(render(lesion, view, rng))
    if scale < 1.0:
        arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return Photo(buf.getvalue(), outline_box(lesion, view))


def pair_photos(
    lesion: Lesion, rng: np.random.Generator, long_side: tuple[int, int], clinical: bool = True
) -> tuple[Photo | None, Photo]:
    """(clinical, dermoscopy) photos of one lesion; no clinical one if not asked."""
    derm = photo(lesion, dermoscopy_view, rng, long_side)
    if not clinical:
        return None, derm
    return photo(lesion, clinical_view, rng, long_side), derm


def case_images(
    case: SyntheticCase, seed: int, long_side: tuple[int, int]
) -> tuple[Photo | None, Photo]:
    """(clinical, dermoscopy) photos of one case; clinical is None for duplicate pairs."""
    rng = np.random.default_rng([seed, case.row, 1])
    lesion = design_lesion(case.labels, case.raw["regression_structures"], rng)
    return pair_photos(lesion, rng, long_side, clinical=not case.duplicate)


def _write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_release(tmp: Path, seed: int, long_side: tuple[int, int]) -> None:
    cases, splits = plan_cases(seed)
    meta_rng = np.random.default_rng([seed, 11])
    (tmp / "meta").mkdir(parents=True)
    _write_csv(
        tmp / "meta" / "meta.csv", list(META_COLUMNS), [_meta_row(c, meta_rng) for c in cases]
    )
    for split, rows in splits.items():
        _write_csv(
            tmp / "meta" / f"{split}_indexes.csv", ["indexes"], [{"indexes": str(r)} for r in rows]
        )
    images = tmp / "images"
    boxes: dict[str, LesionBox] = {}
    for case in track(cases, len(cases), "synthetic dataset: image pairs", log):
        clin, derm = case_images(case, seed, long_side)
        target = images / case.derm_on_disk
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(derm.data)
        boxes[f"images/{case.derm_on_disk}"] = derm.box
        if clin is not None:
            (images / case.clinic).write_bytes(clin.data)
            boxes[f"images/{case.clinic}"] = clin.box
    write_lesion_boxes(tmp, boxes)


def generate_synthetic_release(
    out_dir: str | os.PathLike[str], seed: int = 0, long_side: tuple[int, int] = (500, 800)
) -> Path:
    """Write a synthetic release_v0 folder at `out_dir` and return its path.

    The folder is written all at once (src/data/synthetic/folder.py). `long_side` is the range
    of the photos' long side in pixels (the real release: about 500 to 800).
    """
    return build_folder(out_dir, lambda tmp: _write_release(tmp, seed, long_side), "meta/meta.csv")
