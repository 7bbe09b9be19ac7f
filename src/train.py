"""Train and evaluate one configuration: `python -m src.train [overrides]`.

Recipe: seed -> datamodule, module, callbacks, loggers, trainer -> fit (SWA) -> save the final
averaged weights -> TTA predictions on valid/test -> fusion weight search on valid -> test
metrics -> metrics.json, predictions.csv, plots. Returns the VALIDATION AVG AUC (of P_FI with the
searched weights) to sweepers: validation selects, the test split only reports.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.runs.sweep import check_one_process_per_job, run_sweep_job, selection_metric
from src.utils.errors import exit_on_user_error

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit one configuration and evaluate it; returns the metrics written to metrics.json."""
    from src.config_checks import check_config_values
    from src.data.formats import check_data_local
    from src.runs.files import METRICS_FILE, is_complete
    from src.runs.identity import check_reusable, run_identity
    from src.utils.folder_lock import folder_lock

    check_config_values(cfg)  # out-of-range values fail before anything is read or written
    # A missing release fails first: before torch loads, the network is built or weights fetched.
    check_data_local(cfg.data)
    if cfg.model.metadata:  # the columns against the task spec, before anything is written
        from src.data.tasks import load_task_spec
        from src.models.metadata import select_metadata

        tasks = load_task_spec(cfg.data.tasks)
        select_metadata(cfg.model.metadata, cfg.model.allow_leaky_metadata, tasks, cfg.fusion.mode)
    from src.models.network import validate_network_config
    from src.runs.checkpoints import resolve_ckpt_path
    from src.utils.distributed import launch_rank

    validate_network_config(cfg)  # incompatible choices fail before any data loads
    run_dir = Path(cfg.paths.output_dir)
    identity = run_identity(cfg)  # what this result is: settings, data fingerprint, weights
    if cfg.get("skip_complete") and cfg.get("ckpt_path") is None and is_complete(run_dir):
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        check_reusable(identity, metrics.get("identity"), str(run_dir))
        log.info("%s/%s is complete: skipped (skip_complete=false reruns)", run_dir, METRICS_FILE)
        _note_missing_probe(cfg, run_dir)
        return metrics

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), run_dir, identity)
    if ckpt_path is None and cfg.resume_preempted:
        from src.runs.checkpoints import preempted_checkpoint

        ckpt_path = preempted_checkpoint(run_dir, identity)  # the same command resumes
        if ckpt_path is not None:
            log.info("%s was preempted: resuming from %s", run_dir, ckpt_path.name)
    # A second run into this folder is turned away; a DDP process that rank zero started
    # shares rank zero's folder (and lock).
    with folder_lock(run_dir) if launch_rank() == 0 else nullcontext():
        return _fit_and_evaluate(cfg, run_dir, ckpt_path, identity)


def _note_missing_probe(cfg: DictConfig, run_dir: Path) -> None:
    """probe=true on a complete run without robustness.json: say how to probe it."""
    from src.runs.files import ROBUSTNESS_FILE, final_checkpoint

    if cfg.get("probe") and not (run_dir / ROBUSTNESS_FILE).is_file():
        log.warning(
            "probe=true: %s has no %s; probe it with python -m src.probe ckpt_path=%s",
            run_dir,
            ROBUSTNESS_FILE,
            final_checkpoint(run_dir),
        )


