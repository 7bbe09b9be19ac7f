"""The deployed-path benchmark at tiny sizes: what it measures, exports and writes, not how
fast anything is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from src.bench import run
from src.benchmarks import int8_accuracy
from src.benchmarks.deployed import training_feeds
from src.benchmarks.int8_accuracy import measure_checkpoint
from src.benchmarks.profile import node_times, onnx_part
from src.benchmarks.quantize import INT8_DYNAMIC, INT8_STATIC, RECIPES, quantize
from src.benchmarks.report_deployed import deployed_targets
from src.evaluation.metrics import compute_metrics
from src.inference.onnx import export_onnx, onnx_session, random_inputs, run_onnx
from src.inference.predictor import FusedPredictor, load_predictor
from src.utils.errors import UserError

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
            {
                "checkpoint": "logs/sweep/aff-aab-swin/seed3/checkpoints/final.ckpt",
                "delta_points": {"int8-static": {"avg_auc": auc_delta, "avg_acc": 0.0}},
            }
        ]
    return section


def test_targets_judge_the_default_export_and_each_int8() -> None:
    latency, accuracy = deployed_targets(_section(0.55, -0.4))
    assert latency["measured"] == 0.55 and latency["met"] is True  # fp32 with TTA, not "one"
    assert accuracy["measured"] == -0.4 and accuracy["met"] is True
    assert accuracy["name"].endswith(", aff-aab-swin/seed3")  # which run's int8 it is
    latency, accuracy = deployed_targets(_section(0.61, 0.6))
    assert latency["met"] is False and accuracy["met"] is False  # +0.6 is not within 0.5 either
    _, unmeasured = deployed_targets(_section(0.5, None))
    assert unmeasured["measured"] is None and unmeasured["met"] is None


def test_an_option_row_is_its_base_model_with_the_option_and_its_own_target() -> None:
    from src.benchmarks.configs import bench_config

    base, option = bench_config("t9-aff-aab", 32), bench_config("t9-aff-aab-s123", 32)
    assert list(base.block.stages) == [0, 1, 2, 3] and list(option.block.stages) == [1, 2, 3]
    base.block.stages = option.block.stages
    assert base == option  # nothing else differs
    section = _section(0.62, None)
    section["ratios"].append(
        {"row": "t9-aff-aab-s123", "precision": "fp32", "views": "tta", "ratio": 0.55}
    )
    paper, with_option, _ = deployed_targets(section)
    assert paper["measured"] == 0.62 and paper["met"] is False  # the paper's model, judged alone
    assert with_option["measured"] == 0.55 and with_option["met"] is True
    assert "block.stages=[1,2,3]" in with_option["name"] and "option" in with_option["name"]


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


def _digest(array: np.ndarray | torch.Tensor) -> str:
    return hashlib.sha1(np.ascontiguousarray(np.asarray(array, dtype=np.float32))).hexdigest()


def test_calibration_sees_training_pairs_only(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What measure_checkpoint hands the quantizer are training pairs: none of them is a test
    (or validation) case, each one is a training case."""
    seen: list = []

    def stop(model, size, folder, calibration):  # captures what export_all would quantize on
        seen.extend(calibration)
        raise StopIteration

    monkeypatch.setattr(int8_accuracy, "export_all", stop)
    with pytest.raises(StopIteration):
        measure_checkpoint(tiny_ckpt, tmp_path, calibration_pairs=1000)
    from omegaconf import OmegaConf

    from src.data.datamodule import build_datamodule

    predictor = load_predictor(tiny_ckpt)
    cfg = OmegaConf.merge(predictor.model.module.cfg.data, {"augment": False, "num_workers": 0})
    data = build_datamodule(cfg, predictor.norm_stats)
    data.setup()
    held_out = {
        _digest(clinic[i])
        for split in ("valid", "test")
        for clinic, _, _, _ in data.split_dataloader(split)
        for i in range(len(clinic))
    }
    train = {_digest(c) for c, *_ in data.datasets["train"]}  # no augmentation
    calibrated = {_digest(feed["clinic"][0]) for feed in seen}
    assert len(seen) == len(data.datasets["train"])  # all of them, capped at the split
    assert calibrated <= train and not calibrated & held_out


