"""The set-up train and eval share: the run folder with its resolved config, logging, the
seed, and a datamodule normalising each stream with its backbone's statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from src.data.datamodule import PairDataModule, build_datamodule
from src.models.module import AMMFMModule
from src.runs.files import CONFIG_FILE
from src.utils.distributed import launch_rank, sync_batchnorm_supported
from src.utils.errors import UserError
from src.utils.io import atomic_write_text
from src.utils.logging_setup import quiet_library_noise, route_lightning_logs_to_root

log = logging.getLogger(__name__)


def start_run(cfg: DictConfig) -> Path:
    """Create the run folder, write its resolved config.yaml, route and quiet logs, seed
    everything."""
    import lightning as L

    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if launch_rank() == 0:  # the other DDP processes share this run folder
        atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    route_lightning_logs_to_root()
    quiet_library_noise()
    L.seed_everything(cfg.seed, workers=True)
    return run_dir


def trainer_settings(trainer_cfg: DictConfig, callbacks: Sequence[object] = ()) -> DictConfig:
    """`cfg.trainer` as the Trainer gets it: SyncBatchNorm only where it runs (CUDA); on CPU
    each DDP process keeps its own BatchNorm statistics and rank zero's are validated and
    saved (src.utils.distributed). Checkpointing is on only with a ModelCheckpoint among
    `callbacks`: without one Lightning would add its own (epoch=N-step=M.ckpt)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    settings = trainer_cfg.copy()
    with open_dict(settings):
        settings.enable_checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    accelerator = settings.accelerator
    if settings.get("sync_batchnorm") and not sync_batchnorm_supported(accelerator):
        log.info(
            "trainer.sync_batchnorm: off with trainer.accelerator=%s (needs CUDA)", accelerator
        )
        settings.sync_batchnorm = False
    return settings


def module_and_datamodule(cfg: DictConfig) -> tuple[AMMFMModule, PairDataModule]:
    """The datamodule of `cfg.data` and the module built for its task spec; the datamodule
    normalises each image with its stream's pretrained statistics and shuffles and augments
    from the run's seed."""
    datamodule = build_datamodule(cfg.data, seed=int(cfg.seed))
    module = AMMFMModule(cfg, datamodule.tasks)
    datamodule.normalize_with(module.network.norm_stats)
    return module, datamodule


def datamodule_for(cfg: DictConfig, module: AMMFMModule) -> PairDataModule:
    """The datamodule of `cfg.data` for a module already built (a trained checkpoint's):
    its task spec must be the module's."""
    datamodule = build_datamodule(cfg.data, module.network.norm_stats, seed=int(cfg.seed))
    if datamodule.tasks.to_dict() != module.tasks.to_dict():
        raise UserError(
            f"data.tasks={cfg.data.tasks}: the dataset's task spec {datamodule.tasks.name!r} is "
            f"not the one the model was trained with ({module.tasks.name!r}); evaluate it on "
            "data with the same tasks and classes"
        )
    return datamodule
