"""What a run's metrics.json records as its configuration: the summary a report groups runs by."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from src.data.tasks import load_task_spec
from src.models.metadata import leaky_metadata
from src.models.network import network_summary, validate_network_config


def run_config_summary(cfg: DictConfig) -> dict[str, Any]:
    """The choices that identify a configuration (what a report groups runs by): the network
    (`network_summary`) and how it was trained."""
    spec = validate_network_config(cfg)
    summary: dict[str, Any] = {
        **network_summary(cfg),
        "image_size": cfg.data.image_size,
        "data": cfg.data.name,
        "pretrained": cfg.backbone.pretrained,
        "max_epochs": cfg.trainer.max_epochs,
        "swa_epochs": cfg.model.swa_epochs,
        "swa_lr": cfg.model.get("swa_lr"),
        "drop_path_rate": {name: s.drop_path_rate for name, s in spec.streams},
        "augment_p": cfg.data.get("augment_p"),
        "photometric": cfg.data.get("photometric"),
        "precision": str(cfg.trainer.precision),
        "matmul_precision": cfg.model.matmul_precision,
        "metadata": list(cfg.model.metadata),
    }
    if cfg.data.get("clin_dropout_p"):  # named where it is on: a run of another result
        summary["clin_dropout_p"] = float(cfg.data.clin_dropout_p)
    if summary["metadata"]:  # a leaky column is named in every row that groups this run
        tasks = load_task_spec(cfg.data.tasks)
        summary["leaky_metadata"] = leaky_metadata(summary["metadata"], tasks)
    try:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices
        summary["choices"] = {k: v for k, v in choices.items() if not k.startswith("hydra")}
    except ValueError:  # composed outside a Hydra app (tests, notebooks)
        pass
    return summary
