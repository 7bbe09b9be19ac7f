"""Build callbacks and loggers from their config groups."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from src.runs.files import WANDB_ID_FILE
from src.utils.io import atomic_write_text

log = logging.getLogger(__name__)


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    if not callbacks_cfg:
        return []
    return [hydra.utils.instantiate(c) for c in callbacks_cfg.values() if c and "_target_" in c]


def drop_unusable_callbacks(
    callbacks: list[Callback], has_logger: bool, progress_bar: bool
) -> list[Callback]:
    """Leave out callbacks the trainer would reject: an LR monitor without a logger
    (`logger=none`), a progress bar when `trainer.enable_progress_bar=false`."""
    kept = []
    for callback in callbacks:
        if isinstance(callback, LearningRateMonitor) and not has_logger:
            continue
        if isinstance(callback, ProgressBar) and not progress_bar:
            continue
        kept.append(callback)
    return kept


def wandb_run_id(run_dir: Path, resume_from: Path | None) -> str:
    """The W&B id of this run: a resumed run reuses the id stored beside its checkpoints."""
    for candidate in [resume_from, run_dir]:
        if candidate is not None and (candidate / WANDB_ID_FILE).is_file():
            return (candidate / WANDB_ID_FILE).read_text().strip()
    run_id = secrets.token_hex(4)
    atomic_write_text(run_dir / WANDB_ID_FILE, run_id + "\n")
    return run_id


def instantiate_loggers(
    logger_cfg: DictConfig | None, run_dir: Path, resume_from: Path | None
) -> list[Logger]:
    if not logger_cfg:
        return []
    loggers: list[Logger] = []
    for name, cfg in logger_cfg.items():
        if not cfg or "_target_" not in cfg:
            continue
        if cfg._target_.endswith("WandbLogger"):
            run_id = wandb_run_id(run_dir, resume_from)
            loggers.append(hydra.utils.instantiate(cfg, id=run_id, resume="allow"))
        else:
            loggers.append(hydra.utils.instantiate(cfg))
        log.info("logger %s: %s", name, cfg._target_)
    return loggers


def log_summary(
    loggers: list[Logger], metrics: dict[str, Any], images: dict[str, Path], step: int
) -> None:
    """Final test metrics as scalars (and, for W&B, run summary and images)."""
    scalars = {f"test/{k}": v for k, v in flatten(metrics).items() if isinstance(v, (int, float))}
    for logger in loggers:
        logger.log_metrics(scalars, step=step)
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(scalars)
            for key, path in images.items():
                logger.log_image(key=key, images=[str(path)], step=step)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def resolved_container(cfg: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container, dict)
    return container  # type: ignore[return-value]


def finish_wandb() -> None:
    """Close the W&B run so each job of a multirun gets its own run."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
