"""Turn many runs into the paper's tables: `python -m src.report <sweep dir or run dirs...>`.

Reads every run's metrics.json (and error.txt of failed runs) under the given folders, groups
runs by configuration, and writes into `--out` (default: `<first folder>/report`):

    report.md                    every table below with its notes, and the failures
    configurations.{md,csv,tex}  every configuration: mean ± std over seeds, n, status
    table6|7|8|9|10.{md,csv,tex} the paper's tables with the published numbers and Δ
    table2.{md,csv,tex}          Table 2's 17-label AUC row (best run) beside ours
    comparisons.csv              the paper's comparisons on our runs: paired by seed, mean
                                 difference, 95% CI, paired t-test p-value, number of pairs
    reliance.{md,csv,tex}        AVG AUC drop with the clinical / dermoscopy image missing, per
                                 configuration (runs with robustness.json), and
    reliance_comparisons.csv     those drops compared (AFF vs SFF, AAB vs CAT, ...), paired test
    metadata_effects.csv         each model.metadata choice against the same configuration
                                 without metadata, with the same paired test (when present)
    selection.{md,csv,tex}       the checkpoint-selection policies (SWA, last epoch, best
                                 validation epoch) per configuration, and in
    selection_comparisons.csv    last vs SWA and best_valid vs SWA, paired (when present)
    failures.{md,csv,tex}        failed / unfinished / duplicate runs with their error line
    runs.csv                     one line per run
    avg_auc_vs_params.png, strip_table<N>.png (per-seed points beside mean ± std),
    roc_overlay.png (every configuration's mean ROC per label), learning_curves.png (validation
    AVG AUC from the runs' csv/metrics.csv, when present), roc/<configuration>.png
    explain/                     per configuration the panels and explain.json of its first
                                 test cases (first seed; `--explain-cases N`, 0: none)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.reference import load_paper_results
from src.reporting.ablations import ablations, ablations_frame, ablations_section
from src.reporting.aggregate import group_runs
from src.reporting.cells import paper_recipe
from src.reporting.comparisons import comparisons, comparisons_frame, comparisons_section
from src.reporting.matching import PaperMatches
from src.reporting.metadata_effects import metadata_effects, metadata_frame, metadata_section
from src.reporting.naming import describe, setting
from src.reporting.reliance import write_reliance
from src.reporting.render import markdown_section, write_table
from src.reporting.runs import RunRecord, count_by_status, find_runs
from src.reporting.selection import write_selection
from src.reporting.tables import build_tables
from src.utils.errors import UserError, exit_on_user_error
from src.utils.io import atomic_path, atomic_write_text
from src.utils.output_dir_check import check_writable_folder

log = logging.getLogger(__name__)
RUN_COLUMNS = ["run", "status", "seed", "configuration", "setting", "avg_auc", "avg_acc", "error"]


def runs_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        metrics = r.metrics or {}
        rows.append(
            {
                "run": r.source,
                "status": r.status,
                "seed": r.seed,
                "configuration": describe(r.config) if r.config else None,
                "setting": setting(r.config) if r.config else None,
                "avg_auc": metrics.get("avg_auc"),
                "avg_acc": metrics.get("avg_acc"),
                "error": r.error,
            }
        )
    return pd.DataFrame.from_records(rows, columns=RUN_COLUMNS)


def write_report(
    sources: Sequence[str],
    records: Sequence[RunRecord],
    out_dir: Path,
    seeds: Sequence[int] | None = None,
    plots: bool = True,
    explain_cases: int = 0,
) -> Path:
    """Write every table, runs.csv, the figures and report.md into `out_dir`; return report.md."""
    if not records:
        raise UserError(
            f"no runs found in {', '.join(sources)}: give a sweep directory (or run directories) "
            "containing metrics.json files"
        )
    paper = load_paper_results()
    results, unnamed = group_runs(records, seeds)
    tables = build_tables(results, unnamed, paper)
    out_dir.mkdir(parents=True, exist_ok=True)
    for table in tables:
        write_table(table, out_dir)
    with atomic_path(out_dir / "runs.csv") as tmp:
        runs_frame(records).to_csv(tmp, index=False)
    matches = PaperMatches(results, paper)
    compared = comparisons(matches)
    with atomic_path(out_dir / "comparisons.csv") as tmp:
        comparisons_frame(compared).to_csv(tmp, index=False)
    alone = ablations(results, is_paper_row=lambda result: bool(matches.rows_of(result)))
    if alone:
        with atomic_path(out_dir / "ablations.csv") as tmp:
            ablations_frame(alone).to_csv(tmp, index=False)
    effects = metadata_effects(results)
    if effects:
        with atomic_path(out_dir / "metadata_effects.csv") as tmp:
            metadata_frame(effects).to_csv(tmp, index=False)
    policies = write_selection(results, out_dir)
    figures = []
    if plots:
        from src.reporting.figures import write_figures

        figures = write_figures(results, paper, out_dir)
    gallery = None
    if explain_cases > 0:
        from src.reporting.explain_gallery import write_gallery

        gallery = write_gallery(results, out_dir, explain_cases)
    counts = count_by_status(records)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# Report",
        "",
        f"Generated {stamp} by `python -m src.report {' '.join(sources)}`.",
        "",
        *_data_warning(records),
        f"Runs: {len(records)} ({counts['complete']} complete, {counts['failed']} failed, "
        f"{counts['unfinished']} unfinished) in {len(results)} configuration(s). "
        "Tables as CSV (numbers) and LaTeX beside this file.",
        "",
    ]
    first, *rest = [markdown_section(t) for t in tables]
    paired = [
        comparisons_section(compared),
        ablations_section(alone),  # "" when there is none, as metadata_section
        write_reliance(results, out_dir),
        metadata_section(effects),
    ]
    body = [first, *(section for section in paired if section), *rest]
    if policies:
        body.append(policies)
    if figures:
        names = [p.relative_to(out_dir).as_posix() for p in figures]
        links = "".join(f"- [{name}]({name})\n" for name in names)
        if not any(p.name == "learning_curves.png" for p in figures):
            links += (
                "\nNo learning curves: no run here has a CSV log with validation AVG AUC "
                "(`csv/metrics.csv`, written with `logger=csv`).\n"
            )
        body.append(f"## Figures\n\n{links}")
    if gallery is not None:
        name = gallery.relative_to(out_dir).as_posix()
        body.append(f"## Where the models look\n\nPanels and lesion numbers: [{name}]({name})\n")
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join([*header, *body]))
    return report


def _data_warning(records: Sequence[RunRecord]) -> list[str]:
    """A banner when runs used another dataset than the paper's (e.g. the synthetic stand-in)."""
    paper_data = paper_recipe().get("data")
    others = sorted({str(r.config["data"]) for r in records if r.config} - {paper_data})
    if not others:
        return []
    return [
        f"> **Not the paper's data.** Runs here used `{'`, `'.join(others)}` instead of "
        f"`{paper_data}`; their numbers test the code, not the paper's claims.",
        "",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.report",
        description="Aggregate runs (mean ± std over seeds) into the paper's tables.",
    )
    parser.add_argument("paths", nargs="*", help="sweep directories or run directories")
    parser.add_argument("--out", type=Path, help="output folder (default: <first path>/report)")
    parser.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="expect seeds 0..N-1 in every configuration (default: the seeds the sweep asked for)",
    )
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="also read runs from W&B")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument(
        "--explain-cases",
        type=int,
        default=4,
        metavar="N",
        help="test cases per configuration in the gallery explain/ (first seed); 0: no gallery",
    )
    args = parser.parse_args(argv)
    if not args.paths and not args.wandb:
        parser.error("give at least one sweep or run directory (or --wandb ENTITY/PROJECT)")
    if args.out is None and not args.paths:
        parser.error("--out is needed when reading only from W&B")
    if args.explain_cases < 0:
        parser.error("--explain-cases must be >= 0")
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    out_dir = args.out if args.out is not None else Path(args.paths[0]) / "report"
    check_writable_folder(out_dir, "--out" if args.out is not None else "--out (default)")
    records = find_runs(args.paths)
    sources = list(args.paths)
    if args.wandb:
        from src.reporting.wandb_runs import offline_reason, runs_from_wandb

        reason = offline_reason()
        if reason is None:
            records += runs_from_wandb(args.wandb)
            sources.append(f"--wandb {args.wandb}")
        else:
            print(f"W&B skipped, offline here ({reason}): run folders only", file=sys.stderr)
    seeds = None if args.seeds is None else list(range(args.seeds))
    report = write_report(
        sources, records, out_dir, seeds, plots=not args.no_plots, explain_cases=args.explain_cases
    )
    counts = count_by_status(records)
    print(
        f"{len(records)} runs ({counts['complete']} complete, {counts['failed']} failed, "
        f"{counts['unfinished']} unfinished) -> {report}"
    )


if __name__ == "__main__":
    main()
