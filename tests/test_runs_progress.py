"""Training progress as log lines where the console is not a terminal (SLURM logs), through
the real Trainer of src.train."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from src.train import train
from tests.train_helpers import tiny_config


def test_off_a_terminal_training_logs_batches_and_epochs_with_totals(
    synthetic_release: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="src.runs.progress")
    overrides = [
        "callbacks=default",
        "callbacks.plain_progress.terminal=false",
        "callbacks.plain_progress.interval_s=0",  # a line after every batch but an epoch's last
        "test=false",
    ]
    train(tiny_config(synthetic_release, tmp_path / "run", overrides))
    lines = [r.getMessage() for r in caplog.records if r.name == "src.runs.progress"]
    assert len(lines) == 4, lines  # 2 epochs x (batch 1 of 2, the epoch's own line)
    assert re.fullmatch(
        r"epoch 1/2: batches 1/2 \(50%\), \d+ s, train/loss_step \d+\.\d{4}", lines[0]
    )
    assert re.fullmatch(r"epoch 2/2: batches 1/2 \(50%\), \d+ s, train/loss_step .+", lines[2])
    for epoch, line in ((1, lines[1]), (2, lines[3])):
        assert re.fullmatch(
            rf"epoch {epoch}/2 done in \d+ s: train/loss_epoch \d+\.\d{{4}}, "
            r"val/avg_auc \d\.\d{4}, val/avg_acc \d\.\d{4}",
            line,
        ), line
