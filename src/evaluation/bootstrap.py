"""Seeded bootstrap intervals of one run's AVG AUC and AVG ACC over its test cases.

The test cases are resampled with replacement (`scipy.stats.bootstrap`, percentile method,
`resamples` draws from a generator seeded with `seed`) and both metrics are computed on each
resample with the definitions of `src.evaluation.metrics`:
- AVG ACC: the mean over tasks of the argmax accuracy, i.e. the mean over resampled cases of each
  case's fraction of correct tasks (every task has the same cases).
- AVG AUC: the mean of the one-vs-rest AUCs of `spec.avg_auc_labels`, each the Mann-Whitney
  statistic (a tie counts one half), which is exactly the area under the ROC curve.

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
_BATCH_ELEMENTS = 1 << 21  # resample counts [batch, N] at once: 16 MiB of float64 per array


class CaseScores:
    """What every resample is scored from: per AVG AUC label, the cases in score order with
    their tie groups and positives; per case, its fraction of correctly predicted tasks.

    A resample is a count per case (how often it was drawn), so each label's AUC is computed
    from these fixed orders with weighted sums, without sorting again: the Mann-Whitney
    statistic (a tie counts one half), exactly the area under the ROC curve.
    """

    def __init__(self, probs: Tensor, labels: Tensor, spec: TaskSpec) -> None:
        self.n = int(labels.shape[0])
        self.orders, self.ties, self.positives = [], [], []
        for label in spec.avg_auc_labels:
            t, c = spec.label_index(label)
            scores = probs[:, spec.offsets[t] + c].double().numpy()
            order = np.argsort(scores, kind="stable")
            ordered = scores[order]
            self.orders.append(order)
            self.ties.append(np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]))
            self.positives.append((labels[order, t] == c).double().numpy())
        predicted = task_predictions(probs, spec.num_classes)
        self.correct = (predicted == labels).double().mean(dim=1).numpy()

    def counts(self, idx: np.ndarray) -> np.ndarray:
        """Resampled case indices [R, N] -> how often each case was drawn [R, N]."""
        rows = idx + self.n * np.arange(idx.shape[0])[:, None]
        return np.bincount(rows.ravel(), minlength=idx.size).reshape(idx.shape).astype(float)

    def label_aucs(self, counts: np.ndarray) -> np.ndarray:
        """AUC per resample and label [R, K]; NaN where a resample has no positive or no
        negative case of the label."""
        aucs = []
        for order, ties, positive in zip(self.orders, self.ties, self.positives):
            weight = counts[:, order]
            pos = weight * positive
            neg = weight - pos
            pos_tied = np.add.reduceat(pos, ties, axis=1)  # [R, tie groups]
            neg_tied = np.add.reduceat(neg, ties, axis=1)
            below = np.cumsum(neg_tied, axis=1) - neg_tied  # negatives scored strictly lower
            wins = (pos_tied * (below + 0.5 * neg_tied)).sum(axis=1)
            pairs = pos.sum(axis=1) * neg.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                aucs.append(np.where(pairs > 0, wins / pairs, np.nan))
        return np.stack(aucs, axis=1)

    def statistics(self, idx: np.ndarray) -> np.ndarray:
        """[AVG AUC, AVG ACC, labels without AUC] [3, R] of each row of case indices [R, N]."""
        counts = self.counts(idx)
        auc = self.label_aucs(counts)
        undefined = np.isnan(auc).sum(axis=1)
        defined = auc.shape[1] - undefined
        with np.errstate(invalid="ignore"):
            avg_auc = np.where(defined > 0, np.nansum(auc, axis=1) / defined, np.nan)
        avg_acc = counts @ self.correct / self.n
        return np.stack([avg_auc, avg_acc, undefined.astype(float)])


def _bound(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def bootstrap_intervals(
    probs: Tensor, labels: Tensor, spec: TaskSpec, resamples: int, seed: int
) -> dict[str, Any]:
    """The `bootstrap` entry of metrics.json: 95% intervals [low, high] of AVG AUC and AVG ACC
    of `probs` [N, L] against `labels` [N, T] over `resamples` seeded resamples of the cases."""
    probs, labels = check_inputs(probs, labels, spec)
    cases = CaseScores(probs, labels, spec)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        if idx.ndim == 1:  # scipy also evaluates the original sample, [N]
            return cases.statistics(idx[None])[:, 0]
        return cases.statistics(idx)

    result = stats.bootstrap(
        (np.arange(cases.n),),
        statistic,
        n_resamples=resamples,
        batch=max(1, _BATCH_ELEMENTS // cases.n),
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
