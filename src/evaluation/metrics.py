"""Test metrics of the paper, computed from per-task probabilities and integer labels.

Inputs: a task spec (`src.data.tasks.TaskSpec`), `probs` [N, L] (one segment per task, each a
probability distribution, columns in the order of `spec.all_labels`) and `labels` [N, T] (class
index per task). Every value is a fraction in [0, 1]; the paper prints them as percentages. For
derm7pt (specs/derm7pt.yaml) L = 24 labels over T = 8 tasks.

- Per-label AUC ("TASK/CLASS", every label): one-vs-rest ROC AUC of that class, scored by its own
  probability column, against "case has this class" (Tables 2, 4 and 8).
- AVG AUC: mean of the per-label AUCs over `spec.avg_auc_labels` (derm7pt: the 17 labels of
  Table 2, every class except the "ABS" (absent) class of the seven-point criteria).
- ACC per task: fraction of cases whose argmax class within the task equals the label (Table 3).
- AVG ACC: mean of the task accuracies.
- Melanoma-related labels (`spec.melanoma_labels`; derm7pt's Table 4: DIAG/MEL, PN/ATP, STR/IR,
  PIG/IR, RS/PRS, DaG/IR, BWV/PRS, VS/IR): one-vs-rest on the argmax prediction of the task,
  "predicted positive" meaning the argmax is that class.
  precision = TP / (TP + FP), sensitivity = TP / (TP + FN), specificity = TN / (TN + FP),
  and the label's AUC as above; `melanoma_avg` is the mean of each over those labels.

Undefined values, and how they are handled:
- AUC of a label with no positive or no negative case in the data is undefined: reported as None
  (torchmetrics would return 0) and left out of AVG AUC; `avg_auc_n_labels` says how many labels
  were averaged. Sensitivity without positives and specificity without negatives are likewise
  None and left out of `melanoma_avg` (counts in `melanoma_avg_n_labels`).
- Precision when the model predicts the class for no case is 0.0, scikit-learn's
  `zero_division=0` convention: a class the model never predicts earns no precision.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_stat_scores,
)

from src.data.tasks import TaskSpec
from src.evaluation.probabilities import split_tasks, task_predictions

MELANOMA_KEYS: tuple[str, ...] = ("auc", "precision", "sensitivity", "specificity")
_PROB_TOLERANCE = 1e-4


@contextmanager
def _quiet_degenerate_warnings() -> Iterator[None]:
    """torchmetrics warns about classes without positives/negatives; those are handled here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"No (positive|negative) samples in targets")
        yield


def check_inputs(probs: Tensor, labels: Tensor, spec: TaskSpec) -> tuple[Tensor, Tensor]:
    """Validate shapes and ranges; return CPU copies (probs clamped into [0, 1], labels long).

    Clamping matters: torchmetrics silently softmaxes scores that leave [0, 1], which a weighted
    average of probabilities can do by a rounding error.
    """
    width, n_tasks = spec.num_outputs, len(spec.tasks)
    if probs.ndim != 2 or probs.shape[1] != width:
        raise ValueError(f"probs must be [N, {width}], got {tuple(probs.shape)}")
    if labels.ndim != 2 or labels.shape != (probs.shape[0], n_tasks):
        raise ValueError(f"labels must be [{probs.shape[0]}, {n_tasks}], got {tuple(labels.shape)}")
    if probs.shape[0] == 0:
        raise ValueError("no cases to evaluate (N = 0)")
    if labels.is_floating_point():
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    probs = probs.detach().cpu()
    labels = labels.detach().cpu().long()
    if not torch.isfinite(probs).all():
        raise ValueError("probs contain NaN or infinite values")
    if probs.min() < -_PROB_TOLERANCE or probs.max() > 1 + _PROB_TOLERANCE:
        raise ValueError("probs must be probabilities in [0, 1] (apply task_softmax to logits)")
    upper = torch.tensor(spec.num_classes)
    if (labels < 0).any() or (labels >= upper).any():
        bad = int(((labels < 0) | (labels >= upper)).any(dim=1).nonzero()[0])
        raise ValueError(
            f"labels row {bad} = {labels[bad].tolist()} out of range {spec.num_classes}"
        )
    return probs.clamp(0.0, 1.0), labels


