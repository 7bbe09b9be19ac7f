"""What the test split may influence: nothing but the reported test numbers. The fusion weights
(Eq. 4), the validation metric and the number a sweeper maximises come from the validation
split alone; changing every test probability leaves them unchanged."""

from __future__ import annotations

import torch

from src.evaluation.fusion_weights import BRANCHES
from src.evaluation.pipeline import evaluate
from src.runs.sweep import selection_metric
from tests.specs import DERM7PT
from tests.test_evaluation_fusion_weights import _confidently_wrong, _labels, _weakly_right


def _split(good: str, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    probs = {b: _confidently_wrong(labels) for b in BRANCHES}
    probs[good] = _weakly_right(labels)
    return probs


def test_the_test_split_never_chooses_the_fusion_weights_or_the_selection_metric() -> None:
    val_labels, test_labels = _labels(40, seed=1), _labels(60, seed=2)
    val = _split("derm", val_labels)
    # On the test split another branch is the accurate one: a search that looked at the test
    # split would weight it most.
    first = evaluate(val, val_labels, _split("clin", test_labels), test_labels, DERM7PT, 0.05)
    second = evaluate(val, val_labels, _split("fusion", test_labels), test_labels, DERM7PT, 0.05)
    assert first.weights == second.weights
    assert first.weights["derm"] == max(first.weights.values()) > 0.7
    assert first.metrics["valid"] == second.metrics["valid"]
    clin_acc = [e.metrics["branches"]["clin"]["avg_acc"] for e in (first, second)]
    assert clin_acc == [1.0, 0.0]  # the test numbers did change
    assert selection_metric(first.metrics) == selection_metric(second.metrics)
    assert selection_metric(first.metrics) == first.metrics["valid"]["avg_auc"]
    assert selection_metric(first.metrics) != first.metrics["avg_auc"]
