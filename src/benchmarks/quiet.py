"""Is the machine quiet enough for a timing to be quoted?

The CPU time the whole machine spent busy over a measurement (from /proc/stat, steal time
included: a virtual machine's host giving our cores to others is contention too), minus the CPU
time of this process and its children, is what other processes took. Over a set share of the
machine's capacity, the timings are marked unquotable.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("src.bench")

# Other processes may use at most this share of all cores during a quotable measurement.
MAX_FOREIGN_SHARE = 0.10
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (not idle, iowait)


@dataclass(frozen=True)
class CpuSnapshot:
    wall_s: float
    machine_busy_s: float | None  # None where /proc/stat is missing (not Linux)
    own_s: float  # this process and its waited-for children


def _machine_busy_s() -> float | None:
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in BUSY_FIELDS if i < len(fields)) / ticks


def _own_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def snapshot() -> CpuSnapshot:
    return CpuSnapshot(time.monotonic(), _machine_busy_s(), _own_s())


def foreign_share(start: CpuSnapshot, end: CpuSnapshot, cores: int | None = None) -> float | None:
    """Share of all cores' time that other processes used between two snapshots."""
    if start.machine_busy_s is None or end.machine_busy_s is None:
        return None
    capacity = (end.wall_s - start.wall_s) * (cores or os.cpu_count() or 1)
    if capacity <= 0:
        return None
    others = (end.machine_busy_s - start.machine_busy_s) - (end.own_s - start.own_s)
    return max(others, 0.0) / capacity


def verdict(start: CpuSnapshot, end: CpuSnapshot, limit: float = MAX_FOREIGN_SHARE) -> dict:
    """{"quotable", "foreign_cpu_share", "limit", "reason"} for the span start..end."""
    share = foreign_share(start, end)
    result: dict[str, Any] = {"foreign_cpu_share": share, "limit": limit}
    if share is None:
        result.update(quotable=False, reason="no /proc/stat: other processes' load is unknown")
    elif share > limit:
        result.update(
            quotable=False,
            reason=f"other processes used {share:.0%} of the CPU (limit {limit:.0%}): "
            "re-take on an idle machine",
        )
    else:
        result.update(quotable=True, reason=None)
    return result


def verdict_line(verdict: dict[str, Any]) -> str:
    """One markdown line saying whether the timings can be quoted."""
    if verdict["quotable"]:
        return f"- quotable: other processes used {verdict['foreign_cpu_share']:.1%} of the CPU"
    return f"- **NOT QUOTABLE**: {verdict['reason']}"


def is_quotable_file(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text())["quiet"]["quotable"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_results(
    results: dict[str, Any], json_path: Path, markdown_path: Path, markdown: str
) -> Path:
    """Write `results` (with their "quiet" verdict) as JSON and `markdown`, atomically; returns
    where the JSON went. Unquotable results never replace quotable ones: they go beside them,
    as `<stem>.unquotable.json` and `.md`."""
    from src.utils.io import atomic_write_json, atomic_write_text

    verdict = results["quiet"]
    if not verdict["quotable"] and is_quotable_file(json_path):
        kept = json_path
        json_path = json_path.with_suffix(".unquotable.json")
        markdown_path = json_path.with_suffix(".md")
        log.error("%s; kept the quotable %s, wrote %s", verdict["reason"], kept, json_path)
    atomic_write_json(json_path, results)
    atomic_write_text(markdown_path, markdown)
    return json_path
