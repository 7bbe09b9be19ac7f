"""What the real derm7pt release_v0 holds: its meta.csv columns, split sizes and class totals
(as `python -m src.data.summary <release_v0>` prints them). The synthetic stand-in reproduces
them and the tests check it; the task spec itself is src/data/specs/derm7pt.yaml."""

from __future__ import annotations

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
