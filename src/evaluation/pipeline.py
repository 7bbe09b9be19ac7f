"""Evaluation recipe: weight search on the valid predictions, then test metrics with those weights.

Fusion weights (Eq. 4) are searched on the validation split only, then frozen and applied to the
test split: the test split never influences any choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from src.data.tasks import TaskSpec
from src.evaluation.bootstrap import bootstrap_intervals
from src.evaluation.fusion_weights import fuse, search_fusion_weights
from src.evaluation.metrics import compute_metrics
from src.evaluation.probabilities import require_finite


@dataclass
class Evaluation:
    """Everything a run reports about its test split."""

    metrics: dict[str, Any]  # P_FI metrics plus "branches", "fusion_weights", "valid"
    weights: dict[str, float]
    test_probs: dict[str, Tensor]  # per branch, plus "final" (P_FI)
    test_labels: Tensor


def evaluate(
    val_probs: dict[str, Tensor],
    val_labels: Tensor,
    test_probs: dict[str, Tensor],
    test_labels: Tensor,
    spec: TaskSpec,
    weight_grid_step: float,
    bootstrap_resamples: int = 0,
    bootstrap_seed: int = 0,
) -> Evaluation:
    """Search the fusion weights on valid, apply them on test, and compute all metrics.

    `*_probs` are TTA probabilities per branch; labels are class indices [N, T], both in the
    layout of the task spec `spec`. With `bootstrap_resamples` > 0, `metrics["bootstrap"]`
    holds the seeded 95% intervals of the test AVG AUC and AVG ACC (src.evaluation.bootstrap).
    """
    for split, probs in (("valid", val_probs), ("test", test_probs)):
        for branch, branch_probs in probs.items():
            require_finite(branch_probs, f"{split} split, {branch} branch")
    weights = search_fusion_weights(val_probs, val_labels, spec, step=weight_grid_step)
    final = fuse(test_probs, weights)

    metrics = compute_metrics(final, test_labels, spec)
    metrics["branches"] = {b: compute_metrics(p, test_labels, spec) for b, p in test_probs.items()}
    metrics["fusion_weights"] = weights
    if bootstrap_resamples > 0:
        metrics["bootstrap"] = bootstrap_intervals(
            final, test_labels, spec, bootstrap_resamples, bootstrap_seed
        )
    valid = compute_metrics(fuse(val_probs, weights), val_labels, spec)
    metrics["valid"] = {"avg_acc": valid["avg_acc"], "avg_auc": valid["avg_auc"]}
    return Evaluation(metrics, weights, {**test_probs, "final": final}, test_labels)
