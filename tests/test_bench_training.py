"""`python -m src.bench training`: the whole-run throughput check, and when timings are quotable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from src.benchmarks import quiet
from src.benchmarks.throughput import PhaseStamps, estimate
from src.benchmarks.throughput_cli import write
from tests.train_helpers import run_ok


@pytest.mark.slow  # a whole time-capped benchmark in a subprocess: minutes on a busy CPU
def test_quick_training_bench_writes_every_key(tmp_path: Path):
    """The issue's CPU check, as a user runs it: all keys, numbers that hang together."""
    out = tmp_path / "out.json"
    run_ok([sys.executable, "-m", "src.bench", "training", "--quick", "--json", str(out)], 600)
    results = json.loads(out.read_text())
    assert results["complete"] is True
    assert isinstance(results["device"], str) and results["device"]
    names = [c["name"] for c in results["configs"]]
    assert names == ["AMMFM fp32", "SFF-CAT fp32", "AMMFM fp32 + device pipeline"]
    for config in results["configs"]:
        assert config["epoch_s"] == pytest.approx(config["train_epoch_s"] + config["val_epoch_s"])
        assert config["pairs_per_s"] > 0 and config["evaluation_s"] > 0
        assert config["extrapolated_from_batches"] == results["plan"]["limit_batches"]
    ammfm, sff, _ = results["configs"]
    assert ammfm["pairs_per_s"] > sff["pairs_per_s"]  # MN+ST is lighter than ST+ST
    assert [p["runs"] for p in results["packing"]] == [1, 2]
    assert all(p["pairs_per_s"] > 0 for p in results["packing"])
    estimates = results["estimates"]
    assert estimates["paper_run_s"] > 250 * ammfm["epoch_s"]
    assert estimates["table9_s"] > estimates["paper_run_s"]
    assert estimates["paper_run_fastest_s"] <= estimates["paper_run_s"]
    assert estimates["paper_run_sparse_validation_s"] < estimates["paper_run_fastest_s"]
    assert set(results["quiet"]) >= {"quotable", "foreign_cpu_share"}
    markdown = out.with_suffix(".md").read_text()
    assert "AMMFM fp32" in markdown and "Table 9" in markdown


def test_a_phase_is_scaled_from_its_first_and_steady_batches():
    phase = PhaseStamps(start=10.0, batch_ends=[13.0, 14.0, 15.5, 16.0])
    assert phase.seconds(4) == pytest.approx(6.0)  # ran whole: measured, not scaled
    assert phase.seconds(10) == pytest.approx(3.0 + 9 * 1.0)  # first 3 s, then median 1 s


def test_estimates_follow_the_measured_parts():
    ammfm = {"name": "AMMFM fp32", "config": "AMMFM", "precision": "32-true", "setup_s": 5.0,
             "epoch_s": 2.0, "train_epoch_s": 1.5, "val_epoch_s": 0.5,
             "evaluation_s": 10.0}  # fmt: skip
    sff = {**ammfm, "name": "SFF-CAT fp32", "config": "SFF-CAT", "epoch_s": 4.0}
    sff["train_epoch_s"] = 3.0
    packing = [{"runs": 1, "pairs_per_s": 100.0}, {"runs": 4, "pairs_per_s": 250.0}]
    est = estimate([ammfm, sff], packing)
    paper = 5.0 + 250 * 2.0 + 1.5 / 3 + 10.0
    assert est["paper_run_s"] == pytest.approx(paper)
    sff_run = 5.0 + 250 * 4.0 + 3.0 / 3 + 10.0
    assert est["table9_sequential_s"] == pytest.approx(10 * (3 * paper + 3 * sff_run))
    assert est["table9_s"] == pytest.approx(est["table9_sequential_s"] / 2.5)
    assert est["packing_runs"] == 4
    assert est["paper_run_sparse_validation_s"] == pytest.approx(paper - 250 * 0.5 * 0.9)


def test_other_processes_cpu_time_makes_timings_unquotable():
    start = quiet.CpuSnapshot(wall_s=0.0, machine_busy_s=100.0, own_s=10.0)
    cores = 2
    alone = quiet.CpuSnapshot(wall_s=10.0, machine_busy_s=119.5, own_s=29.0)  # 0.5 s others
    shared = quiet.CpuSnapshot(wall_s=10.0, machine_busy_s=125.0, own_s=20.0)  # 15 s others
    assert quiet.foreign_share(start, alone, cores) == pytest.approx(0.5 / 20)
    assert quiet.foreign_share(start, shared, cores) == pytest.approx(15 / 20)
    verdict = quiet.verdict(start, quiet.CpuSnapshot(10.0, 200.0, 20.0))
    assert verdict["quotable"] is False and "re-take on an idle machine" in verdict["reason"]


def test_an_unquotable_result_never_replaces_a_quotable_one(tmp_path: Path):
    def results(quotable: bool) -> dict:
        return {
            "device": "cpu", "mode": "quick", "command": "c", "git_commit": "x",
            "started_utc": "t", "duration_s": 1.0, "load_average": {"start": [0], "end": [0]},
            "plan": {"image_size": 64, "batch": 24, "num_workers": 0, "limit_batches": 2},
            "quiet": {"quotable": quotable, "foreign_cpu_share": 0.5 if not quotable else 0.0,
                      "reason": None if quotable else "busy"},
            "configs": [], "packing": [], "goals": {"paper_run_s": 1, "table9_s": 1},
            "estimates": {"paper_run_s": None, "table9_s": None, "basis": "b"},
        }  # fmt: skip

    path = tmp_path / "gpu.json"
    assert write(results(True), path) == path
    assert write(results(False), path) == tmp_path / "gpu.unquotable.json"
    assert json.loads(path.read_text())["quiet"]["quotable"] is True
    assert "NOT QUOTABLE" in (tmp_path / "gpu.unquotable.md").read_text()
    fresh = tmp_path / "fresh.json"  # nothing quotable there yet: written, and marked
    assert write(results(False), fresh) == fresh
