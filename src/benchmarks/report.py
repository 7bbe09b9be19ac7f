"""The benchmark results as Markdown: tables with ratios, and the targets, met or not."""

from __future__ import annotations

from typing import Any

from src.benchmarks.configs import AMMFM_ROW, REFERENCE_ROW
from src.benchmarks.quiet import verdict_line
from src.benchmarks.report_deployed import deployed_targets, render_deployed

TARGET_OVERHEAD = 0.05  # Lightning step at most 5 % slower than the plain loop
TARGET_LOADER_RATIO = 3.0  # loader at least 3x the model's consumption
TARGET_LATENCY_RATIO = 0.6  # AMMFM at most 0.6x the latency of SFF-CAT ST+ST


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _by_row(rows: list[dict]) -> dict[str, dict]:
    return {r["row"]: r for r in rows if "error" not in r}


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the benchmark issues, with the measured value (None: not measured)."""
    targets = []
    inference = results.get("inference") or {}
    rows = _by_row(inference.get("rows", []))
    ratio = None
    if "side_by_side" in inference:  # both timed in alternation: the ratio to quote
        ratio = inference["side_by_side"]["ratio"]
    elif REFERENCE_ROW in rows and AMMFM_ROW in rows:
        ratio = (
            rows[AMMFM_ROW]["latency_b1"]["median_s"]
            / rows[REFERENCE_ROW]["latency_b1"]["median_s"]
        )
    targets.append(
        {
            "name": "AFF-AAB (MN+ST) latency / SFF-CAT (ST+ST) latency, batch 1, CPU, eager",
            "target": f"<= {TARGET_LATENCY_RATIO}",
            "measured": ratio,
            "met": None if ratio is None else ratio <= TARGET_LATENCY_RATIO,
        }
    )
    training = results.get("training") or {}
    overhead = training.get("overhead_ratio")
    targets.append(
        {
            "name": "training step: Lightning / plain loop - 1",
            "target": f"<= {TARGET_OVERHEAD:.0%}",
            "measured": overhead,
            "met": None if overhead is None else overhead <= TARGET_OVERHEAD,
        }
    )
    if "deployed" in results:
        targets += deployed_targets(results["deployed"])
    loader_ratio = (results.get("data") or {}).get("ratio_to_model")
    targets.append(
        {
            "name": "data loader pairs/s / model training pairs/s",
            "target": f">= {TARGET_LOADER_RATIO:g}",
            "measured": loader_ratio,
            "met": None if loader_ratio is None else loader_ratio >= TARGET_LOADER_RATIO,
        }
    )
    return targets


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    load = results["load_average"]
    pkg = results["packages"]
    lines = [
        f"- CPU: {m['cpu_model']} ({m['cpu_count']} logical cores), torch threads "
        f"{m['torch_threads']}, memory {m.get('memory_gib', '-')} GiB; GPU: {m.get('gpu', 'none')}",
        f"- torch {pkg.get('torch')}, lightning {pkg.get('lightning')}, timm {pkg.get('timm')}, "
        f"onnxruntime {results.get('onnxruntime') or '-'}; {m['platform']}",
        f"- load average (1, 5, 15 min) at start {load['start']}, at end {load['end']}"
        + (f"; waited {load['waited_s']:.0f} s for it to drop" if load.get("waited_s") else ""),
        f"- commit {results.get('git_commit')}; {results['mode']} mode; took "
        f"{results['duration_s'] / 60:.1f} min; `{results['command']}`",
    ]
    if load.get("note"):
        lines.append(f"- note: {load['note']}")
    if "quiet" in results:
        lines.append(verdict_line(results["quiet"]))
    return lines


def _inference(section: dict[str, Any]) -> list[str]:
    s = section["settings"]
    rows = section["rows"]
    ok = _by_row(rows)
    ref = ok.get(REFERENCE_ROW)
    lines = [
        f"## Inference on CPU, {s['image_size']} px",
        "",
        "The deployed predictor without TTA (both images in, P_FI out; 6-view TTA costs 6x), "
        f"random weights. Latency: batch 1, median of {s['runs']} calls after {s['warmup']} "
        f"warm-up calls. Throughput: batch {s['batch']}, median of {s['batch_runs']} calls. "
        "GMACs: torch FlopCounterMode at batch 1 (matmul/conv/attention as computed, i.e. the "
        "fusion blocks' q/k padded to the value width; softmax/norm/elementwise not counted). "
        "Memory: peak RSS "
        "of a fresh process per configuration, and its growth over the built model during "
        f"inference at batch {s['batch']}. Ratios are to {REFERENCE_ROW} (SFF ST+ST, CAT).",
        "",
        "| configuration | params M | GMACs | latency ms (IQR) | x ref | pairs/s | x ref "
        "| peak RSS MiB | inference +MiB | paper AVG AUC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['row']} | failed: {r['error']} |||||||||")
            continue
        lat, thr, mem = r["latency_b1"], r["throughput"], r["memory_mib"]
        lat_x = lat["median_s"] / ref["latency_b1"]["median_s"] if ref else None
        thr_x = thr["pairs_per_s"] / ref["throughput"]["pairs_per_s"] if ref else None
        lines.append(
            f"| {r['label']} | {r['params'] / 1e6:.2f} | {r['gmacs_b1']:.2f} | "
            f"{lat['median_s'] * 1e3:.0f} ({lat['q1_s'] * 1e3:.0f}-{lat['q3_s'] * 1e3:.0f}) | "
            f"{_num(lat_x)} | {thr['pairs_per_s']:.1f} | {_num(thr_x)} | "
            f"{mem['peak_rss_batch']:.0f} | {mem['inference_batch']:.0f} | "
            f"{_num(r.get('paper_avg_auc'), 1)} |"
        )
    if ref and AMMFM_ROW in ok:
        ammfm = ok[AMMFM_ROW]["latency_b1"]
        lines += [
            "",
            f"{AMMFM_ROW} / {REFERENCE_ROW} batch-1 latency: median "
            f"{ammfm['median_s'] / ref['latency_b1']['median_s']:.3f}, fastest call "
            f"{ammfm['min_s'] / ref['latency_b1']['min_s']:.3f}; MACs "
            f"{ok[AMMFM_ROW]['gmacs_b1'] / ref['gmacs_b1']:.3f} (each row in its own process, "
            "one after the other).",
        ]
    side = section.get("side_by_side")
    if side:
        ms = side["median_ms"]
        lines += [
            "",
            f"Side by side in one process ({side['rounds']} alternating rounds of "
            f"{side['calls_per_round']} calls): {side['row']} {ms[side['row']]:.0f} ms, "
            f"{side['reference']} {ms[side['reference']]:.0f} ms, ratio **{side['ratio']:.3f}** "
            f"(per round {side['round_ratio_min']:.3f}-{side['round_ratio_max']:.3f}); the "
            "target is judged on this ratio.",
        ]
    onnx_rows = [r for r in ok.values() if "onnx" in r]
    if onnx_rows:
        lines += [
            "",
            "ONNX (src.export: the same predictor, verified against PyTorch with onnxruntime; "
            "batch 1 on the CPU execution provider):",
            "",
            "| configuration | file MiB | max abs diff | onnxruntime ms | PyTorch ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in onnx_rows:
            o = r["onnx"]
            if "error" in o:
                lines.append(f"| {r['label']} | failed: {o['error']} ||||")
                continue
            lines.append(
                f"| {r['label']} | {o['file_mib']:.1f} | {o['max_abs_diff']:.1e} | "
                f"{o['latency_b1']['median_s'] * 1e3:.0f} | "
                f"{r['latency_b1']['median_s'] * 1e3:.0f} |"
            )
    return lines


def _training(t: dict[str, Any]) -> list[str]:
    lines = [
        f"## Training step: LightningModule vs plain PyTorch ({t['row']}, batch {t['batch_size']}, "
        f"{t['image_size']} px, {t['precision']}, {t['device']})",
        "",
        "Same network object, same batch, same process, alternating rounds; per-step time is "
        "start-to-start (everything between steps included), warm-up steps dropped.",
        "",
        "| loop | median step s (IQR) | steps timed | pairs/s |",
        "|---|---:|---:|---:|",
    ]
    for name, key in (
        ("Lightning Trainer + AMMFMModule.training_step", "lightning"),
        ("plain loop", "plain"),
    ):
        s = t[key]
        lines.append(
            f"| {name} | {s['median_s']:.3f} ({s['q1_s']:.3f}-{s['q3_s']:.3f}) | {s['n']} | "
            f"{s['pairs_per_s']:.2f} |"
        )
    lines += [
        "",
        f"Overhead: {t['overhead_ratio']:+.1%} ({t['overhead_ms_per_step']:+.1f} ms per step).",
    ]
    probe = t.get("probe")
    if probe:
        lp, pp = probe["lightning"], probe["plain"]
        lines += [
            "",
            f"Fixed cost per step, measured on a cheap step ({probe['row']}, batch "
            f"{probe['batch_size']}, {probe['image_size']} px, {lp['n']} steps per loop): "
            f"Lightning {lp['median_s'] * 1e3:.1f} ms vs plain {pp['median_s'] * 1e3:.1f} ms, "
            f"{probe['overhead_ms_per_step']:+.1f} ms ({probe['overhead_ratio']:+.1%}) per step.",
        ]
    return lines


def _data(d: dict[str, Any]) -> list[str]:
    ratio = d.get("ratio_to_model")
    return [
        f"## Data loader ({d['image_size']} px, batch {d['batch_size']}, "
        f"{d['num_workers']} workers, cache {d['cache']}, "
        f"augmentation {'on' if d['augment'] else 'off'})",
        "",
        f"- steady rate: {d['pairs_per_s']:.1f} pairs/s over {d['batches']} batches "
        f"(set-up incl. cache {d['setup_s']:.1f} s, first batch incl. worker start "
        f"{d['first_batch_s']:.1f} s)",
        f"- the model consumes {_num(d.get('model_pairs_per_s'))} pairs/s in training "
        f"(plain loop above): loader / model = {_num(ratio)}x",
        "- measured alone: during training the workers share the same cores with the model.",
    ]


def _gpu(g: dict[str, Any]) -> list[str]:
    lines = ["## GPU options (bf16-mixed, channels_last, torch.compile)", ""]
    if "skipped" in g:
        return [*lines, f"Not measured: {g['skipped']}."]
    lines += [
        f"{g['row']} at {g['image_size']} px, batch {g['batch']}, {g['device_name']}.",
        "",
        "| option | inference pairs/s | training pairs/s (Lightning) | plain loop | peak GiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in g["records"]:
        if "error" in r:
            lines.append(f"| {r['option']} | failed: {r['error']} ||||")
            continue
        lines.append(
            f"| {r['option']} | {r['inference']['pairs_per_s']:.1f} | "
            f"{r['training']['lightning']['pairs_per_s']:.1f} | "
            f"{r['training']['plain']['pairs_per_s']:.1f} | "
            f"{_num(r.get('max_memory_allocated_gib'))} |"
        )
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    lines = ["# Efficiency benchmarks (`make bench`)", "", *_machine(results), "", "## Targets", ""]
    lines += ["| target | required | measured | met |", "|---|---|---:|---|"]
    for t in results["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['name']} | {t['target']} | {_num(t['measured'], 3)} | {met} |")
    for key, render in (
        ("inference", _inference),
        ("deployed", render_deployed),
        ("training", _training),
        ("data", _data),
        ("gpu", _gpu),
    ):
        section = results.get(key)
        if section is None:
            continue
        lines.append("")
        if "error" in section:
            lines += [f"## {key}", "", f"Failed: {section['error']}"]
        else:
            lines += render(section)
    return "\n".join(lines) + "\n"
