"""Stochastic weight averaging as the paper describes it (Sec. 4.1, Izmailov et al. 2018).

The final weights are the plain mean of the weights at the END of each of the last
`swa_epochs` epochs; BatchNorm statistics are then recomputed for those averaged weights with
`torch.optim.swa_utils.update_bn` over the training data, and no optimiser step follows.
Built on Lightning's `WeightAveraging`; unlike Lightning's `StochasticWeightAveraging` it
neither snapshots at the start of an epoch, nor changes the learning rate (the schedule is the
module's: see `src.models.lr_schedule`), nor trains an extra epoch for the BatchNorm refresh.

Validation during training sees the current training weights, not the running average. The
running average travels in every checkpoint under `AVERAGE_KEY` (`state_dict` stays the
training weights), so a run resumed mid-averaging ends with exactly the same average.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn

from src.data.sampling import mix_seed
from src.models.selection import Snapshot, cpu_copy
from src.utils.distributed import average_batchnorm_statistics
from src.utils.errors import UserError

AVERAGE_KEY = "swa_average"
FIRST_EPOCH_KEY = "swa_first_epoch"


class _PairInput(nn.Module):
    """Adapter for `update_bn`, which feeds one tensor: a stacked (clinic, derm) pair; the
    batch's metadata rides beside it in `meta` (update_bn takes one batch at a time)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.meta: Tensor | None = None

    def forward(self, pair: Tensor) -> Any:
        return self.module(pair[0], pair[1], self.meta)


def _stacked_pairs(
    batches: Iterable[Any], module: pl.LightningModule, adapter: _PairInput
) -> Iterator[Tensor]:
    """Each training batch as the training step gets it (moved to the device, the datamodule's
    batch hooks applied), its images stacked and its metadata handed to `adapter`."""
    for batch in batches:
        clinic, derm, _, meta = module._apply_batch_transfer_handler(batch)
        adapter.meta = meta
        yield torch.stack((clinic, derm))


class EndOfEpochSWA(WeightAveraging):
    """Average the weights at the end of epochs `max_epochs - swa_epochs` ... `max_epochs - 1`
    (0-based), then load the average into the module and refresh its BatchNorm statistics."""

    def __init__(
        self, swa_epochs: int, max_epochs: int, seed: int = 0, keep_last: bool = False
    ) -> None:
        if not 0 < swa_epochs <= max_epochs:  # the config's values: src.config_checks
            raise ValueError(f"swa_epochs={swa_epochs} must be in 1..max_epochs={max_epochs}")
        # Parameters only: BatchNorm statistics are recomputed for the average, not averaged.
        super().__init__(use_buffers=False)
        self.swa_epochs = swa_epochs
        self.first_epoch = max_epochs - swa_epochs
        self.seed = seed
        self.applied = False
        # keep_last: the last epoch's weights, as they were before the average replaced them
        # (the "last" checkpoint-selection policy, src.models.selection)
        self.keep_last = keep_last
        self.last: Snapshot | None = None

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self.first_epoch

    @property
    def n_averaged(self) -> int:
        return 0 if self._average_model is None else int(self._average_model.n_averaged.item())

    # Validation reports the training weights; the stock callback would swap in the average
    # (before averaging starts, a copy of the initialisation).
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.apply(trainer, pl_module)

    def apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Load the average into `pl_module` and recompute its BatchNorm statistics.

        Called at the end of training; the training app calls it too when `fit` had nothing
        left to train (a run resumed after its last epoch), so it runs once either way.
        """
        if self.applied:
            return
        if self.n_averaged != self.swa_epochs:
            raise UserError(
                f"SWA averaged {self.n_averaged} of model.swa_epochs={self.swa_epochs} epochs: "
                "training stopped before trainer.max_epochs; resume it with ckpt_path=last"
            )
        assert self._average_model is not None
        if self.keep_last:
            self.last = Snapshot(cpu_copy(pl_module), epoch=self.first_epoch + self.swa_epochs - 1)
        with torch.no_grad():
            averaged = self._average_model.module.parameters()
            for average, current in zip(averaged, pl_module.parameters(), strict=True):
                current.copy_(average)
        seed = mix_seed(self.seed, self.first_epoch + self.swa_epochs)
        refresh_batchnorm(trainer, pl_module, seed)
        self.applied = True

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is not None and self.n_averaged > 0 and not self.applied:
            checkpoint[AVERAGE_KEY] = self._average_model.state_dict()
            checkpoint[FIRST_EPOCH_KEY] = self.first_epoch

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is None or AVERAGE_KEY not in checkpoint:
            return
        stored = int(checkpoint.get(FIRST_EPOCH_KEY, -1))
        if stored != self.first_epoch:
            raise UserError(
                f"the checkpoint averages weights from epoch {stored + 1} on, this run from epoch "
                f"{self.first_epoch + 1}: resume with the trainer.max_epochs and model.swa_epochs "
                "it was started with"
            )
        self._average_model.load_state_dict(checkpoint[AVERAGE_KEY])


def swa_callback(model_cfg: Any, max_epochs: int, seed: int) -> EndOfEpochSWA | None:
    """SWA over the last `model.swa_epochs` epochs (paper: 50 of 250); None when it is 0."""
    swa_epochs = int(model_cfg.swa_epochs)
    if swa_epochs == 0:
        return None
    keep_last = bool(model_cfg.get("selection_policies", False))
    return EndOfEpochSWA(swa_epochs, max_epochs, seed=seed, keep_last=keep_last)


def refresh_batchnorm(trainer: pl.Trainer, pl_module: pl.LightningModule, seed: int) -> None:
    """Recompute every BatchNorm's running statistics over one pass of the training data:
    the batches one training epoch sees (`trainer.limit_train_batches` included, as in
    Lightning's own SWA, whose refresh is an extra training epoch).

    The pass is seeded (dropout and drop-path run in training mode, as in `update_bn`) and uses
    the trainer's precision context, so it sees what training saw. Under DDP each process
    passes over its share and the statistics are averaged over processes (SyncBatchNorm,
    where it runs, has already made them equal).
    """
    loader = trainer.train_dataloader
    if loader is None:
        raise UserError("SWA needs the training data to refresh BatchNorm statistics")
    limit = trainer.num_training_batches
    batches = loader if math.isinf(limit) else islice(loader, int(limit))
    torch.manual_seed(seed)
    with trainer.precision_plugin.forward_context():
        adapter = _PairInput(pl_module)
        update_bn(_stacked_pairs(batches, pl_module, adapter), adapter, device=pl_module.device)
    average_batchnorm_statistics(pl_module)
