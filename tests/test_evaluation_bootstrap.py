"""Bootstrap intervals of one run: the metrics' own definitions on each resample, seeded, and
resamples where a label has a single class handled as the point estimate handles them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.evaluation.bootstrap import CaseScores, bootstrap_intervals
from src.evaluation.metrics import compute_metrics
from src.evaluation.pipeline import evaluate
from src.evaluation.probabilities import task_softmax
from tests.specs import DERM7PT


def _predictions(n: int, seed: int, signal: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities (rounded, so scores tie) that favour the true class, and the labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.stack([torch.randint(0, k, (n,), generator=g) for k in DERM7PT.num_classes], 1)
    logits = torch.randn(n, DERM7PT.num_outputs, generator=g)
    for t, offset in enumerate(DERM7PT.offsets):
        logits[torch.arange(n), offset + labels[:, t]] += signal
    probs = (task_softmax(logits, DERM7PT.num_classes) * 20).round() / 20
    return probs, labels


def test_interval_holds_the_estimate_and_is_seeded() -> None:
    probs, labels = _predictions(150, seed=0)
    point = compute_metrics(probs, labels, DERM7PT)
    boot = bootstrap_intervals(probs, labels, DERM7PT, resamples=300, seed=4)
    for metric in ("avg_auc", "avg_acc"):
        low, high = boot[metric]
        assert low < point[metric] < high, metric
        assert high - low < 0.2
    assert boot == bootstrap_intervals(probs, labels, DERM7PT, resamples=300, seed=4)
    assert boot != bootstrap_intervals(probs, labels, DERM7PT, resamples=300, seed=5)
    assert (boot["resamples"], boot["seed"], boot["confidence"]) == (300, 4, 0.95)


def test_each_resample_uses_the_metrics_definitions() -> None:
    """The statistic of the unresampled cases is compute_metrics' AVG AUC and AVG ACC (ties in
    the scores included), so a resample is scored exactly as a test split would be."""
    probs, labels = _predictions(90, seed=1)
    identity = np.arange(len(labels))[None]
    auc, acc, undefined = CaseScores(probs, labels, DERM7PT).statistics(identity)[:, 0]
    point = compute_metrics(probs, labels, DERM7PT)
    assert auc == pytest.approx(point["avg_auc"], abs=1e-6)
    assert acc == pytest.approx(point["avg_acc"], abs=1e-6)
    assert undefined == len(DERM7PT.avg_auc_labels) - point["avg_auc_n_labels"]
    # a resample drawing case 0 twice and never case 1 is scored as that data set would be
    twice = np.r_[0, 0, np.arange(2, len(labels))]
    auc, acc, _ = CaseScores(probs, labels, DERM7PT).statistics(twice[None])[:, 0]
    resampled = compute_metrics(probs[twice], labels[twice], DERM7PT)
    assert auc == pytest.approx(resampled["avg_auc"], abs=1e-6)
    assert acc == pytest.approx(resampled["avg_acc"], abs=1e-6)


def test_resamples_missing_a_class_average_the_defined_labels() -> None:
    """With 12 cases most resamples lose a rare class: its AUC is left out of that resample's
    AVG AUC (as compute_metrics leaves it out), and the count says how often."""
    probs, labels = _predictions(12, seed=2)
    boot = bootstrap_intervals(probs, labels, DERM7PT, resamples=200, seed=0)
    assert boot["resamples_missing_labels"] > 0
    assert boot["resamples_without_auc"] == 0
    assert boot["avg_auc"] is not None and all(0.0 <= v <= 1.0 for v in boot["avg_auc"])


def test_evaluation_records_the_interval_unless_switched_off() -> None:
    val_probs, val_labels = _predictions(60, seed=3)
    test_probs, test_labels = _predictions(80, seed=4)
    branches = lambda p: {"derm": p, "clin": p.flip(0), "fusion": p}  # noqa: E731
    args = (branches(val_probs), val_labels, branches(test_probs), test_labels, DERM7PT, 0.25)
    on = evaluate(*args, bootstrap_resamples=100, bootstrap_seed=7).metrics
    assert on["bootstrap"]["resamples"] == 100 and on["bootstrap"]["seed"] == 7
    low, high = on["bootstrap"]["avg_auc"]
    assert low <= on["avg_auc"] <= high
    assert "bootstrap" not in evaluate(*args, bootstrap_resamples=0).metrics
