"""The set-up train and eval share: the run folder with its resolved config, logging, the
seed, and a datamodule normalising each stream with its backbone's statistics."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.data.datamodule import Derm7ptDataModule
from src.models.module import AMMFMModule
from src.runs.files import CONFIG_FILE
from src.utils.io import atomic_write_text
from src.utils.logging_setup import quiet_library_noise, route_lightning_logs_to_root


def start_run(cfg: DictConfig) -> Path:
    """Create the run folder, write its resolved config.yaml, route and quiet logs, seed
    everything."""
    import lightning as L

    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    route_lightning_logs_to_root()
    quiet_library_noise()
    L.seed_everything(cfg.seed, workers=True)
    return run_dir


def datamodule_for(cfg: DictConfig, module: AMMFMModule) -> Derm7ptDataModule:
    """The datamodule of `cfg.data`, normalising each image with its stream's statistics."""
    return Derm7ptDataModule(
        cfg.data,
        clin_stats=module.network.norm_stats["clin"],
        derm_stats=module.network.norm_stats["derm"],
    )
