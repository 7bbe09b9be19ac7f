"""What ONNX Runtime settings and export choices that keep the model the paper's do to the
deployed latency ratio AFF-AAB / SFF-CAT:

    python -m src.benchmarks.ort_options --image-size 224 --threads 2 [--rounds 8] [--json F]

Each option is applied to both configurations (fp32, one view, random weights) and all
sessions are timed side by side in alternating rounds; the ratio of each option is judged
against the reference of the same option, and every latency against the default option.
Options: graph optimisation level (disable, basic, extended, all), execution mode (parallel:
the two streams' nodes concurrently, one thread each), one thread instead of `threads`, and
how the attention of the fusion blocks is exported (`matmul`: q k^T at the query width;
`sdpa`: the eager code's zero-padded scaled_dot_product_attention). None changes the model's
values: every export is verified against PyTorch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from src.benchmarks.deployed import SessionSettings, session_for
from src.benchmarks.inference import build_predictor
from src.benchmarks.timing import alternate_rounds, ratio_of
from src.inference.onnx import export_onnx, random_inputs, run_onnx
from src.inference.predictor import FusedPredictor
from src.utils.io import atomic_write_json

ROW, REFERENCE = "t9-aff-aab", "t9-sff-cat"


@dataclass(frozen=True)
class Option:
    name: str
    session: SessionSettings
    attention: str = "matmul"


def options(threads: int) -> list[Option]:
    base = SessionSettings(threads=threads)
    return [
        Option("default (all, matmul attention)", base),
        Option("attention exported as padded sdpa", base, attention="sdpa"),
        *(
            Option(f"graph optimisation {level}", replace(base, opt_level=level))
            for level in ("disable", "basic", "extended")
        ),
        Option("parallel execution (streams concurrently)", replace(base, parallel=True)),
        Option("1 thread", replace(base, threads=1)),
    ]


def run(image_size: int, threads: int, rounds: int, calls: int) -> dict[str, Any]:
    chosen = options(threads)
    pair = random_inputs(image_size, 1)
    fns: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-options-") as folder:
        for row in (ROW, REFERENCE):
            model, _ = build_predictor(row, image_size)
            exported = {}
            for attention in sorted({o.attention for o in chosen}):
                path = Path(folder) / f"{row}-{attention}.onnx"
                export_onnx(model, image_size, path, attention=attention)
                exported[attention] = path
            for option in chosen:
                session = session_for(exported[option.attention], option.session)
                fns[f"{row}|{option.name}"] = lambda s=session: run_onnx(s, FusedPredictor, *pair)
        times = alternate_rounds(fns, rounds, calls, warmup=2)
    default = chosen[0].name
    results = []
    for option in chosen:
        row_key, ref_key = f"{ROW}|{option.name}", f"{REFERENCE}|{option.name}"
        results.append(
            {
                "option": option.name,
                "session": asdict(option.session),
                "attention": option.attention,
                "median_ms": {
                    ROW: 1e3 * statistics.median(times[row_key]),
                    REFERENCE: 1e3 * statistics.median(times[ref_key]),
                },
                "ratio": ratio_of(times, row_key, ref_key),
                f"{ROW}_vs_default": ratio_of(times, row_key, f"{ROW}|{default}"),
                f"{REFERENCE}_vs_default": ratio_of(times, ref_key, f"{REFERENCE}|{default}"),
            }
        )
    return {
        "image_size": image_size,
        "threads": threads,
        "rounds": rounds,
        "calls": calls,
        "results": results,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['image_size']} px, batch 1, one view, fp32, {result['threads']} threads, "
        f"{result['rounds']} alternating rounds of {result['calls']} calls:",
        "",
        f"| option | {ROW} ms | {REFERENCE} ms | ratio (per round) | {ROW} / default "
        f"| {REFERENCE} / default |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        ratio = r["ratio"]
        lines.append(
            f"| {r['option']} | {r['median_ms'][ROW]:.0f} | {r['median_ms'][REFERENCE]:.0f} | "
            f"{ratio['ratio']:.3f} ({ratio['round_ratio_min']:.3f}-"
            f"{ratio['round_ratio_max']:.3f}) | {r[f'{ROW}_vs_default']['ratio']:.3f} | "
            f"{r[f'{REFERENCE}_vs_default']['ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.benchmarks.ort_options")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.image_size, args.threads, args.rounds, args.calls)
    if args.json:
        atomic_write_json(args.json, result)
    print(render(result))


if __name__ == "__main__":
    main()
