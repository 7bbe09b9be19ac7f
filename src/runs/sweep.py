"""Multiruns that go on past a failed job, and end by listing the failures.

Jobs of a sweep record their failures instead of raising (`run_sweep_job`), so every other job
still runs. The Hydra callback `SweepSummary` lists those failures once the sweep is over and
makes the command exit with status 1, so scripts and schedulers see that the sweep is not
complete. Re-running the same command retries the failed jobs and skips the finished ones.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from src.runs.files import ERROR_FILE
from src.runs.status import clear_failure, read_failure, record_failure
from src.utils.distributed import launched_by_cluster, requested_processes
from src.utils.errors import UserError
from src.utils.folder_lock import FolderInUse

log = logging.getLogger(__name__)

# Jobs of this process's sweeps turned away because another run held their folder (e.g. two
# sweeps into one sweep folder at once): (run folder, reason). Not recorded in the folder,
# which belongs to the run that holds it.
IN_USE: list[tuple[Path, str]] = []


SWEEP_SIZE_ENV = "AMMFM_SWEEP_JOBS"  # the sweep's job count, for the jobs' own processes


def sweep_size(config: DictConfig) -> int | None:
    """How many jobs the sweep of `config` (a multirun's Hydra config) launches: the grid of
    `hydra.sweeper.params` and the command line (the command line wins per key), or Optuna's
    `n_trials`; None for another sweeper."""
    sweeper = OmegaConf.select(config, "hydra.sweeper")
    if sweeper is None:
        return None
    if str(sweeper.get("_target_", "")).endswith(".BasicSweeper"):
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        overrides = OverridesParser.create().parse_overrides(
            [*params, *config.hydra.overrides.task]
        )
        return len(BasicSweeper.split_arguments(overrides, None)[0])
    trials = sweeper.get("n_trials")
    return int(trials) if trials is not None else None


class SweepSummary(Callback):
    """Says how many jobs a sweep has and which one each job is ("job 3/6: ..."), then lists
    the failed jobs at the end."""

    def __init__(self) -> None:
        self._started = 0.0
        self._sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.time() - 1.0  # file times may be rounded down to the second
        self._sweep_dir = Path(str(config.hydra.sweep.dir))
        total = sweep_size(config)
        if total is not None:
            os.environ[SWEEP_SIZE_ENV] = str(total)  # the launchers' job processes inherit it
        log.info("sweep of %s job(s) into %s", total or "an open number of", self._sweep_dir)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        job = config.hydra.job
        if config.hydra.mode != RunMode.MULTIRUN or job.get("num") is None:
            return
        total = os.environ.get(SWEEP_SIZE_ENV, "?")
        log.info("job %d/%s: %s", job.num + 1, total, " ".join(config.hydra.overrides.task))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(SWEEP_SIZE_ENV, None)
        if self._sweep_dir is None or not self._sweep_dir.is_dir():
            return
        failed = sorted(
            path.parent
            for path in self._sweep_dir.rglob(ERROR_FILE)
            if path.stat().st_mtime >= self._started
        )
        in_use = [(run_dir, reason) for run_dir, reason in IN_USE if run_dir not in failed]
        IN_USE.clear()
        if not failed and not in_use:
            log.info("sweep finished without failed jobs: %s", self._sweep_dir)
            return
        for run_dir in failed:
            log.error("FAILED %s: %s", run_dir.relative_to(self._sweep_dir), read_failure(run_dir))
        for run_dir, reason in in_use:
            log.error("NOT RUN %s: %s", run_dir, reason)
        log.error(
            "%d job(s) of this sweep failed or were not run (details in each failed run's %s); "
            "finished runs are kept. "
            "Fix the cause and re-run the same command: finished runs are skipped. "
            "`python -m src.report %s` lists them too.",
            len(failed) + len(in_use),
            ERROR_FILE,
            self._sweep_dir,
        )
        raise SystemExit(1)


def check_one_process_per_job(trainer_cfg: DictConfig) -> None:
    """Refuse DDP inside a local multirun: Lightning's launcher would start each extra process
    by re-running the whole command line, the sweep included."""
    devices = trainer_cfg.get("devices", 1)
    if requested_processes(devices) > 1 and not launched_by_cluster():
        raise UserError(
            f"trainer.devices={devices} in a multirun: Lightning's DDP launcher would re-run the "
            "whole sweep in every process; run multi-device jobs one at a time (without -m), or "
            "sweep with hydra/launcher=slurm and hydra.launcher.tasks_per_node=<devices>"
        )


def run_sweep_job(job: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> float | None:
    """Run `job(cfg)` as one job of a multirun: a failure is recorded in its run directory, not
    raised; returns the job's validation AVG AUC for the sweeper (`selection_metric`).

    Hydra's launchers stop a sweep at the first job that raises; recording the error in
    `<run dir>/error.txt` instead lets the other jobs run, and lets `src.report` list it.
    """
    run_dir = Path(cfg.paths.output_dir)
    metrics: dict[str, Any] | None = None
    try:
        metrics = job(cfg)
    except FolderInUse as err:  # another sweep's job is writing there: leave its folder alone
        IN_USE.append((run_dir, str(err)))
        log.error("job not run, the sweep goes on: %s", err)
    except Exception as err:
        line = record_failure(run_dir, err)
        log.error("job failed, the sweep goes on: %s (traceback in %s)", line, run_dir / ERROR_FILE)
    if metrics is None:
        gc.collect()  # free the failed job's model and data before the next job starts
        return None
    clear_failure(run_dir)
    return selection_metric(metrics)


def selection_metric(metrics: dict[str, Any]) -> float | None:
    """What a sweeper (Optuna, a "best run") maximises: the validation AVG AUC of P_FI, never a
    test number."""
    return (metrics.get("valid") or {}).get("avg_auc")
