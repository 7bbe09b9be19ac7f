"""Training throughput of whole runs: what a paper run and Table 9 cost on this machine.

`python -m src.bench training [--quick] --json FILE` measures, each part capped in time:
- per configuration (AMMFM = AFF MN+ST AAB, and SFF-CAT ST+ST; TF32 and bf16 on a GPU):
  epochs through the project's own Trainer, datamodule (synthetic data, augmentation, the
  configured loader) and validation, after one warm-up epoch: seconds per epoch (training +
  validation), training pairs/s, GPU busy % and peak memory;
- the final evaluation: 6-view TTA prediction on the validation split, scaled to valid + test;
- packing: k runs training at once on one device (separate processes, as a launcher runs
  them), aggregate pairs/s for each k;
and extrapolates `estimates.paper_run_s` (250 epochs + the BatchNorm refresh + evaluation)
and `estimates.table9_s` (60 runs, packed at the best measured k).

Quick mode (a CPU check that the script works) trains a few batches per epoch at 64 px and
scales them to whole epochs; every scaled number says so (`extrapolated_from_batches`).
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import lightning as L
import torch

from src.benchmarks.gpu_busy import GpuBusySampler
from src.benchmarks.packing import measure_packing
from src.benchmarks.throughput_plan import (
    CONFIG_ROWS,
    CPU_LEVERS,
    LEVERS,
    ThroughputPlan,
    run_config,
    scratch_dir,
    trainer_args,
)
from src.benchmarks.timing import peak_rss_mib, synchronize
from src.runs.status import error_line

PAPER_EPOCHS = 250
TABLE9_SEEDS = 10
# Table 9's six configurations, and the measured configuration whose cost stands for each.
TABLE9_ROWS = {
    "t9-sff-cat": "SFF-CAT",
    "t9-sff-bab": "SFF-CAT",
    "t9-sff-aab": "SFF-CAT",
    "t9-aff-cat": "AMMFM",
    "t9-aff-bab": "AMMFM",
    "t9-aff-aab": "AMMFM",
}
# Validation only reports during training (no monitor, the RNG re-seeded every epoch; a test
# checks the weights are the same), so validating every 10th epoch is a pure speed setting.
SPARSE_VALIDATION = 10


@dataclass
class PhaseStamps:
    """When one phase (an epoch's training or its validation) started, and when each of its
    batches ended."""

    start: float
    batch_ends: list[float]

    def seconds(self, full_batches: int) -> float:
        """The phase's duration; when it ran fewer than `full_batches` batches (quick mode),
        its first batch (loader start-up included) plus the median later batch for each
        missing one."""
        ends = self.batch_ends
        if not ends:
            raise ValueError("a phase without batches")
        if len(ends) >= full_batches:
            return ends[-1] - self.start
        first = ends[0] - self.start
        gaps = [b - a for a, b in itertools.pairwise(ends)]
        return first + (full_batches - 1) * (statistics.median(gaps) if gaps else first)


class EpochClock(L.Callback):
    """Batch-end times of every epoch's training and validation (GPU work included)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.train: list[PhaseStamps] = []
        self.val: list[PhaseStamps] = []

    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def on_train_epoch_start(self, *args: Any) -> None:
        self.train.append(PhaseStamps(self._now(), []))

    def on_train_batch_end(self, *args: Any) -> None:
        self.train[-1].batch_ends.append(self._now())

    def on_validation_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self.val.append(PhaseStamps(self._now(), []))

    def on_validation_batch_end(self, *args: Any) -> None:
        self.val[-1].batch_ends.append(self._now())


def measure_config(
    plan: ThroughputPlan, name: str, precision: str, lever: str | None = None
) -> dict[str, Any]:
    """Epoch time and training pairs/s of one configuration through the project's Trainer."""
    from src.runs.setup import module_and_datamodule

    started = time.perf_counter()
    cfg = run_config(plan, name, precision, lever)
    L.seed_everything(0, verbose=False)
    module, datamodule = module_and_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    clock = EpochClock(plan.device)
    limit = plan.limit_batches
    trainer = L.Trainer(
        **trainer_args(cfg),
        max_epochs=1 + plan.timed_epochs,
        limit_train_batches=limit,
        limit_val_batches=1 if limit else None,
        max_time=timedelta(seconds=plan.cap_s),
        callbacks=[clock],
    )
    if plan.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    setup_s = time.perf_counter() - started
    with GpuBusySampler() as busy:
        trainer.fit(module, datamodule=datamodule)
    timed = min(len(clock.train), len(clock.val)) - 1  # the first epoch warms up
    if timed < 1:
        raise TimeoutError(f"{name}: no epoch after the warm-up within {plan.cap_s:.0f} s")
    full_train = len(datamodule.datasets["train"]) // plan.batch
    full_val = math.ceil(len(datamodule.datasets["valid"]) / int(cfg.data.eval_batch_size))
    train_s = statistics.median([phase.seconds(full_train) for phase in clock.train[1 : timed + 1]])
    val_s = statistics.median([phase.seconds(full_val) for phase in clock.val[1 : timed + 1]])
    train_pairs = full_train * plan.batch
    record: dict[str, Any] = {
        "name": _label(name, precision, plan.device, lever),
        "config": name,
        "lever": lever,
        "row": CONFIG_ROWS[name],
        "precision": precision,
        "image_size": plan.image_size,
        "batch_size": plan.batch,
        "num_workers": plan.num_workers,
        "epoch_s": train_s + val_s,
        "train_epoch_s": train_s,
        "val_epoch_s": val_s,
        "pairs_per_s": train_pairs / train_s,
        "timed_epochs": timed,
        "setup_s": setup_s,
        "extrapolated_from_batches": limit,
        "gpu_busy_pct": busy.mean(),
    }
    if plan.device == "cuda":
        record["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:
        record["process_peak_rss_mib"] = peak_rss_mib()  # this process so far, not per config
    record["evaluation_s"] = measure_evaluation(plan, module, datamodule)
    return record


def measure_evaluation(plan: ThroughputPlan, module: Any, datamodule: Any) -> float:
    """Seconds of the final evaluation: TTA (the configured views, the paper's 6) on valid and
    test, plus the block summary (one more pass over valid without TTA), scaled from the
    validation split."""
    from src.runs.evaluate import build_eval_trainer, predict_split

    module.cfg.trainer.enable_progress_bar = False
    trainer = build_eval_trainer(module.cfg, scratch_dir())
    loader = datamodule.split_dataloader("valid")
    limit = plan.limit_batches
    if limit:
        trainer.limit_predict_batches = 1
    synchronize(plan.device)
    started = time.perf_counter()
    predict_split(trainer, module, loader)
    synchronize(plan.device)
    elapsed = time.perf_counter() - started
    batches = 1 if limit else len(loader)
    valid_s = elapsed / batches * len(loader)
    n_valid = len(datamodule.datasets["valid"])
    n_test = len(datamodule.datasets["test"])
    return valid_s * (n_valid + n_test) / n_valid + valid_s / len(module.cfg.model.tta_views)


def _precision_label(precision: str, device: str) -> str:
    if precision.startswith("bf16"):
        return "bf16"
    return "TF32" if device == "cuda" else "fp32"


# ---------------------------------------------------------------------------- estimates
def estimate(configs: list[dict[str, Any]], packing: list[dict[str, Any]]) -> dict[str, Any]:
    """A paper run and Table 9 from the measured parts (the paper's precision: TF32/fp32)."""
    measured = [c for c in configs if c["precision"] == "32-true" and "error" not in c]
    fp32 = {c["config"]: c for c in measured if not c.get("lever")}
    if "AMMFM" not in fp32:
        return {"paper_run_s": None, "table9_s": None, "basis": "AMMFM was not measured"}

    def run_s(c: dict[str, Any]) -> float:
        refresh = c["train_epoch_s"] / 3  # one forward pass over the training split
        return c["setup_s"] + PAPER_EPOCHS * c["epoch_s"] + refresh + c["evaluation_s"]

    paper_run = run_s(fp32["AMMFM"])
    single = next((p for p in packing if p["runs"] == 1 and "pairs_per_s" in p), None)
    best = max(
        (p for p in packing if "pairs_per_s" in p), key=lambda p: p["pairs_per_s"], default=None
    )
    gain = best["pairs_per_s"] / single["pairs_per_s"] if single and best else 1.0
    per_row = {row: run_s(fp32.get(name, fp32["AMMFM"])) for row, name in TABLE9_ROWS.items()}
    sequential = TABLE9_SEEDS * sum(per_row.values())
    ammfm = [c for c in measured if c["config"] == "AMMFM"]
    fastest = min(ammfm, key=run_s)
    return {
        "paper_run_s": paper_run,
        # Derived from the measured parts, not timed: the fastest setting, validating every
        # 10th epoch (trainer.check_val_every_n_epoch=10).
        "paper_run_sparse_validation_s": run_s(fastest)
        - PAPER_EPOCHS * fastest["val_epoch_s"] * (1 - 1 / SPARSE_VALIDATION),
        # The same run with the fastest measured setting (a lever such as the device pipeline).
        "paper_run_fastest_s": run_s(fastest),
        "paper_run_fastest_setting": fastest["name"],
        "table9_s": sequential / gain,
        "table9_sequential_s": sequential,
        "packing_gain": gain,
        "packing_runs": best["runs"] if best else 1,
        "basis": (
            f"setup + {PAPER_EPOCHS} x (training + validation epoch) + BatchNorm refresh "
            "(~1/3 of a training epoch) + 6-view TTA evaluation, at the paper's precision; "
            f"Table 9 = {TABLE9_SEEDS} seeds x 6 rows (SFF rows at SFF-CAT's cost, AFF rows at "
            "AMMFM's; the BAB/AAB blocks add a little), divided by the best packing gain"
        ),
    }


def _label(name: str, precision: str, device: str, lever: str | None) -> str:
    label = f"{name} {_precision_label(precision, device)}"
    return f"{label} + {lever}" if lever else label


def _measure_or_record(
    plan: ThroughputPlan, name: str, precision: str, lever: str | None
) -> dict[str, Any]:
    try:
        return measure_config(plan, name, precision, lever)
    except Exception as err:  # one failed configuration must not end the check
        return {
            "name": _label(name, precision, plan.device, lever),
            "config": name,
            "lever": lever,
            "precision": precision,
            "error": error_line(err)[:300],
        }


def run_plan(
    plan: ThroughputPlan, progress: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Every measurement of `plan`, the most important first (the paper's precision, then
    packing, then other precisions and the levers); a failed part is recorded and the others
    go on. `progress` gets the results so far after each part (to save them as they come)."""
    configs: list[dict[str, Any]] = []
    packing: list[dict[str, Any]] = []

    def results(complete: bool) -> dict[str, Any]:
        return {
            "plan": asdict(plan),
            "configs": configs,
            "packing": packing,
            "estimates": estimate(configs, packing),
            "complete": complete,
        }

    def done_one() -> None:
        if progress is not None:
            progress(results(complete=False))

    first, *others = plan.precisions
    for name in CONFIG_ROWS:
        configs.append(_measure_or_record(plan, name, first, None))
        done_one()
    for runs in plan.packing:
        packing.append(measure_packing(plan, runs, first))
        done_one()
    jobs = [(name, precision, None) for precision in others for name in CONFIG_ROWS]
    levers = CPU_LEVERS if plan.device == "cpu" else tuple(LEVERS)
    for name, precision, lever in [*jobs, *(("AMMFM", first, lever) for lever in levers)]:
        configs.append(_measure_or_record(plan, name, precision, lever))
        done_one()
    return results(complete=True)
