"""Re-evaluate a checkpoint: `python -m src.eval ckpt_path=<file.ckpt> [overrides]`.

The network is rebuilt from the configuration stored in the checkpoint, so the architecture is
exactly the trained one. Command-line overrides (e.g. `data.root=...`, `trainer=gpu`,
`model.tta_views=[identity]`) replace the matching parts of that stored configuration. The
checkpoint is read with weights-only loading: no pickled code from the file is executed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.utils.checkpoints import read_checkpoint
from src.utils.errors import exit_on_user_error

log = logging.getLogger(__name__)

__all__ = ["checkpoint_config", "evaluate_checkpoint", "read_checkpoint"]

# Parts of the configuration that always come from this evaluation run, not the checkpoint.
RUN_KEYS = ("paths", "logger", "callbacks", "task_name", "ckpt_path", "train", "test")


def checkpoint_config(stored: dict[str, Any], run_cfg: DictConfig) -> DictConfig:
    """The stored training config, with this run's paths/loggers and command-line overrides."""
    from hydra.core.hydra_config import HydraConfig

    cfg = OmegaConf.create(stored)
    for key in RUN_KEYS:
        OmegaConf.update(cfg, key, run_cfg.get(key), merge=False, force_add=True)
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        overrides = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0] in RUN_KEYS or key.startswith("hydra"):
            continue
        OmegaConf.update(cfg, key, OmegaConf.select(run_cfg, key), merge=False, force_add=True)
    return cfg


def evaluate_checkpoint(run_cfg: DictConfig) -> dict[str, Any]:
    import lightning as L

    from src.data.datamodule import Derm7ptDataModule
    from src.evaluation.run_evaluation import evaluate_and_save
    from src.models.module import AMMFMModule
    from src.utils.io import atomic_write_text
    from src.utils.logging_setup import route_lightning_logs_to_root

    ckpt = read_checkpoint(run_cfg.ckpt_path)
    cfg = checkpoint_config(ckpt["hyper_parameters"]["cfg"], run_cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    route_lightning_logs_to_root()
    L.seed_everything(cfg.seed, workers=True)
    started = time.time()
    module = AMMFMModule.from_trained(cfg, ckpt["state_dict"], run_cfg.ckpt_path)
    datamodule = Derm7ptDataModule(
        cfg.data,
        clin_stats=module.network.norm_stats["clin"],
        derm_stats=module.network.norm_stats["derm"],
    )
    extra = {
        "checkpoint": str(run_cfg.ckpt_path),
        "epochs_trained": ckpt.get("epoch"),
        "wall_time_s": round(time.time() - started, 1),
    }
    return evaluate_and_save(cfg, module, datamodule, run_dir, [], extra)


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    return evaluate_checkpoint(cfg).get("avg_auc")


if __name__ == "__main__":
    main()
