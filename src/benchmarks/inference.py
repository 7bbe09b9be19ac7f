"""Inference cost of one configuration: latency, throughput, peak memory, FLOPs, ONNX.

Run once per configuration in a fresh process (`measure_in_subprocess`), so the peak resident
memory (getrusage's ru_maxrss, which only grows) belongs to that configuration alone:

    python -m src.benchmarks.inference --row t9-aff-aab --image-size 224 [--onnx-dir DIR]

prints one JSON line. What is timed is the deployed predictor without TTA: both images in, P_FI
out (one forward pass, per-task softmax, Eq. 4 weighting), in torch.inference_mode on CPU threads
as configured by torch. Weights are random: cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from src.benchmarks.configs import bench_config, bench_row
from src.benchmarks.timing import alternate_rounds, peak_rss_mib, ratio_of, time_calls
from src.data.tasks import load_task_spec
from src.inference.onnx import export_onnx, onnx_session, random_inputs, run_onnx
from src.inference.predictor import FusedPredictor
from src.models.network import build_network, validate_network_config
from src.runs.status import error_line


@dataclass(frozen=True)
class InferenceSettings:
    image_size: int = 224
    batch: int = 24  # throughput batch (the paper's batch size)
    warmup: int = 3
    runs: int = 20  # batch-1 latency calls
    batch_runs: int = 3  # throughput calls at `batch`
    onnx_runs: int = 20  # onnxruntime batch-1 latency calls


def _attention_flops(query_shape, key_shape, value_shape, *args: Any, **kwargs: Any) -> int:
    """scaled_dot_product_attention as computed: q k^T, then the map times v (2 FLOPs/MAC)."""
    *batch, n_query, width = query_shape
    n_key, value_width = key_shape[-2], value_shape[-1]
    pairs = math.prod(batch) * n_query * n_key
    return 2 * pairs * width + 2 * pairs * value_width


def count_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one call: matmuls, convolutions and attention (one multiply-add = 2 FLOPs;
    elementwise ops, softmax and norms are not counted).

    torch's FlopCounterMode counts the fused attention kernels of CUDA but not the CPU
    dispatch of scaled_dot_product_attention (the fusion blocks use it), so that op is counted
    here, at the widths actually computed.
    """
    sdpa = torch.ops.aten.scaled_dot_product_attention
    # Keyed by the overload too, so the counter counts the op instead of decomposing it into
    # the CPU kernel it does not know; the packet key is where the count is filed.
    counter = FlopCounterMode(
        display=False, custom_mapping={sdpa: _attention_flops, sdpa.default: _attention_flops}
    )
    with counter, torch.inference_mode():
        model(*inputs)
    return int(counter.get_total_flops())


def build_predictor(
    row_id: str, image_size: int, views: Sequence[str] | None = ("identity",)
) -> tuple[FusedPredictor, dict[str, Any]]:
    """The deployed predictor of a paper row (random weights, equal fusion weights: any
    weights cost the same) averaging `views` (None: the row's TTA views), and its facts."""
    cfg = bench_config(row_id, image_size)
    torch.manual_seed(0)
    tasks = load_task_spec(cfg.data.tasks)
    spec = validate_network_config(cfg)
    network = build_network(spec, tasks.num_classes, load_weights=False).eval()
    branches = network.branches
    weights = {b: 1.0 / len(branches) for b in branches}  # any weights cost the same
    counts = network.parameter_counts()
    row = bench_row(row_id)
    info = {
        "row": row_id,
        "label": row.description,
        "network": spec.describe(),
        "params": counts["trainable"],
        "params_paper_accounting": counts["paper_accounting"],
        "paper_params_m": row.params_m,
        "paper_avg_auc": None if row.avg_auc is None else row.avg_auc.mean,
    }
    views = list(cfg.model.tta_views) if views is None else list(views)
    return FusedPredictor(network, tasks, weights, views).eval(), info


