"""Every file a run folder holds, by name, and how to tell a finished run from the rest.

<run>/config.yaml                 the resolved config, written before training starts
<run>/identity.json               what the result is: settings, data fingerprint, weights
<run>/metrics.json                the results; a run is complete when it has every key below
<run>/predictions.csv             test predictions of every branch and of P_FI
<run>/roc_curves.png, confusion_matrices.png
<run>/explain/                    with the W&B logger: panels of the first test cases (src.explain)
<run>/robustness.json, robustness.png   the robustness probe (src.probe, or probe=true)
<run>/checkpoints/final.ckpt      the final (averaged) weights and the config
<run>/checkpoints/last.ckpt       link to the newest epoch checkpoint: resume point
<run>/error.txt                   a failed sweep job's one-line error and traceback
<run>/wandb_run_id.txt            the W&B run id, reused when the run resumes
<run>/.hydra/config.yaml          written by Hydra when the job starts

A single run that fails before training saved anything leaves no folder behind
(removed_if_failed_before_training); a failed sweep job keeps its folder and error.txt.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
ROC_FILE = "roc_curves.png"
CONFUSION_FILE = "confusion_matrices.png"
ROBUSTNESS_FILE = "robustness.json"
ROBUSTNESS_PLOT = "robustness.png"
CHECKPOINT_DIR = "checkpoints"
FINAL_CHECKPOINT = "final.ckpt"
LAST_CHECKPOINT = "last.ckpt"
ERROR_FILE = "error.txt"
IDENTITY_FILE = "identity.json"
WANDB_ID_FILE = "wandb_run_id.txt"
HYDRA_DIR = ".hydra"
HYDRA_CONFIG = Path(HYDRA_DIR) / "config.yaml"
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


# A run's metrics.json is tens of KB; a file above this is damaged or not a run's, and is not
# read (a 200 MB file would take seconds and gigabytes of memory to parse, per reader).
MAX_METRICS_BYTES = 16 * 2**20


def oversized_metrics(run_dir: str | Path) -> str | None:
    """Why the run's metrics.json is not read because of its size; None when it is not there
    or small enough."""
    try:
        size = (Path(run_dir) / METRICS_FILE).stat().st_size
    except OSError:
        return None
    if size <= MAX_METRICS_BYTES:
        return None
    return (
        f"{METRICS_FILE} is {size / 2**20:.0f} MiB, above the {MAX_METRICS_BYTES // 2**20} MiB "
        "a run's metrics take (tens of KB): damaged or not a run's file, not read; rerun it"
    )


def is_complete(run_dir: str | Path) -> bool:
    """True when the run directory holds a readable metrics.json with every required key."""
    path = Path(run_dir) / METRICS_FILE
    if oversized_metrics(run_dir) is not None:
        return False
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


def holds_only_hydra_files(run_dir: Path) -> bool:
    """True while `run_dir` holds no more than Hydra writes as a job starts (.hydra/, the
    job's .log), or does not exist: no run has used it yet."""
    if not run_dir.is_dir():
        return True
    return all(p.name == HYDRA_DIR or p.suffix == ".log" for p in run_dir.iterdir())


@contextmanager
def removed_if_failed_before_training(run_dir: Path, log_dir: Path) -> Iterator[None]:
    """A run that fails before training saved anything (no checkpoints/, no metrics.json) takes
    its run folder with it (config.yaml, train.log, the W&B offline run and wandb_run_id.txt)
    when the folder was new for this run, holding its lock, and the folders above it that are
    left empty, up to `log_dir`. (A DDP process that rank zero started finds rank zero's
    config.yaml there: never new.)"""
    from src.utils.errors import UserError
    from src.utils.folder_lock import folder_lock

    new = holds_only_hydra_files(run_dir)
    try:
        yield
    except Exception:
        started = (run_dir / CHECKPOINT_DIR).exists() or (run_dir / METRICS_FILE).exists()
        if new and run_dir.is_dir() and not started:
            try:
                with folder_lock(run_dir):  # another run that took the folder keeps it
                    shutil.rmtree(run_dir, ignore_errors=True)
            except UserError:
                pass
            _remove_empty_parents(run_dir, log_dir)
        raise


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    stop = stop.resolve()
    for parent in folder.resolve().parents:
        if parent == stop or stop not in parent.parents:
            return
        try:
            parent.rmdir()  # only an empty folder goes
        except OSError:
            return
