"""The paper's comparisons, tested on our runs: paired by seed, a mean difference with its 95%
confidence interval and a paired t-test.

The pairs are derived from the paper's tables: two rows of one table that differ only in the
block (AAB vs CAT, AAB vs BAB), only in the fusion framework (AFF vs SFF), or in both (AMMFM,
AFF + AAB, vs the baseline, SFF + CAT) on the same backbone. Each side is the configuration of
ours matched to that row (`PaperMatches`), at the same setting as the other side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from src.reference import PaperModel
from src.reporting.aggregate import ConfigResult, config_key
from src.reporting.cells import PCT
from src.reporting.matching import PaperMatches
from src.reporting.naming import describe, setting

# The columns every paired-by-seed table writes (`paired_fields`), after its own.
PAIRED_COLUMNS = ["metric", "mean_diff", "ci_low", "ci_high", "p_value", "n_pairs"]
COLUMNS = ["a", "b", *PAIRED_COLUMNS]
METRICS = ("avg_auc", "avg_acc")
CONFIDENCE = 0.95
# (fusion, block) of the proposed side and of the side it is compared with, by comparison.
KINDS = {
    (("aff", "aab"), ("aff", "cat")): "AAB vs CAT",
    (("sff", "aab"), ("sff", "cat")): "AAB vs CAT",
    (("aff", "aab"), ("aff", "bab")): "AAB vs BAB",
    (("sff", "aab"), ("sff", "bab")): "AAB vs BAB",
    (("aff", "cat"), ("sff", "cat")): "AFF vs SFF",
    (("aff", "bab"), ("sff", "bab")): "AFF vs SFF",
    (("aff", "aab"), ("sff", "aab")): "AFF vs SFF",
    (("aff", "aab"), ("sff", "cat")): "AMMFM vs baseline",
}
TEST_NOTE = (
    "Paired by seed (seeds both configurations finished). mean_diff = a − b in percentage "
    "points of the test metric; 95% CI = mean_diff ± t(0.975, n−1)·sd/√n; p_value: two-sided "
    "paired t-test (scipy.stats.ttest_rel). With fewer than 2 pairs there is no CI or p-value "
    "(NaN)."
)


@dataclass(frozen=True)
class PaperPair:
    """Two rows of one paper table that the paper compares: `a` is the proposed one."""

    kind: str
    table: int
    a: PaperModel
    b: PaperModel

    def paper_diff(self, metric: str) -> float | None:
        sa, sb = getattr(self.a, metric), getattr(self.b, metric)
        return None if sa is None or sb is None else sa.mean - sb.mean


def _factors(row: PaperModel) -> tuple[tuple[str, str], tuple]:
    other = tuple(sorted((k, v) for k, v in row.choices.items() if k not in ("fusion", "block")))
    return (row.choices.get("fusion", ""), row.choices.get("block", "")), other


def paper_pairs(rows: Sequence[PaperModel]) -> list[PaperPair]:
    """Every pair of rows of one table that the paper compares (see the module docstring)."""
    pairs = []
    for a in rows:
        for b in rows:
            (fa, oa), (fb, ob) = _factors(a), _factors(b)
            kind = KINDS.get((fa, fb))
            if kind and a.table == b.table and oa == ob:
                pairs.append(PaperPair(kind, a.table, a, b))
    return pairs


@dataclass(frozen=True, kw_only=True)
class PairedStats:
    """A paired-by-seed test's outcome in percentage points (`paired_stats`): what
    `paired_cells` and `paired_fields` write, shared by every paired comparison record."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_pairs: int


def paired_stats(diffs: Sequence[float]) -> dict[str, float | int]:
    """`PairedStats` fields of the paired differences `diffs` (`paired_test`, and their count)."""
    mean, low, high, p = paired_test(diffs)
    return {"mean_diff": mean, "ci_low": low, "ci_high": high, "p_value": p, "n_pairs": len(diffs)}


@dataclass(frozen=True)
class Comparison(PairedStats):
    pair: PaperPair
    a: ConfigResult
    b: ConfigResult
    metric: str
    tables: tuple[int, ...] = ()  # every paper table that makes this comparison

    @property
    def supports(self) -> bool | None:
        """True when the CI excludes 0 on the side of the paper's difference; None if no CI."""
        paper = self.pair.paper_diff(self.metric)
        if math.isnan(self.p_value) or paper is None or paper == 0:
            return None
        return self.ci_low > 0 if paper > 0 else self.ci_high < 0


def paired_test(diffs: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, ci_low, ci_high, p) of paired differences; NaN CI and p below 2 pairs."""
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan, math.nan
    sem = float(d.std(ddof=1)) / math.sqrt(len(d))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(d) - 1)) * sem
    p = float(stats.ttest_1samp(d, 0.0).pvalue) if sem > 0 else math.nan
    return mean, mean - half, mean + half, p


def by_seed(result: ConfigResult, metric: str) -> dict[int, float]:
    """{seed: metric in percent} of a configuration's complete runs."""
    return {
        r.seed: float(r.metrics[metric]) * PCT
        for r in result.runs
        if r.seed is not None and r.metrics and r.metrics.get(metric) is not None
    }


