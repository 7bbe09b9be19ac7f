"""Probe a trained run's reliance on each image: `python -m src.probe ckpt_path=<ckpt> [out=DIR]`.

The checkpoint is loaded as src.eval loads it (network rebuilt from its stored config, weights-only
loading, overrides of the stored config applied), with the run's fusion weights from its
metrics.json (as src.predict); `src.runs.probe` evaluates the test split under every condition and
writes robustness.json and robustness.png into `out` (default: the run folder).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.utils.errors import UserError, exit_on_user_error

log = logging.getLogger(__name__)


def default_out(ckpt_path: Path) -> Path:
    """The run folder of `<run>/checkpoints/x.ckpt` (or of `<run>/x.ckpt`)."""
    from src.inference.predictor import run_metrics_file
    from src.runs.files import CHECKPOINT_DIR

    metrics = run_metrics_file(ckpt_path)
    if metrics is not None:
        return metrics.parent
    folder = ckpt_path.resolve().parent
    return folder.parent if folder.name == CHECKPOINT_DIR else folder


def probe_checkpoint(run_cfg: DictConfig) -> dict[str, Any]:
    """Load the checkpoint, its data and fusion weights; run the probe; return robustness.json."""
    from src.config_checks import check_config_values
    from src.data.conditions import KINDS
    from src.inference.predictor import resolve_fusion_weights
    from src.models.module import IDENTITY_KEY, AMMFMModule, stored_tasks
    from src.runs.checkpoints import checkpoint_config
    from src.runs.probe import PROBE_SEED, run_probe
    from src.runs.setup import datamodule_for
    from src.utils.checkpoints import read_checkpoint
    from src.utils.logging_setup import quiet_library_noise, route_lightning_logs_to_root
    from src.utils.output_dir_check import check_writable_folder

    ckpt_path = Path(run_cfg.ckpt_path)
    if not ckpt_path.is_file():
        raise UserError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    out = Path(run_cfg.out) if run_cfg.get("out") else default_out(ckpt_path)
    check_writable_folder(out, "out")
    seed = PROBE_SEED if run_cfg.get("probe_seed") is None else int(run_cfg.probe_seed)
    if seed < 0:
        raise UserError(f"probe_seed={seed} must be an integer >= 0")
    kinds = None if run_cfg.get("kinds") is None else [str(k) for k in run_cfg.kinds]
    unknown = [k for k in kinds or () if k not in KINDS]
    if unknown:
        raise UserError(f"kinds={kinds}: unknown {unknown}; choose from {', '.join(KINDS)}")
    route_lightning_logs_to_root()
    quiet_library_noise()
    ckpt = read_checkpoint(ckpt_path)
    check_config_values(ckpt["hyper_parameters"]["cfg"], source=f"ckpt_path={ckpt_path}")
    cfg = checkpoint_config(ckpt["hyper_parameters"]["cfg"], run_cfg)
    check_config_values(cfg)
    tasks = stored_tasks(ckpt["hyper_parameters"], ckpt_path)
    module = AMMFMModule.from_trained(cfg, tasks, ckpt["state_dict"], ckpt_path)
    given = run_cfg.get("fusion_weights")
    weights = resolve_fusion_weights(
        OmegaConf.to_container(given) if given is not None else None,
        ckpt_path,
        module.branches,
        ckpt.get(IDENTITY_KEY),
    )
    datamodule = datamodule_for(cfg, module)
    return run_probe(cfg, module, datamodule, weights, out, str(ckpt_path), seed, kinds)


@hydra.main(version_base="1.3", config_path="../conf", config_name="probe")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    probe_checkpoint(cfg)


if __name__ == "__main__":
    main()