@pytest.fixture(scope="module")
def int8_models(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model (one view, 32 px) exported and quantized with the default recipes."""
    folder = tmp_path_factory.mktemp("int8")
    predictor = load_predictor(tiny_ckpt, tta_views=["identity"])
    paths = {"fp32": Path(export_onnx(predictor.model, 32, folder / "fp32.onnx")["path"])}
    calibration = training_feeds(predictor.model.module.cfg.data, predictor.norm_stats, 4)
    for method in (INT8_DYNAMIC, INT8_STATIC):
        paths[method] = quantize(paths["fp32"], folder / f"{method}.onnx", method, calibration)
    return paths


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def test_static_recipe_leaves_attention_and_probabilities_float(
    int8_models: dict[str, Path],
) -> None:
    graph = onnx.load(int8_models[INT8_STATIC]).graph
    recipe = RECIPES[INT8_STATIC]
    made_by = _producers(graph)
    weights = {t.name for t in graph.initializer}
    qdq = {"QuantizeLinear", "DequantizeLinear"}
    quantized_weight_users = set()
    for node in graph.node:
        if node.op_type in qdq:
            continue
        sources = [made_by.get(name) for name in node.input]
        dequantized = [s for s in sources if s is not None and s.op_type == "DequantizeLinear"]
        if any(s.input[0] in weights for s in dequantized):
            quantized_weight_users.add(node.op_type)
        if node.op_type == "Softmax" or (
            node.op_type == "MatMul"
            and node.input[1] not in weights
            and made_by[node.input[1]].op_type not in qdq
        ):
            assert not dequantized, f"{node.name} reads a quantized tensor"
    # (the tiny MobileNet model has no MatMul with a weight: its projections are 1x1 Convs)
    assert {"Conv", "Gemm"} <= quantized_weight_users <= set(recipe.op_types)
    # the attention maps and P_FI are never rounded: no Softmax output is quantized
    softmax_out = {o for n in graph.node if n.op_type == "Softmax" for o in n.output}
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in softmax_out for n in graph.node)
    assert made_by[graph.output[0].name].op_type not in qdq


def test_dynamic_recipe_quantizes_weight_matmuls_only(
    int8_models: dict[str, Path],
) -> None:
    fp32 = onnx.load(int8_models["fp32"]).graph
    graph = onnx.load(int8_models[INT8_DYNAMIC]).graph
    ops = [n.op_type for n in graph.node]
    assert RECIPES[INT8_DYNAMIC].op_types == ("MatMul",)
    assert "MatMulInteger" in ops and "ConvInteger" not in ops
    assert ops.count("Conv") == sum(n.op_type == "Conv" for n in fp32.node)  # Convs float
    assert "Gemm" not in ops  # quantize_dynamic makes the heads' Gemms MatMuls, quantized
    # the attention products (two activations) stay float MatMuls, and only they
    fp32_weights = {t.name for t in fp32.initializer}
    activation_matmuls = sum(
        n.op_type == "MatMul" and n.input[1] not in fp32_weights for n in fp32.node
    )
    assert ops.count("MatMul") == activation_matmuls > 0


def test_static_int8_runs_close_to_fp32(int8_models: dict[str, Path]) -> None:
    clinic, derm = random_inputs(32, 3, seed=7)
    fp32 = run_onnx(onnx_session(int8_models["fp32"]), FusedPredictor, clinic, derm)
    for method in (INT8_DYNAMIC, INT8_STATIC):
        probs = run_onnx(onnx_session(int8_models[method]), FusedPredictor, clinic, derm)
        assert probs.shape == fp32.shape and np.isfinite(probs).all()
        assert abs(probs - fp32).max() < 0.05, method  # loose: the tiny model's near-ties


@pytest.mark.slow  # exports and quantizes the tiny model, then the test split three times
def test_int8_accuracy_against_the_eager_evaluation(tiny_ckpt: Path, tmp_path: Path) -> None:
    result = measure_checkpoint(tiny_ckpt, tmp_path, calibration_pairs=2, threads=1)
    assert set(result["scores"]) == {"fp32", "int8-dynamic", "int8-static"}
    assert result["calibration_pairs"] == 2 and result["tta_views"] == ["identity", "hflip"]
    assert result["int8_recipes"][INT8_STATIC] == RECIPES[INT8_STATIC].record()
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
    assert by_key[("t7-baseline-mn", "int8-static", "one")]["file_mib"] < fp32 / 2
    # dynamic keeps the (MobileNet's many) Convs float: only the MatMuls and heads shrink
    assert by_key[("t7-baseline-mn", "int8-dynamic", "one")]["file_mib"] < fp32
    assert section["settings"]["int8_recipes"]["int8-static"]["op_types"] == [
        "Conv",
        "MatMul",
        "Gemm",
    ]
    ratios = {(r["row"], r["precision"], r["views"]) for r in section["ratios"]}
    assert ratios == {k for k in keys if k[0] == "t7-derm-mn"}
    (accuracy,) = section["int8_accuracy"]
    assert accuracy["checkpoint"] == str(tiny_ckpt)
    markdown = (out / "quick.md").read_text()
    assert "## Deployed path: ONNX Runtime on CPU, 32 px, batch 1" in markdown
    assert "int8 accuracy on the test split" in markdown


def test_a_checkpoint_without_its_fusion_weights_stops_the_bench_before_it_measures(
    tiny_ckpt: Path, tmp_path: Path
) -> None:
    """The int8 accuracy comes last in the deployed section: a checkpoint it cannot load must
    be refused at the start, not after the timed part."""
    stray = tmp_path / "elsewhere" / "checkpoints" / "final.ckpt"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(tiny_ckpt.read_bytes())
    (stray.parent.parent / "metrics.json").write_text(
        json.dumps({"fusion_weights": {"derm": 1, "clin": 1, "fusion": 1}, "checkpoint": "x.ckpt"})
    )
    out = tmp_path / "bench"
    args = ["--quick", "--image-size", "32", "--sections", "deployed", "--threads", "1"]
    with pytest.raises(UserError, match="records checkpoint"):
        run([*args, "--out", str(out), "--checkpoint", str(stray)])
    assert not out.exists()
