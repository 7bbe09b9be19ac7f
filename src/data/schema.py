"""The eight derm7pt classification tasks: names, classes and the raw meta.csv value mapping.

This module is the single source of truth for labels. Every other module (loader, synthetic
generator, metrics, report) asks it for task names, class abbreviations and label groups.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One classification task of the seven-point checklist dataset."""

    name: str  # abbreviation used in the paper's tables, e.g. "DIAG"
    column: str  # meta.csv column holding the raw value
    classes: tuple[str, ...]  # class abbreviations in the paper's order
    raw_values: dict[str, str]  # raw meta.csv string -> class abbreviation

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_index(self, raw_value: str) -> int:
        """Index of the class a raw meta.csv value maps to; KeyError if unknown."""
        return self.classes.index(self.raw_values[raw_value])


def _group(mapping: dict[str, list[str]]) -> dict[str, str]:
    return {raw: abbrev for abbrev, raws in mapping.items() for raw in raws}


TASKS: tuple[Task, ...] = (
    Task(
        "DIAG",
        "diagnosis",
        ("BCC", "NEV", "MEL", "MISC", "SK"),
        _group(
            {
                "BCC": ["basal cell carcinoma"],
                "NEV": [
                    "clark nevus",
                    "reed or spitz nevus",
                    "dermal nevus",
                    "blue nevus",
                    "congenital nevus",
                    "combined nevus",
                    "recurrent nevus",
                ],
                "MEL": [
                    "melanoma (less than 0.76 mm)",
                    "melanoma (in situ)",
                    "melanoma (0.76 to 1.5 mm)",
                    "melanoma (more than 1.5 mm)",
                    "melanoma metastasis",
                    "melanoma",
                ],
                "MISC": [
                    "vascular lesion",
                    "lentigo",
                    "dermatofibroma",
                    "melanosis",
                    "miscellaneous",
                ],
                "SK": ["seborrheic keratosis"],
            }
        ),
    ),
    Task(
        "PN",
        "pigment_network",
        ("ABS", "TYP", "ATP"),
        _group({"ABS": ["absent"], "TYP": ["typical"], "ATP": ["atypical"]}),
    ),
    Task(
        "STR",
        "streaks",
        ("ABS", "REG", "IR"),
        _group({"ABS": ["absent"], "REG": ["regular"], "IR": ["irregular"]}),
    ),
    Task(
        "PIG",
        "pigmentation",
        ("ABS", "REG", "IR"),
        _group(
            {
                "ABS": ["absent"],
                "REG": ["diffuse regular", "localized regular"],
                "IR": ["diffuse irregular", "localized irregular"],
            }
        ),
    ),
    Task(
        "RS",
        "regression_structures",
        ("ABS", "PRS"),
        _group({"ABS": ["absent"], "PRS": ["blue areas", "white areas", "combinations"]}),
    ),
    Task(
        "DaG",
        "dots_and_globules",
        ("ABS", "REG", "IR"),
        _group({"ABS": ["absent"], "REG": ["regular"], "IR": ["irregular"]}),
    ),
    Task(
        "BWV",
        "blue_whitish_veil",
        ("ABS", "PRS"),
        _group({"ABS": ["absent"], "PRS": ["present"]}),
    ),
    Task(
        "VS",
        "vascular_structures",
        ("ABS", "REG", "IR"),
        _group(
            {
                "ABS": ["absent"],
                "REG": ["arborizing", "comma", "hairpin", "within regression", "wreath"],
                "IR": ["dotted", "linear irregular"],
            }
        ),
    ),
)

TASK_NAMES: tuple[str, ...] = tuple(t.name for t in TASKS)
NUM_CLASSES: tuple[int, ...] = tuple(t.num_classes for t in TASKS)  # (5, 3, 3, 3, 2, 3, 2, 3)

# Every label as "TASK/CLASS", in task then class order (24 labels).
ALL_LABELS: tuple[str, ...] = tuple(f"{t.name}/{c}" for t in TASKS for c in t.classes)

# The 17 labels the paper averages AUC over (Table 2): every class except ABS.
AVG_AUC_LABELS: tuple[str, ...] = tuple(lbl for lbl in ALL_LABELS if not lbl.endswith("/ABS"))

# The melanoma-related labels of the paper's Table 4, one per task.
MELANOMA_LABELS: tuple[str, ...] = (
    "DIAG/MEL",
    "PN/ATP",
    "STR/IR",
    "PIG/IR",
    "RS/PRS",
    "DaG/IR",
    "BWV/PRS",
    "VS/IR",
)

# meta.csv columns of the real release, in order.
META_COLUMNS: tuple[str, ...] = (
    "case_num",
    "diagnosis",
    "seven_point_score",
    "pigment_network",
    "streaks",
    "pigmentation",
    "regression_structures",
    "dots_and_globules",
    "blue_whitish_veil",
    "vascular_structures",
    "level_of_diagnostic_difficulty",
    "elevation",
    "location",
    "sex",
    "management",
    "clinic",
    "derm",
    "case_id",
    "notes",
)

SPLITS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_SIZES: dict[str, int] = {"train": 413, "valid": 203, "test": 395}

# Class counts over all 1011 cases of the real release, in class order (as
# `python -m src.data.summary <release_v0>` prints them).
REAL_CLASS_TOTALS: dict[str, tuple[int, ...]] = {
    "DIAG": (42, 575, 252, 97, 45),
    "PN": (400, 381, 230),
    "STR": (653, 107, 251),
    "PIG": (588, 118, 305),
    "RS": (758, 253),
    "DaG": (229, 334, 448),
    "BWV": (816, 195),
    "VS": (823, 117, 71),
}

# DIAG class counts per official split of the real release, in class order (src.data.summary).
REAL_DIAG_SPLIT_COUNTS: dict[str, tuple[int, ...]] = {
    "train": (19, 256, 90, 32, 16),
    "valid": (7, 100, 61, 25, 10),
    "test": (16, 219, 101, 40, 19),
}


def task_by_name(name: str) -> Task:
    for task in TASKS:
        if task.name == name:
            return task
    raise KeyError(f"unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}")


def label_index(label: str) -> tuple[int, int]:
    """(task index, class index) of a "TASK/CLASS" label."""
    task_name, cls = label.split("/")
    for i, task in enumerate(TASKS):
        if task.name == task_name:
            return i, task.classes.index(cls)
    raise KeyError(f"unknown label {label!r}")
