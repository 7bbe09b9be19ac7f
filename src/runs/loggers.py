"""Build callbacks and loggers from their config groups."""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import LearningRateMonitor, ModelSummary, ProgressBar
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.data.tasks import TaskSpec
from src.runs.artifacts import predictions_frame
from src.runs.files import WANDB_ID_FILE
from src.utils.errors import UserError
from src.utils.io import atomic_write_text

log = logging.getLogger(__name__)


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    if not callbacks_cfg:
        return []
    return [hydra.utils.instantiate(c) for c in callbacks_cfg.values() if c and "_target_" in c]


def drop_unusable_callbacks(
    callbacks: list[Callback], has_logger: bool, progress_bar: bool, model_summary: bool = True
) -> list[Callback]:
    """Leave out callbacks the trainer would reject: an LR monitor without a logger
    (`logger=none`), a progress bar when `trainer.enable_progress_bar=false`, a model summary
    when `trainer.enable_model_summary=false`."""
    kept = []
    for callback in callbacks:
        if isinstance(callback, LearningRateMonitor) and not has_logger:
            continue
        if isinstance(callback, ProgressBar) and not progress_bar:
            continue
        if isinstance(callback, ModelSummary) and not model_summary:
            continue
        kept.append(callback)
    return kept


class QuietWandbLogger(WandbLogger):
    """Lightning's WandbLogger without the `anonymous=None` it always hands to `wandb.init`,
    which wandb >= 0.19 answers with a deprecation warning on every run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


def wandb_run_id(run_dir: Path, resume_from: Path | None) -> str:
    """The W&B id of this run: a resumed run reuses the id stored beside its checkpoints."""
    for candidate in [resume_from, run_dir]:
        if candidate is not None and (candidate / WANDB_ID_FILE).is_file():
            return (candidate / WANDB_ID_FILE).read_text().strip()
    run_id = secrets.token_hex(4)
    atomic_write_text(run_dir / WANDB_ID_FILE, run_id + "\n")
    return run_id


def instantiate_loggers(
    logger_cfg: DictConfig | None,
    run_dir: Path,
    resume_from: Path | None,
    group_suffix: str | None = None,
) -> list[Logger]:
    """The loggers of `logger=...`; one that cannot start is a UserError and leaves no folder.

    `group_suffix` (the configuration digest of the result identity) is appended to the W&B
    group, so a group holds the seeds of one configuration only, never off-recipe runs."""
    if not logger_cfg:
        return []
    loggers: list[Logger] = []
    for name, cfg in logger_cfg.items():
        if not cfg or "_target_" not in cfg:
            continue
        is_wandb = cfg._target_.endswith("WandbLogger")
        folder = logger_folder(cfg, is_wandb)
        existed = folder is not None and folder.exists()
        try:
            if is_wandb:
                run_id = wandb_run_id(run_dir, resume_from)
                group = cfg.get("group")
                if group and group_suffix:
                    group = f"{group}-{group_suffix}"
                logger = hydra.utils.instantiate(cfg, id=run_id, resume="allow", group=group)
            else:
                logger = hydra.utils.instantiate(cfg)
        except Exception as err:
            if folder is not None and not existed and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            cause = err.__cause__ if isinstance(err.__cause__, Exception) else err
            raise UserError(
                f"logger={name} cannot start ({type(cause).__name__}: {cause}); "
                "`make install` installs every logger's package, or choose another logger"
            ) from err
        if is_wandb:
            define_wandb_metrics(logger)
        loggers.append(logger)
        log.info("logger %s: %s", name, cfg._target_)
    return loggers


def logger_folder(cfg: DictConfig, is_wandb: bool) -> Path | None:
    """The folder a logger writes under its save_dir (W&B: `wandb/`, others: their name)."""
    if not cfg.get("save_dir"):
        return None
    sub = "wandb" if is_wandb else cfg.get("name")
    return Path(cfg.save_dir) / str(sub) if sub else None


def define_wandb_metrics(logger: WandbLogger) -> None:
    """Epoch as the x axis of the per-epoch curves, the best validation AVG AUC as summary."""
    run = logger.experiment
    if not hasattr(run, "define_metric"):  # a disabled run
        return
    run.define_metric("epoch")
    for pattern in ("val/*", "gate/*"):
        run.define_metric(pattern, step_metric="epoch")
    run.define_metric("val/avg_auc", step_metric="epoch", summary="max")
    run.define_metric("val/avg_acc", step_metric="epoch", summary="max")


# Facts about the run, not test metrics: in metrics.json and the logged config, not the summary.
RUN_FACTS = (
    "seed",
    "config",
    "blocks",
    "epochs_trained",
    "wall_time_s",
    "checkpoint",
    "git_commit",
    "packages",
    "machine",
    "output_dir",
)


def summary_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The test metric numbers as flat `test/...` scalars (run facts left out)."""
    kept = {k: v for k, v in metrics.items() if k not in RUN_FACTS}
    return {
        f"test/{k}": v
        for k, v in flatten(kept).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


@dataclass
class TestPredictions:
    """The test split's cases, labels [N, T] and probabilities per branch (plus "final"), in
    the layout of the task spec `tasks`."""

    case_nums: Sequence[str]
    probs: dict[str, Tensor]
    labels: Tensor
    tasks: TaskSpec


def log_summary(
    loggers: list[Logger],
    metrics: dict[str, Any],
    images: dict[str, Path],
    step: int,
    predictions: TestPredictions | None = None,
) -> None:
    """Final test metrics: scalars for CSV and TensorBoard (written to disk at once); for W&B,
    the run summary, a per-label AUC table, ROC and confusion panels, predictions and images."""
    scalars = summary_scalars(metrics)
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            log_wandb_results(logger, scalars, metrics, images, predictions)
        else:
            logger.log_metrics(scalars, step=step)
            logger.save()


def log_wandb_results(
    logger: WandbLogger,
    scalars: dict[str, float],
    metrics: dict[str, Any],
    images: dict[str, Path],
    predictions: TestPredictions | None,
) -> None:
    import wandb

    run = logger.experiment
    run.summary.update(scalars)
    media: dict[str, Any] = {}
    auc = metrics.get("auc") or {}
    rows = [[label.split("/")[0], label, value] for label, value in auc.items()]
    media["test/auc_per_label"] = wandb.Table(columns=["task", "label", "auc"], data=rows)
    if predictions is not None:
        final = predictions.probs["final"].float()
        labels = predictions.labels
        start = 0
        for t, task in enumerate(predictions.tasks.tasks):
            probs = final[:, start : start + task.num_classes].numpy()
            start += task.num_classes
            y_true = labels[:, t].tolist()
            names = list(task.classes)
            media[f"test/roc/{task.name}"] = wandb.plot.roc_curve(
                y_true, probs, labels=names, title=f"ROC {task.name} (test, P_FI)"
            )
            media[f"test/confusion/{task.name}"] = wandb.plot.confusion_matrix(
                y_true=y_true,
                preds=probs.argmax(1).tolist(),
                class_names=names,
                title=f"Confusion {task.name} (test, P_FI)",
            )
        frame = predictions_frame(
            predictions.case_nums, predictions.probs, labels, predictions.tasks
        )
        media["test/predictions"] = wandb.Table(dataframe=frame)
    for key, path in images.items():
        media[f"test/{key}"] = wandb.Image(str(path))
    run.log(media)


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
