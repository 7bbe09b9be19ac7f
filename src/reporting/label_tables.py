"""Per-label tables: the paper's Table 8 (17-label AUC of the ST-based models, mean ± std over
seeds) and the best AMMFM run's Tables 2 (17-label AUC), 3 (per-task accuracy) and 4
(melanoma-related precision, sensitivity, specificity and AUC), each beside ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from src.reference import LabelScores
from src.reporting.aggregate import ConfigResult
from src.reporting.cells import (
    EMPTY,
    NOT_RUN,
    PCT,
    ReportTable,
    diff_text,
    difference,
    label_auc,
    notes_for,
    ours_text,
    rounded,
    stat_text,
)
from src.reporting.matching import PaperMatches
from src.reporting.naming import describe, setting
from src.reporting.runs import RunRecord

BEST_RUN_NOTE = (
    "The paper's Table 2 reports its best single AMMFM run; ours best run is the seed with the "
    "highest validation AVG AUC (validation selects, the test split only reports), so unlike a "
    "test-picked best run it is not biased upwards."
)


def _rows(scores: LabelScores) -> tuple[str, ...]:
    """The rows of a paper column: its labels (or tasks) in the paper's order, then AVG."""
    return (*scores.values, "AVG")


def _matched(matches: PaperMatches, scores: LabelScores) -> list[tuple[str, ConfigResult | None]]:
    """(column heading, configuration) for a paper column: one per setting found, or not run."""
    found = matches.results_for(scores.model)
    if len(found) <= 1:
        return [(scores.column, found[0] if found else None)]
    return [(f"{scores.column} [{setting(r.config)}]", r) for r in found]


def _identity(result: ConfigResult | None) -> dict[str, Any]:
    return {
        "configuration": describe(result.config) if result else None,
        "setting": setting(result.config) if result else None,
    }


def label_table(matches: PaperMatches) -> ReportTable:
    """Table 8: for each of its four models, ours and the paper's AUC per label, and Δ."""
    columns = [s for s in matches.paper.label_auc if s.table == 8]
    labels = _rows(columns[0])
    records: list[dict[str, Any]] = []
    shown: dict[str, dict[str, str]] = {label: {"Label": label} for label in labels}
    used: list[ConfigResult] = []
    for scores in columns:
        for head, result in _matched(matches, scores):
            used += [result] if result else []
            for label in labels:
                paper = scores.avg if label == "AVG" else scores.values[label]
                ours = label_auc(result, label)
                diff = difference(ours, paper)
                records.append(
                    {
                        "label": label,
                        "paper_column": scores.column,
                        **_identity(result),
                        "n": ours.n,
                        "auc_mean": rounded(ours.mean),
                        "auc_std": rounded(ours.std),
                        "paper_auc_mean": paper.mean,
                        "paper_auc_std": paper.std,
                        "auc_diff": rounded(diff),
                    }
                )
                shown[label][f"{head}: ours"] = ours_text(result, ours)
                shown[label][f"{head}: paper"] = stat_text(paper)
                shown[label][f"{head}: Δ"] = diff_text(diff)
    notes = [*notes_for(used), *(f"{s.column}: {s.note}" for s in columns if s.note)]
    return ReportTable(
        "table8",
        "Table 8: per-label AUC of the ST-based models",
        pd.DataFrame.from_records(records),
        pd.DataFrame.from_records(list(shown.values())),
        notes,
        caption=(
            "The paper's Table 8 and ours: test AUC (%) per label of the ST-based models, "
            "mean ± std over seeds (n); Δ = ours − paper."
        ),
    )


def _valid_auc(run: RunRecord) -> float | None:
    return ((run.metrics or {}).get("valid") or {}).get("avg_auc")


def best_run(result: ConfigResult | None) -> RunRecord | None:
    """The finished run with the highest VALIDATION AVG AUC: never picked on test numbers."""
    scored = [r for r in (result.runs if result else []) if _valid_auc(r) is not None]
    return max(scored, key=lambda r: _valid_auc(r), default=None)


Value = Callable[[dict[str, Any], str], float | None]


def _auc_value(metrics: dict[str, Any], label: str) -> float | None:
    return metrics["avg_auc"] if label == "AVG" else metrics["auc"].get(label)


def _acc_value(metrics: dict[str, Any], task: str) -> float | None:
    return metrics["avg_acc"] if task == "AVG" else metrics["acc"].get(task)


