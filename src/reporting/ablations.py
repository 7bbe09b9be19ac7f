"""Ablations found among the runs: every two configurations that differ in exactly one setting
(`block.stages`, `model.lr`, the image size, ...), paired by seed with the paper comparisons'
test (`comparisons.paired_test`).

The settings the report's own sections compare are left to them: the fusion framework and the
block (the paper's comparisons) and patient metadata (`metadata_effects`). Side `b` is the
reference: the configuration that matches a paper row when exactly one does, else the one
grouped second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import pandas as pd

from src.reporting.aggregate import ConfigResult
from src.reporting.comparisons import (
    METRICS,
    PAIRED_COLUMNS,
    PairedStats,
    paired_by_seed,
    paired_cells,
    paired_fields,
    paired_table_head,
)
from src.reporting.metadata_effects import METADATA_KEYS
from src.reporting.naming import OFF_RECIPE_KEY, describe

COMPARED_ELSEWHERE = ("fusion", "block", *METADATA_KEYS)
COLUMNS = ["setting", "a", "b", "configuration", *PAIRED_COLUMNS]
ABSENT = "(recipe)"  # an off-recipe setting the other side leaves at the recipe's value


@dataclass(frozen=True)
class Ablation(PairedStats):
    setting: str
    a_value: str
    b_value: str
    a: ConfigResult
    b: ConfigResult
    metric: str


def settings_of(config: dict) -> dict[str, str]:
    """A configuration's settings as {name: value text}; each off-recipe override
    ("model.lr=0.001") is a setting of its own."""
    flat = {
        key: json.dumps(value, sort_keys=True, default=str)
        for key, value in config.items()
        if key != OFF_RECIPE_KEY
    }
    for override in config.get(OFF_RECIPE_KEY) or []:
        key, _, value = str(override).partition("=")
        flat[key] = value
    return flat


def _one_difference(a: dict[str, str], b: dict[str, str]) -> str | None:
    differing = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    return differing[0] if len(differing) == 1 else None


def ablations(
    results: Sequence[ConfigResult], is_paper_row: Callable[[ConfigResult], bool]
) -> list[Ablation]:
    """Each pair of configurations that differ in one setting, per headline metric."""
    described = [(r, settings_of(r.config)) for r in results]
    found = []
    for a, b in combinations(described, 2):
        key = _one_difference(a[1], b[1])
        if key is None or key in COMPARED_ELSEWHERE:
            continue
        if is_paper_row(a[0]) and not is_paper_row(b[0]):
            a, b = b, a
        values = a[1].get(key, ABSENT), b[1].get(key, ABSENT)
        for metric in METRICS:
            stats = paired_by_seed(a[0], b[0], metric)
            found.append(Ablation(key, *values, a[0], b[0], metric, **stats))
    return found


def ablations_frame(found: Sequence[Ablation]) -> pd.DataFrame:
    rows = [
        {
            "setting": f.setting,
            "a": f.a_value,
            "b": f.b_value,
            "configuration": describe(f.b.config),
            **paired_fields(f),
        }
        for f in found
    ]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def ablations_section(found: Sequence[Ablation]) -> str:
    """report.md's section; empty when no two configurations differ in one setting."""
    if not found:
        return ""
    lines = paired_table_head(
        "Settings that differ alone, paired by seed",
        "Every two configurations that differ in exactly one setting (framework, block and "
        "metadata comparisons have their own sections); a − b, with b the paper's row where "
        "one side is.",
        ("setting", "a", "b", "configuration (b)", "metric"),
    )
    for f in found:
        lines.append(
            f"| {f.setting} | {f.a_value} | {f.b_value} | {describe(f.b.config)} | {f.metric} | "
            f"{paired_cells(f)} |"
        )
    return "\n".join([*lines, ""])
