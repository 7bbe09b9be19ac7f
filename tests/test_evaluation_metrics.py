import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
)

from src.evaluation.metrics import MELANOMA_KEYS, compute_metrics, per_label_auc
from src.evaluation.probabilities import task_softmax
from tests.specs import (
    ALL_LABELS,
    AVG_AUC_LABELS,
    DERM7PT,
    MELANOMA_LABELS,
    NUM_CLASSES,
    TASK_NAMES,
    TASK_OFFSETS,
    label_column,
    label_index,
)

N = 60


def _random_case(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.stack([torch.randint(0, k, (N,), generator=gen) for k in NUM_CLASSES], dim=1)
    logits = torch.randn(N, 24, generator=gen, dtype=torch.float64)
    # Make the scores informative so AUCs spread over (0, 1) rather than sit near 0.5.
    for t, offset in enumerate(TASK_OFFSETS):
        logits[torch.arange(N), offset + labels[:, t]] += 1.0
    probs = task_softmax(logits, NUM_CLASSES)
    return (probs * 10).round() / 10, labels  # rounding creates tied scores


def _degenerate_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and predictions that hit every undefined / zero-division branch."""
    probs, labels = _random_case(3)
    labels[:, 0][labels[:, 0] == 0] = 1  # DIAG/BCC: no positives
    labels[:, 6] = 0  # BWV: all ABS -> BWV/PRS no positives, BWV/ABS no negatives
    vs = TASK_OFFSETS[7]
    probs[:, vs + 2] = 0.0  # VS/IR never predicted -> precision 0 by convention
    labels[:5, 7] = 2  # ... though some cases are VS/IR (sensitivity 0, defined)
    labels[:, 1] = 2  # PN all ATP -> PN/ATP: no negatives -> specificity undefined
    return probs, labels


def _sklearn_reference(probs: torch.Tensor, labels: torch.Tensor) -> dict:
    p, y = probs.numpy(), labels.numpy()
    preds = np.stack(
        [np.argmax(p[:, o : o + k], axis=1) for o, k in zip(TASK_OFFSETS, NUM_CLASSES)], axis=1
    )
    auc = {}
    for label in ALL_LABELS:
        t, c = label_index(label)
        truth = y[:, t] == c
        auc[label] = (
            roc_auc_score(truth, p[:, label_column(label)]) if 0 < truth.sum() < N else None
        )
    acc = {name: accuracy_score(y[:, t], preds[:, t]) for t, name in enumerate(TASK_NAMES)}
    melanoma = {}
    for label in MELANOMA_LABELS:
        t, c = label_index(label)
        truth, pred = y[:, t] == c, preds[:, t] == c
        tn, fp, _, _ = confusion_matrix(truth, pred, labels=[False, True]).ravel()
        sen = recall_score(truth, pred, zero_division=np.nan)
        melanoma[label] = {
            "auc": auc[label],
            "precision": precision_score(truth, pred, zero_division=0),
            "sensitivity": None if math.isnan(sen) else sen,
            "specificity": tn / (tn + fp) if tn + fp else None,
        }
    return {"auc": auc, "acc": acc, "melanoma": melanoma}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _assert_same(actual, expected, what):
    if expected is None:
        assert actual is None, what
    else:
        assert actual == pytest.approx(float(expected), abs=1e-6), what


@pytest.mark.parametrize("case", ["random", "degenerate"])
def test_metrics_match_sklearn(case):
    probs, labels = _random_case(7) if case == "random" else _degenerate_case()
    result = compute_metrics(probs, labels, DERM7PT)
    ref = _sklearn_reference(probs, labels)

    for label in ALL_LABELS:
        _assert_same(result["auc"][label], ref["auc"][label], label)
    for name in TASK_NAMES:
        _assert_same(result["acc"][name], ref["acc"][name], name)
    for label in MELANOMA_LABELS:
        for key in MELANOMA_KEYS:
            _assert_same(result["melanoma"][label][key], ref["melanoma"][label][key], (label, key))
        assert result["melanoma"][label]["precision"] is not None

    _assert_same(result["avg_auc"], _mean(ref["auc"][lbl] for lbl in AVG_AUC_LABELS), "avg_auc")
    expected_n = sum(ref["auc"][lbl] is not None for lbl in AVG_AUC_LABELS)
    assert result["avg_auc_n_labels"] == expected_n
    _assert_same(result["avg_acc"], np.mean(list(ref["acc"].values())), "avg_acc")
    for key in MELANOMA_KEYS:
        values = [ref["melanoma"][lbl][key] for lbl in MELANOMA_LABELS]
        _assert_same(result["melanoma_avg"][key], _mean(values), key)
        assert result["melanoma_avg_n_labels"][key] == sum(v is not None for v in values)
    assert result["n"] == N


def test_degenerate_case_really_is_degenerate():
    """Guards the test above: the undefined and zero-division branches are exercised."""
    result = compute_metrics(*_degenerate_case(), DERM7PT)
    assert result["auc"]["DIAG/BCC"] is None
    assert result["auc"]["BWV/PRS"] is None
    assert result["auc"]["BWV/ABS"] is None
    # Dropped: DIAG/BCC, BWV/PRS, and PN/TYP + PN/ATP (every PN label is ATP).
    assert result["avg_auc_n_labels"] == 13
    assert result["melanoma"]["VS/IR"]["precision"] == 0.0
    assert result["melanoma"]["VS/IR"]["sensitivity"] == 0.0
    assert result["melanoma"]["PN/ATP"]["specificity"] is None
    assert result["melanoma"]["BWV/PRS"]["sensitivity"] is None
    assert result["melanoma_avg_n_labels"] == {
        "auc": 6,
        "precision": 8,
        "sensitivity": 7,
        "specificity": 7,
    }


def test_all_values_are_fractions_and_keys_complete():
    result = compute_metrics(*_random_case(11), DERM7PT)
    assert list(result["auc"]) == list(ALL_LABELS)
    assert list(result["acc"]) == list(TASK_NAMES)
    assert list(result["melanoma"]) == list(MELANOMA_LABELS)
    values = [
        result["avg_auc"],
        result["avg_acc"],
        *result["auc"].values(),
        *result["acc"].values(),
    ]
    values += [v for m in result["melanoma"].values() for v in m.values()]
    values += list(result["melanoma_avg"].values())
    assert all(0.0 <= v <= 1.0 for v in values)


def test_perfect_predictions_score_one():
    _, labels = _random_case(5)
    probs = torch.zeros(N, 24)
    for t, offset in enumerate(TASK_OFFSETS):
        probs[torch.arange(N), offset + labels[:, t]] = 1.0
    result = compute_metrics(probs, labels, DERM7PT)
    assert result["avg_auc"] == 1.0
    assert result["avg_acc"] == 1.0
    assert result["melanoma_avg"] == dict.fromkeys(MELANOMA_KEYS, 1.0)


def test_scores_slightly_above_one_are_not_softmaxed():
    """A weighted average can exceed 1 by rounding; AUC must still rank the raw scores."""
    _, labels = _random_case(2)
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(N, 24, generator=gen, dtype=torch.float64)  # BWV rows not normalised
    bwv = label_column("BWV/ABS")
    probs[0, bwv] = 1 + 5e-5
    auc = per_label_auc(probs, labels, DERM7PT)
    truth = (labels[:, 6] == 0).numpy()
    assert auc["BWV/ABS"] == pytest.approx(roc_auc_score(truth, probs[:, bwv].numpy()))


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (torch.zeros(4, 23), torch.zeros(4, 8, dtype=torch.long), "probs must be"),
        (torch.zeros(4, 24), torch.zeros(3, 8, dtype=torch.long), "labels must be"),
        (torch.full((4, 24), 3.0), torch.zeros(4, 8, dtype=torch.long), "probabilities"),
        (torch.zeros(4, 24), torch.full((4, 8), 2), "out of range"),
        (torch.zeros(4, 24), torch.zeros(4, 8), "integer"),
        (torch.zeros(0, 24), torch.zeros(0, 8, dtype=torch.long), "no cases"),
    ],
)
def test_bad_inputs_are_rejected(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(probs, labels, DERM7PT)
