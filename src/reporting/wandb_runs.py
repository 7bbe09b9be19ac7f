"""Read finished runs back from the W&B API (optional: needs network access and a login).

A run's test metrics are in its summary as `test/<key>` scalars (see
`src.runs.loggers.log_summary`) and its resolved config in `run.config`; together they
give the same record a metrics.json would.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf

from src.reporting.runs import COMPLETE, RunRecord, summary_of
from src.utils.errors import UserError

OFFLINE_MODES = {"offline", "disabled", "dryrun"}
PARAM_KEYS = ("trainable", "paper_accounting")


def offline_reason() -> str | None:
    """Why the W&B API cannot be used here, or None when it may be."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in OFFLINE_MODES:
        return f"WANDB_MODE={mode}"
    return None


def _prefixed(summary: dict[str, Any], prefix: str) -> dict[str, Any]:
    """{rest of the key: value} of the summary keys that start with `prefix`."""
    return {k[len(prefix) :]: v for k, v in summary.items() if k.startswith(prefix)}


def metrics_from_summary(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics.json fields the report uses, from a W&B run summary; None if not a test run."""
    if "test/avg_auc" not in summary and "test/avg_acc" not in summary:
        return None
    return {
        "avg_auc": summary.get("test/avg_auc"),
        "avg_acc": summary.get("test/avg_acc"),
        "auc": _prefixed(summary, "test/auc/"),
        "acc": _prefixed(summary, "test/acc/"),
        "params": {key: summary.get(f"test/params/{key}") for key in PARAM_KEYS},
        "seed": summary.get("test/seed"),
    }


def runs_from_wandb(project: str) -> list[RunRecord]:
    """Finished runs of `entity/project` that logged test metrics."""
    reason = offline_reason()
    if reason is not None:
        raise UserError(f"--wandb {project}: W&B is offline here ({reason}); unset it to read runs")
    import wandb

    try:
        api_runs = list(wandb.Api().runs(project))
    except Exception as err:
        raise UserError(f"--wandb {project}: cannot read runs from W&B ({err})") from err
    records = []
    for run in api_runs:
        metrics = metrics_from_summary(dict(run.summary))
        if metrics is None or run.state != "finished":
            continue
        cfg = OmegaConf.create(dict(run.config))
        metrics["seed"] = metrics["seed"] if metrics["seed"] is not None else cfg.get("seed")
        records.append(
            RunRecord(
                f"wandb:{'/'.join(run.path)}",
                COMPLETE,
                None if metrics["seed"] is None else int(metrics["seed"]),
                summary_of(cfg),
                metrics=metrics,
            )
        )
    return records
