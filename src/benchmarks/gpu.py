"""The options a GPU user reaches for: bf16-mixed, channels_last, torch.compile.

Each option is the project's own switch (trainer.precision, model.channels_last,
model.compile), measured on the AMMFM configuration: inference pairs/s at the batch size
(autocast for bf16, as the evaluation Trainer runs it) and the training step through the
Trainer and the plain loop (src.benchmarks.training). `src.bench` runs this only when CUDA is
available; the code runs on CPU too (tests use that at tiny sizes, without compile).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from src.benchmarks.configs import AMMFM_ROW, bench_config
from src.benchmarks.timing import time_calls
from src.benchmarks.training import measure_training
from src.data.tasks import load_task_spec
from src.inference.onnx import random_inputs
from src.models.module import AMMFMModule
from src.runs.status import error_line

# option name -> (trainer.precision, model.channels_last, model.compile)
OPTIONS: dict[str, tuple[str, bool, bool]] = {
    "fp32": ("32-true", False, False),
    "bf16-mixed": ("bf16-mixed", False, False),
    "bf16-mixed + channels_last": ("bf16-mixed", True, False),
    "bf16-mixed + compile": ("bf16-mixed", False, True),
    "bf16-mixed + channels_last + compile": ("bf16-mixed", True, True),
}


def measure_inference_option(
    module: AMMFMModule, batch: int, device: torch.device, bf16: bool, warmup: int, runs: int
) -> dict[str, Any]:
    """Pairs/s of the module's forward pass at `batch` (autocast to bf16 if asked)."""
    module = module.to(device).eval()
    clinic, derm = (x.to(device) for x in random_inputs(int(module.cfg.data.image_size), batch))

    def call() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            module(clinic, derm)

    with torch.inference_mode():
        timing = time_calls(call, warmup, runs, device)
    return {**timing, "pairs_per_s": batch / timing["median_s"]}


def measure_options(
    options: Sequence[str],
    device: str = "cuda",
    image_size: int = 224,
    batch: int = 24,
    steps: int = 10,
    warmup: int = 3,
    runs: int = 20,
    row_id: str = AMMFM_ROW,
) -> list[dict[str, Any]]:
    """One record per option: inference and training pairs/s, or the error that stopped it."""
    dev = torch.device(device)
    trainer = "gpu" if dev.type == "cuda" else "cpu"
    records = []
    for name in options:
        precision, channels_last, compile_ = OPTIONS[name]
        overrides = [
            f"trainer.precision={precision}",
            f"model.channels_last={channels_last}",
            f"model.compile={compile_}",
            f"data.batch_size={batch}",
        ]
        record: dict[str, Any] = {"option": name, "device": str(dev)}
        try:
            cfg = bench_config(row_id, image_size, overrides, trainer=trainer)
            torch.manual_seed(0)
            module = AMMFMModule(cfg, load_task_spec(cfg.data.tasks))
            bf16 = precision.startswith("bf16")
            record["inference"] = measure_inference_option(module, batch, dev, bf16, warmup, runs)
            del module
            record["training"] = measure_training(cfg, steps=steps, warmup=warmup, rounds=1)
        except Exception as err:  # one option failing (e.g. compile) must not end the benchmark
            record["error"] = error_line(err)[:300]
        if dev.type == "cuda":
            record["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
            torch.cuda.reset_peak_memory_stats(dev)
            torch.cuda.empty_cache()
        records.append(record)
    return records
