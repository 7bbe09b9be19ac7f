"""k training runs at once on one device, each in its own process (as `hydra/launcher=pack`
runs a sweep): their aggregate training pairs/s."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import time
from typing import Any

import lightning as L
import torch
from omegaconf import OmegaConf

from src.benchmarks.throughput_plan import ThroughputPlan, run_config, trainer_args
from src.benchmarks.timing import synchronize
from src.runs.status import error_line
from src.utils.logging_setup import quiet_library_noise


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
    from src.runs.setup import module_and_datamodule

    try:
        quiet_library_noise()
        torch.set_num_threads(threads)
        config = OmegaConf.create(cfg)
        L.seed_everything(0, verbose=False)
        module, datamodule = module_and_datamodule(config)
        device = "cuda" if config.trainer.accelerator == "gpu" else "cpu"
        clock = BarrierClock(barrier, warmup, device, cap_s)
        trainer = L.Trainer(
            **trainer_args(config),
            max_steps=warmup + steps,
            max_epochs=-1,
            limit_val_batches=0,
            callbacks=[clock],
        )
        trainer.fit(module, datamodule=datamodule)
        results.put({"start": clock.start, "end": clock.end, "pairs": clock.pairs})
    except Exception as err:  # reported by the parent, which then ends the others
        barrier.abort()
        results.put({"error": error_line(err)[:300]})


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
