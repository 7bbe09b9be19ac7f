"""The report's tables: the paper's Tables 6, 7, 8, 9, 10 and Table 2's label row, side by side
with the published numbers, plus an overview of every configuration and a list of failures.

Each table comes as numbers (`data`, for CSV: fractions turned into %, one column per quantity)
and as text (`display`, for Markdown and LaTeX: "mean ± std", differences, status marks).
Runs are matched to paper rows by architecture (framework, block, backbones); the setting they
were trained at (data, image size, epochs, weights) is shown beside them, and a difference to
the paper is only a reproduction result for runs at the paper's recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from src.data.schema import AVG_AUC_LABELS
from src.reference import LabelScores, PaperModel, PaperResults
from src.reference import Stat as PaperStat
from src.reporting.aggregate import ConfigResult, Stat, config_key
from src.reporting.naming import describe, setting
from src.reporting.runs import RunRecord

PCT = 100.0
MODEL_TABLES = (6, 7, 9, 10)
INCOMPLETE_MARK = "*"
OTHER_SETTING_MARK = "‡"
NOT_RUN = "–"


@dataclass
class ReportTable:
    name: str  # file stem, e.g. "table6"
    title: str
    data: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def paper_setting() -> str:
    """The setting of the paper's recipe: the project's default training config."""
    from src.params import compose_config
    from src.reporting.runs import summary_of

    summary = summary_of(compose_config([]))
    return "" if summary is None else setting(summary)


def architecture(config: dict[str, Any]) -> tuple:
    """What a paper row fixes: framework, block (its stages and q/k width), both backbones."""
    block = config["block"]
    attention = () if block == "cat" else (tuple(config["block_stages"]), config["qk_reduction"])
    return (config["fusion"], block, config["backbone"], config.get("clin_backbone"), attention)


@lru_cache(maxsize=1)
def paper_architectures() -> dict[str, tuple]:
    """paper row id -> architecture of the config its overrides compose (as src.train would)."""
    from src.params import compose_config
    from src.reference import load_paper_results
    from src.reporting.runs import summary_of

    by_overrides: dict[tuple[str, ...], tuple | None] = {}
    for row in load_paper_results().models:
        if row.overrides not in by_overrides:
            summary = summary_of(compose_config(row.overrides))
            by_overrides[row.overrides] = None if summary is None else architecture(summary)
    rows = load_paper_results().models
    return {row.id: by_overrides[row.overrides] for row in rows if by_overrides[row.overrides]}


def paper_matches(results: Sequence[ConfigResult]) -> dict[str, list[str]]:
    """config key -> ids of the paper rows with the same architecture (any setting)."""
    rows = paper_architectures()
    return {
        config_key(r.config): [i for i, arch in rows.items() if arch == architecture(r.config)]
        for r in results
    }


# ---------------------------------------------------------------------------------- formatting
def fmt_stat(stat: Stat | PaperStat | None, digits: int = 1) -> str:
    if stat is None or stat.mean is None:
        return NOT_RUN
    if stat.std is None:
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"


def fmt_diff(ours: Stat | None, paper: PaperStat | None, digits: int = 1) -> str:
    diff = _diff(ours, paper)
    return "" if diff is None else f"{diff:+.{digits}f}"


def _diff(ours: Stat | None, paper: PaperStat | None) -> float | None:
    if ours is None or ours.mean is None or paper is None:
        return None
    return ours.mean - paper.mean


def _ours(result: ConfigResult | None, stat: Stat) -> str:
    """A mean ± std cell of ours, marked when the configuration is incomplete."""
    if result is None or stat.n == 0:
        return NOT_RUN
    mark = "" if result.complete else f" {INCOMPLETE_MARK}"
    return f"{fmt_stat(stat)} (n={stat.n}){mark}"


def _name(result: ConfigResult) -> str:
    mark = "" if setting(result.config) == paper_setting() else f" {OTHER_SETTING_MARK}"
    return f"{describe(result.config)}{mark}"


def _pct(value: Callable[[dict[str, Any]], Any]) -> Callable[[ConfigResult], Stat]:
    return lambda result: result.stat(value).scaled(PCT)


AVG_AUC = _pct(lambda m: m["avg_auc"])
AVG_ACC = _pct(lambda m: m["avg_acc"])


def _params_m(result: ConfigResult, key: str) -> float | None:
    return result.stat(lambda m: m["params"][key]).scaled(1e-6).mean


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


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


# ---------------------------------------------------------------------------------- tables
def model_table(
    table: int,
    results: Sequence[ConfigResult],
    paper: PaperResults,
    matches: dict[str, list[str]],
) -> ReportTable:
    """A paper table of models (6, 7, 9 or 10): AVG AUC, AVG ACC and parameters per row."""
    records: list[dict[str, Any]] = []
    shown: list[dict[str, str]] = []
    for row in (m for m in paper.models if m.table == table):
        found = [r for r in results if row.id in matches[config_key(r.config)]]
        for result in found or [None]:
            records.append(_model_record(row, result))
            shown.append(_model_display(row, result))
    notes = notes_for([r for r in results if any(_in_table(r, table, paper, matches))])
    notes.append(
        "Params: ours = trainable parameters of the network; paper-acct. = counted the "
        "paper's way (whole backbones incl. unused ImageNet classifiers), comparable to paper."
    )
    return ReportTable(
        f"table{table}",
        f"Table {table}",
        pd.DataFrame.from_records(records),
        pd.DataFrame.from_records(shown),
        notes,
    )


def _in_table(
    result: ConfigResult, table: int, paper: PaperResults, matches: dict[str, list[str]]
) -> list[bool]:
    return [paper.model(i).table == table for i in matches[config_key(result.config)]]


def _model_record(row: PaperModel, result: ConfigResult | None) -> dict[str, Any]:
    auc = AVG_AUC(result) if result else Stat(None, None, 0)
    acc = AVG_ACC(result) if result else Stat(None, None, 0)
    acct = _params_m(result, "paper_accounting") if result else None
    return {
        "paper_row": row.id,
        "paper_model": row.description,
        "configuration": describe(result.config) if result else None,
        "setting": setting(result.config) if result else None,
        "n": auc.n,
        "expected_n": result.expected_n if result else None,
        "status": result.status() if result else "not run",
        "avg_auc_mean": _round(auc.mean),
        "avg_auc_std": _round(auc.std),
        "paper_avg_auc_mean": row.avg_auc.mean if row.avg_auc else None,
        "paper_avg_auc_std": row.avg_auc.std if row.avg_auc else None,
        "avg_auc_diff": _round(_diff(auc, row.avg_auc)),
        "avg_acc_mean": _round(acc.mean),
        "avg_acc_std": _round(acc.std),
        "paper_avg_acc_mean": row.avg_acc.mean if row.avg_acc else None,
        "paper_avg_acc_std": row.avg_acc.std if row.avg_acc else None,
        "avg_acc_diff": _round(_diff(acc, row.avg_acc)),
        "params_m": _round(_params_m(result, "trainable"), 3) if result else None,
        "paper_accounting_m": _round(acct, 3),
        "paper_params_m": row.params_m,
        "paper_accounting_diff_m": _round(
            None if acct is None or row.params_m is None else acct - row.params_m, 3
        ),
    }


def _model_display(row: PaperModel, result: ConfigResult | None) -> dict[str, str]:
    auc = AVG_AUC(result) if result else None
    acc = AVG_ACC(result) if result else None
    acct = _params_m(result, "paper_accounting") if result else None
    trainable = _params_m(result, "trainable") if result else None
    return {
        "Paper row": row.description,
        "Ours": _name(result) if result else NOT_RUN,
        "Setting": setting(result.config) if result else "",
        "AVG AUC": _ours(result, auc) if auc else NOT_RUN,
        "paper AUC": fmt_stat(row.avg_auc),
        "Δ AUC": fmt_diff(auc, row.avg_auc),
        "AVG ACC": _ours(result, acc) if acc else NOT_RUN,
        "paper ACC": fmt_stat(row.avg_acc),
        "Δ ACC": fmt_diff(acc, row.avg_acc),
        "Params M": NOT_RUN if trainable is None else f"{trainable:.2f}",
        "paper-acct. M": NOT_RUN if acct is None else f"{acct:.2f}",
        "paper M": NOT_RUN if row.params_m is None else f"{row.params_m:.2f}",
        "Status": result.status() if result else "not run",
    }


def _label_rows() -> dict[str, dict[str, str]]:
    return {label: {"Label": label} for label in (*AVG_AUC_LABELS, "AVG")}


def _label_stat(result: ConfigResult, label: str) -> Stat:
    return result.stat(lambda m: m["auc"][label]).scaled(PCT)


def label_table(
    results: Sequence[ConfigResult], paper: PaperResults, matches: dict[str, list[str]]
) -> ReportTable:
    """Table 8: per-label AUC of the ST-based models, mean ± std over seeds beside the paper."""
    columns = [s for s in paper.label_auc if s.table == 8]
    long: list[dict[str, Any]] = []
    wide = _label_rows()
    used: list[ConfigResult] = []
    for scores in columns:
        found = [r for r in results if scores.model in matches[config_key(r.config)]]
        for result in found or [None]:
            head = (
                scores.column
                if result is None or len(found) == 1
                else (f"{scores.column} [{setting(result.config)}]")
            )
            if result is not None:
                used.append(result)
            for label in (*AVG_AUC_LABELS, "AVG"):
                paper_stat = scores.avg if label == "AVG" else scores.values[label]
                if result is None:
                    ours = Stat(None, None, 0)
                else:
                    ours = AVG_AUC(result) if label == "AVG" else _label_stat(result, label)
                long.append(
                    {
                        "label": label,
                        "paper_column": scores.column,
                        "configuration": describe(result.config) if result else None,
                        "setting": setting(result.config) if result else None,
                        "n": ours.n,
                        "auc_mean": _round(ours.mean),
                        "auc_std": _round(ours.std),
                        "paper_auc_mean": paper_stat.mean,
                        "paper_auc_std": paper_stat.std,
                        "auc_diff": _round(_diff(ours, paper_stat)),
                    }
                )
                wide[label][f"{head}: ours"] = _ours(result, ours)
                wide[label][f"{head}: paper"] = fmt_stat(paper_stat)
                wide[label][f"{head}: Δ"] = fmt_diff(ours, paper_stat)
    notes = notes_for(used)
    notes.extend(f"{s.column}: {s.note}" for s in columns if s.note)
    return ReportTable(
        "table8",
        "Table 8: per-label AUC of the ST-based models",
        pd.DataFrame.from_records(long),
        pd.DataFrame.from_records(list(wide.values())),
        notes,
    )


def _best_run(result: ConfigResult) -> RunRecord | None:
    scored = [r for r in result.runs if (r.metrics or {}).get("avg_auc") is not None]
    return max(scored, key=lambda r: r.metrics["avg_auc"], default=None)  # type: ignore[index]


def best_run_table(
    results: Sequence[ConfigResult], paper: PaperResults, matches: dict[str, list[str]]
) -> ReportTable:
    """Table 2's AMMFM row: the paper's best run per label beside our best run and our mean."""
    scores: LabelScores = next(s for s in paper.label_auc if s.table == 2)
    found = [r for r in results if scores.model in matches[config_key(r.config)]]
    long: list[dict[str, Any]] = []
    wide = _label_rows()
    for result in found or [None]:
        best = _best_run(result) if result else None
        tag = "" if len(found) <= 1 or result is None else f" [{setting(result.config)}]"
        best_head = f"ours best run{tag}" + ("" if best is None else f" (seed {best.seed})")
        for label in (*AVG_AUC_LABELS, "AVG"):
            paper_value = scores.avg if label == "AVG" else scores.values[label]
            key = "avg_auc" if label == "AVG" else None
            best_value = None
            if best is not None:
                raw = best.metrics["avg_auc"] if key else best.metrics["auc"].get(label)  # type: ignore[index]
                best_value = None if raw is None else raw * PCT
            mean = (
                Stat(None, None, 0)
                if result is None
                else AVG_AUC(result)
                if key
                else _label_stat(result, label)
            )
            long.append(
                {
                    "label": label,
                    "configuration": describe(result.config) if result else None,
                    "setting": setting(result.config) if result else None,
                    "best_seed": None if best is None else best.seed,
                    "best_auc": _round(best_value),
                    "paper_best_auc": paper_value.mean,
                    "best_auc_diff": _round(
                        None if best_value is None else best_value - paper_value.mean
                    ),
                    "n": mean.n,
                    "auc_mean": _round(mean.mean),
                    "auc_std": _round(mean.std),
                }
            )
            wide[label][best_head] = NOT_RUN if best_value is None else f"{best_value:.1f}"
            wide[label]["paper best run"] = fmt_stat(paper_value)
            wide[label][f"Δ best{tag}"] = (
                "" if best_value is None else f"{best_value - paper_value.mean:+.1f}"
            )
            wide[label][f"ours mean{tag}"] = _ours(result, mean)
    notes = [
        "The paper's Table 2 reports its best single AMMFM run (AVG AUC 88.1); ours best run "
        "is the seed with the highest test AVG AUC, an optimistic pick like the paper's.",
        *notes_for([r for r in found if r is not None]),
    ]
    return ReportTable(
        "table2",
        "Table 2: per-label AUC of the best AMMFM run",
        pd.DataFrame.from_records(long),
        pd.DataFrame.from_records(list(wide.values())),
        notes,
    )


def overview_table(
    results: Sequence[ConfigResult], paper: PaperResults, matches: dict[str, list[str]]
) -> ReportTable:
    """Every configuration found, whether or not the paper has it."""
    records, shown = [], []
    for result in sorted(results, key=lambda r: (setting(r.config), describe(r.config))):
        auc, acc = AVG_AUC(result), AVG_ACC(result)
        rows = [paper.model(i) for i in matches[config_key(result.config)]]
        tables = sorted({row.table for row in rows})
        records.append(
            {
                "configuration": describe(result.config),
                "setting": setting(result.config),
                "n": result.n,
                "expected_n": result.expected_n,
                "seeds": " ".join(map(str, result.seeds)),
                "avg_auc_mean": _round(auc.mean),
                "avg_auc_std": _round(auc.std),
                "avg_acc_mean": _round(acc.mean),
                "avg_acc_std": _round(acc.std),
                "params_m": _round(_params_m(result, "trainable"), 3),
                "paper_accounting_m": _round(_params_m(result, "paper_accounting"), 3),
                "paper_tables": " ".join(map(str, tables)),
                "status": result.status(),
                **{f"config.{k}": v for k, v in result.config.items()},
            }
        )
        trainable = _params_m(result, "trainable")
        shown.append(
            {
                "Configuration": _name(result),
                "Setting": setting(result.config),
                "Seeds": " ".join(map(str, result.seeds)) or NOT_RUN,
                "AVG AUC": _ours(result, auc),
                "AVG ACC": _ours(result, acc),
                "Params M": NOT_RUN if trainable is None else f"{trainable:.2f}",
                "Paper tables": ", ".join(map(str, tables)),
                "Status": result.status(),
            }
        )
    return ReportTable(
        "configurations",
        "All configurations",
        pd.DataFrame.from_records(records),
        pd.DataFrame.from_records(shown),
        notes_for(results),
    )


def failures_table(results: Sequence[ConfigResult], unnamed: Sequence[RunRecord]) -> ReportTable:
    """Every failed, unfinished or duplicate run, with its error line."""
    records = []
    for result in results:
        for kind, runs in (
            ("failed", result.failed),
            ("unfinished", result.unfinished),
            ("duplicate (ignored)", result.duplicates),
        ):
            for run in runs:
                records.append(_failure(describe(result.config), kind, run))
    for run in unnamed:
        records.append(_failure("(configuration unreadable)", run.status, run))
    frame = pd.DataFrame.from_records(
        records, columns=["configuration", "seed", "status", "error", "run"]
    )
    display = frame.rename(columns=str.capitalize).fillna("")
    return ReportTable("failures", "Failed, unfinished and ignored runs", frame, display)


def _failure(name: str, kind: str, run: RunRecord) -> dict[str, Any]:
    error = run.error
    if error is None and kind == "unfinished":
        error = "no metrics.json and no error.txt: killed, timed out or still running"
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
    """Overview, the paper's Tables 6, 7, 8, 9, 10 and 2, and the failures, in report order."""
    matches = paper_matches(results)
    return [
        overview_table(results, paper, matches),
        *(model_table(t, results, paper, matches) for t in MODEL_TABLES[:2]),
        label_table(results, paper, matches),
        *(model_table(t, results, paper, matches) for t in MODEL_TABLES[2:]),
        best_run_table(results, paper, matches),
        failures_table(results, unnamed),
    ]
