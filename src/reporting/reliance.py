"""Reliance on each image: how far a configuration's test AVG AUC drops when the clinical or the
dermoscopy image is missing, from the robustness.json of its runs (`python -m src.probe`, or
`probe=true`), mean ± std over seeds; and the paper's comparisons (KINDS of
`src.reporting.comparisons`) of those drops, paired by seed with the report's paired test.

The paper argues the clinical image is supplementary: an asymmetric design (AFF, AAB) should
lose less than a symmetric one (SFF, CAT) when the clinical image is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from src.reporting.aggregate import ConfigResult, Stat
from src.reporting.cells import NOT_RUN, PCT, ReportTable, config_name, rounded, stat_text
from src.reporting.comparisons import (
    COLUMNS,
    KINDS,
    PairedStats,
    paired_cells,
    paired_fields,
    paired_stats,
)
from src.reporting.naming import describe, setting
from src.reporting.render import markdown_section, write_table
from src.reporting.runs import COMPLETE, RunRecord
from src.runs.files import ROBUSTNESS_FILE
from src.utils.io import atomic_path

log = logging.getLogger(__name__)

# drop column -> (modality, kind) of the robustness.json condition it compares with as_is
DROPS: dict[str, tuple[str, str]] = {
    "clinic_missing_mean": ("clinic", "missing_mean"),
    "clinic_missing_shuffled": ("clinic", "missing_shuffled"),
    "derm_missing_mean": ("derm", "missing_mean"),
    "derm_missing_shuffled": ("derm", "missing_shuffled"),
}
DROP_TITLES = {
    "clinic_missing_mean": "clinical missing (mean)",
    "clinic_missing_shuffled": "clinical missing (other case's)",
    "derm_missing_mean": "dermoscopy missing (mean)",
    "derm_missing_shuffled": "dermoscopy missing (other case's)",
}
# What two compared configurations may differ in besides the fusion framework and the block:
# the clinical stream follows the framework (AFF: its own backbone), the block's own settings.
# (drop_path_rate is per stream, set by each stream's backbone.)
FOLLOWS_FROM_DESIGN = frozenset(
    {"fusion", "block", "clin_backbone", "block_stages", "qk_reduction", "block_gate"}
    | {"drop_path_rate"}
)
AS_IS_TOLERANCE = 1e-6  # robustness.json's as_is against metrics.json: the same evaluation
MISSING_NOTE = (
    "Drop = AVG AUC as is − AVG AUC with that image missing, in percentage points of the test "
    "split, with the run's TTA and frozen fusion weights (robustness.json, `python -m src.probe` "
    "or `probe=true`). Missing (mean): the image replaced by the normalisation mean; (other "
    "case's): by another test case's image of the same modality (seeded derangement). Mean ± "
    "sample std over the seeds that have robustness.json; runs without it (or with one that "
    "does not match their metrics.json) are not in this table."
)


def run_drops(run: RunRecord) -> dict[str, float] | None:
    """{drop column: AVG AUC drop in points} of a complete run with a robustness.json whose
    as_is matches its metrics.json; None otherwise (no probe, damaged or stale file)."""
    path = Path(run.source) / ROBUSTNESS_FILE
    if run.status != COMPLETE or run.metrics is None or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        values = {
            (c["modality"], c["kind"]): c["avg_auc"]
            for c in doc["conditions"]
            if c["severity"] == 0
        }
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("%s: unreadable, left out of the reliance table (%s)", path, err)
        return None
    as_is, reported = values.get(("none", "as_is")), run.metrics.get("avg_auc")
    if as_is is None or reported is None or abs(as_is - reported) > AS_IS_TOLERANCE:
        log.warning(
            "%s: as_is AVG AUC %s is not metrics.json's %s (probed before a rerun?); left out "
            "of the reliance table",
            path,
            as_is,
            reported,
        )
        return None
    return {
        column: (as_is - values[key]) * PCT
        for column, key in DROPS.items()
        if values.get(key) is not None
    }


@dataclass
class Reliance:
    """One configuration's drops, by seed."""

    result: ConfigResult
    drops: dict[int, dict[str, float]]  # seed -> drop column -> points

    def stat(self, column: str) -> Stat:
        return Stat.of(d.get(column) for d in self.drops.values())


def reliance(results: Sequence[ConfigResult]) -> list[Reliance]:
    """The configurations with at least one probed run, with their drops by seed."""
    found = []
    for result in results:
        drops = {}
        for run in result.runs:
            values = run_drops(run)
            if values is not None and run.seed is not None:
                drops[run.seed] = values
        if drops:
            found.append(Reliance(result, drops))
    return found


