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
import multiprocessing as mp
import os
import queue as queue_module
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from src.benchmarks.configs import bench_config
from src.benchmarks.timing import peak_rss_mib, synchronize
from src.utils.logging_setup import quiet_library_noise

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
CONFIG_ROWS = {"AMMFM": "t9-aff-aab", "SFF-CAT": "t9-sff-cat"}
# Settings measured on AMMFM beside its default one (the levers of a faster run).
LEVERS: dict[str, tuple[str, ...]] = {
    "device pipeline": ("data.device_pipeline=true",),  # images on the device, batch augment
    "channels_last": ("model.channels_last=true",),
    "compile": ("model.compile=true",),
}
CPU_LEVERS = ("device pipeline",)  # compiling takes minutes on a CPU; channels_last is a GPU layout
# Validation only reports during training (no monitor, the RNG re-seeded every epoch; a test
# checks the weights are the same), so validating every 10th epoch is a pure speed setting.
SPARSE_VALIDATION = 10
TTA_VIEWS = 6


@dataclass(frozen=True)
class ThroughputPlan:
    """What to measure; `limit_batches` None trains whole epochs."""

    image_size: int
    batch: int
    device: str  # "cuda" or "cpu"
    precisions: tuple[str, ...]
    timed_epochs: int
    limit_batches: int | None
    packing: tuple[int, ...]
    packing_steps: int
    cap_s: float  # per measured configuration and per packing level
    num_workers: int


def default_plan(quick: bool, device: str) -> ThroughputPlan:
    cores = os.cpu_count() or 1
    if device == "cuda":
        return ThroughputPlan(
            image_size=224,
            batch=24,
            device=device,
            precisions=("32-true", "bf16-mixed"),
            timed_epochs=1 if quick else 3,
            limit_batches=None,
            packing=(1, 2, 4) if quick else (1, 2, 4, 8),
            packing_steps=20 if quick else 60,
            cap_s=60.0 if quick else 75.0,
            num_workers=min(8, cores),
        )
    return ThroughputPlan(
        image_size=64 if quick else 224,
        batch=24,
        device=device,
        precisions=("32-true",),
        timed_epochs=1,
        limit_batches=2 if quick else 4,
        packing=(1, 2) if cores >= 2 else (1,),
        packing_steps=2 if quick else 4,
        cap_s=45.0 if quick else 600.0,
        num_workers=min(2, cores),
    )


# ------------------------------------------------------------------------------ configs
def run_config(
    plan: ThroughputPlan, name: str, precision: str, lever: str | None = None
) -> DictConfig:
    """The project's config of measured configuration `name` at the plan's settings."""
    overrides = [
        f"data.batch_size={plan.batch}",
        f"data.num_workers={plan.num_workers}",
        f"trainer.precision={precision}",
        "model.swa_epochs=0",  # SWA's cost is the BatchNorm refresh, estimated apart
        *(LEVERS[lever] if lever else ()),
    ]
    if plan.device == "cuda":
        overrides.append("data.pin_memory=true")
    trainer = "gpu" if plan.device == "cuda" else "cpu"
    return bench_config(CONFIG_ROWS[name], plan.image_size, overrides, trainer=trainer)


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
        steady = _median([b - a for a, b in itertools.pairwise(ends)]) if len(ends) > 1 else first
        return first + (full_batches - 1) * steady


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


