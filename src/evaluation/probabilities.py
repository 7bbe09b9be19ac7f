"""The 24-wide output layout: eight task segments side by side, in `schema.TASKS` order.

Every network head emits 24 logits, one segment of `NUM_CLASSES[t]` columns per task. These
helpers split that layout, turn logits into per-task probabilities and pick per-task classes.
"""

from __future__ import annotations

from itertools import accumulate

import torch
from torch import Tensor

from src.data.schema import NUM_CLASSES, label_index
from src.utils.errors import UserError

NUM_OUTPUTS: int = sum(NUM_CLASSES)  # 24

# First column of each task's segment: (0, 5, 8, 11, 14, 16, 19, 21).
TASK_OFFSETS: tuple[int, ...] = (0, *accumulate(NUM_CLASSES))[:-1]


def _check_width(x: Tensor) -> None:
    if x.shape[-1] != NUM_OUTPUTS:
        raise ValueError(
            f"expected {NUM_OUTPUTS} columns (8 task segments), got shape {tuple(x.shape)}"
        )


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


def split_tasks(x: Tensor) -> list[Tensor]:
    """Split the last dimension (24) into the 8 task segments (views, no copy)."""
    _check_width(x)
    return list(torch.split(x, NUM_CLASSES, dim=-1))


def task_softmax(logits: Tensor) -> Tensor:
    """Softmax within each task segment: every segment of the result sums to 1."""
    return torch.cat([seg.softmax(dim=-1) for seg in split_tasks(logits)], dim=-1)


def task_predictions(probs: Tensor) -> Tensor:
    """Argmax class index per task: [..., 24] -> long [..., 8] (ties pick the first class)."""
    return torch.stack([seg.argmax(dim=-1) for seg in split_tasks(probs)], dim=-1)


def label_column(label: str) -> int:
    """Column of a "TASK/CLASS" label in the 24-wide layout (equals ALL_LABELS.index(label))."""
    task, cls = label_index(label)
    return TASK_OFFSETS[task] + cls
