"""What each patient metadata choice adds: every configuration with `model.metadata` against the
same configuration without metadata, paired by seed with the paper comparisons' test
(`comparisons.paired_test`: mean difference, 95% CI, paired t-test)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from src.reporting.aggregate import ConfigResult, config_key
from src.reporting.comparisons import (
    METRICS,
    PAIRED_COLUMNS,
    PairedStats,
    paired_by_seed,
    paired_cells,
    paired_fields,
    paired_table_head,
)
from src.reporting.naming import OFF_RECIPE_KEY, describe, setting

METADATA_KEYS = ("metadata", "leaky_metadata")
COLUMNS = ["metadata", "leaky", "base", *PAIRED_COLUMNS]


@dataclass(frozen=True)
class MetadataEffect(PairedStats):
    with_metadata: ConfigResult
    without: ConfigResult
    metric: str

    @property
    def columns(self) -> list[str]:
        return list(self.with_metadata.config.get("metadata") or [])

    @property
    def leaky(self) -> list[str]:
        return list(self.with_metadata.config.get("leaky_metadata") or [])


def _without_metadata(config: dict) -> str:
    """The configuration key with its metadata choice (and what naming it put in the
    off-recipe list) taken out."""
    kept = {k: v for k, v in config.items() if k not in METADATA_KEYS}
    if kept.get(OFF_RECIPE_KEY):
        kept[OFF_RECIPE_KEY] = [s for s in kept[OFF_RECIPE_KEY] if not s.startswith("model.")]
    return config_key({k: v for k, v in kept.items() if k != OFF_RECIPE_KEY})


def metadata_effects(results: Sequence[ConfigResult]) -> list[MetadataEffect]:
    """Each configuration with metadata against its twin without, per headline metric."""
    bases = {_without_metadata(r.config): r for r in results if not r.config.get("metadata")}
    found = []
    for result in results:
        base = bases.get(_without_metadata(result.config))
        if not result.config.get("metadata") or base is None:
            continue
        for metric in METRICS:
            found.append(
                MetadataEffect(result, base, metric, **paired_by_seed(result, base, metric))
            )
    return found


def metadata_frame(found: Sequence[MetadataEffect]) -> pd.DataFrame:
    rows = [
        {
            "metadata": ",".join(e.columns),
            "leaky": ",".join(e.leaky),
            "base": f"{describe(e.without.config)} [{setting(e.without.config)}]",
            **paired_fields(e),
        }
        for e in found
    ]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def metadata_section(found: Sequence[MetadataEffect]) -> str:
    """report.md's section; empty when no configuration used metadata."""
    if not found:
        return ""
    lines = paired_table_head(
        "Patient metadata, paired by seed",
        "Each configuration with `model.metadata` against the same configuration without.",
        ("metadata", "base", "metric"),
    )
    for e in found:
        name = ", ".join(e.columns) + (f" (**LEAKY**: {', '.join(e.leaky)})" if e.leaky else "")
        lines.append(f"| {name} | {describe(e.without.config)} | {e.metric} | {paired_cells(e)} |")
    if any(e.leaky for e in found):
        lines += [
            "",
            "LEAKY columns are decided by the clinician from the diagnosis; a gain from them is "
            "not a diagnostic gain.",
        ]
    return "\n".join([*lines, ""])
