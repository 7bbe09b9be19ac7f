"""Figures of one evaluation: ROC curves and confusion matrices per task, and the mean ROC helper.

Figures are drawn on matplotlib `Figure` objects directly (Agg canvas, no pyplot state), so
plotting works headless and from several threads, and saved atomically.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.functional.classification import binary_roc, multiclass_confusion_matrix

from src.data.tasks import TaskSpec
from src.evaluation.metrics import check_inputs, per_label_auc
from src.evaluation.probabilities import split_tasks, task_predictions
from src.utils.io import atomic_path

_GRID_COLS = 4  # at most 4 tasks per row (derm7pt's 8 tasks: 2 x 4 subplots)


def _task_figure(title: str, n_tasks: int) -> tuple[Figure, list[Axes]]:
    cols = min(n_tasks, _GRID_COLS)
    rows = -(-n_tasks // cols)
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(np.atleast_1d(fig.subplots(rows, cols)).flat)
    for unused in axes[n_tasks:]:
        unused.set_axis_off()
    fig.suptitle(title)
    return fig, axes[:n_tasks]


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return Path(path)


def _roc(scores: Tensor, positive: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest ROC points (fpr, tpr), both non-decreasing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"No (positive|negative) samples in targets")
        fpr, tpr, _ = binary_roc(scores.double(), positive.long())
    return fpr.numpy(), tpr.numpy()


def save_roc_curves(
    probs: Tensor, labels: Tensor, spec: TaskSpec, path: str | os.PathLike[str], title: str
) -> Path:
    """One subplot per task with each class's one-vs-rest ROC curve and its AUC in the legend.

    A class with no positive or no negative case has no curve; its legend says "AUC n/a".
    """
    probs, labels = check_inputs(probs, labels, spec)
    auc = per_label_auc(probs, labels, spec)
    fig, axes = _task_figure(title, len(spec.tasks))
    segments = split_tasks(probs, spec.num_classes)
    for t, (task, segment, ax) in enumerate(zip(spec.tasks, segments, axes)):
        if task.num_classes > 10:  # the default cycle repeats after 10 colours
            ax.set_prop_cycle(color=[colormaps["tab20"](i) for i in range(task.num_classes)])
        for c, cls in enumerate(task.classes):
            value = auc[f"{task.name}/{cls}"]
            if value is None:
                ax.plot([], [], label=f"{cls} (AUC n/a)")
                continue
            fpr, tpr = _roc(segment[:, c], labels[:, t] == c)
            ax.plot(fpr, tpr, label=f"{cls} (AUC {value:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        ax.set(title=task.name, xlabel="false positive rate", ylabel="true positive rate")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
        ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def confusion_matrices(
    probs: Tensor, labels: Tensor, spec: TaskSpec
) -> list[tuple[np.ndarray, float]]:
    """Per task: (counts of true (rows) against argmax-predicted (columns) classes, accuracy)."""
    probs, labels = check_inputs(probs, labels, spec)
    preds = task_predictions(probs, spec.num_classes)
    out = []
    for t, task in enumerate(spec.tasks):
        matrix = multiclass_confusion_matrix(preds[:, t], labels[:, t], task.num_classes).numpy()
        total = int(matrix.sum())
        out.append((matrix, float(np.trace(matrix)) / total if total else float("nan")))
    return out


def save_confusion_matrices(
    probs: Tensor, labels: Tensor, spec: TaskSpec, path: str | os.PathLike[str], title: str
) -> Path:
    """One subplot per task: true (rows) against argmax-predicted (columns) classes, coloured
    by the fraction of each true class (row-normalised) and annotated with that fraction and
    the count; the task's accuracy in its title; one shared colour bar."""
    fig, axes = _task_figure(title, len(spec.tasks))
    image = None
    matrices = confusion_matrices(probs, labels, spec)
    for task, ax, (matrix, accuracy) in zip(spec.tasks, axes, matrices):
        totals = matrix.sum(axis=1, keepdims=True)
        rows = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
        image = ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0)
        ticks = range(task.num_classes)
        ax.set(xticks=ticks, yticks=ticks, xticklabels=task.classes, yticklabels=task.classes)
        ax.set(title=f"{task.name}: accuracy {accuracy:.3f}", xlabel="predicted", ylabel="true")
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if rows[i, j] > 0.5 else "black"
            ax.text(j, i, f"{rows[i, j]:.2f}\n({count})", ha="center", va="center", color=colour)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="fraction of the true class (row)")
    return _save(fig, path)


def _tpr_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """TPR of the piecewise-linear ROC curve through (fpr, tpr) at each grid FPR.

    Several points may share one FPR (a vertical stretch of the curve): the curve arrives there
    at the lowest of their TPRs and leaves at the highest. At exactly that FPR the highest is
    taken. The curve runs from (0, 0) to (1, 1), as torchmetrics' ROC points do.
    """
    knots, first = np.unique(fpr, return_index=True)  # fpr is sorted: groups are contiguous
    last = np.r_[first[1:], len(fpr)] - 1
    arrive, leave = tpr[first], tpr[last]
    left = np.searchsorted(knots, grid, side="right") - 1  # last knot at or before each grid FPR
    right = np.minimum(left + 1, len(knots) - 1)
    span = knots[right] - knots[left]
    frac = np.divide(grid - knots[left], span, out=np.zeros_like(grid), where=span > 0)
    return leave[left] + frac * (arrive[right] - leave[left])


def mean_roc_curve(
    runs: Sequence[tuple[Tensor, Tensor]], label: str, spec: TaskSpec, grid_size: int = 101
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation over runs of one label's ROC curve on a common FPR grid.

    `runs` holds (probs [N, L], labels [N, T]) per run (e.g. per seed), in the layout of the
    task spec `spec`; `label` is "TASK/CLASS".
    Each run's ROC curve (straight lines between its points) is read off at `grid_size` evenly
    spaced FPRs in [0, 1] (see `_tpr_on_grid`). Runs in which the
    label has no positive or no negative case have no curve and are skipped. The spread is the
    population standard deviation (ddof=0) across the remaining runs.
    """
    task, cls = spec.label_index(label)
    column = spec.label_column(label)
    grid = np.linspace(0.0, 1.0, grid_size)
    curves = []
    for probs, labels in runs:
        probs, labels = check_inputs(probs, labels, spec)
        positive = labels[:, task] == cls
        if positive.all() or not positive.any():
            continue
        curves.append(_tpr_on_grid(*_roc(probs[:, column], positive), grid))
    if not curves:
        raise ValueError(f"no run has both positive and negative cases of {label}")
    stacked = np.stack(curves)
    return grid, stacked.mean(axis=0), stacked.std(axis=0)
