"""The checkpoint-selection policies of each configuration across seeds (metrics.json
"selection", `src.runs.selection`): the test AVG AUC and AVG ACC of the SWA average, the last
epoch and the best validation epoch, mean ± std over seeds, and last vs SWA and best_valid vs
SWA paired by seed with the paper comparisons' test (`comparisons.paired_test`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from src.reporting.aggregate import ConfigResult, Stat
from src.reporting.cells import PCT, ReportTable, ours_text
from src.reporting.comparisons import (
    METRICS,
    TEST_NOTE,
    PairedStats,
    paired_cells,
    paired_fields,
    paired_stats,
)
from src.reporting.naming import describe, setting
from src.reporting.render import markdown_section, write_table
from src.utils.io import atomic_path

POLICIES = ("swa", "last", "best_valid")
BASELINE = "swa"  # the paper's policy, the runs' headline
POLICY_NAMES = {
    "swa": "SWA average (headline)",
    "last": "last epoch",
    "best_valid": "best validation epoch",
}
COMPARISON_COLUMNS = [
    "configuration",
    "setting",
    "a",
    "b",
    "metric",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_value",
    "n_pairs",
]


def policy_by_seed(result: ConfigResult, policy: str, metric: str) -> dict[int, float]:
    """{seed: the policy's test metric in percent} of the runs that evaluated it."""
    found = {}
    for run in result.runs:
        record = ((run.metrics or {}).get("selection") or {}).get(policy) or {}
        if run.seed is not None and record.get(metric) is not None:
            found[run.seed] = float(record[metric]) * PCT
    return found


def with_selection(results: Sequence[ConfigResult]) -> list[ConfigResult]:
    """The configurations with at least one run that evaluated the policies."""
    return [r for r in results if any((x.metrics or {}).get("selection") for x in r.runs)]


def best_epochs(result: ConfigResult) -> list[int]:
    """The best validation epoch (1-based, as the training log counts) of each seed."""
    epochs = []
    for run in sorted(result.runs, key=lambda r: r.seed if r.seed is not None else -1):
        record = ((run.metrics or {}).get("selection") or {}).get("best_valid") or {}
        if record.get("epoch") is not None:
            epochs.append(int(record["epoch"]) + 1)
    return epochs


def selection_table(results: Sequence[ConfigResult]) -> ReportTable:
    """One row per configuration and policy: test AVG AUC / AVG ACC mean ± std over seeds."""
    data, display = [], []
    for result in with_selection(results):
        for policy in POLICIES:
            stats = {m: Stat.of(policy_by_seed(result, policy, m).values()) for m in METRICS}
            if stats["avg_auc"].n == 0 and stats["avg_acc"].n == 0:
                continue
            epochs = best_epochs(result) if policy == "best_valid" else []
            keys = {
                "configuration": describe(result.config),
                "setting": setting(result.config),
                "policy": POLICY_NAMES[policy],
            }
            data.append(
                {
                    **keys,
                    **{f"{m}_mean": stats[m].mean for m in METRICS},
                    **{f"{m}_std": stats[m].std for m in METRICS},
                    "n": stats["avg_auc"].n,
                    "best_valid_epochs": ",".join(map(str, epochs)),
                }
            )
            display.append(
                {
                    **keys,
                    "AVG AUC": ours_text(result, stats["avg_auc"]),
                    "AVG ACC": ours_text(result, stats["avg_acc"]),
                    "epoch per seed": ", ".join(map(str, epochs)),
                }
            )
    return ReportTable(
        "selection",
        "Checkpoint-selection policies",
        pd.DataFrame.from_records(data),
        pd.DataFrame.from_records(display),
        notes=[
            "One training, three sets of weights: the SWA average (the paper's, every table's "
            "headline), the last epoch's weights before averaging, and the epoch with the best "
            "validation AVG AUC (of the equal-weight mean of the branches, as training logs it). "
            "Each has its own fusion weights searched on validation; values are % on the test "
            "split, mean ± sample std over seeds (n). Epochs count from 1.",
        ],
    )


@dataclass(frozen=True)
class PolicyComparison(PairedStats):
    """A policy against SWA in one configuration, paired by seed (percentage points)."""

    result: ConfigResult
    policy: str
    metric: str


def policy_comparisons(results: Sequence[ConfigResult]) -> list[PolicyComparison]:
    """last vs SWA and best_valid vs SWA, per configuration and headline metric."""
    found = []
    for result in with_selection(results):
        for policy in POLICIES:
            if policy == BASELINE:
                continue
            for metric in METRICS:
                a = policy_by_seed(result, policy, metric)
                b = policy_by_seed(result, BASELINE, metric)
                seeds = sorted(set(a) & set(b))
                if not seeds:
                    continue
                diffs = [a[s] - b[s] for s in seeds]
                found.append(PolicyComparison(result, policy, metric, **paired_stats(diffs)))
    return found


def comparisons_frame(found: Sequence[PolicyComparison]) -> pd.DataFrame:
    rows = [
        {
            "configuration": describe(c.result.config),
            "setting": setting(c.result.config),
            "a": c.policy,
            "b": BASELINE,
            **paired_fields(c),
        }
        for c in found
    ]
    return pd.DataFrame.from_records(rows, columns=COMPARISON_COLUMNS)


def comparisons_section(found: Sequence[PolicyComparison]) -> str:
    """report.md's part on the paired tests (empty without any)."""
    if not found:
        return ""
    lines = [
        "### Against the SWA average, paired by seed",
        "",
        "Each seed's policies come from one training, so they pair by seed; Δ = policy − SWA. "
        "The test of the paper's comparisons: " + TEST_NOTE,
        "",
        "| configuration | policy − SWA | metric | Δ (95% CI) | p | pairs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in found:
        lines.append(
            f"| {describe(c.result.config)} | {POLICY_NAMES[c.policy]} | {c.metric} "
            f"| {paired_cells(c)} |"
        )
    return "\n".join([*lines, ""])


def write_selection(results: Sequence[ConfigResult], out_dir: Path) -> str:
    """selection.{md,csv,tex} and selection_comparisons.csv in `out_dir`; returns report.md's
    section ("" and no files when no run evaluated the policies)."""
    table = selection_table(results)
    if table.data.empty:
        return ""
    write_table(table, out_dir)
    found = policy_comparisons(results)
    with atomic_path(out_dir / "selection_comparisons.csv") as tmp:
        comparisons_frame(found).to_csv(tmp, index=False)
    return "\n".join([markdown_section(table), comparisons_section(found)])