def measure_onnx(model: Any, settings: InferenceSettings, onnx_dir: Path) -> dict[str, Any]:
    """Export to ONNX (verified against PyTorch), file size, onnxruntime batch-1 latency."""
    path = onnx_dir / "model.onnx"
    exported = export_onnx(model, settings.image_size, path)
    session = onnx_session(path)
    clinic, derm = random_inputs(settings.image_size, 1)
    latency = time_calls(
        lambda: run_onnx(session, model, clinic, derm), settings.warmup, settings.onnx_runs
    )
    return {
        "file_mib": exported["bytes"] / 2**20,
        "max_abs_diff": exported["max_abs_diff"],
        "export_s": exported["export_s"],
        "latency_b1": latency,
    }


def measure(row_id: str, settings: InferenceSettings, onnx_dir: Path | None = None) -> dict:
    """Everything about one configuration's inference cost (meant for a fresh process).

    Memory: peak RSS after the imports (the baseline), the growth while building the model,
    and the growth over the built model during batch-1 and batch inference.
    """
    rss_start = peak_rss_mib()
    model, info = build_predictor(row_id, settings.image_size)
    rss_model = peak_rss_mib()
    size = settings.image_size
    one = random_inputs(size, 1)
    many = random_inputs(size, settings.batch)
    with torch.inference_mode():
        latency = time_calls(lambda: model(*one), settings.warmup, settings.runs)
        rss_b1 = peak_rss_mib()
        throughput = time_calls(lambda: model(*many), 1, settings.batch_runs)
        rss_batch = peak_rss_mib()
    flops = count_flops(model, *one)
    result = {
        **info,
        "settings": asdict(settings),
        "torch_threads": torch.get_num_threads(),
        "gflops_b1": flops / 1e9,
        "gmacs_b1": flops / 2e9,
        "latency_b1": latency,
        "throughput": {
            **throughput,
            "pairs_per_s": settings.batch / throughput["median_s"],
        },
        "memory_mib": {
            "peak_rss_after_imports": rss_start,
            "model": rss_model - rss_start,
            "peak_rss_b1": rss_b1,
            "peak_rss_batch": rss_batch,
            "inference_b1": rss_b1 - rss_model,
            "inference_batch": rss_batch - rss_model,
        },
    }
    if onnx_dir is not None:
        try:
            result["onnx"] = measure_onnx(model, settings, onnx_dir)
        except Exception as err:  # e.g. onnxruntime missing: keep the PyTorch measurements
            result["onnx"] = {"error": error_line(err)[:300]}
    return result


def measure_side_by_side(
    row_id: str, reference: str, settings: InferenceSettings, rounds: int = 12, calls: int = 3
) -> dict[str, Any]:
    """Batch-1 latency of `row_id` over `reference`, both built in this process and timed in
    alternation (`rounds` rounds of `calls` calls each): a drift of the machine's speed hits
    both alike, which separate processes measured one after the other cannot promise."""
    models = {name: build_predictor(name, settings.image_size)[0] for name in (row_id, reference)}
    pair = random_inputs(settings.image_size, 1)
    fns = {name: (lambda m=model: m(*pair)) for name, model in models.items()}
    with torch.inference_mode():
        times = alternate_rounds(fns, rounds, calls, settings.warmup)
    return {
        "row": row_id,
        "reference": reference,
        "rounds": rounds,
        "calls_per_round": calls,
        "median_ms": {name: 1e3 * statistics.median(t) for name, t in times.items()},
        **ratio_of(times, row_id, reference),
    }


def measure_in_subprocess(
    row_id: str, settings: InferenceSettings, onnx: bool, timeout_s: float = 1800
) -> dict:
    """`measure` in a fresh Python process; {"row", "error"} if it fails."""
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as onnx_dir:
        cmd = [sys.executable, "-m", "src.benchmarks.inference", "--row", row_id]
        for key, value in asdict(settings).items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        if onnx:
            cmd += ["--onnx-dir", onnx_dir]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"row": row_id, "error": f"timed out after {timeout_s:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"row": row_id, "error": f"exit {proc.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.benchmarks.inference")
    parser.add_argument("--row", required=True, help="paper row id, e.g. t9-aff-aab")
    for key, value in asdict(InferenceSettings()).items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--onnx-dir", type=Path, default=None)
    args = vars(parser.parse_args(argv))
    row, onnx_dir = args.pop("row"), args.pop("onnx_dir")
    result = measure(row, InferenceSettings(**args), onnx_dir)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
