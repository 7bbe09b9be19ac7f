"""Compose the real training config for tests, shrunk to seconds on a CPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from src.config import register_configs

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# Smallest setting that still runs every stage: AFF + AAB on MobileNet streams, 2 epochs with
# SWA over the last one, two TTA views, 32 px images, two training batches per epoch.
TINY = (
    "debug=fast",
    "backbone=mobilenet",
    "data.image_size=32",
    "data.batch_size=8",
    "data.eval_batch_size=128",
    "trainer.max_epochs=2",
    "model.swa_epochs=1",
    "model.lr=1e-3",
    "model.tta_views=[identity,hflip]",
)


def compose_config(
    release: Path,
    run_dir: Path,
    overrides: Sequence[str] = (),
    config_name: str = "train",
    base: Sequence[str] = TINY,
) -> DictConfig:
    """The composed config with `base` then `overrides`, pointing at `release` and `run_dir`."""
    register_configs()
    GlobalHydra.instance().clear()
    all_overrides = [
        *base,
        f"data.root={release}",
        "data.synthetic=false",
        *overrides,
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name, overrides=all_overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir.parent / "logs")
        del cfg["hydra"]
    return cfg
