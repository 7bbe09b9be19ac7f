"""Evaluate a trained module and write a run's results (shared by src.train and src.eval):
TTA predictions on valid and test, then `src.evaluation.pipeline.evaluate`, then the files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig
from torch import Tensor

from src.data.datamodule import PairDataModule
from src.evaluation.pipeline import Evaluation, evaluate
from src.models.metadata import leaky_metadata
from src.models.module import AMMFMModule
from src.models.names import describe
from src.models.network import count_parameters
from src.runs.artifacts import write_metrics, write_plots, write_predictions
from src.runs.explain import wandb_panels
from src.runs.files import METRICS_FILE
from src.runs.loggers import TestPredictions, log_summary
from src.runs.summary import run_config_summary
from src.utils.run_info import git_commit, machine_info, package_versions

log = logging.getLogger(__name__)


def build_eval_trainer(cfg: DictConfig, run_dir: Path) -> L.Trainer:
    """A single-device trainer for prediction, whatever strategy training used."""
    return L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=cfg.trainer.get("enable_progress_bar"),  # None: Lightning's
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )


BRANCH_SYMBOLS = {"derm": "P_D", "clin": "P_C", "fusion": "P_FU"}  # the paper's Eq. 4


def fused_prediction(weights: dict[str, float]) -> str:
    """Eq. 4 with the run's searched weights, e.g. "P_FI = 0.45 P_D + 0.10 P_C + 0.45 P_FU"."""
    terms = [f"{w:.2f} {BRANCH_SYMBOLS.get(b, b)}" for b, w in weights.items()]
    return "P_FI = " + " + ".join(terms)


def plot_title(summary: dict[str, Any], cfg: DictConfig, n_cases: int, weights: dict) -> str:
    """The run figures' title: the paper's name of the configuration, seed, split, and that
    the curves are of P_FI, the fused prediction with the validation-searched weights."""
    return (
        f"{describe(summary)} seed {cfg.seed} | test split of {cfg.data.name} ({n_cases} cases)"
        f"\n{fused_prediction(weights)} (fused prediction, weights searched on validation)"
    )


def predict_split(
    trainer: Trainer, module: LightningModule, dataloader: Any
) -> tuple[dict[str, Tensor], Tensor]:
    """TTA probabilities of every branch for one split, in dataloader order."""
    batches = trainer.predict(module, dataloaders=dataloader)
    assert batches is not None
    labels = torch.cat([lbl for _, lbl in batches])
    branches = batches[0][0].keys()
    probs = {b: torch.cat([p[b] for p, _ in batches]) for b in branches}
    return probs, labels


def predict_and_evaluate(
    cfg: DictConfig, module: AMMFMModule, datamodule: PairDataModule, run_dir: Path
) -> Evaluation:
    """TTA predictions on valid and test, the validation weight search, the test metrics."""
    datamodule.setup("predict")
    trainer = build_eval_trainer(cfg, run_dir)
    val_probs, val_labels = predict_split(trainer, module, datamodule.split_dataloader("valid"))
    test_probs, test_labels = predict_split(trainer, module, datamodule.split_dataloader("test"))
    return evaluate(
        val_probs,
        val_labels,
        test_probs,
        test_labels,
        module.tasks,
        cfg.model.weight_grid_step,
        bootstrap_resamples=int(cfg.model.bootstrap_resamples),
        bootstrap_seed=int(cfg.seed),
    )


def evaluate_and_save(
    cfg: DictConfig,
    module: AMMFMModule,
    datamodule: PairDataModule,
    run_dir: Path,
    loggers: list[Logger],
    extra: dict[str, Any],
    step: int = 0,
    more: Callable[[Evaluation], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """TTA + validation weight search + test metrics -> metrics.json, predictions.csv, plots.
    `more(evaluation)` adds entries to metrics.json (the selection policies: src.runs.selection)."""
    evaluation = predict_and_evaluate(cfg, module, datamodule, run_dir)
    tasks = module.tasks
    added = more(evaluation) if more is not None else {}
    metrics = {
        **evaluation.metrics,
        "tasks": tasks.to_dict(),
        "metadata": {
            "columns": list(cfg.model.metadata),
            "leaky": leaky_metadata(cfg.model.metadata, tasks),
        },
        "blocks": module.block_summary(datamodule.split_dataloader("valid")),
        "params": count_parameters(module.network_spec, tasks.num_classes),
        "seed": cfg.seed,
        "config": run_config_summary(cfg),
        **extra,
        **added,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "machine": machine_info(),
        "output_dir": str(run_dir),
    }
    case_nums = [c.case_num for c in datamodule.cases("test")]
    write_predictions(run_dir, case_nums, evaluation.test_probs, evaluation.test_labels, tasks)
    title = plot_title(metrics["config"], cfg, len(case_nums), evaluation.weights)
    plots = write_plots(
        run_dir, evaluation.test_probs["final"], evaluation.test_labels, tasks, title
    )
    write_metrics(run_dir, metrics)
    predictions = TestPredictions(case_nums, evaluation.test_probs, evaluation.test_labels, tasks)
    images = {p.stem: p for p in plots}
    images |= wandb_panels(
        cfg, module, datamodule, evaluation.test_probs["final"], run_dir, loggers
    )
    log_summary(loggers, metrics, images, step, predictions)
    avg_auc = metrics["avg_auc"]
    log.info(
        "test AVG AUC %s  AVG ACC %.4f  fusion weights %s  -> %s",
        "n/a" if avg_auc is None else f"{avg_auc:.4f}",
        metrics["avg_acc"],
        evaluation.weights,
        run_dir / METRICS_FILE,
    )
    return metrics
