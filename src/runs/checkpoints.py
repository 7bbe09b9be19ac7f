"""Which checkpoint a run starts from, and the config a stored checkpoint is evaluated with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.config import on_schema
from src.models.module import IDENTITY_KEY
from src.runs.files import CHECKPOINT_DIR, FINAL_CHECKPOINT, last_checkpoint
from src.runs.identity import check_resumable
from src.runs.status import PREEMPTED, read_failure
from src.utils.checkpoints import read_checkpoint
from src.utils.errors import UserError
from src.utils.io import atomic_path

# Parts of the configuration that always come from the evaluation run, not the checkpoint.
RUN_KEYS = ("paths", "logger", "callbacks", "task_name", "ckpt_path", "train", "test")


def resolve_ckpt_path(
    ckpt_path: str | None, run_dir: Path, identity: dict[str, Any] | None = None
) -> Path | None:
    """`ckpt_path=last` resumes this run directory's last checkpoint; a path must exist, and
    (given this run's `identity`) be a checkpoint of the same experiment."""
    if ckpt_path is None:
        return None
    path = last_checkpoint(run_dir) if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise UserError(
            f"ckpt_path={ckpt_path}: no checkpoint at {path}; give an existing .ckpt file, or "
            "ckpt_path=last together with hydra.run.dir=<the run's directory>"
        )
    stored = read_checkpoint(path)  # intact, weights-only and written by src.train, or one line
    if identity is not None:
        check_resumable(identity, stored.get(IDENTITY_KEY), str(ckpt_path))
    return path


def preempted_checkpoint(run_dir: Path, identity: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from when `run_dir` holds a run stopped by preemption or a
    time limit (its error.txt says `Preempted:`) and a checkpoint of it is there: rerunning the
    same command (a requeued SLURM job, a resubmitted sweep job) continues it. A checkpoint of
    another experiment is refused, naming what differs; any other folder gives None."""
    failure = read_failure(run_dir)
    path = last_checkpoint(run_dir)
    if failure is None or not failure.startswith(f"{PREEMPTED}:") or not path.is_file():
        return None
    stored = read_checkpoint(path)
    check_resumable(identity, stored.get(IDENTITY_KEY), f"last (the preempted run in {run_dir})")
    return path


def save_final_checkpoint(trainer: Any, path: Path) -> None:
    """The trained weights and config at `path`, atomically. Every process calls this (the
    save waits for all of them); only rank zero writes, the others must not touch `path`."""
    if not trainer.is_global_zero:
        trainer.save_checkpoint(path, weights_only=True)  # writes nothing off rank zero
        return
    with atomic_path(path) as tmp:
        trainer.save_checkpoint(tmp, weights_only=True)


def resume_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoints a run keeps only to resume: every `*.ckpt` of its checkpoint folder but
    final.ckpt (the epoch checkpoints and the last.ckpt link)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.ckpt") if p.name != FINAL_CHECKPOINT)


def drop_resume_checkpoints(run_dir: Path) -> int:
    """Delete a complete run's resume checkpoints; returns the bytes freed. final.ckpt (the
    evaluated weights) stays; a link is removed, not followed."""
    freed = 0
    for path in resume_checkpoints(run_dir):
        if not path.is_symlink():
            freed += path.stat().st_size
        path.unlink(missing_ok=True)
    return freed


def checkpoint_config(stored: dict[str, Any], run_cfg: DictConfig) -> DictConfig:
    """The stored training config on the schema's defaults (`on_schema`), with this run's
    paths/loggers and command-line overrides."""
    from hydra.core.hydra_config import HydraConfig

    cfg = on_schema(stored)
    for key in RUN_KEYS:
        OmegaConf.update(cfg, key, run_cfg.get(key), merge=False, force_add=True)
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        overrides = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        key = key.split("@", 1)[-1]  # a `group@package` override sets the node at its package
        if key.split(".")[0] in RUN_KEYS or key.startswith("hydra"):
            continue
        OmegaConf.update(cfg, key, OmegaConf.select(run_cfg, key), merge=False, force_add=True)
    return cfg
