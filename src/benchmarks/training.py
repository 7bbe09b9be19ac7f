"""Framework overhead: a training step of the LightningModule vs a plain PyTorch loop.

Both loops train the same network (the same AMMFMModule object) on the same pre-made batch,
served by the same kind of DataLoader, in the same process, with the same Adam settings. The
Lightning side is the project's Trainer (its trainer config, here with max_steps, no logger,
checkpointing or progress bar) calling AMMFMModule.training_step (the paper's loss, finiteness
check, logging). Per-step time is the interval between the starts of consecutive steps, so it
includes everything the framework does between steps. The two loops alternate for `rounds`
rounds so slow drifts of the machine's load hit both; the first `warmup` steps of every run
are dropped, and `steps` are timed per run.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from src.benchmarks.timing import summarize, synchronize
from src.data.tasks import load_task_spec
from src.models.module import AMMFMModule, branch_loss

Batch = tuple[Tensor, Tensor, Tensor, Tensor]


def random_batch(
    batch_size: int, image_size: int, num_classes: Sequence[int], seed: int = 0
) -> Batch:
    """Normalised-image-like inputs, valid labels for every task, no metadata."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch_size, 3, image_size, image_size)
    labels = torch.stack([torch.randint(n, (batch_size,), generator=gen) for n in num_classes], 1)
    no_metadata = torch.zeros(batch_size, 0, dtype=torch.long)
    return torch.randn(shape, generator=gen), torch.randn(shape, generator=gen), labels, no_metadata


class RepeatedBatch(Dataset):
    """The same ready-made batch `length` times (a DataLoader with batch_size=None serves it)."""

    def __init__(self, batch: Batch, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Batch:
        return self.batch


def batch_loader(batch: Batch, steps: int) -> DataLoader:
    return DataLoader(RepeatedBatch(batch, steps), batch_size=None, shuffle=False)


class StepClock(L.Callback):
    """A time stamp at the start of every training batch."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stamps: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        synchronize(self.device)
        self.stamps.append(time.perf_counter())


def _step_times(starts: list[float]) -> list[float]:
    """Start-to-start intervals: n starts time n - 1 complete steps (the last is not timed)."""
    return [b - a for a, b in itertools.pairwise(starts)]


def lightning_steps(module: AMMFMModule, cfg: DictConfig, batch: Batch, steps: int) -> list[float]:
    """Seconds of each of the first `steps - 1` of `steps` steps of the project's Trainer."""
    device = torch.device("cuda" if cfg.trainer.get("accelerator") == "gpu" else "cpu")
    clock = StepClock(device)
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as root:
        trainer_cfg = OmegaConf.merge(cfg.trainer, {"default_root_dir": root, "devices": 1})
        trainer: L.Trainer = hydra.utils.instantiate(
            trainer_cfg,
            max_steps=steps,
            max_epochs=-1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            callbacks=[clock],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(module, train_dataloaders=batch_loader(batch, steps))
    return _step_times(clock.stamps)


def plain_steps(module: AMMFMModule, batch: Batch, steps: int, device: torch.device) -> list[float]:
    """Seconds of each of the first `steps - 1` of `steps` steps of a hand-written loop:
    forward, the Eq. 2-3 loss, backward, Adam step."""
    network = module.network.to(device).train()
    mcfg = module.cfg.model
    optimizer = torch.optim.Adam(network.parameters(), lr=mcfg.lr, weight_decay=mcfg.weight_decay)
    stamps = []
    for clinic, derm, labels, _ in batch_loader(batch, steps):
        synchronize(device)
        stamps.append(time.perf_counter())
        clinic, derm, labels = clinic.to(device), derm.to(device), labels.to(device)
        logits = module(clinic, derm)  # the module's forward: channels_last handling included
        num_classes = module.tasks.num_classes
        loss = sum(branch_loss(x.float(), labels, num_classes)[0] for x in logits.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return _step_times(stamps)


def measure_training(cfg: DictConfig, steps: int, warmup: int = 1, rounds: int = 2) -> dict:
    """Median step time and pairs/s of both loops, and the overhead of Lightning's."""
    device = torch.device("cuda" if cfg.trainer.get("accelerator") == "gpu" else "cpu")
    L.seed_everything(0, verbose=False)
    module = AMMFMModule(cfg, load_task_spec(cfg.data.tasks))
    num_classes = module.tasks.num_classes
    batch = random_batch(int(cfg.data.batch_size), int(cfg.data.image_size), num_classes)
    lightning: list[float] = []
    plain: list[float] = []
    for _ in range(rounds):
        lightning += lightning_steps(module, cfg, batch, warmup + steps + 1)[warmup:]
        plain += plain_steps(module, batch, warmup + steps + 1, device)[warmup:]
    pairs = int(cfg.data.batch_size)
    stats_l, stats_p = summarize(lightning), summarize(plain)
    return {
        "batch_size": pairs,
        "image_size": int(cfg.data.image_size),
        "precision": str(cfg.trainer.get("precision")),
        "device": str(device),
        "lightning": {**stats_l, "pairs_per_s": pairs / stats_l["median_s"]},
        "plain": {**stats_p, "pairs_per_s": pairs / stats_p["median_s"]},
        "overhead_ratio": stats_l["median_s"] / stats_p["median_s"] - 1.0,
        "overhead_ms_per_step": 1000 * (stats_l["median_s"] - stats_p["median_s"]),
    }
