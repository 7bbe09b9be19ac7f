"""Sweeps: real `python -m src.train -m` runs in a subprocess. A failing job does not stop the
others and is recorded with its error line; a re-run skips finished runs (and refuses to reuse
them under other settings); src.report turns the sweep into mean ± std per configuration.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from src.config import job_suffix
from src.project import PROJECT_ROOT
from src.report import main as report_main
from src.runs.files import ERROR_FILE
from src.runs.status import (
    clear_failure,
    error_line,
    read_failure,
    record_failure,
)
from src.utils.errors import UserError


def run_sweep(overrides: list[str], sweep_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # several torch threads on a shared 2-core machine are slower
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
    }
    command = [sys.executable, "-m", "src.train", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def tiny_suffix(release: Path, tmp_path: Path) -> str:
    """What `tiny` adds to a job's folder name: its result-changing overrides, the data root
    among them (conf/hydra/default.yaml)."""
    return job_suffix(tiny(release, tmp_path))


def tiny(release: Path, tmp_path: Path) -> list[str]:
    """Seconds per job: MobileNet single-stream models, 32 px, 2 batches, one TTA view."""
    return [
        "debug=fast",
        "backbone=mobilenet",
        f"data.root={release}",
        "data.synthetic=False",  # as Hydra records it in the job's overrides (the folder name)
        f"paths.log_dir={tmp_path / 'logs'}",
        "model.tta_views=[identity]",
        "model.weight_grid_step=0.25",
    ]


# ------------------------------------------------------------------------- failure records
def test_error_line_record_read_and_clear(tmp_path: Path) -> None:
    try:
        raise UserError("fusion=derm_only has no clinical stream\nsecond line")
    except UserError as err:
        line = record_failure(tmp_path, err)
    assert line == "UserError: fusion=derm_only has no clinical stream"
    text = (tmp_path / ERROR_FILE).read_text()
    assert text.startswith(line + "\n\nTraceback") and "second line" in text
    assert read_failure(tmp_path) == line
    assert error_line(RuntimeError()) == "RuntimeError"
    clear_failure(tmp_path)
    assert read_failure(tmp_path) is None
    clear_failure(tmp_path)  # nothing to clear: no error


def test_sweep_size_counts_the_table_grid_and_the_command_line_wins_per_key() -> None:
    from omegaconf import OmegaConf

    from src.project import compose_config
    from src.runs.sweep import sweep_size

    cfg = compose_config(["experiment=table9"], hydra_config=True)
    assert sweep_size(cfg) == 60  # 6 configurations x 10 seeds (experiments/README.md)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.overrides.task = ["seed=range(2)", "model.lr=1e-3,1e-4"]
    assert sweep_size(cfg) == 6 * 2 * 2


def test_a_job_whose_folder_another_sweep_holds_leaves_that_folder_alone(
    synthetic_release: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two sweeps into one sweep folder at once: the second one's job finds the first one's
    job writing its folder (the folder lock). It must not record error.txt there (that run is
    fine: its report row and its own sweep's summary would count it failed), and its own sweep
    must still end non-zero, naming the job it did not run."""
    from omegaconf import OmegaConf

    from src.runs.sweep import SweepSummary, run_sweep_job
    from src.train import train
    from src.utils.folder_lock import folder_lock
    from tests.train_helpers import tiny_config

    sweep = tmp_path / "sweep"
    run_dir = sweep / "aff-aab-mobilenet" / "seed0"
    summary = SweepSummary()
    summary.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    with folder_lock(run_dir):  # the other sweep's job, training
        assert run_sweep_job(train, tiny_config(synthetic_release, run_dir)) is None
        assert not (run_dir / ERROR_FILE).exists()
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]
    with pytest.raises(SystemExit) as ended:
        summary.on_multirun_end(OmegaConf.create({}))
    assert ended.value.code == 1
    assert f"NOT RUN {run_dir}: {run_dir} is in use by another run (pid" in caplog.text


