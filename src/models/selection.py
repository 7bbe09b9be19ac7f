"""Checkpoint-selection policies beside the paper's SWA average (`model.selection_policies`):
the weights of the last epoch (before averaging) and of the best validation epoch.

The best validation epoch is the one whose end-of-epoch training weights scored the highest
`val/avg_auc` (`AMMFMModule.on_validation_epoch_end`: AVG AUC of the equal-weight mean of the
branches, the stand-in for P_FI during training; `val/avg_acc` where no AUC is defined); the
first of equal scores wins. Validation only: the test split never takes part.

The snapshot is kept in memory (on the CPU) and travels in every epoch checkpoint under
`BEST_VALID_KEY`, so a resumed run selects exactly what an uninterrupted one would. A run
resumed from a checkpoint without it (written with the policies off) has not seen every
epoch's validation: it reports no best-validation policy rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

BEST_VALID_KEY = "best_valid"
SELECTION_METRICS = ("val/avg_auc", "val/avg_acc")  # the first one logged decides


def cpu_copy(module: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of `module`'s state (parameters and buffers)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


@dataclass
class Snapshot:
    """Weights a selection policy chose, and why (0-based epoch, validation metric, score)."""

    state_dict: dict[str, Tensor]
    epoch: int
    metric: str | None = None
    score: float | None = None

    def describe(self) -> dict[str, Any]:
        """What metrics.json records of the choice (the weights stay out)."""
        chosen = {"epoch": self.epoch}
        if self.metric is not None:
            chosen.update(metric=self.metric, valid_score=self.score)
        return chosen


class BestValidSnapshot(Callback):
    """Keeps the weights of the best validation epoch so far (see the module docstring)."""

    def __init__(self) -> None:
        self.best: Snapshot | None = None
        self.saw_every_epoch = True  # False after resuming from a checkpoint without the record

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        logged = trainer.callback_metrics
        metric = next((m for m in SELECTION_METRICS if m in logged), None)
        if metric is None:
            return
        score = float(logged[metric])
        best = self.best
        if best is None or (metric == best.metric and score > float(best.score or 0.0)):
            self.best = Snapshot(cpu_copy(pl_module), trainer.current_epoch, metric, score)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.best is not None and self.saw_every_epoch:
            best = self.best
            checkpoint[BEST_VALID_KEY] = {
                "state_dict": best.state_dict,
                "epoch": best.epoch,
                "metric": best.metric,
                "score": best.score,
            }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        stored = checkpoint.get(BEST_VALID_KEY)
        if stored is None:
            self.saw_every_epoch = False
            return
        self.best = Snapshot(
            stored["state_dict"], int(stored["epoch"]), stored["metric"], float(stored["score"])
        )

    @property
    def chosen(self) -> Snapshot | None:
        """The best validation epoch's weights; None when not every epoch was seen."""
        return self.best if self.saw_every_epoch else None
