"""The concatenated output layout: one segment of logits per task, side by side, in the task
spec's order (`TaskSpec.num_classes` gives the segment widths, `TaskSpec.all_labels` the column
names). These helpers split that layout, turn logits into per-task probabilities and pick
per-task classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from src.utils.errors import UserError


def require_finite(probs: Tensor, what: str) -> None:
    """Stop before non-finite probabilities (NaN/inf: diverged or overflowing weights) are
    written or scored."""
    bad = ~torch.isfinite(probs)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise UserError(
            f"{what}: {int(bad.sum())} non-finite probabilities (first in row {row}); the "
            "checkpoint's weights overflow: use another checkpoint of the run"
        )


def split_tasks(x: Tensor, num_classes: Sequence[int]) -> list[Tensor]:
    """Split the last dimension into the task segments (views, no copy)."""
    if x.shape[-1] != sum(num_classes):
        raise ValueError(
            f"expected {sum(num_classes)} columns ({len(num_classes)} task segments), got "
            f"shape {tuple(x.shape)}"
        )
    return list(torch.split(x, list(num_classes), dim=-1))


def task_softmax(logits: Tensor, num_classes: Sequence[int]) -> Tensor:
    """Softmax within each task segment: every segment of the result sums to 1."""
    return torch.cat([seg.softmax(dim=-1) for seg in split_tasks(logits, num_classes)], dim=-1)


def task_predictions(probs: Tensor, num_classes: Sequence[int]) -> Tensor:
    """Argmax class index per task: [..., sum(K)] -> long [..., T] (ties pick the first)."""
    return torch.stack([seg.argmax(dim=-1) for seg in split_tasks(probs, num_classes)], dim=-1)
