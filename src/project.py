"""Project set-up shared by every command: the repository root, environment defaults, the
config directory, the registered schema and one way to compose a config outside a Hydra run.

Importing this module is the set-up: every entry script imports it before anything else.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from src.config import register_configs as register_schema
from src.utils.errors import UserError
from src.utils.slurm import run_stamp

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"

os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))  # conf/paths reads it
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import


def register_configs() -> None:
    """The schema, `${job_suffix:}` and `${run_stamp:}` (conf/hydra/default.yaml)."""
    register_schema()
    OmegaConf.register_new_resolver("run_stamp", run_stamp, replace=True)


register_configs()

# A config name without a conf file: `compose_config` composes the schema with the model groups
# only (the schema's model settings: the paper's heads, whatever the primary config says).
MODEL_GROUPS_ONLY = "params_fallback"


def compose_config(
    overrides: Sequence[str] = (), config_name: str = "train", *, hydra_config: bool = False
) -> DictConfig:
    """Compose the project's config with Hydra (as `python -m src.train` would, unresolved).

    `hydra_config=True` keeps the `hydra` node and makes it the current Hydra config, so the
    `${hydra:...}` interpolations (run directories, tags) resolve as in a Hydra run.

    Without conf/<config_name>.yaml, composes the schema with the model groups only
    (backbone=swin fusion=aff block=aab), which is all the network needs.
    """
    register_configs()
    if not (CONF_DIR / f"{config_name}.yaml").exists():
        defaults = ["train_schema", {"backbone": "swin"}, {"fusion": "aff"}, {"block": "aab"}]
        node = {"defaults": [*defaults, "_self_"]}
        ConfigStore.instance().store(name=MODEL_GROUPS_ONLY, node=node)
        config_name = MODEL_GROUPS_ONLY
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=hydra_config)
    except Exception as err:  # Hydra's messages (unknown key, bad option, ...), on one line
        message = " ".join(str(err).split())
        raise UserError(f"cannot compose the config with {list(overrides)}: {message}") from err
    if hydra_config:
        HydraConfig.instance().set_config(cfg)
    return cfg
