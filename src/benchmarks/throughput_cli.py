"""`python -m src.bench training [--quick] [--json FILE]`: the training-throughput check.

Writes FILE (JSON) and FILE with the suffix .md, atomically. Default FILE:
experiments/bench/gpu.json on a CUDA machine, experiments/bench/training-cpu[-quick].json
otherwise. Timings taken while other processes used the CPU are marked unquotable, and
an unquotable result never replaces a quotable one: it is written beside it as
`<stem>.unquotable.json` instead.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from src.benchmarks import quiet
from src.benchmarks.throughput import run_plan
from src.benchmarks.throughput_plan import plan_for
from src.benchmarks.timing import cpu_model, load_average
from src.config_checks import check_value
from src.project import PROJECT_ROOT
from src.utils.errors import UserError

log = logging.getLogger("src.bench")
BENCH_DIR = PROJECT_ROOT / "experiments" / "bench"
# Goals on one H200 at the paper recipe (issue: a paper run in 2 minutes, Table 9 in an hour).
GOALS = {"paper_run_s": 120.0, "table9_s": 3600.0}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.bench training", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a few batches per epoch (CPU: 64 px)")
    parser.add_argument("--json", type=Path, help="result file (a .md is written beside it)")
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda when present")
    parser.add_argument("--image-size", type=int, help="default: 224 (CPU quick: 64)")
    parser.add_argument("--packing", help="runs per device to measure, e.g. 1,2,4,8")
    parser.add_argument("--cap-s", type=float, help="time cap of each measurement, seconds")
    parser.add_argument("--workers", type=int, help="loader workers per run")
    args = parser.parse_args(argv)
    if args.image_size is not None:
        check_value("--image-size", args.image_size, rule="data.image_size")
    if args.packing is not None:
        try:
            args.packing = tuple(int(k) for k in args.packing.split(","))
        except ValueError:
            raise UserError(f"--packing {args.packing}: give run counts like 1,2,4") from None
        if not args.packing or min(args.packing) < 1:
            raise UserError(f"--packing {args.packing}: run counts must be >= 1")
    return args


def default_json(device: str, quick: bool) -> Path:
    if device == "cuda":
        return BENCH_DIR / ("gpu-quick.json" if quick else "gpu.json")
    return BENCH_DIR / ("training-cpu-quick.json" if quick else "training-cpu.json")


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def run(argv: Sequence[str]) -> dict[str, Any]:
    from src.utils.run_info import git_commit, package_versions

    args = parse_args(argv)
    plan = plan_for(
        args.quick,
        args.device,
        image_size=args.image_size,
        packing=args.packing,
        cap_s=args.cap_s,
        num_workers=args.workers,
    )
    started = time.time()
    before = quiet.snapshot()
    results: dict[str, Any] = {
        "device": device_name(plan.device),
        "mode": "quick" if args.quick else "full",
        "command": "python -m src.bench training " + shlex.join(argv),
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "load_average": {"start": load_average()},
    }
    log.info("training throughput on %s (%s mode)", results["device"], results["mode"])
    path = args.json or default_json(plan.device, args.quick)

    def finish(measured: dict[str, Any]) -> dict[str, Any]:
        results.update(measured)
        results["load_average"]["end"] = load_average()
        results["quiet"] = quiet.verdict(before, quiet.snapshot())
        results["duration_s"] = time.time() - started
        results["goals"] = GOALS
        write(results, path)
        return results

    # Saved after every part: a time limit that ends the check keeps what was measured.
    return finish(run_plan(plan, progress=finish))


def write(results: dict[str, Any], path: Path) -> Path:
    """Write JSON + markdown; an unquotable result goes beside a quotable one, not over it."""
    path = quiet.write_results(results, path, path.with_suffix(".md"), render(results))
    log.info("wrote %s and %s", path, path.with_suffix(".md"))
    return path


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render(results: dict[str, Any]) -> str:
    """The results as a short markdown page."""
    plan = results["plan"]
    verdict = results["quiet"]
    lines = [
        f"# Training throughput on {results['device']}",
        "",
        f"- `{results['command']}` ({results['mode']} mode), commit {results['git_commit']}, "
        f"{results['started_utc']}, took {results['duration_s']:.0f} s",
        f"- {plan['image_size']} px, batch {plan['batch']}, {plan['num_workers']} loader workers;"
        f" load average at start {results['load_average']['start']}, "
        f"at end {results['load_average']['end']}",
    ]
    lines.append(quiet.verdict_line(verdict))
    if not results.get("complete", True):
        lines.append("- **incomplete**: stopped before every part was measured")
    if plan["limit_batches"]:
        lines.append(
            f"- quick: {plan['limit_batches']} training batches and 1 validation batch per epoch,"
            " scaled to whole epochs; the evaluation is scaled from one batch"
        )
    lines += [
        "",
        "| configuration | epoch s (train + val) | training pairs/s | GPU busy % | peak memory |"
        " evaluation s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in results["configs"]:
        if "error" in c:
            lines.append(f"| {c['name']} | failed: {c['error']} | | | | |")
            continue
        memory = (
            f"{c['peak_memory_gib']:.1f} GiB"
            if "peak_memory_gib" in c
            else f"{c['process_peak_rss_mib']:.0f} MiB (process so far)"
        )
        lines.append(
            f"| {c['name']} | {c['epoch_s']:.2f} ({c['train_epoch_s']:.2f} + "
            f"{c['val_epoch_s']:.2f}) | {c['pairs_per_s']:.1f} | {_fmt(c['gpu_busy_pct'], 0)} "
            f"| {memory} | {c['evaluation_s']:.1f} |"
        )
    lines += ["", "| runs at once | aggregate pairs/s | x one run |", "|---:|---:|---:|"]
    single = next((p.get("pairs_per_s") for p in results["packing"] if p["runs"] == 1), None)
    for p in results["packing"]:
        if "error" in p:
            lines.append(f"| {p['runs']} | failed: {p['error']} | |")
            continue
        ratio = p["pairs_per_s"] / single if single else None
        lines.append(f"| {p['runs']} | {p['pairs_per_s']:.1f} | {_fmt(ratio, 2)} |")
    est = results["estimates"]
    goals = results["goals"]
    lines += [
        "",
        f"Estimates ({est['basis']}):",
        "",
        f"- one paper run (AMMFM): {_fmt(est['paper_run_s'], 0)} s "
        f"(goal on one H200: <= {goals['paper_run_s']:.0f} s); with the fastest measured "
        f"setting ({est.get('paper_run_fastest_setting')}): "
        f"{_fmt(est.get('paper_run_fastest_s'), 0)} s",
        "- the same fastest run validating every 10th epoch (derived from the measured epoch "
        f"parts; validation only reports): {_fmt(est.get('paper_run_sparse_validation_s'), 0)} s",
        f"- Table 9 (60 runs): {_fmt(est['table9_s'], 0)} s "
        f"(goal on one H200: <= {goals['table9_s']:.0f} s)",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    from src.utils.logging_setup import quiet_library_noise

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    quiet_library_noise()
    results = run(argv)
    failed = [c["name"] for c in results["configs"] if "error" in c]
    failed += [f"packing {p['runs']}" for p in results["packing"] if "error" in p]
    if failed:
        print(f"error: measurement(s) failed: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)
