"""Patient metadata as a model input: the columns `model.metadata` picks from the task spec's
metadata, one-hot encoded and concatenated to the fusion head's input (the pooled clinical and
dermoscopy features), as FusionM4Net and TFormer feed metadata to their fused classifiers.

A column the spec marks leaky (derm7pt's management and diagnostic difficulty: the clinician
decides them from the diagnosis) is refused unless `model.allow_leaky_metadata=true`; results
that use one are flagged in metrics.json and in every report row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.data.tasks import TaskSpec
from src.utils.errors import UserError

WITH_FUSION_HEAD = ("aff", "sff")


def select_metadata(
    names: Sequence[str], allow_leaky: bool, tasks: TaskSpec, fusion_mode: str
) -> list[tuple[int, int]]:
    """(index among the spec's metadata columns, number of categories) of each chosen column;
    one line for a column the spec lacks, a repeat, a leaky column not allowed, or a network
    without a fusion head."""
    names = list(names)
    if not names:
        return []
    if fusion_mode not in WITH_FUSION_HEAD:
        raise UserError(
            f"model.metadata={names}: metadata enters the fusion head, which fusion={fusion_mode} "
            f"has none; use fusion={' or '.join(WITH_FUSION_HEAD)}"
        )
    if len(set(names)) != len(names):
        raise UserError(f"model.metadata={names} repeats a column; list each once")
    columns = [m.column for m in tasks.metadata]
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise UserError(
            f"model.metadata: {unknown[0]!r} is not a metadata column of the task spec "
            f"{tasks.name!r}; choose from {', '.join(columns) or 'none (the spec has no metadata)'}"
        )
    leaky = [n for n in names if tasks.meta_column(n).leaky]
    if leaky and not allow_leaky:
        raise UserError(
            f"model.metadata: {', '.join(leaky)} {'leaks' if len(leaky) == 1 else 'leak'} the "
            "labels (decided from the diagnosis, so a model reading it is not a diagnostic "
            "model); set "
            "model.allow_leaky_metadata=true to measure it anyway (the result is flagged)"
        )
    return [(columns.index(n), len(tasks.meta_column(n).values)) for n in names]


def leaky_metadata(names: Sequence[str], tasks: TaskSpec) -> list[str]:
    """The chosen columns the spec marks leaky."""
    return [n for n in names if tasks.meta_column(n).leaky]


class MetadataEncoding(nn.Module):
    """meta long [B, M] (category per spec column, -1 unknown) -> float [B, width]: the chosen
    columns one-hot, an unknown value all zeros. No parameters."""

    def __init__(self, columns: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        self.columns = [(int(i), int(k)) for i, k in columns]
        self.width = sum(k for _, k in self.columns)

    def forward(self, meta: Tensor) -> Tensor:
        parts = [
            F.one_hot(meta[:, i].clamp(min=0), k) * (meta[:, i : i + 1] >= 0)
            for i, k in self.columns
        ]
        return torch.cat(parts, dim=1).float()
