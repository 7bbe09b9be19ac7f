"""What the training-throughput check measures (src.benchmarks.throughput): the
configurations and levers, the plan per device, and each measurement's project config and
Trainer settings."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from src.benchmarks.configs import bench_config

CONFIG_ROWS = {"AMMFM": "t9-aff-aab", "SFF-CAT": "t9-sff-cat"}
# Settings measured on AMMFM beside its default one (the levers of a faster run).
LEVERS: dict[str, tuple[str, ...]] = {
    "device pipeline": ("data.device_pipeline=true",),  # images on the device, batch augment
    "channels_last": ("model.channels_last=true",),
    "compile": ("model.compile=true",),
}
CPU_LEVERS = ("device pipeline",)  # compiling takes minutes on a CPU; channels_last is a GPU layout


@dataclass(frozen=True)
class ThroughputPlan:
    """What to measure; `limit_batches` None trains whole epochs."""

    image_size: int
    batch: int
    device: str  # "cuda" or "cpu"
    precisions: tuple[str, ...]
    timed_epochs: int
    limit_batches: int | None
    packing: tuple[int, ...]
    packing_steps: int
    cap_s: float  # per measured configuration and per packing level
    num_workers: int


def default_plan(quick: bool, device: str) -> ThroughputPlan:
    cores = os.cpu_count() or 1
    if device == "cuda":
        return ThroughputPlan(
            image_size=224,
            batch=24,
            device=device,
            precisions=("32-true", "bf16-mixed"),
            timed_epochs=1 if quick else 3,
            limit_batches=None,
            packing=(1, 2, 4) if quick else (1, 2, 4, 8),
            packing_steps=20 if quick else 60,
            cap_s=60.0 if quick else 75.0,
            num_workers=min(8, cores),
        )
    return ThroughputPlan(
        image_size=64 if quick else 224,
        batch=24,
        device=device,
        precisions=("32-true",),
        timed_epochs=1,
        limit_batches=2 if quick else 4,
        packing=(1, 2) if cores >= 2 else (1,),
        packing_steps=2 if quick else 4,
        cap_s=45.0 if quick else 600.0,
        num_workers=min(2, cores),
    )


# ------------------------------------------------------------------------------ configs
def run_config(
    plan: ThroughputPlan, name: str, precision: str, lever: str | None = None
) -> DictConfig:
    """The project's config of measured configuration `name` at the plan's settings."""
    overrides = [
        f"data.batch_size={plan.batch}",
        f"data.num_workers={plan.num_workers}",
        f"trainer.precision={precision}",
        "model.swa_epochs=0",  # SWA's cost is the BatchNorm refresh, estimated apart
        *(LEVERS[lever] if lever else ()),
    ]
    if plan.device == "cuda":
        overrides.append("data.pin_memory=true")
    trainer = "gpu" if plan.device == "cuda" else "cpu"
    return bench_config(CONFIG_ROWS[name], plan.image_size, overrides, trainer=trainer)


def trainer_args(cfg: DictConfig) -> dict[str, Any]:
    return {
        "accelerator": cfg.trainer.accelerator,
        "devices": 1,
        "precision": cfg.trainer.precision,
        "benchmark": cfg.trainer.get("benchmark", False),
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "use_distributed_sampler": False,
        "default_root_dir": str(scratch_dir()),
    }


def scratch_dir() -> Path:
    """Where the benchmark's Trainers may write (they are told to write nothing)."""
    return Path(tempfile.gettempdir()) / "ammfm-bench"


def plan_for(quick: bool, device: str | None = None, **changes: Any) -> ThroughputPlan:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    plan = default_plan(quick, device)
    return replace(plan, **{k: v for k, v in changes.items() if v is not None})
