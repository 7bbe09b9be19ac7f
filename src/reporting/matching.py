"""Which paper rows a configuration reproduces: the same architecture, at any setting.

A paper row fixes the fusion framework, the block (with its stages and q/k width) and both
backbones; the data, image size, epochs and weights a run used are shown beside it instead. Only
results over the paper's tasks (the derm7pt task spec), from images alone (no patient
metadata), can reproduce a paper row.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from src.data.tasks import load_task_spec
from src.models.network import architecture
from src.reference import PAPER_TASKS, PaperModel, PaperResults
from src.reporting.aggregate import ConfigResult, config_key


@lru_cache(maxsize=1)
def paper_summaries() -> dict[str, dict[str, Any]]:
    """paper row id -> configuration summary of the config its overrides compose (as src.train
    would compose them), in the form metrics.json records."""
    from src.project import compose_config
    from src.reference import load_paper_results
    from src.reporting.runs import summary_of

    rows = load_paper_results().models
    by_overrides: dict[tuple[str, ...], dict[str, Any] | None] = {}
    for row in rows:
        if row.overrides not in by_overrides:
            by_overrides[row.overrides] = summary_of(compose_config(row.overrides))
    return {row.id: s for row in rows if (s := by_overrides[row.overrides]) is not None}


def paper_architectures() -> dict[str, tuple]:
    """paper row id -> architecture."""
    return {i: architecture(summary) for i, summary in paper_summaries().items()}


class PaperMatches:
    """Configurations and paper rows, matched both ways."""

    def __init__(self, results: Sequence[ConfigResult], paper: PaperResults) -> None:
        rows = paper_architectures()
        self.paper = paper
        paper_tasks = load_task_spec(PAPER_TASKS).digest
        self._ids = {
            config_key(r.config): [
                i
                for i, arch in rows.items()
                if arch == architecture(r.config)
                and r.tasks.digest == paper_tasks
                and not r.config.get("metadata")  # the paper's models read images only
            ]
            for r in results
        }
        self._results = list(results)

    def rows_of(self, result: ConfigResult) -> list[PaperModel]:
        return [self.paper.model(i) for i in self._ids[config_key(result.config)]]

    def results_for(self, model_id: str) -> list[ConfigResult]:
        return [r for r in self._results if model_id in self._ids[config_key(r.config)]]

    def in_table(self, table: int) -> list[ConfigResult]:
        return [r for r in self._results if any(m.table == table for m in self.rows_of(r))]
