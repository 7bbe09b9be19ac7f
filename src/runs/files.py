"""Every file a run folder holds, by name, and how to tell a finished run from the rest.

<run>/config.yaml                 the resolved config, written before training starts
<run>/identity.json               what the result is: settings, data fingerprint, weights
<run>/metrics.json                the results; a run is complete when it has every key below
<run>/predictions.csv             test predictions of every branch and of P_FI
<run>/roc_curves.png, confusion_matrices.png
<run>/checkpoints/final.ckpt      the final (averaged) weights and the config
<run>/checkpoints/last.ckpt       link to the newest epoch checkpoint: resume point
<run>/error.txt                   a failed sweep job's one-line error and traceback
<run>/wandb_run_id.txt            the W&B run id, reused when the run resumes
<run>/.hydra/config.yaml          written by Hydra when the job starts
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
ROC_FILE = "roc_curves.png"
CONFUSION_FILE = "confusion_matrices.png"
CHECKPOINT_DIR = "checkpoints"
FINAL_CHECKPOINT = "final.ckpt"
LAST_CHECKPOINT = "last.ckpt"
ERROR_FILE = "error.txt"
IDENTITY_FILE = "identity.json"
WANDB_ID_FILE = "wandb_run_id.txt"
HYDRA_CONFIG = Path(".hydra") / "config.yaml"
SWEEP_FILE = "multirun.yaml"  # written by Hydra at the root of a sweep

# Keys a metrics.json must have to count as a finished run.
REQUIRED_METRIC_KEYS = (
    "avg_auc",
    "avg_acc",
    "auc",
    "acc",
    "branches",
    "fusion_weights",
    "params",
    "seed",
    "config",
)


def is_complete(run_dir: str | Path) -> bool:
    """True when the run directory holds a readable metrics.json with every required key."""
    path = Path(run_dir) / METRICS_FILE
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and all(k in metrics for k in REQUIRED_METRIC_KEYS)


def final_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / FINAL_CHECKPOINT


def last_checkpoint(run_dir: Path) -> Path:
    """checkpoints/last.ckpt, or the newest epoch checkpoint when the run died while
    last.ckpt was being re-linked to it."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if (folder / LAST_CHECKPOINT).is_file():
        return folder / LAST_CHECKPOINT
    epochs = sorted(folder.glob("epoch*.ckpt"))
    return epochs[-1] if epochs else folder / LAST_CHECKPOINT
