"""The report's checkpoint-selection section: each policy's mean ± std over seeds per
configuration, and last vs SWA and best_valid vs SWA paired by seed (run folders written in
the real formats by tests/test_report.py's helpers, plus metrics.json "selection")."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from src.report import write_report
from src.reporting.runs import find_runs
from tests.test_report import AMMFM, complete_run

SWA = {0: 0.80, 1: 0.84, 2: 0.83}  # the headline
LAST = {0: 0.79, 1: 0.81, 2: 0.81}
BEST = {0: 0.81, 1: 0.80, 2: 0.78}
BEST_EPOCH = {0: 4, 1: 5, 2: 3}  # 0-based, as metrics.json records it


def _policy(avg_auc: float, **chosen: object) -> dict:
    return {**chosen, "avg_auc": avg_auc, "avg_acc": avg_auc - 0.1}


def _with_selection(run_dir: Path, seed: int) -> None:
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["selection"] = {
        "swa": _policy(SWA[seed], averaged_epochs=[4, 5]),
        "last": _policy(LAST[seed], epoch=5),
        "best_valid": _policy(BEST[seed], epoch=BEST_EPOCH[seed], metric="val/avg_auc"),
    }
    path.write_text(json.dumps(metrics))


def test_policies_are_summarised_and_paired_against_swa(tmp_path: Path) -> None:
    for seed in range(3):
        _with_selection(complete_run(tmp_path / f"s{seed}", AMMFM, seed, SWA[seed]), seed)
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False)

    table = pd.read_csv(out / "selection.csv")
    assert table["policy"].tolist() == [
        "SWA average (headline)", "last epoch", "best validation epoch"
    ]  # fmt: skip
    for row, values in zip(table.itertuples(), (SWA, LAST, BEST)):
        percent = [100 * v for v in values.values()]
        assert row.avg_auc_mean == pytest.approx(sum(percent) / 3)
        assert row.avg_auc_std == pytest.approx(stats.tstd(percent))
        assert row.n == 3
    assert table["best_valid_epochs"].tolist()[2] == "5,6,4"  # counted from 1

    tests = pd.read_csv(out / "selection_comparisons.csv")
    assert tests[["a", "b", "metric"]].values.tolist() == [
        ["last", "swa", "avg_auc"],
        ["last", "swa", "avg_acc"],
        ["best_valid", "swa", "avg_auc"],
        ["best_valid", "swa", "avg_acc"],
    ]
    for row in tests.itertuples():
        other = LAST if row.a == "last" else BEST
        a = [100 * other[s] for s in range(3)]
        b = [100 * SWA[s] for s in range(3)]
        diffs = [x - y for x, y in zip(a, b)]
        half = stats.t.ppf(0.975, 2) * stats.tstd(diffs) / math.sqrt(3)
        assert row.mean_diff == pytest.approx(sum(diffs) / 3)  # acc = auc - 0.1: same diffs
        assert (row.ci_low, row.ci_high) == pytest.approx(
            (row.mean_diff - half, row.mean_diff + half)
        )
        assert row.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
        assert row.n_pairs == 3
    report = (out / "report.md").read_text()
    assert "## Checkpoint-selection policies" in report and "policy − SWA" in report


def test_runs_without_policies_write_no_selection_files(tmp_path: Path) -> None:
    complete_run(tmp_path / "s0", AMMFM, 0, 0.8)
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False)
    assert not (out / "selection.csv").exists()
    assert "Checkpoint-selection" not in (out / "report.md").read_text()
