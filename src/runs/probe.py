"""The robustness probe of a trained run: its test split under every condition of
`src.data.conditions` (as is, each image missing, each image corrupted at severities 1-5), with
the run's TTA views and its frozen, validation-searched fusion weights, scored by
`compute_metrics` with the run's task spec. Writes robustness.json and robustness.png.

robustness.json:
    {"checkpoint", "split": "test", "seed", "n_cases", "fusion_weights", "tta_views",
     "avg_auc_labels", "missing_image", "corruptions": {name: {transform, severities}},
     "conditions": [{"modality": "none"|"clinic"|"derm",
                     "kind": "as_is"|"missing_mean"|"missing_shuffled"|<corruption>,
                     "severity": 0-5, "avg_auc", "avg_acc", "avg_auc_n_labels",
                     "branches": {branch: {"avg_auc", "avg_acc"}}}]}
`as_is` is the run's evaluation repeated: it equals metrics.json's AVG AUC and AVG ACC.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict
from torch import Tensor
from torch.utils.data import DataLoader

from src.data.conditions import Condition, ConditionDataset, probe_conditions
from src.data.corruptions import CORRUPTIONS, corruption_table
from src.data.datamodule import PairDataModule
from src.data.missing import MISSING_IMAGE
from src.data.tasks import TaskSpec
from src.evaluation.fusion_weights import fuse
from src.evaluation.metrics import compute_metrics
from src.evaluation.robustness_plot import save_robustness_figure
from src.models.module import AMMFMModule
from src.models.names import describe
from src.runs.evaluate import build_eval_trainer, fused_prediction, predict_split
from src.runs.files import ROBUSTNESS_FILE, ROBUSTNESS_PLOT
from src.runs.summary import run_config_summary
from src.utils.io import atomic_write_json
from src.utils.progress import track

log = logging.getLogger(__name__)

PROBE_SEED = 0  # seeds the corruptions and the shuffled pairs (probe_seed= of src.probe)
SPLIT = "test"


def condition_result(
    condition: Condition,
    probs: dict[str, Tensor],
    labels: Tensor,
    weights: dict[str, float],
    tasks: TaskSpec,
) -> dict[str, Any]:
    """One entry of robustness.json's conditions: P_FI's metrics and each branch's."""
    fused = compute_metrics(fuse(probs, weights), labels, tasks)
    branches = {b: compute_metrics(p, labels, tasks) for b, p in probs.items()}
    return {
        "modality": condition.modality,
        "kind": condition.kind,
        "severity": condition.severity,
        "avg_auc": fused["avg_auc"],
        "avg_acc": fused["avg_acc"],
        "avg_auc_n_labels": fused["avg_auc_n_labels"],
        "branches": {
            b: {"avg_auc": m["avg_auc"], "avg_acc": m["avg_acc"]} for b, m in branches.items()
        },
    }


def run_probe(
    cfg: DictConfig,
    module: AMMFMModule,
    datamodule: PairDataModule,
    weights: dict[str, float],
    out_dir: Path,
    checkpoint: str,
    seed: int = PROBE_SEED,
    kinds: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Evaluate `module` on the test split under the probe conditions (as is and `kinds`,
    default all) with the frozen fusion `weights`; write robustness.json and robustness.png
    into `out_dir`, return the document."""
    datamodule.setup("predict")
    base = datamodule.datasets[SPLIT]
    quiet = cfg.copy()
    with open_dict(quiet):
        quiet.trainer.enable_progress_bar = False  # one bar over the conditions instead
    trainer = build_eval_trainer(quiet, out_dir)
    batch_size = int(cfg.data.eval_batch_size)
    conditions = probe_conditions(kinds)
    results = []
    for condition in track(conditions, len(conditions), "robustness probe: conditions", log):
        loader = DataLoader(ConditionDataset(base, condition, seed), batch_size=batch_size)
        probs, labels = predict_split(trainer, module, loader)
        results.append(condition_result(condition, probs, labels, weights, module.tasks))
    document = {
        "checkpoint": str(checkpoint),
        "split": SPLIT,
        "seed": seed,
        "n_cases": len(base),
        "fusion_weights": weights,
        "tta_views": list(cfg.model.tta_views),
        "avg_auc_labels": list(module.tasks.avg_auc_labels),
        "missing_image": MISSING_IMAGE,
        "corruptions": corruption_table(int(cfg.data.image_size)),
        "conditions": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / ROBUSTNESS_FILE, document)
    title = (
        f"{describe(run_config_summary(cfg))} seed {cfg.seed} | {SPLIT} split of "
        f"{cfg.data.name} ({len(base)} cases), {cfg.data.image_size} px"
        f"\n{fused_prediction(weights)} (frozen); TTA {', '.join(cfg.model.tta_views)}"
    )
    save_robustness_figure(results, list(CORRUPTIONS), out_dir / ROBUSTNESS_PLOT, title)
    as_is = results[0]
    log.info(
        "robustness probe: as is AVG AUC %s, %d conditions -> %s",
        as_is["avg_auc"],
        len(results),
        out_dir / ROBUSTNESS_FILE,
    )
    return document
