"""The deployed-path section of the benchmark results: its targets and its Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from src.benchmarks.configs import OPTION_ROWS
from src.benchmarks.deployed import EAGER
from src.benchmarks.quantize import FP32

TARGET_DEPLOYED_RATIO = 0.6  # AFF-AAB at most 0.6x SFF-CAT's latency, deployed path
TARGET_INT8_POINTS = 0.5  # int8 AVG AUC within 0.5 points of fp32
DEPLOYED_ROW = "t9-aff-aab"
DEPLOYED_PRECISION, DEPLOYED_VIEWS = FP32, "tta"  # what src.export writes by default
DEFAULT_EXPORT = (DEPLOYED_PRECISION, DEPLOYED_VIEWS)


def _ratio(section: dict[str, Any], row: str) -> float | None:
    """The row's latency ratio on the default export (fp32, TTA views), if measured."""
    if "error" in section:
        return None
    for r in section.get("ratios", []):
        if (r["row"], r["precision"], r["views"]) == (row, DEPLOYED_PRECISION, DEPLOYED_VIEWS):
            return r["ratio"]
    return None


# The option rows of the paper's AFF-AAB: each gets its own latency target line.
OPTIONS_OF_DEPLOYED = tuple(o for o in OPTION_ROWS.values() if o.base == DEPLOYED_ROW)


def _run_name(checkpoint: str) -> str:
    """<configuration>/<seed> of a run's checkpoints/<name>.ckpt (else the path as given)."""
    path = Path(checkpoint)
    if path.suffix == ".ckpt" and path.parent.name == "checkpoints":
        run = path.parent.parent
        return f"{run.parent.name}/{run.name}"
    return checkpoint


def _latency_target(name: str, measured: float | None) -> dict[str, Any]:
    return {
        "name": f"{name} / SFF-CAT (ST+ST) latency, deployed path (ONNX Runtime "
        f"{DEPLOYED_PRECISION}, TTA views), batch 1, side by side",
        "target": f"<= {TARGET_DEPLOYED_RATIO}",
        "measured": measured,
        "met": None if measured is None else measured <= TARGET_DEPLOYED_RATIO,
    }


