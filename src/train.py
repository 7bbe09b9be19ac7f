"""Train and evaluate one configuration: `python -m src.train [overrides]`.

Recipe: seed -> datamodule, module, callbacks, loggers, trainer -> fit (SWA) -> save the final
averaged weights -> TTA predictions on valid/test -> fusion weight search on valid -> test
metrics -> metrics.json, predictions.csv, plots. Returns test AVG AUC for sweepers.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.utils.checkpoints import verify_checkpoint
from src.utils.errors import UserError, exit_on_user_error

log = logging.getLogger(__name__)


def last_checkpoint(run_dir: Path) -> Path:
    """checkpoints/last.ckpt, or the newest epoch checkpoint when the run died while
    last.ckpt was being re-linked to it."""
    folder = run_dir / "checkpoints"
    if (folder / "last.ckpt").is_file():
        return folder / "last.ckpt"
    epochs = sorted(folder.glob("epoch*.ckpt"))
    return epochs[-1] if epochs else folder / "last.ckpt"


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> Path | None:
    """`ckpt_path=last` resumes this run directory's last checkpoint; a path must exist."""
    if ckpt_path is None:
        return None
    path = last_checkpoint(run_dir) if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise UserError(
            f"ckpt_path={ckpt_path}: no checkpoint at {path}; give an existing .ckpt file, or "
            "ckpt_path=last together with hydra.run.dir=<the run's directory>"
        )
    return verify_checkpoint(path)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit one configuration and evaluate it; returns the metrics written to metrics.json."""
    import lightning as L

    from src.data.datamodule import Derm7ptDataModule
    from src.evaluation.artifacts import METRICS_FILE, is_complete
    from src.evaluation.run_evaluation import evaluate_and_save
    from src.models.module import AMMFMModule
    from src.models.network import validate_network_config
    from src.models.swa import swa_callback
    from src.utils.instantiate import (
        drop_unusable_callbacks,
        finish_wandb,
        instantiate_callbacks,
        instantiate_loggers,
        resolved_container,
    )
    from src.utils.io import atomic_path, atomic_write_text
    from src.utils.logging_setup import route_lightning_logs_to_root

    run_dir = Path(cfg.paths.output_dir)
    if cfg.get("skip_complete") and cfg.get("ckpt_path") is None and is_complete(run_dir):
        check_same_settings(cfg, run_dir)
        log.info("%s/%s is complete: skipped (skip_complete=false reruns)", run_dir, METRICS_FILE)
        return json.loads((run_dir / METRICS_FILE).read_text())

    validate_network_config(cfg)  # incompatible choices fail before any data loads
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    route_lightning_logs_to_root()
    L.seed_everything(cfg.seed, workers=True)
    started = time.time()
    module = AMMFMModule(cfg)
    datamodule = Derm7ptDataModule(
        cfg.data,
        clin_stats=module.network.norm_stats["clin"],
        derm_stats=module.network.norm_stats["derm"],
    )
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    swa = swa_callback(cfg.model, int(cfg.trainer.max_epochs), int(cfg.seed))
    if swa is not None:
        callbacks.append(swa)
    loggers = instantiate_loggers(
        cfg.get("logger"), run_dir, ckpt_path.parent.parent if ckpt_path else None
    )
    callbacks = drop_unusable_callbacks(
        callbacks, bool(loggers), cfg.trainer.get("enable_progress_bar", True)
    )
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    try:
        for logger in loggers:
            logger.log_hyperparams(resolved_container(cfg))
        if cfg.train:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            if swa is not None:
                swa.apply(trainer, module)  # no-op unless fit had no epoch left to train
            with atomic_path(run_dir / "checkpoints" / "final.ckpt") as tmp:
                trainer.save_checkpoint(tmp, weights_only=True)  # averaged weights + config
        if not cfg.test:
            return {}
        extra = {
            "epochs_trained": trainer.current_epoch,
            "wall_time_s": round(time.time() - started, 1),
            "checkpoint": str(run_dir / "checkpoints" / "final.ckpt"),
        }
        return evaluate_and_save(
            cfg, module, datamodule, run_dir, loggers, extra, step=trainer.global_step
        )
    finally:
        finish_wandb()


def check_same_settings(cfg: DictConfig, run_dir: Path) -> None:
    """A finished run is reused only if it was trained with the same result-determining settings.

    Guards a stable sweep directory against silently mixing results of different settings (for
    example a re-run with another learning rate that would otherwise skip every seed).
    """
    from src.reporting.run_status import setting_differences

    saved_file = run_dir / "config.yaml"
    if not saved_file.is_file():
        return
    saved = OmegaConf.to_container(OmegaConf.load(saved_file), resolve=False)
    current = OmegaConf.to_container(cfg, resolve=True)
    differences = setting_differences(current, saved)  # type: ignore[arg-type]
    if differences:
        raise UserError(
            f"{run_dir} holds a finished run with other settings ({'; '.join(differences)}); "
            "use another hydra.sweep.dir (or hydra.run.dir), or skip_complete=false to overwrite it"
        )


def run_sweep_job(cfg: DictConfig) -> float | None:
    """One job of a multirun: a failure is recorded in its run directory, not raised.

    Hydra's launchers stop a sweep at the first job that raises; recording the error in
    `<run dir>/error.txt` instead lets the other jobs run, and lets `src.report` list it.
    """
    from src.reporting.run_status import ERROR_FILE, clear_failure, record_failure

    run_dir = Path(cfg.paths.output_dir)
    metrics: dict[str, Any] | None = None
    try:
        metrics = train(cfg)
    except Exception as err:
        line = record_failure(run_dir, err)
        log.error("job failed, the sweep goes on: %s (traceback in %s)", line, run_dir / ERROR_FILE)
    if metrics is None:
        gc.collect()  # free the failed job's model and data before the next job starts
        return None
    clear_failure(run_dir)
    return metrics.get("avg_auc")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return run_sweep_job(cfg)
    return train(cfg).get("avg_auc")


if __name__ == "__main__":
    main()