def per_label_auc(probs: Tensor, labels: Tensor, spec: TaskSpec) -> dict[str, float | None]:
    """One-vs-rest ROC AUC of each label; None where all or no cases have the label."""
    probs, labels = check_inputs(probs, labels, spec)
    n = labels.shape[0]
    result: dict[str, float | None] = {}
    with _quiet_degenerate_warnings():
        for t, (task, segment) in enumerate(zip(spec.tasks, split_tasks(probs, spec.num_classes))):
            aucs = multiclass_auroc(segment, labels[:, t], task.num_classes, average=None)
            positives = torch.bincount(labels[:, t], minlength=task.num_classes)
            for c, cls in enumerate(task.classes):
                defined = 0 < int(positives[c]) < n
                result[f"{task.name}/{cls}"] = float(aucs[c]) if defined else None
    return result


def task_accuracies(probs: Tensor, labels: Tensor, spec: TaskSpec) -> dict[str, float]:
    """Accuracy of the argmax class, per task."""
    probs, labels = check_inputs(probs, labels, spec)
    preds = task_predictions(probs, spec.num_classes)
    return {
        name: float(multiclass_accuracy(preds[:, t], labels[:, t], k, average="micro"))
        for t, (name, k) in enumerate(zip(spec.task_names, spec.num_classes))
    }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


def melanoma_scores(
    probs: Tensor, labels: Tensor, spec: TaskSpec, auc: dict[str, float | None] | None = None
) -> dict[str, dict[str, float | None]]:
    """AUC, precision, sensitivity and specificity of each melanoma-related label (Table 4).

    `auc` may pass in already computed per-label AUCs to avoid recomputing them.
    """
    probs, labels = check_inputs(probs, labels, spec)
    auc = per_label_auc(probs, labels, spec) if auc is None else auc
    preds = task_predictions(probs, spec.num_classes)
    result: dict[str, dict[str, float | None]] = {}
    for label in spec.melanoma_labels:
        t, c = spec.label_index(label)
        k = spec.num_classes[t]
        stats = multiclass_stat_scores(preds[:, t], labels[:, t], k, average=None)
        tp, fp, tn, fn = (int(v) for v in stats[c, :4])
        result[label] = {
            "auc": auc[label],
            "precision": tp / (tp + fp) if tp + fp > 0 else 0.0,  # zero_division=0
            "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp),
        }
    return result


def mean_defined(values: Iterable[float | None]) -> tuple[float | None, int]:
    """Mean of the values that are not None, and how many there were (None if there were none)."""
    defined = [v for v in values if v is not None]
    return (sum(defined) / len(defined) if defined else None), len(defined)


def compute_metrics(probs: Tensor, labels: Tensor, spec: TaskSpec) -> dict[str, Any]:
    """All test metrics of one prediction (see the module docstring for definitions).

    Keys: avg_auc, avg_auc_n_labels, avg_acc, auc {label: value}, acc {task: value},
    melanoma {label: {auc, precision, sensitivity, specificity}}, melanoma_avg {same keys},
    melanoma_avg_n_labels {same keys: labels averaged}, n (cases).
    """
    probs, labels = check_inputs(probs, labels, spec)
    auc = per_label_auc(probs, labels, spec)
    acc = task_accuracies(probs, labels, spec)
    melanoma = melanoma_scores(probs, labels, spec, auc)
    avg_auc, avg_auc_n = mean_defined(auc[label] for label in spec.avg_auc_labels)
    melanoma_avg: dict[str, float | None] = {}
    melanoma_n: dict[str, int] = {}
    for key in MELANOMA_KEYS:
        melanoma_avg[key], melanoma_n[key] = mean_defined(m[key] for m in melanoma.values())
    return {
        "avg_auc": avg_auc,
        "avg_auc_n_labels": avg_auc_n,
        "avg_acc": sum(acc.values()) / len(acc),
        "auc": {label: auc[label] for label in spec.all_labels},
        "acc": acc,
        "melanoma": melanoma,
        "melanoma_avg": melanoma_avg,
        "melanoma_avg_n_labels": melanoma_n,
        "n": int(labels.shape[0]),
    }
