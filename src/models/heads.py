"""The branch head: an MLP over a pooled feature vector with one classifier per task.

Per hidden width h: Linear -> BatchNorm1d -> Swish -> Dropout; then one linear layer producing
the logits of every task (derm7pt: 5,3,3,3,2,3,2,3 = 24 outputs), which is the per-task
classifiers stacked. With hidden (512, 128) and derm7pt's tasks the head has
512 * in_features + 70,552 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class TaskHead(nn.Module):
    """Pooled features [B, in_features] -> concatenated task logits [B, sum(num_classes)]."""

    def __init__(
        self,
        in_features: int,
        num_classes: Sequence[int],
        hidden: Sequence[int] = (512, 128),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for out in hidden:
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.SiLU(), nn.Dropout(dropout)]
            width = out
        self.mlp = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, sum(num_classes))
        self.num_classes = tuple(num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.mlp(x))
