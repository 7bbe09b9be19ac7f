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
    COLUMNS as COMPARISON_COLUMNS,
)
from src.reporting.comparisons import (
    METRICS,
    PairedStats,
    by_seed,
    paired_cells,
    paired_fields,
    paired_stats,
    paired_table_head,
)
from src.reporting.metadata_effects import METADATA_KEYS
from src.reporting.naming import OFF_RECIPE_KEY, describe

COMPARED_ELSEWHERE = ("fusion", "block", *METADATA_KEYS)
COLUMNS = ["setting", "a", "b", "configuration", *COMPARISON_COLUMNS[2:]]  # metric, test
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


def _reference_last(
    first: ConfigResult, second: ConfigResult, is_paper_row: Callable[[ConfigResult], bool]
) -> tuple[ConfigResult, ConfigResult]:
    """(a, b) with b the paper's row when exactly one side is one, else in the given order."""
    return (second, first) if is_paper_row(first) and not is_paper_row(second) else (first, second)


def ablations(
    results: Sequence[ConfigResult], is_paper_row: Callable[[ConfigResult], bool]
) -> list[Ablation]:
    """Each pair of configurations that differ in one setting, per headline metric."""
    found = []
    for first, second in combinations(results, 2):
        s1, s2 = settings_of(first.config), settings_of(second.config)
        key = _one_difference(s1, s2)
        if key is None or key in COMPARED_ELSEWHERE:
            continue
        a, b = _reference_last(first, second, is_paper_row)
        va, vb = settings_of(a.config).get(key, ABSENT), settings_of(b.config).get(key, ABSENT)
        for metric in METRICS:
            sa, sb = by_seed(a, metric), by_seed(b, metric)
            diffs = [sa[s] - sb[s] for s in sorted(set(sa) & set(sb))]
            found.append(Ablation(key, va, vb, a, b, metric, **paired_stats(diffs)))
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