# ------------------------------------------------------------------------- real sweeps
def test_failed_jobs_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """Invalid combinations fail before any data loads: both jobs run, both are recorded."""
    sweep = tmp_path / "sweep"
    result = run_sweep(
        ["fusion=derm_only", "block=aab,bab", "backbone=mobilenet", "backbone.pretrained=false"],
        sweep,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    folders = {}
    for block in ("aab", "bab"):  # the folder names the override the name does not say
        (folders[block],) = sweep.glob(f"derm_only-{block}-mobilenet_backbone.pretrained-*/seed0")
        line = read_failure(folders[block])
        assert line is not None and line.startswith("UserError: "), result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "2 job(s) of this sweep failed" in log
    assert f"sweep of 2 job(s) into {sweep}" in log  # every job says where it is in the sweep
    assert "job 1/2: fusion=derm_only block=aab" in log and "job 2/2: " in log
    assert f"FAILED {folders['bab'].relative_to(sweep)}: UserError" in log


@pytest.mark.slow
def test_sweep_report_rerun_skip_and_settings_guard(
    synthetic_release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2 configurations x 2 seeds; one job's run folder is broken (its checkpoints folder is a
    file), so that job fails after training while the three others finish."""
    suffix = tiny_suffix(synthetic_release, tmp_path)
    sweep = tmp_path / "sweep"
    overrides = [
        *tiny(synthetic_release, tmp_path),
        "+experiment/row=derm_only,clin_only",
        "seed=0,1",
    ]
    broken = sweep / f"clin_only-cat-mobilenet{suffix}" / "seed1"
    broken.mkdir(parents=True)
    (broken / "checkpoints").write_text("not a folder")

    first = run_sweep(overrides, sweep)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "1 job(s) of this sweep failed" in first.stdout + first.stderr
    finished = sorted(p.parent.relative_to(sweep).as_posix() for p in sweep.rglob("metrics.json"))
    assert finished == [
        f"clin_only-cat-mobilenet{suffix}/seed0",
        f"derm_only-cat-mobilenet{suffix}/seed0",
        f"derm_only-cat-mobilenet{suffix}/seed1",
    ]
    assert read_failure(broken).startswith("FileExistsError: ")  # type: ignore[union-attr]

    report_main([str(sweep)])
    assert "4 runs (3 complete, 1 failed, 0 unfinished)" in capsys.readouterr().out
    out = sweep / "report"
    overview = pd.read_csv(out / "configurations.csv").set_index("configuration")
    derm_aucs = [
        json.loads((sweep / f"derm_only-cat-mobilenet{suffix}/seed{s}/metrics.json").read_text())[
            "avg_auc"
        ]
        for s in (0, 1)
    ]
    mean, std = 100 * statistics.mean(derm_aucs), 100 * statistics.stdev(derm_aucs)  # n - 1
    assert overview.loc["derm-only MN", "n"] == 2
    assert overview.loc["derm-only MN", "avg_auc_mean"] == pytest.approx(mean, abs=0.01)
    assert overview.loc["derm-only MN", "avg_auc_std"] == pytest.approx(std, abs=0.01)
    assert overview.loc["derm-only MN", "status"] == "complete"
    clin_auc = json.loads(
        (sweep / f"clin_only-cat-mobilenet{suffix}/seed0/metrics.json").read_text()
    )
    assert overview.loc["clin-only MN", "n"] == 1  # the failed seed is not averaged in
    assert overview.loc["clin-only MN", "avg_auc_mean"] == pytest.approx(
        clin_auc["avg_auc"] * 100, abs=0.01
    )
    assert overview.loc["clin-only MN", "status"] == "incomplete: 1 of 2 seeds; failed: seed 1"
    failures = pd.read_csv(out / "failures.csv")
    assert failures["error"].str.startswith("FileExistsError").tolist() == [True]
    table7 = pd.read_csv(out / "table7.csv").set_index("paper_row")
    assert table7.loc["t7-derm-mn", "n"] == 2 and table7.loc["t7-clin-mn", "n"] == 1
    report = (out / "report.md").read_text()
    assert f"{mean:.1f} ± {std:.1f} (n=2)" in report
    assert (out / "avg_auc_vs_params.png").is_file() and len(list((out / "roc").glob("*.png"))) == 2

    # Fix the broken folder and re-run the same command: only the failed job trains again.
    (broken / "checkpoints").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in sweep.rglob("metrics.json")}
    second = run_sweep(overrides, sweep)
    assert second.returncode == 0, second.stderr[-3000:]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # skipped, not retrained
    assert (broken / "metrics.json").is_file() and read_failure(broken) is None
    assert (second.stdout + second.stderr).count("is complete: skipped") == 3

    # A finished run of another experiment (here: its recorded learning rate) is not reused.
    metrics = json.loads((broken / "metrics.json").read_text())
    metrics["identity"]["settings"]["model.lr"] = 0.002
    (broken / "metrics.json").write_text(json.dumps(metrics))
    stamps = {p: p.stat().st_mtime_ns for p in sweep.rglob("metrics.json")}
    third = run_sweep(overrides, sweep)
    assert third.returncode == 1
    line = read_failure(broken)
    assert line is not None and "holds a finished run of another experiment" in line
    assert "model.lr: 0.002 -> 3e-05" in line
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


@pytest.mark.slow
def test_submitit_local_launcher_runs_jobs_and_records_failures(
    synthetic_release: Path, tmp_path: Path
) -> None:
    """The submitit code path (as on SLURM) with local processes: one job trains, one fails."""
    suffix = tiny_suffix(synthetic_release, tmp_path)
    sweep = tmp_path / "sweep"
    overrides = [
        *tiny(synthetic_release, tmp_path),
        "fusion=clin_only",
        "block=cat,aab",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=15",
    ]
    result = run_sweep(overrides, sweep)
    assert result.returncode == 1, result.stderr[-3000:]
    assert (sweep / f"clin_only-cat-mobilenet{suffix}/seed0/metrics.json").is_file()
    line = read_failure(sweep / f"clin_only-aab-mobilenet{suffix}/seed0")
    assert line is not None and line.startswith("UserError: ")
    assert list((sweep / ".submitit").iterdir())  # submitit's job folders


@pytest.mark.slow
def test_packed_runs_on_one_device_give_the_same_metrics_as_one_at_a_time(
    synthetic_release: Path, tmp_path: Path
) -> None:
    """hydra/launcher=pack trains two seeds side by side in their own processes; each run's
    results equal those of the same seed run alone (packing changes speed, not results)."""
    suffix = tiny_suffix(synthetic_release, tmp_path)
    overrides = [*tiny(synthetic_release, tmp_path), "+experiment/row=derm_only", "seed=0,1"]
    packed = run_sweep(
        [*overrides, "hydra/launcher=pack", "hydra.launcher.n_jobs=2"], tmp_path / "p"
    )
    assert packed.returncode == 0, packed.stderr[-3000:]
    alone = run_sweep(overrides, tmp_path / "alone")
    assert alone.returncode == 0, alone.stderr[-3000:]
    for seed in (0, 1):
        job = f"derm_only-cat-mobilenet{suffix}/seed{seed}/metrics.json"
        a = json.loads((tmp_path / "p" / job).read_text())
        b = json.loads((tmp_path / "alone" / job).read_text())
        assert a["avg_auc"] == pytest.approx(b["avg_auc"], abs=1e-6), seed
        assert a["fusion_weights"] == b["fusion_weights"]
