"""Clocks, memory and machine state for the benchmarks."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued GPU work, so a clock reading covers it (no-op on CPU). torch is
    imported here only: the memory probe of ONNX models (ort_memory.py) runs without it."""
    if device is None:
        return
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def summarize(seconds: Sequence[float]) -> dict[str, float | int]:
    """Median, quartiles and extremes of per-call times, in seconds."""
    values = sorted(seconds)
    if not values:
        raise ValueError("no timings to summarise")
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return {
        "median_s": statistics.median(values),
        "q1_s": q1,
        "q3_s": q3,
        "min_s": values[0],
        "max_s": values[-1],
        "n": len(values),
    }


def time_calls(
    fn: Callable[[], Any], warmup: int, runs: int, device: torch.device | str | None = None
) -> dict[str, float | int]:
    """Call `fn` `warmup` times untimed, then `runs` times timed; summary of the timed calls."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return summarize(times)


def alternate_rounds(
    calls: dict[str, Callable[[], Any]], rounds: int, per_round: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Each callable's median seconds per round, the callables timed in alternation
    (`rounds` rounds of `per_round` calls each, after `warmup` untimed calls of each): a drift
    of the machine's speed hits all alike, which timings one after the other cannot promise."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            times[name].append(time_calls(fn, 0, per_round)["median_s"])
    return times


def ratio_of(times: dict[str, list[float]], row: str, reference: str) -> dict[str, float]:
    """Median latency of `row` over `reference` and the spread of the per-round ratios."""
    per_round = sorted(a / b for a, b in zip(times[row], times[reference], strict=True))
    return {
        "ratio": statistics.median(times[row]) / statistics.median(times[reference]),
        "round_ratio_min": per_round[0],
        "round_ratio_max": per_round[-1],
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far: Linux's VmHWM (the peak of this program,
    reset by exec, unlike getrusage's ru_maxrss, which keeps the peak of the process that
    started it); elsewhere ru_maxrss (macOS reports bytes)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if platform.system() == "Darwin" else 2**10)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)
