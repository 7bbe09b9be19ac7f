"""Where a configuration's inference time goes: ONNX Runtime per-node times and torch.profiler.

    python -m src.benchmarks.profile --row t9-aff-aab --image-size 224 --threads 2 \
        [--runs 10] [--json FILE]

Both profiles give shares of the total time (meaningful on a busy machine, where absolute
times are not): by part of the network (each fusion block, each backbone stage, the heads, the
rest) and by operator. The ONNX model is the deployed one (`deployed.export_variant`); its
per-node kernel times come from ONNX Runtime's own profiler. The eager model is timed with
torch.profiler, each fusion block and head inside a record_function range.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from src.benchmarks.configs import bench_row
from src.benchmarks.deployed import SessionSettings, session_for
from src.benchmarks.inference import build_predictor
from src.inference.onnx import export_onnx, random_inputs, run_onnx
from src.inference.predictor import FusedPredictor
from src.utils.io import atomic_write_json

# ONNX node names carry the exporter's module scopes: /module/blocks.<stage>/... is a fusion
# block, /module/stages.<k>/... a backbone stage, /module/<branch>/... a head.
_PARTS = (
    (re.compile(r"^/module/blocks\.(\d+)/"), "fusion block {}"),
    (re.compile(r"^/module/stages\.(\d+)/"), "backbone stage {}"),
    (re.compile(r"^/module/(clin|derm|fusion)/"), "head {}"),
)


def onnx_part(node_name: str) -> str:
    """The part of the network an exported node belongs to (see _PARTS); "other" if none."""
    for pattern, label in _PARTS:
        found = pattern.match(node_name)
        if found:
            return label.format(found.group(1))
    return "other (stems, norms, TTA, task softmax, Eq. 4)"


def _shares(totals: dict[str, float], top: int | None = None) -> list[dict[str, Any]]:
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [{"name": k, "ms": v / 1e3, "share": v / whole} for k, v in ranked]


def node_times(events: Iterable[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """(node name, op type, microseconds) of each kernel run in an ONNX Runtime profile."""
    out = []
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            out.append((name.removesuffix("_kernel_time"), op, float(event.get("dur", 0))))
    return out


def profile_onnx(path: Path, settings: SessionSettings, image_size: int, runs: int) -> dict:
    """Per-node kernel time shares of `runs` batch-1 calls (after 3 warm-up calls)."""
    clinic, derm = random_inputs(image_size, 1)
    warm = session_for(path, settings)
    for _ in range(3):
        run_onnx(warm, FusedPredictor, clinic, derm)
    session = session_for(path, settings, profile_prefix=str(path.with_suffix("")))
    for _ in range(runs + 1):
        run_onnx(
            session, FusedPredictor, clinic, derm
        )  # the first call of a session is its warm-up
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink(missing_ok=True)
    nodes = node_times(events)
    by_part: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    by_node: dict[str, float] = defaultdict(float)
    for name, op, us in nodes:
        by_part[onnx_part(name)] += us
        by_op[op] += us
        by_node[f"{name} ({op})"] += us
    total_us = sum(by_part.values())
    return {
        "calls": runs + 1,
        "kernel_ms_per_call": total_us / 1e3 / (runs + 1),
        "by_part": _shares(by_part),
        "by_op": _shares(by_op, 12),
        "top_nodes": _shares(by_node, 12),
    }


def _ranges(model: torch.nn.Module) -> list[Any]:
    """record_function ranges around each fusion block and head of the predictor's network."""
    network = model.module
    handles = []
    named = [(f"fusion block {s}", b) for s, b in network.blocks.items()]
    named += [(f"head {n}", h) for n, h in network.heads.items()]
    for label, module in named:
        state: dict[str, Any] = {}

        def enter(_m: Any, _args: Any, label: str = label, state: dict = state) -> None:
            state["range"] = torch.autograd.profiler.record_function(label)
            state["range"].__enter__()

        def leave(_m: Any, _args: Any, _out: Any, state: dict = state) -> None:
            state.pop("range").__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


def profile_eager(model: torch.nn.Module, image_size: int, runs: int) -> dict[str, Any]:
    """torch.profiler shares of `runs` batch-1 calls: by part (fusion blocks, heads, the rest
    = backbones and glue) and by aten operator (self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    pair = random_inputs(image_size, 1)
    handles = _ranges(model)
    try:
        with torch.inference_mode():
            for _ in range(3):
                model(*pair)
            total = torch.autograd.profiler.record_function("total")
            with profile(activities=[ProfilerActivity.CPU]) as prof, total:
                for _ in range(runs):
                    model(*pair)
    finally:
        for handle in handles:
            handle.remove()
    averages = prof.key_averages()
    ranges = {e.key: e.cpu_time_total for e in averages if e.key == "total" or " " in e.key}
    total = ranges.pop("total")
    parts = {k: v for k, v in ranges.items() if k.startswith(("fusion block", "head"))}
    parts["backbones and the rest"] = total - sum(parts.values())
    ops = {e.key: e.self_cpu_time_total for e in averages if e.key.startswith("aten::")}
    return {
        "calls": runs,
        "ms_per_call": total / 1e3 / runs,
        "by_part": _shares(parts),
        "by_op": _shares(ops, 12),
    }


def run(row: str, image_size: int, threads: int, runs: int) -> dict[str, Any]:
    """Both profiles of `row` (random weights, one view, batch 1) with `threads` threads."""
    torch.set_num_threads(threads)
    settings = SessionSettings(threads=threads)
    model, _ = build_predictor(row, image_size, views=("identity",))
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(model, image_size, path)
        onnx = profile_onnx(path, settings, image_size, runs)
    return {
        "row": row,
        "label": bench_row(row).description,
        "image_size": image_size,
        "threads": threads,
        "onnxruntime": onnx,
        "eager": profile_eager(model, image_size, runs),
    }


def render(result: dict[str, Any]) -> str:
    """The profile as Markdown tables of shares."""
    lines = [
        f"### {result['label']} ({result['row']}), {result['image_size']} px, batch 1, "
        f"{result['threads']} threads",
    ]
    for engine, title in (("onnxruntime", "ONNX Runtime kernels"), ("eager", "eager PyTorch")):
        section = result[engine]
        for key in ("by_part", "by_op"):
            lines += ["", f"{title}, {key.replace('_', ' ')}:", "", "| | share |", "|---|---:|"]
            lines += [f"| {r['name']} | {r['share']:.1%} |" for r in section[key]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.benchmarks.profile")
    parser.add_argument("--row", default="t9-aff-aab")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the profile here")
    args = parser.parse_args(argv)
    result = run(args.row, args.image_size, args.threads, args.runs)
    if args.json:
        atomic_write_json(args.json, result)
    print(render(result))


if __name__ == "__main__":
    main()
