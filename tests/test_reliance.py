"""The report's reliance table: AVG AUC drops read from the robustness.json of run folders,
mean ± std over seeds per configuration, and the paper's comparisons of those drops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from src.report import write_report
from src.reporting.aggregate import group_runs
from src.reporting.reliance import DROPS, reliance, reliance_comparisons
from src.reporting.runs import find_runs
from src.runs.files import ROBUSTNESS_FILE
from tests.test_report import AMMFM, BASELINE, complete_run, sweep_file

# (modality, kind) -> AVG AUC, as a probe of a run with as_is AVG AUC `as_is` would record
MISSING = (("clinic", "missing_mean"), ("clinic", "missing_shuffled"))
MISSING += (("derm", "missing_mean"), ("derm", "missing_shuffled"))


def _robustness(run_dir: Path, as_is: float, drops: tuple[float, float, float, float]) -> None:
    conditions = [{"modality": "none", "kind": "as_is", "severity": 0, "avg_auc": as_is}]
    conditions += [
        {"modality": m, "kind": k, "severity": 0, "avg_auc": as_is - d}
        for (m, k), d in zip(MISSING, drops)
    ]
    conditions.append({"modality": "derm", "kind": "jpeg", "severity": 3, "avg_auc": 0.1})
    (run_dir / ROBUSTNESS_FILE).write_text(json.dumps({"split": "test", "conditions": conditions}))


@pytest.fixture
def probed_sweep(tmp_path: Path) -> Path:
    """AMMFM and the baseline, seeds 0-2; the baseline's seed 2 was never probed."""
    root = tmp_path / "sweep"
    sweep_file(root, "range(3)")
    ammfm = {0: (0.01, 0.02, 0.20, 0.25), 1: (0.03, 0.02, 0.22, 0.27), 2: (0.02, 0.02, 0.24, 0.2)}
    baseline = {0: (0.05, 0.06, 0.10, 0.12), 1: (0.07, 0.08, 0.12, 0.1)}
    for seed in range(3):
        run = complete_run(root / f"aff-aab-swin/seed{seed}", AMMFM, seed, 0.80)
        _robustness(run, 0.80, ammfm[seed])
        run = complete_run(root / f"sff-cat-swin/seed{seed}", BASELINE, seed, 0.70)
        if seed in baseline:
            _robustness(run, 0.70, baseline[seed])
    return root


def test_drops_mean_std_and_paired_comparison(probed_sweep: Path) -> None:
    results, _ = group_runs(find_runs([probed_sweep]))
    found = {r.result.config["fusion"]: r for r in reliance(results)}
    assert sorted(found["aff"].drops) == [0, 1, 2] and sorted(found["sff"].drops) == [0, 1]
    clin = found["aff"].stat("clinic_missing_mean")
    assert clin.mean == pytest.approx(2.0) and clin.std == pytest.approx(1.0) and clin.n == 3
    (compared,) = [
        c for c in reliance_comparisons(list(found.values())) if c.metric == "clinic_missing_mean"
    ]
    assert compared.kind == "AMMFM vs baseline" and compared.a.config["fusion"] == "aff"
    assert compared.n_pairs == 2  # seed 2 has no baseline probe
    assert compared.mean_diff == pytest.approx(((1 - 5) + (3 - 7)) / 2)
    assert math.isnan(compared.p_value)  # both differences are -4: no spread, no p-value


def test_report_has_the_table_and_says_who_is_left_out(probed_sweep: Path, tmp_path: Path):
    out = tmp_path / "report"
    report = write_report([str(probed_sweep)], find_runs([probed_sweep]), out, plots=False)
    text = report.read_text()
    assert "## Reliance on each image" in text and "are not in this table" in text
    table = pd.read_csv(out / "reliance.csv")
    baseline = table[table.configuration.str.startswith("SFF")].iloc[0]
    assert baseline.probed_seeds == "0 1" and baseline.complete_seeds == 3
    assert baseline.derm_missing_mean_mean == pytest.approx(11.0)
    compared = pd.read_csv(out / "reliance_comparisons.csv")
    assert set(compared.metric) == set(DROPS) and set(compared.kind) == {"AMMFM vs baseline"}


def test_no_probed_run_is_said_plainly(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    complete_run(root / "aff-aab-swin/seed0", AMMFM, 0, 0.80)
    report = write_report([str(root)], find_runs([root]), tmp_path / "out", plots=False)
    assert "No run here has a robustness.json" in report.read_text()
    assert not (tmp_path / "out" / "reliance.csv").exists()
