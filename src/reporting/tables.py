"""The report's tables of models: the paper's Tables 6, 7, 9 and 10 beside the published
numbers, an overview of every configuration found, and the list of failed runs; and the order
in which the report shows all tables (the per-label ones are in `label_tables`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from src.reference import PaperModel, PaperResults
from src.reporting.aggregate import ConfigResult
from src.reporting.cells import (
    INCOMPLETE_MARK,
    NOT_RUN,
    OTHER_SETTING_MARK,
    ReportTable,
    avg_acc,
    avg_auc,
    config_name,
    diff_text,
    difference,
    millions_text,
    notes_for,
    ours_text,
    paper_setting,
    params_m,
    rounded,
    stat_text,
)
from src.reporting.intervals import INTERVAL_NOTE, interval_text, one_seed_interval
from src.reporting.label_tables import (
    best_run_table,
    label_table,
    melanoma_tables,
    task_accuracy_table,
)
from src.reporting.matching import PaperMatches
from src.reporting.naming import describe, setting
from src.reporting.runs import RunRecord

PARAMS_NOTE = (
    "Params M: trainable parameters of the network; paper-acct. M: counted the paper's way "
    "(whole backbones incl. their unused ImageNet classifiers), comparable to paper M."
)
UNFINISHED_NOTE = "no metrics.json and no error.txt: killed, timed out or still running"


def model_table(table: int, matches: PaperMatches) -> ReportTable:
    """A paper table of models: AVG AUC, AVG ACC and parameters per paper row, ours beside it.

    A row lists every configuration with its architecture (one line per setting), or "not run".
    """
    records: list[dict[str, Any]] = []
    shown: list[dict[str, str]] = []
    compact: list[dict[str, str]] = []
    rows = [m for m in matches.paper.models if m.table == table]
    several = len({setting(r.config) for r in matches.in_table(table)}) > 1
    for row in rows:
        for result in matches.results_for(row.id) or [None]:
            records.append(_model_record(row, result))
            shown.append(_model_text(row, result))
            compact.append(_model_latex(row, result, several))
    return ReportTable(
        f"table{table}",
        f"Table {table}",
        pd.DataFrame.from_records(records),
        pd.DataFrame.from_records(shown),
        [*notes_for(matches.in_table(table)), PARAMS_NOTE],
        latex_display=pd.DataFrame.from_records(compact),
        bold_max=LATEX_BOLD,
        caption=(
            f"The paper's Table {table} and ours: test AVG AUC and AVG ACC (%), mean ± std over "
            "seeds (n), ours beside the published numbers; Δ = ours − paper; our best in bold."
        ),
    )


LATEX_BOLD = ("AUC", "ACC")  # our best among our rows; the paper's columns are references


def _model_latex(row: PaperModel, result: ConfigResult | None, several: bool) -> dict[str, str]:
    """A row of the LaTeX table: fewer, narrower columns than the Markdown one."""
    auc, acc = avg_auc(result), avg_acc(result)
    mark = "" if result is None or result.complete else f" {INCOMPLETE_MARK}"
    model = row.description
    if several and result is not None:
        model += f" [{setting(result.config)}]"
    if result is not None and setting(result.config) != paper_setting():
        model += f" {OTHER_SETTING_MARK}"
    return {
        "Model": model,
        "n": str(auc.n) if result else NOT_RUN,
        "AUC": stat_text(auc) + (mark if auc.n else ""),
        "paper AUC": stat_text(row.avg_auc),
        "Δ AUC": diff_text(difference(auc, row.avg_auc)),
        "ACC": stat_text(acc) + (mark if acc.n else ""),
        "paper ACC": stat_text(row.avg_acc),
        "Δ ACC": diff_text(difference(acc, row.avg_acc)),
        "paper-acct. M": millions_text(params_m(result, "paper_accounting")),
        "paper M": millions_text(row.params_m),
    }


def _model_record(row: PaperModel, result: ConfigResult | None) -> dict[str, Any]:
    auc, acc = avg_auc(result), avg_acc(result)
    acct = params_m(result, "paper_accounting")
    return {
        "paper_row": row.id,
        "paper_model": row.description,
        "configuration": describe(result.config) if result else None,
        "setting": setting(result.config) if result else None,
        "n": auc.n,
        "expected_n": result.expected_n if result else None,
        "status": result.status() if result else "not run",
        "avg_auc_mean": rounded(auc.mean),
        "avg_auc_std": rounded(auc.std),
        "paper_avg_auc_mean": row.avg_auc.mean if row.avg_auc else None,
        "paper_avg_auc_std": row.avg_auc.std if row.avg_auc else None,
        "avg_auc_diff": rounded(difference(auc, row.avg_auc)),
        "avg_acc_mean": rounded(acc.mean),
        "avg_acc_std": rounded(acc.std),
        "paper_avg_acc_mean": row.avg_acc.mean if row.avg_acc else None,
        "paper_avg_acc_std": row.avg_acc.std if row.avg_acc else None,
        "avg_acc_diff": rounded(difference(acc, row.avg_acc)),
        "params_m": rounded(params_m(result, "trainable"), 3),
        "paper_accounting_m": rounded(acct, 3),
        "paper_params_m": row.params_m,
        "paper_accounting_diff_m": rounded(
            None if acct is None or row.params_m is None else acct - row.params_m, 3
        ),
    }


def _model_text(row: PaperModel, result: ConfigResult | None) -> dict[str, str]:
    auc, acc = avg_auc(result), avg_acc(result)
    return {
        "Paper row": row.description,
        "Ours": config_name(result) if result else NOT_RUN,
        "Setting": setting(result.config) if result else "",
        "AVG AUC": ours_text(result, auc),
        "paper AUC": stat_text(row.avg_auc),
        "Δ AUC": diff_text(difference(auc, row.avg_auc)),
        "AVG ACC": ours_text(result, acc),
        "paper ACC": stat_text(row.avg_acc),
        "Δ ACC": diff_text(difference(acc, row.avg_acc)),
        "Params M": millions_text(params_m(result, "trainable")),
        "paper-acct. M": millions_text(params_m(result, "paper_accounting")),
        "paper M": millions_text(row.params_m),
        "Status": result.status() if result else "not run",
    }


def overview_table(results: Sequence[ConfigResult], matches: PaperMatches) -> ReportTable:
    """Every configuration found, whether or not the paper has it."""
    records, shown = [], []
    for result in sorted(results, key=lambda r: (setting(r.config), describe(r.config))):
        auc, acc = avg_auc(result), avg_acc(result)
        tables = sorted({row.table for row in matches.rows_of(result)})
        seeds = " ".join(map(str, result.seeds))
        records.append(
            {
                "configuration": describe(result.config),
                "setting": setting(result.config),
                "n": result.n,
                "expected_n": result.expected_n,
                "seeds": seeds,
                "avg_auc_mean": rounded(auc.mean),
                "avg_auc_std": rounded(auc.std),
                "avg_acc_mean": rounded(acc.mean),
                "avg_acc_std": rounded(acc.std),
                **_interval_columns(result),
                "params_m": rounded(params_m(result, "trainable"), 3),
                "paper_accounting_m": rounded(params_m(result, "paper_accounting"), 3),
                "paper_tables": " ".join(map(str, tables)),
                "status": result.status(),
                **{f"config.{k}": v for k, v in result.config.items()},
            }
        )
        shown.append(
            {
                "Configuration": config_name(result),
                "Setting": setting(result.config),
                "Seeds": seeds or NOT_RUN,
                "AVG AUC": ours_text(result, auc) + interval_text(result, "avg_auc"),
                "AVG ACC": ours_text(result, acc) + interval_text(result, "avg_acc"),
                "Params M": millions_text(params_m(result, "trainable")),
                "Paper tables": ", ".join(map(str, tables)),
                "Status": result.status(),
            }
        )
    return ReportTable(
        "configurations",
        "All configurations",
        pd.DataFrame.from_records(records),
        pd.DataFrame.from_records(shown),
        notes_for(results) + ([INTERVAL_NOTE] if any(r.n == 1 for r in results) else []),
        caption=(
            "Every configuration found: test AVG AUC and AVG ACC (%), mean ± std over seeds (n), "
            "trainable parameters (M) and status."
        ),
    )


def _interval_columns(result: ConfigResult) -> dict[str, float | None]:
    """avg_auc_ci_low ... avg_acc_ci_high (%) of a one-seed configuration (else empty)."""
    columns: dict[str, float | None] = {}
    for metric in ("avg_auc", "avg_acc"):
        bounds = one_seed_interval(result, metric)
        columns[f"{metric}_ci_low"] = rounded(bounds[0]) if bounds else None
        columns[f"{metric}_ci_high"] = rounded(bounds[1]) if bounds else None
    return columns


def failures_table(results: Sequence[ConfigResult], unnamed: Sequence[RunRecord]) -> ReportTable:
    """Every failed, unfinished or duplicate run, with its error line."""
    records = []
    for result in results:
        for kind, runs in (
            ("failed", result.failed),
            ("unfinished", result.unfinished),
            ("duplicate (ignored)", result.duplicates),
        ):
            records += [_failure(describe(result.config), kind, run) for run in runs]
    records += [_failure("(configuration unreadable)", run.status, run) for run in unnamed]
    frame = pd.DataFrame.from_records(
        records, columns=["configuration", "seed", "status", "error", "run"]
    )
    display = frame.astype(object).rename(columns=str.capitalize).fillna("")
    return ReportTable("failures", "Failed, unfinished and ignored runs", frame, display)


def _failure(name: str, kind: str, run: RunRecord) -> dict[str, Any]:
    error = run.error if run.error is not None or kind != "unfinished" else UNFINISHED_NOTE
    return {
        "configuration": name,
        "seed": run.seed,
        "status": kind,
        "error": error,
        "run": run.source,
    }


def build_tables(
    results: Sequence[ConfigResult], unnamed: Sequence[RunRecord], paper: PaperResults
) -> list[ReportTable]:
    """Overview, the paper's Tables 6, 7, 8, 9, 10, 2, 3, 5 and 4, and the failures, in report
    order."""
    matches = PaperMatches(results, paper)
    return [
        overview_table(results, matches),
        model_table(6, matches),
        model_table(7, matches),
        label_table(matches),
        model_table(9, matches),
        model_table(10, matches),
        best_run_table(matches),
        task_accuracy_table(matches),
        model_table(5, matches),
        *melanoma_tables(matches),
        failures_table(results, unnamed),
    ]
