"""A configuration with a single seed has no spread over seeds to show: the report gives its
run's bootstrap interval over the test cases instead (metrics.json "bootstrap",
src.evaluation.bootstrap)."""

from __future__ import annotations

from src.reporting.aggregate import ConfigResult
from src.reporting.cells import PCT

INTERVAL_NOTE = (
    "[low, high] after a single-seed value: that run's 95% bootstrap interval over the test "
    "cases (metrics.json `bootstrap`: seeded percentile bootstrap, `model.bootstrap_resamples` "
    "resamples). It measures the test set's sampling noise only, not the seed-to-seed spread."
)


def one_seed_interval(result: ConfigResult | None, metric: str) -> tuple[float, float] | None:
    """The bootstrap interval (%) of `metric` ("avg_auc", "avg_acc") of a one-seed
    configuration; None with more seeds or without one recorded."""
    if result is None or result.n != 1:
        return None
    bounds = ((result.runs[0].metrics or {}).get("bootstrap") or {}).get(metric)
    if not isinstance(bounds, list) or len(bounds) != 2 or None in bounds:
        return None
    return float(bounds[0]) * PCT, float(bounds[1]) * PCT


def interval_text(result: ConfigResult | None, metric: str) -> str:
    """ " [low, high]" of a one-seed configuration, else ""."""
    bounds = one_seed_interval(result, metric)
    return "" if bounds is None else f" [{bounds[0]:.1f}, {bounds[1]:.1f}]"
