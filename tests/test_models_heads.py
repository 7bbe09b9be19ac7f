"""Branch heads: the FusionM4Net MLP with the eight task classifiers."""

from __future__ import annotations

import pytest
import torch

from src.models.heads import TaskHead
from tests.specs import NUM_CLASSES


@pytest.mark.parametrize("dim", [576, 768, 1344, 2048])
def test_parameter_count_is_512d_plus_70552(dim: int) -> None:
    head = TaskHead(dim, NUM_CLASSES)
    assert sum(p.numel() for p in head.parameters()) == 512 * dim + 70_552


def test_logits_cover_all_tasks_and_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    head = TaskHead(32, NUM_CLASSES, hidden=(16, 8), dropout=0.5)
    x = torch.randn(4, 32)
    assert head(x).shape == (4, sum(NUM_CLASSES)) == (4, 24)
    head.eval()
    torch.testing.assert_close(head(x), head(x))
    head.train()
    assert not torch.equal(head(x), head(x))


def test_no_hidden_layer_is_a_linear_classifier() -> None:
    head = TaskHead(32, NUM_CLASSES, hidden=(), dropout=0.0)
    assert sum(p.numel() for p in head.parameters()) == 32 * 24 + 24