def paired_by_seed(a: ConfigResult, b: ConfigResult, metric: str) -> dict[str, float | int]:
    """`PairedStats` fields of a − b over the seeds both configurations finished."""
    va, vb = by_seed(a, metric), by_seed(b, metric)
    return paired_stats([va[s] - vb[s] for s in sorted(set(va) & set(vb))])


def compare(pair: PaperPair, a: ConfigResult, b: ConfigResult, metric: str) -> Comparison:
    return Comparison(pair, a, b, metric, **paired_by_seed(a, b, metric))


def comparisons(matches: PaperMatches) -> list[Comparison]:
    """The paper's comparisons among our configurations, each pair of configurations once."""
    first: dict[tuple[str, str], tuple[PaperPair, ConfigResult, ConfigResult]] = {}
    tables: dict[tuple[str, str], list[int]] = {}
    for pair in paper_pairs(matches.paper.models):
        for a in matches.results_for(pair.a.id):
            for b in matches.results_for(pair.b.id):
                if setting(a.config) != setting(b.config):
                    continue
                key = (config_key(a.config), config_key(b.config))
                first.setdefault(key, (pair, a, b))
                tables.setdefault(key, [])
                if pair.table not in tables[key]:
                    tables[key].append(pair.table)
    return [
        replace(compare(pair, a, b, metric), tables=tuple(sorted(tables[key])))
        for key, (pair, a, b) in first.items()
        for metric in METRICS
    ]


def _name(result: ConfigResult, several_settings: bool) -> str:
    name = describe(result.config)
    return f"{name} [{setting(result.config)}]" if several_settings else name


def comparisons_frame(found: Sequence[Comparison]) -> pd.DataFrame:
    several = len({setting(c.a.config) for c in found}) > 1
    rows = [
        {
            "a": _name(c.a, several),
            "b": _name(c.b, several),
            **paired_fields(c),
        }
        for c in found
    ]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def paired_fields(result: object) -> dict[str, object]:
    """The paired test's columns of a result (a `Comparison` or anything with its fields)."""
    return {key: getattr(result, key) for key in PAIRED_COLUMNS}


def _num(value: float, fmt: str = "+.2f") -> str:
    return "NaN" if math.isnan(value) else format(value, fmt)


def paired_cells(result: object) -> str:
    """The markdown cells `Δ (95% CI) | p | pairs` of a paired result (a `Comparison` or
    anything with its fields), as every paired table of the report writes them."""
    low, high = result.ci_low, result.ci_high
    ci = "" if math.isnan(low) else f" ({_num(low)}, {_num(high)})"
    p_value = result.p_value
    p = "NaN" if math.isnan(p_value) else f"{p_value:.3g}"
    return f"{_num(result.mean_diff)}{ci} | {p} | {result.n_pairs}"


def paired_table_head(title: str, intro: str, columns: Sequence[str]) -> list[str]:
    """The opening lines of a paired-by-seed section: its title, what it pairs and the test,
    and the header of a table whose last three columns are `paired_cells`."""
    header = [*columns, "Δ (95% CI)", "p", "pairs"]
    return [
        f"## {title}",
        "",
        f"{intro} {TEST_NOTE}",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]


def comparisons_section(found: Sequence[Comparison]) -> str:
    """report.md's section: the test, a table, and which of the paper's claims the runs support."""
    lines = ["## The paper's comparisons, paired by seed", "", TEST_NOTE, ""]
    if not found:
        lines += [
            "_No pair of configurations that a paper table compares was found among the runs._",
            "",
        ]
        return "\n".join(lines)
    several = len({setting(c.a.config) for c in found}) > 1
    lines += [
        "| Comparison | Tables | a | b | metric | paper Δ (first table) "
        "| ours Δ (95% CI) | p | pairs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in found:
        paper = c.pair.paper_diff(c.metric)
        lines.append(
            f"| {c.pair.kind} | {', '.join(map(str, c.tables))} "
            f"| {_name(c.a, several)} | {_name(c.b, several)} "
            f"| {c.metric} | {'' if paper is None else f'{paper:+.1f}'} | {paired_cells(c)} |"
        )
    lines += ["", *_verdicts(found, several), ""]
    return "\n".join(lines)


def _verdicts(found: Sequence[Comparison], several: bool) -> list[str]:
    out = []
    for c in found:
        paper = c.pair.paper_diff(c.metric)
        claim = (
            f"{c.pair.kind} ({_name(c.a, several)} vs {_name(c.b, several)}, {c.metric}; "
            f"Tables {', '.join(map(str, c.tables))}; paper Δ "
            f"{'n/a' if paper is None else f'{paper:+.1f}'} in Table {c.pair.table})"
        )
        if c.n_pairs < 2:
            out.append(f"- {claim}: not testable, {c.n_pairs} paired seed(s) (need 2).")
        elif c.supports:
            out.append(f"- {claim}: **supported**, the 95% CI excludes 0 in the paper's direction.")
        elif c.supports is None:
            out.append(f"- {claim}: no verdict (no paper difference or no spread).")
        else:
            where = "includes 0" if c.ci_low <= 0 <= c.ci_high else "is on the other side of 0"
            out.append(f"- {claim}: **not supported**, the 95% CI {where}.")
    return out
