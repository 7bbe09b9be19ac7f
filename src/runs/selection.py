"""Evaluate the checkpoint-selection policies of one training (metrics.json "selection").

    {"swa": {...}, "last": {"epoch": k, ...}, "best_valid": {"epoch": k, "metric": ...,
     "valid_score": ..., ...}}

Each policy's weights get the run's evaluation: TTA predictions on valid and test, their own
fusion weights searched on validation, and the full test metrics of P_FI (with each branch's
AVG AUC and AVG ACC). "swa" is the headline evaluation itself (the paper's policy: the top-level
metrics), not a second one; without SWA (`model.swa_epochs=0`) the headline is "last". Weights
equal to an already evaluated policy's share its numbers instead of being evaluated again.
The module's own weights are restored afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from src.data.datamodule import PairDataModule
from src.evaluation.pipeline import Evaluation
from src.models.module import AMMFMModule
from src.models.selection import BestValidSnapshot, Snapshot, cpu_copy
from src.models.swa import EndOfEpochSWA

log = logging.getLogger(__name__)

SWA, LAST, BEST_VALID = "swa", "last", "best_valid"

Evaluate = Callable[[], Evaluation]  # the run's evaluation of the module's current weights
# What a policy's record says of its own choice and evaluation, not shared with a twin's
_CHOICE_KEYS = ("epoch", "averaged_epochs", "metric", "valid_score", "eval_s")


def policy_record(evaluation: Evaluation) -> dict[str, Any]:
    """One policy's results: the P_FI test metrics, fusion weights, validation scores and each
    branch's AVG AUC / AVG ACC."""
    metrics = evaluation.metrics
    record = {k: v for k, v in metrics.items() if k != "branches"}
    record["branches"] = {
        branch: {"avg_auc": m["avg_auc"], "avg_acc": m["avg_acc"]}
        for branch, m in metrics["branches"].items()
    }
    return record


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def policy_snapshots(
    swa: EndOfEpochSWA | None, best: BestValidSnapshot | None
) -> dict[str, Snapshot]:
    """The weights to evaluate beside the headline: "last" (when SWA replaced it) and
    "best_valid" (when every epoch's validation was seen)."""
    found: dict[str, Snapshot] = {}
    if swa is not None and swa.last is not None:
        found[LAST] = swa.last
    if best is not None and best.chosen is not None:
        found[BEST_VALID] = best.chosen
    elif best is not None and best.best is not None:
        log.warning(
            "no best-validation policy: this run resumed from a checkpoint that does not "
            "record the validation epochs before it (model.selection_policies was off)"
        )
    return found


def evaluate_policies(
    module: AMMFMModule,
    evaluate: Evaluate,
    headline: tuple[str, dict[str, Any], Evaluation],
    snapshots: dict[str, Snapshot],
) -> dict[str, dict[str, Any]]:
    """metrics.json "selection" (see the module docstring). `headline`: the policy the
    module's weights are (swa, or last without SWA), what to record of its choice, and its
    evaluation; `snapshots`: the other policies' weights (`policy_snapshots`)."""
    name, chosen, evaluation = headline
    selection: dict[str, dict[str, Any]] = {name: {**chosen, **policy_record(evaluation)}}
    own = cpu_copy(module)
    evaluated: list[tuple[dict[str, torch.Tensor], str]] = [(own, name)]
    try:
        for policy, snapshot in snapshots.items():
            twin = next((p for w, p in evaluated if _same(w, snapshot.state_dict)), None)
            if twin is not None:  # the same weights: the same numbers, not evaluated again
                record = {k: v for k, v in selection[twin].items() if k not in _CHOICE_KEYS}
                record["same_weights_as"] = twin
            else:
                module.load_state_dict(snapshot.state_dict)
                started = time.perf_counter()
                record = policy_record(evaluate())
                record["eval_s"] = round(time.perf_counter() - started, 2)
                evaluated.append((snapshot.state_dict, policy))
            selection[policy] = {**snapshot.describe(), **record}
    finally:
        module.load_state_dict(own)
    for policy, record in selection.items():
        log.info(
            "selection policy %-10s test AVG AUC %s  AVG ACC %.4f",
            policy,
            "n/a" if record["avg_auc"] is None else f"{record['avg_auc']:.4f}",
            record["avg_acc"],
        )
    return selection


def selection_hook(
    cfg: DictConfig,
    module: AMMFMModule,
    datamodule: PairDataModule,
    run_dir: Path,
    swa: EndOfEpochSWA | None,
    best: BestValidSnapshot | None,
    final_epoch: int,
) -> Callable[[Evaluation], dict[str, Any]] | None:
    """What `evaluate_and_save` adds to metrics.json once the headline is evaluated:
    {"selection": ...}; None when no other policy has weights (nothing was trained here, or
    `model.selection_policies=false`)."""
    from src.runs.evaluate import predict_and_evaluate

    snapshots = policy_snapshots(swa, best)
    if not snapshots:
        return None
    if swa is not None:  # 0-based, as the other policies' epochs
        averaged = [swa.first_epoch, swa.first_epoch + swa.swa_epochs - 1]
        name, chosen = SWA, {"averaged_epochs": averaged}
    else:
        name, chosen = LAST, {"epoch": final_epoch}

    def more(headline: Evaluation) -> dict[str, Any]:
        def evaluate() -> Evaluation:
            return predict_and_evaluate(cfg, module, datamodule, run_dir)

        selection = evaluate_policies(module, evaluate, (name, chosen, headline), snapshots)
        return {"selection": selection}

    return more
