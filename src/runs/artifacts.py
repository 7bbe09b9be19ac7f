"""What every run leaves in its output directory: metrics.json, predictions.csv, plots.

All files are written atomically, so a crashed run never leaves a half-written result that a
report or a re-run of a sweep could mistake for a finished one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from torch import Tensor

from src.data.tasks import TaskSpec
from src.evaluation.plots import save_confusion_matrices, save_roc_curves
from src.evaluation.probabilities import task_predictions
from src.runs.files import CONFUSION_FILE, METRICS_FILE, PREDICTIONS_FILE, ROC_FILE
from src.utils.io import atomic_path, atomic_write_json


def write_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> Path:
    path = Path(run_dir) / METRICS_FILE
    atomic_write_json(path, metrics)
    return path


def predictions_frame(
    case_nums: Sequence[str], probs: dict[str, Tensor], labels: Tensor, spec: TaskSpec
) -> pd.DataFrame:
    """One row per test case: labels, P_FI predictions, and every branch's probabilities."""
    frame: dict[str, Any] = {"case_num": list(case_nums)}
    predicted = task_predictions(probs["final"], spec.num_classes)
    for t, task in enumerate(spec.task_names):
        frame[f"label_{task}"] = labels[:, t].tolist()
        frame[f"pred_{task}"] = predicted[:, t].tolist()
    for branch, branch_probs in probs.items():
        for j, label in enumerate(spec.all_labels):
            frame[f"{branch}:{label}"] = branch_probs[:, j].tolist()
    return pd.DataFrame(frame)


def write_predictions(
    run_dir: str | Path,
    case_nums: Sequence[str],
    probs: dict[str, Tensor],
    labels: Tensor,
    spec: TaskSpec,
) -> Path:
    path = Path(run_dir) / PREDICTIONS_FILE
    frame = predictions_frame(case_nums, probs, labels, spec)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    return path


def write_plots(
    run_dir: str | Path, probs: Tensor, labels: Tensor, spec: TaskSpec, title: str
) -> list[Path]:
    run_dir = Path(run_dir)
    return [
        Path(save_roc_curves(probs, labels, spec, run_dir / ROC_FILE, title)),
        Path(save_confusion_matrices(probs, labels, spec, run_dir / CONFUSION_FILE, title)),
    ]