def _melanoma_value(metric: str) -> Value:
    def value(metrics: dict[str, Any], label: str) -> float | None:
        if label == "AVG":
            return metrics["melanoma_avg"].get(metric)
        return metrics["melanoma"][label].get(metric)

    return value


def _pct(run: RunRecord | None, value: Value, row: str) -> float | None:
    if run is None:
        return None
    try:
        number = value(run.metrics or {}, row)
    except (KeyError, TypeError, AttributeError):
        return None
    return None if number is None else number * PCT


def _best_run_table(
    matches: PaperMatches,
    scores: LabelScores,
    rows: tuple[str, ...],
    value: Value,
    name: str,
    title: str,
    caption: str,
) -> ReportTable:
    """A paper column of its best single run beside our best run (picked on validation) and
    our mean ± std over seeds, one row per label or task."""
    records: list[dict[str, Any]] = []
    shown: dict[str, dict[str, str]] = {row: {"Label": row} for row in rows}
    used: list[ConfigResult] = []
    for head, result in _matched(matches, scores):
        used += [result] if result else []
        tag = head.removeprefix(scores.column)
        best = best_run(result)
        best_head = f"ours best run{tag}" + ("" if best is None else f" (seed {best.seed})")
        for row in rows:
            paper = scores.avg if row == "AVG" else scores.values[row]
            ours_best = _pct(best, value, row)
            diff = None if ours_best is None else ours_best - paper.mean
            mean = (
                EMPTY if result is None else result.stat(lambda m, r=row: value(m, r)).scaled(PCT)
            )
            records.append(
                {
                    "label": row,
                    **_identity(result),
                    "best_seed": None if best is None else best.seed,
                    "best": rounded(ours_best),
                    "paper_best": paper.mean,
                    "best_diff": rounded(diff),
                    "n": mean.n,
                    "mean": rounded(mean.mean),
                    "std": rounded(mean.std),
                }
            )
            shown[row][best_head] = NOT_RUN if ours_best is None else f"{ours_best:.1f}"
            shown[row]["paper best run"] = stat_text(paper)
            shown[row][f"Δ best{tag}"] = diff_text(diff)
            shown[row][f"ours mean{tag}"] = ours_text(result, mean)
    return ReportTable(
        name,
        title,
        pd.DataFrame.from_records(records),
        pd.DataFrame.from_records(list(shown.values())),
        [BEST_RUN_NOTE, *notes_for(used)],
        caption=caption,
    )


def best_run_table(matches: PaperMatches) -> ReportTable:
    """Table 2's AMMFM row: the paper's best run per label beside our best run and our mean."""
    scores = next(s for s in matches.paper.label_auc if s.table == 2)
    return _best_run_table(
        matches,
        scores,
        _rows(scores),
        _auc_value,
        "table2",
        "Table 2: per-label AUC of the best AMMFM run",
        "The paper's Table 2 (AMMFM) and ours: test AUC (%) per label of the best single run "
        "(highest validation AVG AUC), and our mean ± std over seeds.",
    )


def task_accuracy_table(matches: PaperMatches) -> ReportTable:
    """Table 3: per-task accuracy of the best AMMFM run beside ours."""
    (scores,) = matches.paper.task_acc
    return _best_run_table(
        matches,
        scores,
        _rows(scores),
        _acc_value,
        "table3",
        "Table 3: per-task accuracy of the best AMMFM run",
        "The paper's Table 3 (AMMFM) and ours: test accuracy (%) per task of the best single run "
        "(highest validation AVG AUC), and our mean ± std over seeds.",
    )


def melanoma_tables(matches: PaperMatches) -> list[ReportTable]:
    """Table 4, one table per metric: AUC, precision, sensitivity and specificity of the
    melanoma-related labels (one-vs-rest on argmax predictions) of the best AMMFM run."""
    return [
        _best_run_table(
            matches,
            scores,
            _rows(scores),
            _melanoma_value(metric),
            f"table4_{metric}",
            f"Table 4: melanoma-related labels, {metric} of the best AMMFM run",
            f"The paper's Table 4 (AMMFM) and ours: test {metric} (%) of each melanoma-related "
            "label of the best single run (highest validation AVG AUC), and our mean ± std.",
        )
        for metric, scores in matches.paper.melanoma.items()
    ]
