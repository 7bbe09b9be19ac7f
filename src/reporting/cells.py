"""Cells of the report's tables: statistics in %, their text, the marks and the shared notes.

A table comes as numbers (`data`, for CSV) and as text (`display`, for Markdown and LaTeX).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from src.reference import Stat as PaperStat
from src.reporting.aggregate import ConfigResult, Stat
from src.reporting.naming import describe, setting

PCT = 100.0
INCOMPLETE_MARK = "*"
OTHER_SETTING_MARK = "‡"
NOT_RUN = "–"
EMPTY = Stat(None, None, 0)


@dataclass
class ReportTable:
    name: str  # file stem, e.g. "table6"
    title: str
    data: pd.DataFrame  # numbers, one column per quantity
    display: pd.DataFrame  # text cells
    notes: list[str] = field(default_factory=list)
    # LaTeX: a narrower table for a paper page (default: `display`), the columns whose highest
    # number is set in bold, and the caption's sentence after the title
    latex_display: pd.DataFrame | None = None
    bold_max: tuple[str, ...] = ()
    caption: str = ""


@lru_cache(maxsize=1)
def paper_recipe() -> dict[str, Any]:
    """The configuration summary of the paper's recipe: the project's default training config."""
    from src.project import compose_config
    from src.reporting.runs import summary_of

    return summary_of(compose_config([])) or {}


def paper_setting() -> str:
    return setting(paper_recipe()) if paper_recipe() else ""


# ---------------------------------------------------------------------------------- numbers
def avg_auc(result: ConfigResult | None) -> Stat:
    return EMPTY if result is None else result.stat(lambda m: m["avg_auc"]).scaled(PCT)


def avg_acc(result: ConfigResult | None) -> Stat:
    return EMPTY if result is None else result.stat(lambda m: m["avg_acc"]).scaled(PCT)


def label_auc(result: ConfigResult | None, label: str) -> Stat:
    """AUC of one "TASK/CLASS" label; label "AVG" is the AVG AUC."""
    if label == "AVG":
        return avg_auc(result)
    return EMPTY if result is None else result.stat(lambda m: m["auc"][label]).scaled(PCT)


def params_m(result: ConfigResult | None, key: str) -> float | None:
    """Mean over seeds of metrics["params"][key], in millions."""
    return None if result is None else result.stat(lambda m: m["params"][key]).scaled(1e-6).mean


def difference(ours: Stat, paper: PaperStat | None) -> float | None:
    return None if ours.mean is None or paper is None else ours.mean - paper.mean


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------------------------- text
def stat_text(stat: Stat | PaperStat | None) -> str:
    if stat is None or stat.mean is None:
        return NOT_RUN
    return f"{stat.mean:.1f}" if stat.std is None else f"{stat.mean:.1f} ± {stat.std:.1f}"


def diff_text(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}"


def millions_text(value: float | None) -> str:
    return NOT_RUN if value is None else f"{value:.2f}"


def ours_text(result: ConfigResult | None, stat: Stat) -> str:
    """A mean ± std cell of ours with its n, marked when the configuration is incomplete."""
    if result is None or stat.n == 0:
        return NOT_RUN
    mark = "" if result.complete else f" {INCOMPLETE_MARK}"
    return f"{stat_text(stat)} (n={stat.n}){mark}"


def config_name(result: ConfigResult) -> str:
    """The configuration's name, marked when it was not trained at the paper's recipe."""
    mark = "" if setting(result.config) == paper_setting() else f" {OTHER_SETTING_MARK}"
    return f"{describe(result.config)}{mark}"


def notes_for(results: Sequence[ConfigResult]) -> list[str]:
    notes = [
        "Values are % on the test split, mean ± sample std (ddof=1) over seeds; "
        "n = number of finished seeds. Δ = ours − paper (percentage points).",
        f"{INCOMPLETE_MARK} incomplete: fewer seeds than asked, or failed/unfinished runs "
        "(see Status and Failures); the mean is over the finished seeds only.",
    ]
    if any(setting(r.config) != paper_setting() for r in results):
        notes.append(
            f"{OTHER_SETTING_MARK} trained at a setting other than the paper's recipe "
            f"({paper_setting()}); its Δ is not a reproduction result."
        )
    return notes