def _fit(
    trainer: Any,
    module: Any,
    datamodule: Any,
    ckpt_path: Path | None,
    run_dir: Path,
    slurm_requeue: bool,
) -> None:
    """trainer.fit; a SIGTERM (Lightning stops the fit with a SystemExit of status 0) or a
    SIGUSR1 becomes a failure recorded in error.txt and a non-zero exit, the epoch checkpoints
    left to resume. A SIGUSR1 in a SLURM job requeues it when `slurm_requeue`."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from src.runs.status import (
        Preempted,
        clear_failure,
        record_failure,
        time_limit_warning_stops,
    )

    try:
        with time_limit_warning_stops() as warned:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException as err:
        what = "SIGUSR1 (the time-limit warning)" if warned else "SIGTERM"
        then = "rerun the same command (or ckpt_path=last) to resume from the last finished epoch"
        if warned and slurm_requeue and trainer.is_global_zero:
            from src.utils.slurm import requeue_slurm_job, slurm_job_id

            if slurm_job_id() is not None:
                then = requeue_slurm_job()
        preempted = Preempted(f"{what} received in epoch {trainer.current_epoch}; {then}")
        record_failure(run_dir, preempted)
        raise preempted from err
    clear_failure(run_dir)  # a preempted run resumed to the end is no longer a failure


def _retire_resume_checkpoints(run_dir: Path, keep: bool) -> None:
    """Once the run is complete (metrics.json written), its epoch checkpoints and last.ckpt
    have nothing left to resume: they go, final.ckpt stays (keep_resume_checkpoints=true keeps
    them). An incomplete run keeps them, so it can still be resumed."""
    from src.runs.checkpoints import drop_resume_checkpoints
    from src.runs.files import is_complete

    if keep or not is_complete(run_dir):
        return
    freed = drop_resume_checkpoints(run_dir)
    if freed:
        log.info(
            "run complete: resume checkpoints removed (%.1f MB freed; keep_resume_checkpoints="
            "true keeps them), checkpoints/final.ckpt kept",
            freed / 1e6,
        )


def _fit_and_evaluate(
    cfg: DictConfig, run_dir: Path, ckpt_path: Path | None, identity: dict[str, Any]
) -> dict[str, Any]:
    import lightning as L

    from src.models.selection import BestValidSnapshot
    from src.models.swa import swa_callback
    from src.runs.checkpoints import save_final_checkpoint
    from src.runs.evaluate import evaluate_and_save
    from src.runs.files import final_checkpoint
    from src.runs.identity import write_identity
    from src.runs.loggers import (
        drop_unusable_callbacks,
        finish_wandb,
        instantiate_callbacks,
        instantiate_loggers,
        resolved_container,
    )
    from src.runs.selection import selection_hook
    from src.runs.setup import module_and_datamodule, start_run, trainer_settings

    start_run(cfg)
    write_identity(run_dir, identity)
    started = time.time()
    module, datamodule = module_and_datamodule(cfg)
    module.identity = identity  # travels in every checkpoint: resuming checks it
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    swa = swa_callback(cfg.model, int(cfg.trainer.max_epochs), int(cfg.seed))
    if swa is not None:
        callbacks.append(swa)
    best = BestValidSnapshot() if cfg.model.selection_policies else None
    if best is not None:
        callbacks.append(best)
    loggers = instantiate_loggers(
        cfg.get("logger"),
        run_dir,
        ckpt_path.parent.parent if ckpt_path else None,
        group_suffix=identity["configuration"],
    )
    callbacks = drop_unusable_callbacks(
        callbacks,
        bool(loggers),
        cfg.trainer.get("enable_progress_bar", True),
        cfg.trainer.get("enable_model_summary", True),
    )
    trainer: L.Trainer = hydra.utils.instantiate(
        trainer_settings(cfg.trainer, callbacks), callbacks=callbacks, logger=loggers
    )
    try:
        for logger in loggers:
            logger.log_hyperparams(resolved_container(cfg))
        if cfg.train:
            _fit(trainer, module, datamodule, ckpt_path, run_dir, bool(cfg.slurm_requeue))
            if swa is not None:
                swa.apply(trainer, module)  # no-op unless fit had no epoch left to train
            save_final_checkpoint(trainer, final_checkpoint(run_dir))  # averaged weights
        if not cfg.test or not trainer.is_global_zero:
            return {}  # under DDP rank zero alone evaluates and writes the results
        extra = {
            "epochs_trained": trainer.current_epoch,
            "wall_time_s": round(time.time() - started, 1),
            "checkpoint": str(final_checkpoint(run_dir)),
            "identity": identity,
        }
        final_epoch = trainer.current_epoch - 1  # 0-based, of the weights trained last
        more = selection_hook(cfg, module, datamodule, run_dir, swa, best, final_epoch)
        metrics = evaluate_and_save(
            cfg, module, datamodule, run_dir, loggers, extra, step=trainer.global_step, more=more
        )
        if cfg.get("probe"):
            from src.runs.probe import run_probe

            weights = metrics["fusion_weights"]
            run_probe(cfg, module, datamodule, weights, run_dir, extra["checkpoint"])
        _retire_resume_checkpoints(run_dir, bool(cfg.get("keep_resume_checkpoints")))
        return metrics
    finally:
        finish_wandb()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        check_one_process_per_job(cfg.trainer)
        return run_sweep_job(train, cfg)
    from src.runs.files import removed_if_failed_before_training

    run_dir, log_dir = Path(cfg.paths.output_dir), Path(cfg.paths.log_dir)
    with removed_if_failed_before_training(run_dir, log_dir):
        return selection_metric(train(cfg))


if __name__ == "__main__":
    main()
