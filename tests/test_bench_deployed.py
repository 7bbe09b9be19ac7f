"""The deployed-path benchmark at tiny sizes: what it measures, exports and writes, not how
fast anything is."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from src.bench import run
from src.benchmarks.int8_accuracy import measure_checkpoint
from src.benchmarks.profile import node_times, onnx_part
from src.benchmarks.report_deployed import deployed_targets
from src.evaluation.metrics import compute_metrics
from src.inference.onnx import export_onnx, onnx_session, random_inputs, run_onnx
from src.inference.predictor import FusedPredictor, load_predictor

pytestmark = pytest.mark.usefixtures("one_thread")


def _section(ratio: float, auc_delta: float | None) -> dict:
    section: dict = {
        "ratios": [
            {"row": "t9-aff-aab", "precision": "fp32", "views": "one", "ratio": 0.1},
            {"row": "t9-aff-aab", "precision": "fp32", "views": "tta", "ratio": ratio},
        ],
        "int8_accuracy": [],
    }
    if auc_delta is not None:
        section["int8_accuracy"] = [
            {"delta_points": {"int8-static": {"avg_auc": auc_delta, "avg_acc": 0.0}}}
        ]
    return section


def test_targets_judge_the_default_export_and_each_int8() -> None:
    latency, accuracy = deployed_targets(_section(0.55, -0.4))
    assert latency["measured"] == 0.55 and latency["met"] is True  # fp32 with TTA, not "one"
    assert accuracy["measured"] == -0.4 and accuracy["met"] is True
    latency, accuracy = deployed_targets(_section(0.61, 0.6))
    assert latency["met"] is False and accuracy["met"] is False  # +0.6 is not within 0.5 either
    _, unmeasured = deployed_targets(_section(0.5, None))
    assert unmeasured["measured"] is None and unmeasured["met"] is None


def test_profile_reads_onnxruntime_node_events() -> None:
    events = [
        {"cat": "Node", "name": "/module/blocks.0/MatMul_kernel_time", "dur": 30,
         "args": {"op_name": "MatMul"}},
        {"cat": "Node", "name": "/module/blocks.0/MatMul_fence_before", "dur": 0},
        {"cat": "Session", "name": "model_run", "dur": 100},
    ]  # fmt: skip
    assert node_times(events) == [("/module/blocks.0/MatMul", "MatMul", 30.0)]
    assert onnx_part("/module/blocks.2/Softmax") == "fusion block 2"
    assert onnx_part("/module/stages.1/layers_1/blocks.0/attn/MatMul") == "backbone stage 1"
    assert onnx_part("/module/fusion/mlp/mlp.0/Gemm") == "head fusion"
    assert onnx_part("/Softmax_3").startswith("other")


def test_attention_exports_compute_the_same_values(tiny_ckpt: Path, tmp_path: Path) -> None:
    """matmul (q k^T at the query width, the default) and the eager code's zero-padded sdpa
    give the same P_FI; only the padded one pads."""
    predictor = load_predictor(tiny_ckpt, tta_views=["identity"])
    outputs, pads = {}, {}
    clinic, derm = random_inputs(32, 2, seed=5)
    for mode in ("matmul", "sdpa"):
        path = tmp_path / f"{mode}.onnx"
        export_onnx(predictor.model, 32, path, attention=mode)
        pads[mode] = sum(n.op_type == "Pad" for n in onnx.load(path).graph.node)
        outputs[mode] = run_onnx(onnx_session(path), FusedPredictor, clinic, derm)
    assert pads["matmul"] == 0 < pads["sdpa"]
    assert abs(outputs["matmul"] - outputs["sdpa"]).max() < 1e-5


@pytest.mark.slow  # exports and quantizes the tiny model, then the test split three times
def test_int8_accuracy_against_the_eager_evaluation(tiny_ckpt: Path, tmp_path: Path) -> None:
    result = measure_checkpoint(tiny_ckpt, tmp_path, calibration_pairs=2, threads=1)
    assert set(result["scores"]) == {"fp32", "int8-dynamic", "int8-static"}
    assert result["calibration_pairs"] == 2 and result["tta_views"] == ["identity", "hflip"]
    # fp32 in ONNX Runtime scores what the PyTorch predictor scores on the same test split
    from src.data.datamodule import build_datamodule

    predictor = load_predictor(tiny_ckpt)
    data = build_datamodule(predictor.model.module.cfg.data, predictor.norm_stats)
    probs, labels = [], []
    for clinic, derm, batch_labels, _ in data.split_dataloader("test"):
        probs.append(predictor.model(clinic, derm))
        labels.append(batch_labels)
    eager = compute_metrics(torch.cat(probs), torch.cat(labels), predictor.tasks)
    assert result["test_cases"] == eager["n"]
    # (the untrained tiny model's near-tied scores may reorder at float precision: 0.1 point)
    fp32 = result["scores"]["fp32"]["avg_auc"]
    assert fp32 == pytest.approx(eager["avg_auc"], abs=1e-3)
    for precision, delta in result["delta_points"].items():
        score = result["scores"][precision]["avg_auc"]
        assert delta["avg_auc"] == pytest.approx(100 * (score - fp32))


@pytest.mark.slow  # two small configurations x 2 views x 3 precisions, a process per model
def test_deployed_section_end_to_end(tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["--quick", "--image-size", "32", "--sections", "deployed", "--threads", "1"]
    args += ["--deployed-rows", "t7-baseline-mn,t7-derm-mn", "--out", str(out)]
    args += ["--checkpoint", str(tiny_ckpt)]
    results = run(args)
    saved = json.loads((out / "quick.json").read_text())
    assert saved == json.loads(json.dumps(results))
    section = saved["deployed"]
    keys = {(v["row"], v["precision"], v["views"]) for v in section["variants"]}
    onnx_keys = {
        (r, p, v)
        for r in ("t7-baseline-mn", "t7-derm-mn")
        for p in ("fp32", "int8-dynamic", "int8-static")
        for v in ("tta", "one")
    }
    eager = {("t7-baseline-mn", "eager", "one"), ("t7-derm-mn", "eager", "one")}
    assert keys == onnx_keys | eager
    by_key = {(v["row"], v["precision"], v["views"]): v for v in section["variants"]}
    for key in onnx_keys:
        record = by_key[key]
        assert record["latency"]["n"] == 3  # one value per round (quick: 3 rounds)
        assert record["memory"]["session"] >= 0 and "error" not in record["memory"]
        assert len(record["tta_views"]) == (6 if key[2] == "tta" else 1)
    fp32 = by_key[("t7-baseline-mn", "fp32", "one")]["file_mib"]
    assert by_key[("t7-baseline-mn", "int8-dynamic", "one")]["file_mib"] < fp32 / 2
    ratios = {(r["row"], r["precision"], r["views"]) for r in section["ratios"]}
    assert ratios == {k for k in keys if k[0] == "t7-derm-mn"}
    (accuracy,) = section["int8_accuracy"]
    assert accuracy["checkpoint"] == str(tiny_ckpt)
    markdown = (out / "quick.md").read_text()
    assert "## Deployed path: ONNX Runtime on CPU, 32 px, batch 1" in markdown
    assert "int8 accuracy on the test split" in markdown