def deployed_targets(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The latency target of the paper's AFF-AAB (judged on the default export: fp32 with the
    TTA views), the same target for each option row of it that was measured (a different
    model, named as such), and one accuracy target per int8 method and checkpoint."""
    section = section or {}
    targets = [_latency_target("AFF-AAB (MN+ST)", _ratio(section, DEPLOYED_ROW))]
    for option in OPTIONS_OF_DEPLOYED:
        measured = _ratio(section, option.id)
        if measured is not None:
            name = f"{option.description}, {' '.join(option.options)}"
            targets.append(_latency_target(name, measured))
    checked = section.get("int8_accuracy") or [None]
    for record in checked:
        deltas = (record or {}).get("delta_points") or {"int8": None}
        of_run = f", {_run_name(record['checkpoint'])}" if record else ""
        for precision, delta in deltas.items():
            value = None if delta is None else delta["avg_auc"]
            targets.append(
                {
                    "name": f"{precision} AVG AUC - fp32 AVG AUC (test split, points){of_run}",
                    "target": f"within +-{TARGET_INT8_POINTS}",
                    "measured": value,
                    "met": None if value is None else abs(value) <= TARGET_INT8_POINTS,
                }
            )
    return targets


def _recipes(recipes: dict[str, dict[str, Any]] | None, pairs: int | None) -> str:
    """What "int8" means in these rows, in words (older results recorded only the pairs)."""
    if not recipes:
        return f"calibrated on {pairs} training pairs"
    parts = []
    for method, r in recipes.items():
        calibrated = pairs if pairs is not None else r["calibration_pairs"]
        words = f"`{method}` quantizes {', '.join(r['op_types'])} only"
        if r["constant_b_only"]:
            words += " (MatMuls with a weight operand)"
        words += ", per-channel weights" if r["per_channel"] else ""
        if method == "int8-static":
            words += f", {r['calibrate_method']} on {calibrated} training pairs"
        parts.append(words)
    return "; ".join(parts) + ", every other op in float"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}"


def render_deployed(section: dict[str, Any]) -> list[str]:
    s = section["settings"]
    lines = [
        f"## Deployed path: ONNX Runtime on CPU, {s['image_size']} px, batch 1",
        "",
        "Each configuration exported as `src.export` writes it (verified against PyTorch), with "
        "its TTA views (`tta`) and with one view (`one`), and quantized by onnxruntime: "
        "`int8-dynamic` (weights int8, activations per call) and `int8-static` (QDQ, "
        "activation ranges calibrated on training pairs); "
        f"{_recipes(s.get('int8_recipes'), s.get('calibration_pairs'))}. "
        "All models and the eager predictor (one view, the reference row) are built "
        f"in one process and timed side by side: {s['rounds']} alternating rounds of "
        f"{s['calls']} calls; latency = median over rounds of each round's median (IQR and "
        "range over rounds). Peak RSS: a fresh process per model (its growth over the "
        "imports: session + inference). Random weights.",
        "",
        "| configuration | precision | views | latency ms (IQR; min-max) | file MiB "
        "| session + inference MiB |",
        "|---|---|---|---:|---:|---:|",
    ]
    for v in section["variants"]:
        lat = v["latency"]
        memory = v.get("memory") or {}
        mem = (
            f"{memory['session'] + memory['inference_b1']:.0f}"
            if "session" in memory
            else memory.get("error", "-")
        )
        size = f"{v['file_mib']:.1f}" if "file_mib" in v else "-"
        lines.append(
            f"| {v['label']} | {v['precision']} | {v['views']} ({len(v['tta_views'])}) | "
            f"{_ms(lat['median_s'])} ({_ms(lat['q1_s'])}-{_ms(lat['q3_s'])}; "
            f"{_ms(lat['min_s'])}-{_ms(lat['max_s'])}) | {size} | {mem} |"
        )
    lines += [
        "",
        f"Latency over {section['reference']}, same precision and views (per-round spread):",
        "",
        "| configuration | precision | views | ratio | per round |",
        "|---|---|---|---:|---:|",
    ]
    for r in section["ratios"]:
        judged = r["row"] in (DEPLOYED_ROW, *(o.id for o in OPTIONS_OF_DEPLOYED))
        mark = "**" if judged and (r["precision"], r["views"]) == DEFAULT_EXPORT else ""
        lines.append(
            f"| {r['row']} | {r['precision']} | {r['views']} | {mark}{r['ratio']:.3f}{mark} | "
            f"{r['round_ratio_min']:.3f}-{r['round_ratio_max']:.3f} |"
        )
    lines += [
        "",
        f"({EAGER}: PyTorch eager, the reference row.) Where the AAB's time goes and which "
        "ONNX Runtime settings were tried: [aab-profile.md](aab-profile.md); the int8 options "
        "tried: [int8-recipe.md](int8-recipe.md).",
        "",
    ]
    lines += _int8_accuracy(section.get("int8_accuracy") or [])
    return lines


def _int8_accuracy(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return [
            "int8 accuracy: not measured (no `--checkpoint`; see experiments/bench/README.md "
            "for the documented command)."
        ]
    lines = [
        "int8 accuracy on the test split (ONNX Runtime, the run's TTA views and fusion weights):",
        "",
        "| checkpoint | px | test cases | precision | AVG AUC % | AVG ACC % | Δ AUC pts "
        "| Δ ACC pts |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for rec in records:
        for precision, score in rec["scores"].items():
            delta = rec["delta_points"].get(precision)
            d_auc = "-" if delta is None else f"{delta['avg_auc']:+.2f}"
            d_acc = "-" if delta is None else f"{delta['avg_acc']:+.2f}"
            lines.append(
                f"| {rec['checkpoint']} | {rec['image_size']} | {rec['test_cases']} | "
                f"{precision} | {100 * score['avg_auc']:.2f} | {100 * score['avg_acc']:.2f} | "
                f"{d_auc} | {d_acc} |"
            )
    return lines