def reliance_table(found: Sequence[Reliance]) -> ReportTable:
    """Mean ± std of each drop per configuration (numbers for CSV, text for Markdown/LaTeX)."""
    records, shown = [], []
    for r in sorted(found, key=lambda r: (setting(r.result.config), describe(r.result.config))):
        probed = f"{len(r.drops)}/{r.result.n}"
        stats = {column: r.stat(column) for column in DROPS}
        records.append(
            {
                "configuration": describe(r.result.config),
                "setting": setting(r.result.config),
                "probed_seeds": " ".join(map(str, sorted(r.drops))),
                "complete_seeds": r.result.n,
                **{f"{c}_mean": rounded(s.mean) for c, s in stats.items()},
                **{f"{c}_std": rounded(s.std) for c, s in stats.items()},
            }
        )
        shown.append(
            {
                "Configuration": config_name(r.result),
                "Setting": setting(r.result.config),
                "Probed seeds": probed,
                **{DROP_TITLES[c]: stat_text(s) if s.n else NOT_RUN for c, s in stats.items()},
            }
        )
    return ReportTable(
        "reliance",
        "Reliance on each image: AVG AUC drop when it is missing",
        pd.DataFrame.from_records(records),
        pd.DataFrame.from_records(shown),
        [MISSING_NOTE],
        caption="Test AVG AUC drop (points) with the clinical or dermoscopy image missing.",
    )


@dataclass(frozen=True)
class RelianceComparison(PairedStats):
    """Paired test of one drop between a proposed configuration `a` and `b`."""

    kind: str
    a: ConfigResult
    b: ConfigResult
    metric: str  # a drop column


def _other_settings(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in FOLLOWS_FROM_DESIGN}


def design_pairs(found: Sequence[Reliance]) -> list[tuple[str, Reliance, Reliance]]:
    """(kind, a, b) for each pair of probed configurations the paper's comparisons make: their
    (fusion, block) a pair of KINDS, everything else the same (dermoscopy backbone, setting)."""
    pairs = []
    for a in found:
        for b in found:
            designs = tuple((x.result.config["fusion"], x.result.config["block"]) for x in (a, b))
            kind = KINDS.get(designs)  # type: ignore[arg-type]
            same = _other_settings(a.result.config) == _other_settings(b.result.config)
            if kind and same:
                pairs.append((kind, a, b))
    return pairs


def reliance_comparisons(found: Sequence[Reliance]) -> list[RelianceComparison]:
    """Every drop of every design pair, paired by the seeds both have probed."""
    out = []
    for kind, a, b in design_pairs(found):
        seeds = sorted(set(a.drops) & set(b.drops))
        for column in DROPS:
            diffs = [
                a.drops[s][column] - b.drops[s][column]
                for s in seeds
                if column in a.drops[s] and column in b.drops[s]
            ]
            stats = paired_stats(diffs)
            out.append(RelianceComparison(kind, a.result, b.result, column, **stats))
    return out


def reliance_comparisons_frame(found: Sequence[RelianceComparison]) -> pd.DataFrame:
    rows = [
        {"kind": c.kind, "a": describe(c.a.config), "b": describe(c.b.config), **paired_fields(c)}
        for c in found
    ]
    return pd.DataFrame.from_records(rows, columns=["kind", *COLUMNS])


def reliance_section(table: ReportTable, compared: Sequence[RelianceComparison]) -> str:
    """report.md's section: the table, then the paired comparisons of the drops."""
    lines = [markdown_section(table), "", "### Reliance compared, paired by seed", ""]
    lines += [
        "Each row: drop of a − drop of b (points), over the seeds both probed; 95% CI and a "
        "paired t-test as in the paper's comparisons above. A negative difference with the "
        "clinical image missing means a relies less on the clinical image than b.",
        "",
    ]
    if not compared:
        lines += [
            "_No two probed configurations differ only in the fusion framework or the block._",
            "",
        ]
        return "\n".join(lines)
    lines += [
        "| Comparison | a | b | drop with | a − b (95% CI) | p | pairs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in compared:
        lines.append(
            f"| {c.kind} | {describe(c.a.config)} | {describe(c.b.config)} "
            f"| {DROP_TITLES[c.metric]} | {paired_cells(c)} |"
        )
    return "\n".join([*lines, ""])


def write_reliance(results: Sequence[ConfigResult], out_dir: Path) -> str:
    """reliance.{md,csv,tex} and reliance_comparisons.csv in `out_dir` when any run was probed;
    returns report.md's section (which says so when none was)."""
    found = reliance(results)
    if not found:
        return (
            "## Reliance on each image: AVG AUC drop when it is missing\n\n"
            "_No run here has a robustness.json matching its metrics.json: probe runs with "
            "`python -m src.probe ckpt_path=<run>/checkpoints/final.ckpt` or train with "
            "`probe=true`._\n"
        )
    table = reliance_table(found)
    write_table(table, out_dir)
    compared = reliance_comparisons(found)
    with atomic_path(out_dir / "reliance_comparisons.csv") as tmp:
        reliance_comparisons_frame(compared).to_csv(tmp, index=False)
    return reliance_section(table, compared)
