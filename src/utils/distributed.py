"""What multi-process (DDP) training needs beyond Lightning's strategy.

Under DDP each process updates its own BatchNorm statistics with its own batches, and
DistributedDataParallel re-broadcasts rank zero's at the next training forward only. Rank
zero's statistics are the ones a checkpoint keeps, so evaluation during training uses them on
every process; statistics recomputed per process (the SWA refresh) are averaged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn


def launch_rank() -> int:
    """This process's rank as its launcher set it (Lightning's DDP launcher, torchrun, SLURM),
    read by Lightning from the environment; 0 for a process started by hand, which is the one
    that starts the others."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def requested_processes(devices: object) -> int:
    """How many processes `trainer.devices` asks for (-1 and "auto": more than one may come)."""
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return len(devices)  # a list of device indices
    text = str(devices).strip()
    if text in ("-1", "auto"):
        return max(torch.cuda.device_count(), 1)
    if "," in text:
        return len([part for part in text.split(",") if part.strip()])
    return int(text) if text.isdigit() else 1


def launched_by_cluster() -> bool:
    """True when a cluster launcher (SLURM, torchrun) started one process per device."""
    return "SLURM_NTASKS" in os.environ or "TORCHELASTIC_RUN_ID" in os.environ


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _batchnorm_statistics(module: nn.Module) -> list[torch.Tensor]:
    stats = []
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.running_mean is not None:
            stats += [layer.running_mean, layer.running_var]
    return stats


def broadcast_batchnorm_statistics(module: nn.Module, src: int = 0) -> None:
    """Give every process rank `src`'s BatchNorm running statistics (no-op on one process)."""
    if _distributed():
        for tensor in _batchnorm_statistics(module):
            dist.broadcast(tensor, src=src)


def average_batchnorm_statistics(module: nn.Module) -> None:
    """Replace every process's BatchNorm running statistics by their mean over processes: the
    statistics of all processes' batches when each process saw as many batches."""
    if _distributed():
        world = dist.get_world_size()
        for tensor in _batchnorm_statistics(module):
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor.div_(world)


def sync_batchnorm_supported(accelerator: str) -> bool:
    """SyncBatchNorm runs on CUDA devices only ("auto" picks CUDA when there is one)."""
    name = str(accelerator).lower()
    return name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available())
