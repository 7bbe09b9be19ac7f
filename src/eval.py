"""Re-evaluate a checkpoint: `python -m src.eval ckpt_path=<file.ckpt> [overrides]`.

The network is rebuilt from the configuration stored in the checkpoint, so the architecture is
exactly the trained one. Command-line overrides (e.g. `data.root=...`, `trainer=gpu`,
`model.tta_views=[identity]`) replace the matching parts of that stored configuration. The
checkpoint is read with weights-only loading: no pickled code from the file is executed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import hydra
from omegaconf import DictConfig

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.utils.checkpoints import read_checkpoint
from src.utils.errors import exit_on_user_error

log = logging.getLogger(__name__)


def evaluate_checkpoint(run_cfg: DictConfig) -> dict[str, Any]:
    """Rebuild the checkpoint's network, evaluate it and write the run folder; returns metrics."""
    from src.config_checks import check_config_values
    from src.models.module import IDENTITY_KEY, AMMFMModule, stored_tasks
    from src.runs.checkpoints import checkpoint_config
    from src.runs.evaluate import evaluate_and_save
    from src.runs.identity import run_identity
    from src.runs.setup import datamodule_for, start_run

    ckpt = read_checkpoint(run_cfg.ckpt_path)
    check_config_values(ckpt["hyper_parameters"]["cfg"], source=f"ckpt_path={run_cfg.ckpt_path}")
    cfg = checkpoint_config(ckpt["hyper_parameters"]["cfg"], run_cfg)
    check_config_values(cfg)
    trained = ckpt.get(IDENTITY_KEY) or {}
    identity = run_identity(cfg, weights=trained.get("weights"))
    run_dir = start_run(cfg)
    started = time.time()
    tasks = stored_tasks(ckpt["hyper_parameters"], run_cfg.ckpt_path)
    module = AMMFMModule.from_trained(cfg, tasks, ckpt["state_dict"], run_cfg.ckpt_path)
    datamodule = datamodule_for(cfg, module)
    extra = {
        "checkpoint": str(run_cfg.ckpt_path),
        "epochs_trained": ckpt.get("epoch"),
        "wall_time_s": round(time.time() - started, 1),
        "identity": identity,
    }
    return evaluate_and_save(cfg, module, datamodule, run_dir, [], extra)


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    return evaluate_checkpoint(cfg)["valid"]["avg_auc"]  # validation selects, test reports


if __name__ == "__main__":
    main()
