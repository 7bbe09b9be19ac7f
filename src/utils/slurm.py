"""Requeueing a SLURM job that got its time-limit warning, so that it comes back and resumes.

SLURM requeues a preempted job by itself (PreemptMode=REQUEUE with `--requeue`); a job that
reaches its time limit is not, so on SIGUSR1 (`sbatch --signal=USR1@<seconds>`) the run asks
for it with `scontrol requeue`, as Lightning's SLURM environment does with `auto_requeue`. The
requeued job runs the same command, which resumes the preempted run (`resume_preempted`).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping

log = logging.getLogger(__name__)

SCONTROL_TIMEOUT_S = 60.0  # a hang guard: scontrol answers in well under a second


def slurm_job_id(env: Mapping[str, str] = os.environ) -> str | None:
    """The id `scontrol requeue` takes for this job (`<array job>_<task>` in a job array),
    or None outside SLURM."""
    array_job, array_task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        return f"{array_job}_{array_task}"
    return env.get("SLURM_JOB_ID") or None


def run_stamp(start_time: str) -> str:
    """What tells a run's folder apart (`${run_stamp:${now:...}}`): `slurm<job id>` inside a
    SLURM job, so that a requeued job comes back to its own folder and resumes it; else
    `start_time`."""
    job = slurm_job_id()
    return f"slurm{job}" if job else start_time


def requeue_slurm_job(env: Mapping[str, str] = os.environ) -> str:
    """Requeue this SLURM job; returns a phrase for error.txt saying what happened (the run
    stops either way: a failed requeue leaves the same command to be run again by hand)."""
    job = slurm_job_id(env)
    if job is None:
        return "not a SLURM job: rerun the same command to resume"
    try:
        result = subprocess.run(
            ["scontrol", "requeue", job],
            capture_output=True,
            text=True,
            timeout=SCONTROL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("scontrol requeue %s failed: %s", job, err)
        return f"requeueing SLURM job {job} failed ({err}): rerun the same command to resume"
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        why = reason[0] if reason else f"exit {result.returncode}"
        log.warning("scontrol requeue %s failed: %s", job, why)
        return f"requeueing SLURM job {job} failed ({why}): rerun the same command to resume"
    log.info("SLURM job %s requeued: it will resume from the last finished epoch", job)
    return f"SLURM job {job} requeued; it resumes from the last finished epoch"
