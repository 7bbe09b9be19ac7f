"""Training progress as plain log lines, for consoles that are not a terminal (SLURM logs,
`make demo > file`), where a live progress bar shows nothing until the run ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch import Callback

from src.utils.progress import PlainProgress, is_terminal

log = logging.getLogger(__name__)
EPOCH_METRICS = ("train/loss_epoch", "val/avg_auc", "val/avg_acc")


class PlainProgressLog(Callback):
    """Logs "epoch k/N: batches b/B (pct%), t s, train/loss x" at most every `interval_s`
    seconds and one line per finished epoch with its loss and validation metrics.

    Active when the console is not a terminal (`terminal`: None detects it) or the trainer shows
    no progress bar; on a terminal with a bar it stays silent. Rank zero only."""

    def __init__(
        self,
        interval_s: float = 30.0,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.terminal = terminal
        self.clock = clock
        self.active = False
        self._batches: PlainProgress | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        terminal = is_terminal() if self.terminal is None else self.terminal
        shown = terminal and trainer.progress_bar_callback is not None
        self.active = trainer.is_global_zero and not shown

    def _epoch(self, trainer: pl.Trainer) -> str:
        return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.active:
            total = int(trainer.num_training_batches)
            what = f"{self._epoch(trainer)}: batches"
            self._batches = PlainProgress(what, total, log, self.interval_s, self.clock)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.active and self._batches is not None:
            self._batches.advance(detail=lambda: _metrics(trainer, ("train/loss_step",)))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active or self._batches is None:
            return
        seconds = self.clock() - self._batches.started
        metrics = _metrics(trainer, EPOCH_METRICS)
        suffix = f": {metrics}" if metrics else ""
        log.info("%s done in %.0f s%s", self._epoch(trainer), seconds, suffix)


def _metrics(trainer: pl.Trainer, names: tuple[str, ...]) -> str:
    """ "name value, ..." of the logged metrics among `names` that the trainer has."""
    found = trainer.callback_metrics
    return ", ".join(f"{name} {float(found[name]):.4f}" for name in names if name in found)
