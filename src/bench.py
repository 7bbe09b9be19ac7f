"""Efficiency benchmarks: `make bench` (= `python -m src.bench`), results in experiments/bench/.

    python -m src.bench            # everything at 224 px (about 10-15 min on 2 CPU cores)
    python -m src.bench --quick    # fewer configurations and repetitions (a few minutes)
    python -m src.bench training [--quick] [--json FILE]
        # whole-run training throughput, runs packed per device, and the estimated cost of a
        # paper run and of Table 9 (src/benchmarks/throughput.py)

Sections (each described in its module under src/benchmarks/):
- inference: latency (batch 1), throughput (batch 24), peak memory and MACs of each paper
  configuration on CPU, a fresh process per configuration; ONNX size and onnxruntime latency;
- deployed: the exported models in ONNX Runtime (TTA views and one view; fp32, int8 dynamic,
  int8 static) of SFF-CAT ST+ST, AFF-CAT and AFF-AAB side by side in alternating rounds, the
  eager predictor as a reference; with `--checkpoint`, int8's test AVG AUC/ACC cost;
- training: one training step through Lightning vs a plain PyTorch loop (framework overhead);
- data: the training loader's pairs/s (configured workers, image cache) vs the model's pairs/s;
- gpu: bf16-mixed / channels_last / torch.compile, only when CUDA is available.

Writes `<out>/README.md` and `<out>/results.json` (quick mode: `quick.md`, `quick.json`),
atomically, with the machine, package versions and load averages. `--wait-load 1.5` first
waits (up to `--wait-max` s) for the 1-minute load average to drop below 1.5. Exits 1 if a
section failed (its error is in the results).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.benchmarks.configs import AMMFM_ROW, INFERENCE_ROWS
from src.benchmarks.deployed import DEPLOYED_ROWS
from src.benchmarks.suite import FULL, failed_sections
from src.benchmarks.suite import run as run_suite
from src.project import PROJECT_ROOT
from src.utils.errors import exit_on_user_error


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m src.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer configurations and repetitions")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "experiments" / "bench")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=24, help="throughput/training batch size")
    parser.add_argument(
        "--rows", help=f"comma-separated paper rows (default: {','.join(INFERENCE_ROWS)})"
    )
    parser.add_argument("--train-row", help=f"row for training/data/gpu (default {AMMFM_ROW})")
    parser.add_argument(
        "--sections", help="comma-separated subset of inference,deployed,training,data,gpu"
    )
    parser.add_argument(
        "--deployed-rows",
        help=f"rows of the deployed section, reference first (default: {','.join(DEPLOYED_ROWS)})",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        help="trained checkpoint (or published folder) whose test accuracy int8 is measured "
        "on; repeatable (see experiments/bench/README.md for the documented one)",
    )
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and timing")
    parser.add_argument("--data-root", help="release folder for the loader (default: synthetic)")
    parser.add_argument("--cache-dir", help="image cache folder for the loader")
    parser.add_argument("--workers", type=int, help="loader workers (default: the data config)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--wait-load", type=float, help="first wait for a 1-min load below this")
    parser.add_argument("--wait-max", type=float, default=1200.0, help="longest wait, seconds")
    args = parser.parse_args(argv)
    if args.sections:
        unknown = set(args.sections.split(",")) - set(FULL.sections)
        if unknown:
            parser.error(f"--sections: unknown {sorted(unknown)}; choose from {FULL.sections}")
    return args


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure what the command line asks for; write and return the results."""
    return run_suite(parse_args(argv), argv)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["training"]:
        from src.benchmarks.throughput_cli import main as training_main

        training_main(argv[1:])
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    results = run(argv)
    failed = failed_sections(results)
    if failed:
        print(f"error: benchmark section(s) failed: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