class GpuBusySampler:
    """Samples the GPU's utilisation (% of time a kernel ran) in a background thread."""

    def __init__(self, period_s: float = 0.1) -> None:
        self.period_s = period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.source = _utilisation_source()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            value = self.source() if self.source else None
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> GpuBusySampler:
        if self.source is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def _utilisation_source() -> Any:
    """torch.cuda.utilization (NVML) where it works, else nvidia-smi, else None."""
    if not torch.cuda.is_available():
        return None
    try:
        torch.cuda.utilization()
        return lambda: float(torch.cuda.utilization())
    except Exception:  # NVML bindings missing: fall back to the command-line tool
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None

    def query() -> float | None:
        out = subprocess.run(
            [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        try:
            return float(out.stdout.strip().splitlines()[0])
        except (ValueError, IndexError):
            return None

    return query


def measure_config(
    plan: ThroughputPlan, name: str, precision: str, lever: str | None = None
) -> dict[str, Any]:
    """Epoch time and training pairs/s of one configuration through the project's Trainer."""
    from src.models.module import AMMFMModule
    from src.runs.setup import datamodule_for

    started = time.perf_counter()
    cfg = run_config(plan, name, precision, lever)
    L.seed_everything(0, verbose=False)
    module = AMMFMModule(cfg)
    datamodule = datamodule_for(cfg, module)
    datamodule.prepare_data()
    datamodule.setup("fit")
    clock = EpochClock(plan.device)
    limit = plan.limit_batches
    trainer = L.Trainer(
        **_trainer_args(cfg),
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
    train_s = _median([phase.seconds(full_train) for phase in clock.train[1 : timed + 1]])
    val_s = _median([phase.seconds(full_val) for phase in clock.val[1 : timed + 1]])
    train_pairs = full_train * plan.batch
    record: dict[str, Any] = {
        "name": _label(name, precision, plan.device, lever),
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
    """Seconds of the final evaluation: 6-view TTA on valid and test, plus the block summary
    (one more pass over valid), scaled from the validation split."""
    from src.runs.evaluate import build_eval_trainer, predict_split

    module.cfg.model.tta_views = list(
        ("identity", "vflip", "hflip", "vhflip", "rot90cw", "rot90ccw")[:TTA_VIEWS]
    )
    module.cfg.trainer.enable_progress_bar = False
    trainer = build_eval_trainer(module.cfg, _scratch_dir())
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
    return valid_s * (n_valid + n_test) / n_valid + valid_s / TTA_VIEWS


def _trainer_args(cfg: DictConfig) -> dict[str, Any]:
    return {
        "accelerator": cfg.trainer.accelerator,
        "devices": 1,
        "precision": cfg.trainer.precision,
        "benchmark": cfg.trainer.get("benchmark", False),
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "use_distributed_sampler": False,
        "default_root_dir": str(_scratch_dir()),
    }


def _scratch_dir() -> Any:
    from pathlib import Path
    from tempfile import gettempdir

    return Path(gettempdir()) / "ammfm-bench"


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _precision_label(precision: str, device: str) -> str:
    if precision.startswith("bf16"):
        return "bf16"
    return "TF32" if device == "cuda" else "fp32"


# ------------------------------------------------------------------------------ packing
class BarrierClock(L.Callback):
    """Waits at `barrier` before training batch `warmup`, so the k runs start timing
    together; records the timed span and pairs."""

    def __init__(self, barrier: Any, warmup: int, device: str, timeout_s: float) -> None:
        self.barrier, self.warmup, self.device, self.timeout_s = barrier, warmup, device, timeout_s
        self.start: float | None = None
        self.end: float | None = None
        self.pairs = 0
        self._step = 0

    def on_train_batch_start(self, trainer: L.Trainer, module: Any, batch: Any, *args: Any) -> None:
        if self._step == self.warmup:
            synchronize(self.device)
            self.barrier.wait(timeout=self.timeout_s)
            self.start = time.monotonic()

    def on_train_batch_end(
        self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, *args: Any
    ) -> None:
        if self._step >= self.warmup:
            self.pairs += int(batch[0].shape[0])
        self._step += 1

    def on_train_end(self, *args: Any) -> None:
        synchronize(self.device)
        self.end = time.monotonic()


def packed_worker(
    cfg: dict[str, Any],
    steps: int,
    warmup: int,
    threads: int,
    barrier: Any,
    results: Any,
    cap_s: float,
) -> None:
    """One of k runs sharing the device: train `warmup + steps` batches, report the timed span."""
    from src.models.module import AMMFMModule
    from src.runs.setup import datamodule_for

    try:
        quiet_library_noise()
        torch.set_num_threads(threads)
        config = OmegaConf.create(cfg)
        L.seed_everything(0, verbose=False)
        module = AMMFMModule(config)
        datamodule = datamodule_for(config, module)
        device = "cuda" if config.trainer.accelerator == "gpu" else "cpu"
        clock = BarrierClock(barrier, warmup, device, cap_s)
        trainer = L.Trainer(
            **_trainer_args(config),
            max_steps=warmup + steps,
            max_epochs=-1,
            limit_val_batches=0,
            callbacks=[clock],
        )
        trainer.fit(module, datamodule=datamodule)
        results.put({"start": clock.start, "end": clock.end, "pairs": clock.pairs})
    except Exception as err:  # reported by the parent, which then ends the others
        barrier.abort()
        results.put({"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"})


def measure_packing(plan: ThroughputPlan, runs: int, precision: str) -> dict[str, Any]:
    """Aggregate training pairs/s of `runs` AMMFM runs at once on one device."""
    cfg = run_config(plan, "AMMFM", precision)
    cores = os.cpu_count() or 1
    threads = max(1, cores // runs)
    workers = max(0, min(plan.num_workers, cores // runs))
    cfg.data.num_workers = workers
    context = mp.get_context("spawn")
    barrier = context.Barrier(runs)
    results = context.Queue()
    container = OmegaConf.to_container(cfg, resolve=True)
    warmup = 2
    processes = [
        context.Process(
            target=packed_worker,
            args=(container, plan.packing_steps, warmup, threads, barrier, results, plan.cap_s),
        )
        for _ in range(runs)
    ]
    for process in processes:
        process.start()
    reports = []
    deadline = time.monotonic() + plan.cap_s + 120  # start-up (imports, model, data) included
    try:
        for _ in processes:
            reports.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
    except queue_module.Empty:
        reports.append({"error": f"no result within {plan.cap_s + 120:.0f} s"})
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [r["error"] for r in reports if "error" in r]
    record: dict[str, Any] = {
        "runs": runs,
        "threads_per_run": threads,
        "loader_workers_per_run": workers,
        "steps_per_run": plan.packing_steps,
    }
    if errors or len(reports) < runs:
        record["error"] = errors[0] if errors else "a run did not report"
        return record
    span = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    pairs = sum(r["pairs"] for r in reports)
    record.update(pairs_per_s=pairs / span, span_s=span)
    return record


# ---------------------------------------------------------------------------- estimates
def estimate(configs: list[dict[str, Any]], packing: list[dict[str, Any]]) -> dict[str, Any]:
    """A paper run and Table 9 from the measured parts (the paper's precision: TF32/fp32)."""
    measured = [c for c in configs if c["precision"] == "32-true" and "error" not in c]
    fp32 = {c["name"].split()[0]: c for c in measured if not c.get("lever")}
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
    ammfm = [c for c in measured if c["name"].startswith("AMMFM")]
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
        first = (str(err).strip().splitlines() or [""])[0]
        return {
            "name": _label(name, precision, plan.device, lever),
            "lever": lever,
            "precision": precision,
            "error": f"{type(err).__name__}: {first[:300]}",
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


def plan_for(quick: bool, device: str | None = None, **changes: Any) -> ThroughputPlan:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    plan = default_plan(quick, device)
    return replace(plan, **{k: v for k, v in changes.items() if v is not None})
