"""Group runs by configuration and summarise each metric as mean +- std over seeds.

Nothing is averaged silently: every group knows which seeds it has, which were asked for, which
failed (with their error line), which never finished, and which duplicated a seed (the first
run of a seed in path order is used; the others are listed, not averaged).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from src.data.tasks import TaskSpec, load_task_spec
from src.reporting.naming import OFF_RECIPE_KEY
from src.reporting.runs import COMPLETE, FAILED, RunRecord


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof=1; None below 2 values) of n values."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not vals:
            return cls(None, None, 0)
        mean = sum(vals) / len(vals)
        if len(vals) < 2:
            return cls(mean, None, len(vals))
        var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
        return cls(mean, math.sqrt(var), len(vals))

    def scaled(self, factor: float) -> Stat:
        return Stat(
            None if self.mean is None else self.mean * factor,
            None if self.std is None else self.std * factor,
            self.n,
        )


def config_key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _summary_key(config: dict[str, Any]) -> str:
    return config_key({k: v for k, v in config.items() if k != OFF_RECIPE_KEY})


@dataclass
class ConfigResult:
    """All runs of one configuration."""

    config: dict[str, Any]
    runs: list[RunRecord] = field(default_factory=list)  # complete, one per seed
    failed: list[RunRecord] = field(default_factory=list)
    unfinished: list[RunRecord] = field(default_factory=list)
    duplicates: list[RunRecord] = field(default_factory=list)
    expected_seeds: tuple[int, ...] | None = None  # the seeds asked for, when known
    expected_count: int | None = None  # how many seeds to expect when which ones is unknown

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def tasks(self) -> TaskSpec:
        """The task spec of its runs (one configuration: one data fingerprint, one spec)."""
        runs = self.runs or self.failed or self.unfinished
        return runs[0].tasks if runs else load_task_spec("derm7pt")

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs if r.seed is not None)

    @property
    def missing_seeds(self) -> list[int]:
        return sorted(set(self.expected_seeds or ()) - set(self.seeds))

    @property
    def expected_n(self) -> int | None:
        if self.expected_seeds is not None:
            return len(self.expected_seeds)
        return self.expected_count

    @property
    def complete(self) -> bool:
        """All expected seeds finished, and no run of this configuration failed or hangs."""
        enough = not self.missing_seeds and self.n >= (self.expected_n or 0)
        return enough and not self.failed and not self.unfinished

    def stat(self, value: Callable[[dict[str, Any]], float | None]) -> Stat:
        """Stat over seeds of `value(metrics)` (e.g. `lambda m: m["avg_auc"]`)."""
        return Stat.of(_safe(value, r.metrics or {}) for r in self.runs)

    def status(self) -> str:
        """A short human status, e.g. "complete" or "incomplete: 1 of 2 seeds; failed: seed 1"."""
        if self.complete and not self.duplicates:
            return "complete"
        parts = []
        if self.expected_n is not None and self.n < self.expected_n:
            parts.append(f"{self.n} of {self.expected_n} seeds")
        if self.failed:
            parts.append("failed: " + ", ".join(_seed_name(r) for r in self.failed))
        if self.unfinished:
            parts.append("unfinished: " + ", ".join(_seed_name(r) for r in self.unfinished))
        missing_unexplained = set(self.missing_seeds) - {
            r.seed for r in (*self.failed, *self.unfinished)
        }
        if missing_unexplained:
            parts.append("not run: " + ", ".join(f"seed {s}" for s in sorted(missing_unexplained)))
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate run(s) of a seed ignored")
        head = "complete" if self.complete else "incomplete"
        return f"{head}: " + "; ".join(parts)


def _safe(value: Callable[[dict[str, Any]], float | None], metrics: dict[str, Any]) -> Any:
    try:
        return value(metrics)
    except (KeyError, TypeError):
        return None


def _seed_name(record: RunRecord) -> str:
    return "seed ?" if record.seed is None else f"seed {record.seed}"


def group_runs(
    records: Sequence[RunRecord], seeds: Sequence[int] | None = None
) -> tuple[list[ConfigResult], list[RunRecord]]:
    """(one ConfigResult per configuration, runs whose configuration is unknown).

    `seeds` states the expected seeds of every configuration; without it, a configuration
    expects the seeds its sweep(s) asked of its own jobs (`RunRecord.asked_seeds`), or else as
    many seeds as the best-covered one.
    """
    groups: dict[str, ConfigResult] = {}
    unnamed: list[RunRecord] = []
    # A run that failed before recording its identity joins the row of its configuration.
    by_summary = {
        _summary_key(r.config): r.group for r in records if r.group and r.config is not None
    }
    for record in records:
        if record.config is None:
            unnamed.append(record)
            continue
        # one row per result identity (its configuration digest); runs that recorded none are
        # grouped by their configuration summary, whose label says the identity is unknown
        key = record.group or config_key(record.config)
        if record.group is None and record.status != COMPLETE:
            key = by_summary.get(_summary_key(record.config), key)
        group = groups.setdefault(key, ConfigResult(record.config))
        if record.status == COMPLETE:
            if record.seed in group.seeds:
                group.duplicates.append(record)
            else:
                group.runs.append(record)
        elif record.status == FAILED:
            group.failed.append(record)
        else:
            group.unfinished.append(record)
    results = list(groups.values())
    for group in results:
        members = (*group.runs, *group.failed, *group.unfinished)
        asked = {s for r in members for s in r.asked_seeds or ()}
        group.expected_seeds = tuple(seeds) if seeds is not None else (tuple(sorted(asked)) or None)
    most = max((g.n for g in results), default=0)
    for group in results:
        if group.expected_seeds is None:
            # no sweep definition: expect as many seeds as the best-covered configuration
            group.expected_count = most
    return results, unnamed
