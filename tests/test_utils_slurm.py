"""Requeueing a SLURM job on its time-limit warning, with a stand-in `scontrol` on PATH."""

from __future__ import annotations

import os
from pathlib import Path

from src.utils.slurm import requeue_slurm_job, slurm_job_id
from tests.train_helpers import fake_scontrol


def _env(bin_dir: Path, **slurm: str) -> dict[str, str]:
    return {**slurm, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_the_job_id_of_a_plain_job_and_of_an_array_task() -> None:
    assert slurm_job_id({"SLURM_JOB_ID": "77"}) == "77"
    array = {"SLURM_JOB_ID": "80", "SLURM_ARRAY_JOB_ID": "79", "SLURM_ARRAY_TASK_ID": "1"}
    assert slurm_job_id(array) == "79_1"  # what scontrol takes for one task of an array
    assert slurm_job_id({}) is None


def test_requeue_asks_scontrol_for_this_job(tmp_path: Path, monkeypatch) -> None:
    calls = fake_scontrol(tmp_path)
    env = _env(tmp_path, SLURM_JOB_ID="80", SLURM_ARRAY_JOB_ID="79", SLURM_ARRAY_TASK_ID="1")
    monkeypatch.setenv("PATH", env["PATH"])
    said = requeue_slurm_job(env)
    assert calls.read_text().split() == ["requeue", "79_1"]
    assert said == "SLURM job 79_1 requeued; it resumes from the last finished epoch"


def test_a_failed_requeue_says_why_and_what_to_do(tmp_path: Path, monkeypatch) -> None:
    fake_scontrol(tmp_path, exit_code=1)
    monkeypatch.setenv("PATH", _env(tmp_path)["PATH"])
    said = requeue_slurm_job({"SLURM_JOB_ID": "77"})
    assert "requeueing SLURM job 77 failed (scontrol: error: Invalid job id specified)" in said
    assert said.endswith("rerun the same command to resume")


def test_outside_slurm_nothing_is_called(tmp_path: Path, monkeypatch) -> None:
    calls = fake_scontrol(tmp_path)
    monkeypatch.setenv("PATH", _env(tmp_path)["PATH"])
    assert "not a SLURM job" in requeue_slurm_job({})
    assert not calls.exists()


def test_a_run_folder_inside_a_slurm_job_is_named_by_the_job(monkeypatch) -> None:
    """A requeued job composes the same folder again (the start time would differ), so the
    same command finds its preempted run and resumes it."""
    from src.project import compose_config

    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    cfg = compose_config(["seed=3"], hydra_config=True)
    assert cfg.hydra.run.dir.endswith("/train/runs/aff-aab-swin/seed3_slurm77")
    monkeypatch.delenv("SLURM_JOB_ID")
    cfg = compose_config(["seed=3"], hydra_config=True)
    assert "slurm" not in cfg.hydra.run.dir and "/seed3_20" in cfg.hydra.run.dir  # a time stamp
