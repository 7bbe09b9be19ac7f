"""The benchmark suite behind `python -m src.bench`: what to measure (a Plan), running each
section in turn (a failed section is recorded, the others go on), and writing the results.

The sections themselves are in inference.py, training.py, data.py and gpu.py beside this file.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from src.benchmarks import quiet
from src.benchmarks.configs import AMMFM_ROW, INFERENCE_ROWS, ONNX_ROWS, REFERENCE_ROW, bench_row
from src.benchmarks.deployed import DEPLOYED_ROWS, DeployedSettings, SessionSettings
from src.benchmarks.inference import InferenceSettings
from src.benchmarks.report import evaluate_targets, render_markdown
from src.benchmarks.timing import cpu_model, load_average, memory_total_gib
from src.config_checks import check_value
from src.runs.status import error_line
from src.utils.errors import UserError

log = logging.getLogger("src.bench")


@dataclass(frozen=True)
class Plan:
    """What to measure and how often."""

    mode: str
    inference: InferenceSettings
    rows: tuple[str, ...]
    onnx_rows: tuple[str, ...]
    train_row: str = AMMFM_ROW
    train_steps: int = 3  # timed steps per loop and round
    train_rounds: int = 2
    # A cheap step (MN+MN, 32 px, batch 4) timed many times: the framework's fixed cost per
    # step in ms, which a 224 px CPU step of many seconds hides in its noise.
    probe_row: str = "t7-baseline-mn"
    probe_image_size: int = 32
    probe_batch: int = 4
    probe_steps: int = 20
    loader_batches: int = 40
    gpu_steps: int = 10
    side_by_side_rounds: int = 12
    deployed: DeployedSettings = field(default_factory=DeployedSettings)
    deployed_rows: tuple[str, ...] = DEPLOYED_ROWS
    sections: tuple[str, ...] = field(default=("inference", "deployed", "training", "data", "gpu"))


FULL = Plan(
    mode="full",
    inference=InferenceSettings(warmup=2, runs=20, batch_runs=2, onnx_runs=20),
    rows=INFERENCE_ROWS,
    onnx_rows=ONNX_ROWS,
)
QUICK = Plan(
    mode="quick",
    inference=InferenceSettings(warmup=1, runs=5, batch_runs=1, onnx_runs=5),
    rows=(REFERENCE_ROW, AMMFM_ROW, "t7-baseline-mn"),
    onnx_rows=(AMMFM_ROW,),
    train_steps=2,
    train_rounds=1,
    probe_steps=5,
    loader_batches=10,
    gpu_steps=3,
    side_by_side_rounds=3,
    deployed=DeployedSettings(rounds=3, calls=1, warmup=1, calibration_pairs=2, memory_calls=1),
)


def wait_for_load(threshold: float, max_wait_s: float) -> tuple[float, str | None]:
    """Poll the 1-minute load average until it is below `threshold` or `max_wait_s` passes."""
    started = time.monotonic()
    while load_average()[0] >= threshold:
        if time.monotonic() - started >= max_wait_s:
            return time.monotonic() - started, (
                f"the 1-minute load average stayed >= {threshold} for {max_wait_s:.0f} s; "
                "measured anyway, so timings include contention from other processes"
            )
        time.sleep(15)
    return time.monotonic() - started, None


def machine() -> dict[str, Any]:
    from src.utils.run_info import machine_info

    info = machine_info()
    info.update(cpu_model=cpu_model(), cpu_count=os.cpu_count(), memory_gib=memory_total_gib())
    return info


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def run_inference(plan: Plan) -> dict[str, Any]:
    from src.benchmarks.inference import measure_in_subprocess

    rows = []
    for row in plan.rows:
        log.info("inference: %s (%d px)", row, plan.inference.image_size)
        rows.append(measure_in_subprocess(row, plan.inference, onnx=row in plan.onnx_rows))
        if "error" in rows[-1]:
            log.error("inference %s failed: %s", row, rows[-1]["error"])
    result = {"settings": asdict(plan.inference), "reference": REFERENCE_ROW, "rows": rows}
    if AMMFM_ROW in plan.rows and REFERENCE_ROW in plan.rows:
        from src.benchmarks.inference import measure_side_by_side

        log.info("inference: %s vs %s side by side", AMMFM_ROW, REFERENCE_ROW)
        result["side_by_side"] = measure_side_by_side(
            AMMFM_ROW, REFERENCE_ROW, plan.inference, rounds=plan.side_by_side_rounds
        )
    return result


def run_deployed(plan: Plan, checkpoints: Sequence[str]) -> dict[str, Any]:
    """The deployed path (ONNX Runtime fp32/int8, side by side) and, per checkpoint given,
    what int8 costs in test accuracy."""
    import tempfile

    from src.benchmarks.deployed import measure
    from src.benchmarks.int8_accuracy import measure_checkpoint

    result = measure(plan.deployed_rows, plan.deployed)
    result["int8_accuracy"] = []
    for index, ckpt in enumerate(checkpoints):
        with tempfile.TemporaryDirectory(prefix="bench-int8-") as folder:
            log.info("int8 accuracy: %s", ckpt)
            result["int8_accuracy"].append(
                measure_checkpoint(
                    ckpt,
                    Path(folder) / str(index),
                    threads=plan.deployed.session.threads,
                )
            )
    return result


def run_training(plan: Plan) -> dict[str, Any]:
    from src.benchmarks.configs import bench_config
    from src.benchmarks.training import measure_training

    s = plan.inference
    log.info("training: %s, batch %d, %d px", plan.train_row, s.batch, s.image_size)
    cfg = bench_config(plan.train_row, s.image_size, [f"data.batch_size={s.batch}"])
    result = measure_training(cfg, steps=plan.train_steps, rounds=plan.train_rounds)
    log.info("training probe: %s, %d px", plan.probe_row, plan.probe_image_size)
    probe_cfg = bench_config(
        plan.probe_row, plan.probe_image_size, [f"data.batch_size={plan.probe_batch}"]
    )
    probe = measure_training(probe_cfg, steps=plan.probe_steps, rounds=plan.train_rounds)
    return {"row": plan.train_row, **result, "probe": {"row": plan.probe_row, **probe}}


def run_data(plan: Plan, args: argparse.Namespace, model_pairs_per_s: float | None) -> dict:
    from src.benchmarks.configs import bench_config
    from src.benchmarks.data import measure_loader

    s = plan.inference
    overrides = [f"data.image_size={s.image_size}", f"data.batch_size={s.batch}"]
    if args.data_root:
        overrides += [f"data.root={args.data_root}", "data.synthetic=false"]
    if args.cache_dir:
        overrides.append(f"data.cache_dir={args.cache_dir}")
    if args.workers is not None:
        overrides.append(f"data.num_workers={args.workers}")
    cfg = bench_config(plan.train_row, s.image_size, overrides)
    log.info("data: loader on %s", cfg.data.root)
    result = measure_loader(cfg.data, plan.loader_batches)
    result["model_pairs_per_s"] = model_pairs_per_s
    result["ratio_to_model"] = (
        result["pairs_per_s"] / model_pairs_per_s if model_pairs_per_s else None
    )
    return result


def run_gpu(plan: Plan) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine"}
    from src.benchmarks.gpu import OPTIONS, measure_options

    s = plan.inference
    log.info("gpu options on %s", torch.cuda.get_device_name(0))
    records = measure_options(
        list(OPTIONS), "cuda", s.image_size, s.batch, steps=plan.gpu_steps, runs=s.runs
    )
    return {
        "row": plan.train_row,
        "image_size": s.image_size,
        "batch": s.batch,
        "device_name": torch.cuda.get_device_name(0),
        "records": records,
    }


def _guarded(name: str, fn: Any, *args: Any) -> dict[str, Any]:
    """Run one section; a failure is recorded (and reported at the end), the others go on."""
    try:
        return fn(*args)
    except UserError:
        raise
    except Exception as err:
        log.exception("section %s failed", name)
        return {"error": error_line(err)[:300]}


def build_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    settings = replace(plan.inference, image_size=args.image_size, batch=args.batch)
    rows = tuple(args.rows.split(",")) if args.rows else plan.rows
    deployed_rows = (
        tuple(args.deployed_rows.split(",")) if args.deployed_rows else plan.deployed_rows
    )
    if len(deployed_rows) < 2:
        raise UserError("--deployed-rows: give a reference row and at least one more")
    for row in (*rows, *deployed_rows, args.train_row or plan.train_row):
        bench_row(row)  # unknown ids fail here, before anything runs
    check_value("--image-size", settings.image_size, rule="data.image_size")
    if settings.batch < 1:
        raise UserError(f"--batch {settings.batch}: must be >= 1")
    deployed = replace(
        plan.deployed,
        image_size=settings.image_size,
        session=SessionSettings(threads=args.threads),
    )
    return replace(
        plan,
        inference=settings,
        deployed=deployed,
        deployed_rows=deployed_rows,
        rows=rows,
        onnx_rows=() if args.no_onnx else tuple(r for r in plan.onnx_rows if r in rows),
        train_row=args.train_row or plan.train_row,
        sections=tuple(args.sections.split(",")) if args.sections else plan.sections,
    )


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure what the parsed command line `args` asks for; write and return the results."""
    from src.utils.run_info import git_commit, package_versions

    plan = build_plan(args)
    if args.data_root and not Path(args.data_root).is_dir():
        raise UserError(f"--data-root {args.data_root}: no such folder")
    for ckpt in args.checkpoint or []:
        if not Path(ckpt).exists():
            raise UserError(f"--checkpoint {ckpt}: no such checkpoint file or published folder")
    if "deployed" in plan.sections:
        from src.inference.predictor import load_predictor

        for ckpt in args.checkpoint or []:
            load_predictor(ckpt)  # its weights and fusion weights load: before the long work
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads}: must be >= 1")
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the per-configuration processes
        torch.set_num_threads(args.threads)
    waited, note = (0.0, None)
    if args.wait_load is not None:
        waited, note = wait_for_load(args.wait_load, args.wait_max)
    started = time.time()
    before = quiet.snapshot()
    results: dict[str, Any] = {
        "mode": plan.mode,
        "command": "python -m src.bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "packages": package_versions(),
        "onnxruntime": _version("onnxruntime"),
        "git_commit": git_commit(),
        "load_average": {"start": load_average(), "waited_s": waited, "note": note},
    }
    if "inference" in plan.sections:
        results["inference"] = _guarded("inference", run_inference, plan)
    if "deployed" in plan.sections:
        results["deployed"] = _guarded("deployed", run_deployed, plan, args.checkpoint or [])
    if "training" in plan.sections:
        results["training"] = _guarded("training", run_training, plan)
    model_rate = (results.get("training") or {}).get("plain", {}).get("pairs_per_s")
    if "data" in plan.sections:
        results["data"] = _guarded("data", run_data, plan, args, model_rate)
    if "gpu" in plan.sections:
        results["gpu"] = _guarded("gpu", run_gpu, plan)
    results["load_average"]["end"] = load_average()
    results["quiet"] = quiet.verdict(before, quiet.snapshot())
    results["duration_s"] = time.time() - started
    results["targets"] = evaluate_targets(results)
    stem = "quick" if args.quick else "results"
    markdown = render_markdown(results)
    markdown_path = args.out / ("quick.md" if args.quick else "README.md")
    quiet.write_results(results, args.out / f"{stem}.json", markdown_path, markdown)
    print(markdown)
    return results


def failed_sections(results: dict[str, Any]) -> list[str]:
    failed = [
        k
        for k in ("inference", "deployed", "training", "data", "gpu")
        if "error" in (results.get(k) or {})
    ]
    rows = (results.get("inference") or {}).get("rows", [])
    failed += [f"inference:{r['row']}" for r in rows if "error" in r]
    failed += [f"onnx:{r['row']}" for r in rows if "error" in r.get("onnx", {})]
    return failed
