"""Seeded bootstrap intervals of one run's AVG AUC and AVG ACC over its test cases.

The test cases are resampled with replacement (`scipy.stats.bootstrap`, percentile method,
`resamples` draws from a generator seeded with `seed`) and both metrics are computed on each
resample with the definitions of `src.evaluation.metrics`:
- AVG ACC: the mean over tasks of the argmax accuracy, i.e. the mean over resampled cases of each
  case's fraction of correct tasks (every task has the same cases).
- AVG AUC: the mean of the one-vs-rest AUCs of `spec.avg_auc_labels`, each the Mann-Whitney
  statistic with mid-ranks for ties, which is exactly the area under the ROC curve.

A resample where a label has only one class present (no positive or no negative case) leaves
that label's AUC undefined: as for the point estimate, the label is left out of that resample's
AVG AUC, which averages the labels that are defined. `resamples_missing_labels` counts the
resamples where that happened. A resample with no defined label at all has no AVG AUC; the
AVG AUC interval is then null (with its count in `resamples_without_auc`), never an interval
of the resamples that happened to work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from torch import Tensor

from src.data.tasks import TaskSpec
from src.evaluation.metrics import check_inputs
from src.evaluation.probabilities import task_predictions

CONFIDENCE = 0.95
METHOD = "percentile"
_BATCH_ELEMENTS = 1 << 22  # resampled scores [batch, N, labels] at once: 32 MiB of float64


def _auc_columns(probs: Tensor, labels: Tensor, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """Scores [N, K] and positives [N, K] of the K labels AVG AUC averages."""
    scores, positives = [], []
    for label in spec.avg_auc_labels:
        t, c = spec.label_index(label)
        scores.append(probs[:, spec.offsets[t] + c].numpy())
        positives.append((labels[:, t] == c).numpy())
    return np.stack(scores, axis=1).astype(np.float64), np.stack(positives, axis=1)


def _mann_whitney_auc(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """AUC per resample and label: scores, positives [R, N, K] -> [R, K], NaN where a label has
    no positive or no negative case."""
    ranks = stats.rankdata(scores, axis=1)  # mid-ranks: a tie counts one half
    n_pos = positives.sum(axis=1)
    n_neg = positives.shape[1] - n_pos
    rank_sum = (ranks * positives).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def resample_statistics(
    scores: np.ndarray, positives: np.ndarray, correct: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    """[AVG AUC, AVG ACC, labels without AUC] of each row of case indices `idx` [R, N]."""
    auc = _mann_whitney_auc(scores[idx], positives[idx])
    undefined = np.isnan(auc).sum(axis=1)
    defined = auc.shape[1] - undefined
    with np.errstate(invalid="ignore"):
        avg_auc = np.where(defined > 0, np.nansum(auc, axis=1) / defined, np.nan)
    return np.stack([avg_auc, correct[idx].mean(axis=-1), undefined.astype(float)])


def _bound(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def bootstrap_intervals(
    probs: Tensor, labels: Tensor, spec: TaskSpec, resamples: int, seed: int
) -> dict[str, Any]:
    """The `bootstrap` entry of metrics.json: 95% intervals [low, high] of AVG AUC and AVG ACC
    of `probs` [N, L] against `labels` [N, T] over `resamples` seeded resamples of the cases."""
    probs, labels = check_inputs(probs, labels, spec)
    scores, positives = _auc_columns(probs, labels, spec)
    correct = (task_predictions(probs, spec.num_classes) == labels).double().mean(dim=1).numpy()

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        if idx.ndim == 1:  # scipy also evaluates the original sample, [N]
            return resample_statistics(scores, positives, correct, idx[None])[:, 0]
        return resample_statistics(scores, positives, correct, idx)

    result = stats.bootstrap(
        (np.arange(len(correct)),),
        statistic,
        n_resamples=resamples,
        batch=max(1, _BATCH_ELEMENTS // scores.size),
        vectorized=True,
        confidence_level=CONFIDENCE,
        method=METHOD,
        rng=np.random.default_rng(seed),
    )
    distribution = result.bootstrap_distribution  # [3, resamples]
    low, high = result.confidence_interval
    without_auc = int(np.isnan(distribution[0]).sum())
    return {
        "resamples": resamples,
        "seed": seed,
        "confidence": CONFIDENCE,
        "method": METHOD,
        "avg_auc": None if without_auc else [_bound(low[0]), _bound(high[0])],
        "avg_acc": [_bound(low[1]), _bound(high[1])],
        "resamples_missing_labels": int((distribution[2] > 0).sum()),
        "resamples_without_auc": without_auc,
    }
