"""The benchmark code at tiny sizes: what it measures and writes, not how fast anything is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.bench import run
from src.benchmarks.configs import AMMFM_ROW, REFERENCE_ROW, bench_config
from src.benchmarks.gpu import measure_options
from src.benchmarks.inference import (
    InferenceSettings,
    count_flops,
    measure,
    measure_side_by_side,
)
from src.benchmarks.report import evaluate_targets
from src.benchmarks.timing import summarize
from src.models.network import count_parameters, validate_network_config
from src.utils.errors import UserError
from tests.specs import NUM_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = InferenceSettings(image_size=32, batch=2, warmup=0, runs=2, batch_runs=1, onnx_runs=1)


def test_summarize_quartiles() -> None:
    stats = summarize([4.0, 1.0, 3.0, 2.0, 100.0])
    assert stats["median_s"] == 3.0 and stats["min_s"] == 1.0 and stats["max_s"] == 100.0
    assert stats["q1_s"] <= stats["median_s"] <= stats["q3_s"] and stats["n"] == 5


def test_flops_include_fused_attention() -> None:
    """The fusion blocks use scaled_dot_product_attention: it must count like its matmuls."""
    q, v = torch.randn(2, 1024, 8), torch.randn(2, 1024, 12)  # large enough for fused kernels

    class Fused(torch.nn.Module):
        def forward(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.scaled_dot_product_attention(q, q, v, scale=1.0)

    class Explicit(torch.nn.Module):
        def forward(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return (q @ q.transpose(1, 2)).softmax(-1) @ v

    expected = 2 * 2 * 1024 * 1024 * 20
    assert count_flops(Fused(), q, v) == count_flops(Explicit(), q, v) == expected


def test_inference_measurement_of_one_configuration(tmp_path: Path) -> None:
    pair = measure("t7-baseline-mn", TINY, onnx_dir=tmp_path)
    single = measure("t7-derm-mn", TINY)
    cfg = bench_config("t7-baseline-mn", 32)
    assert (
        pair["params"] == count_parameters(validate_network_config(cfg), NUM_CLASSES)["trainable"]
    )
    assert pair["paper_params_m"] == 6.48

    # MACs: backbones + heads (Linear d->512->128->24). The pair has two MobileNet streams
    # (576-d features) and three heads (clin, derm, fusion over 1152-d); the single one stream.
    def head(d: int) -> int:
        return d * 512 + 512 * 128 + 128 * 24

    pair_streams = round(pair["gmacs_b1"] * 1e9) - 2 * head(576) - head(1152)
    single_stream = round(single["gmacs_b1"] * 1e9) - head(576)
    assert pair_streams == 2 * single_stream > 0
    assert pair["gmacs_b1"] == pytest.approx(pair["gflops_b1"] / 2)
    assert pair["latency_b1"]["n"] == 2 and pair["latency_b1"]["median_s"] > 0
    assert pair["throughput"]["pairs_per_s"] == pytest.approx(2 / pair["throughput"]["median_s"])
    assert pair["memory_mib"]["peak_rss_batch"] >= pair["memory_mib"]["peak_rss_b1"]
    assert pair["onnx"]["max_abs_diff"] < 1e-4 and pair["onnx"]["file_mib"] > 1
    assert "onnx" not in single


def test_gpu_option_code_runs_on_cpu() -> None:
    """The GPU section's code path (precision and memory-format switches; not compile, which
    takes minutes on a CPU) at a tiny size."""
    records = measure_options(
        ["fp32", "bf16-mixed + channels_last"],
        device="cpu",
        image_size=32,
        batch=2,
        steps=1,
        warmup=0,
        runs=1,
        row_id="t7-baseline-mn",
    )
    for record in records:
        assert "error" not in record, record
        assert record["inference"]["pairs_per_s"] > 0
        assert record["training"]["lightning"]["n"] == 1
    assert records[1]["training"]["precision"] == "bf16-mixed"


def _fake_results(ammfm_latency: float, overhead: float, loader_ratio: float) -> dict:
    def row(name: str, latency: float) -> dict:
        return {
            "row": name,
            "label": name,
            "params": 1e6,
            "gmacs_b1": 1.0,
            "paper_avg_auc": None,
            "latency_b1": {"median_s": latency, "q1_s": latency, "q3_s": latency},
            "throughput": {"pairs_per_s": 1 / latency},
            "memory_mib": {"peak_rss_batch": 1.0, "inference_batch": 1.0},
        }

    return {
        "inference": {"rows": [row(REFERENCE_ROW, 1.0), row(AMMFM_ROW, ammfm_latency)]},
        "training": {"overhead_ratio": overhead},
        "data": {"ratio_to_model": loader_ratio},
    }


def test_targets_are_judged_from_the_measurements() -> None:
    met = [t["met"] for t in evaluate_targets(_fake_results(0.5, 0.04, 3.5))]
    assert met == [True, True, True]
    missed = evaluate_targets(_fake_results(0.7, 0.06, 2.0))
    assert [t["met"] for t in missed] == [False, False, False]
    assert missed[0]["measured"] == pytest.approx(0.7)
    assert [t["met"] for t in evaluate_targets({})] == [None, None, None]


def test_side_by_side_ratio_alternates_both_configurations() -> None:
    settings = InferenceSettings(image_size=32, batch=1, warmup=1, runs=1)
    side = measure_side_by_side("t7-derm-mn", "t7-baseline-mn", settings, rounds=3, calls=2)
    ms = side["median_ms"]
    assert side["ratio"] == pytest.approx(ms["t7-derm-mn"] / ms["t7-baseline-mn"])
    assert side["round_ratio_min"] <= side["round_ratio_max"]
    results = _fake_results(0.9, 0.04, 3.5)
    results["inference"]["side_by_side"] = {**side, "ratio": 0.55}
    assert evaluate_targets(results)[0]["measured"] == 0.55  # the side-by-side ratio wins


def test_bench_command_line_writes_json_and_markdown(tmp_path: Path) -> None:
    """The command line with the in-process sections only (fast): files, report, targets."""
    out = tmp_path / "bench"
    args = ["--quick", "--image-size", "32", "--batch", "2", "--train-row", "t7-baseline-mn"]
    args += ["--sections", "training,gpu", "--out", str(out)]
    results = run(args)
    saved = json.loads((out / "quick.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert "inference" not in saved and "data" not in saved
    assert saved["training"]["row"] == "t7-baseline-mn" and saved["training"]["image_size"] == 32
    if not torch.cuda.is_available():
        assert "skipped" in saved["gpu"]
    training = saved["training"]
    overhead = training["lightning"]["median_s"] / training["plain"]["median_s"] - 1
    latency, step, loader = saved["targets"]
    assert latency["measured"] is None and latency["met"] is None  # no inference section
    assert loader["measured"] is None and loader["met"] is None  # no data section
    assert step["measured"] == pytest.approx(overhead)
    assert step["met"] is (overhead <= 0.05)  # the target: at most 5 % overhead
    markdown = (out / "quick.md").read_text()
    assert markdown.startswith("# Efficiency benchmarks (`make bench`)")
    assert "## Training step: LightningModule vs plain PyTorch (t7-baseline-mn, batch 2" in markdown
    assert "## Inference on CPU" not in markdown and "## Data loader" not in markdown
    assert not (out / "results.json").exists()  # quick results never replace the full ones


@pytest.mark.slow  # about 20 s: a fresh process per configuration, the loader's cache
def test_quick_bench_end_to_end(tmp_path: Path, release_copy: Path, monkeypatch) -> None:
    """The command line end to end at 32 px: a per-configuration process, the Lightning vs
    plain training step, the loader on a (copied) synthetic release, the report."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # --threads sets it for the subprocesses
    out = tmp_path / "bench"
    args = ["--quick", "--image-size", "32", "--batch", "2", "--rows", "t7-derm-mn"]
    args += ["--train-row", "t7-baseline-mn", "--no-onnx", "--workers", "0"]
    args += ["--data-root", str(release_copy), "--out", str(out), "--threads", "1"]
    results = run(args)
    saved = json.loads((out / "quick.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert saved["mode"] == "quick" and saved["command"].endswith(" ".join(args))
    assert [r["row"] for r in saved["inference"]["rows"]] == ["t7-derm-mn"]
    assert "error" not in saved["inference"]["rows"][0]
    training = saved["training"]
    assert training["lightning"]["n"] == 2 and training["plain"]["n"] == 2
    assert training["probe"]["image_size"] == 32 and training["probe"]["plain"]["n"] == 5
    assert training["overhead_ratio"] == pytest.approx(
        training["lightning"]["median_s"] / training["plain"]["median_s"] - 1
    )
    data = saved["data"]
    assert data["num_workers"] == 0 and data["root"] == str(release_copy)
    assert data["ratio_to_model"] == pytest.approx(
        data["pairs_per_s"] / training["plain"]["pairs_per_s"]
    )
    if not torch.cuda.is_available():
        assert "skipped" in saved["gpu"]
    assert len(saved["load_average"]["start"]) == 3 and saved["machine"]["cpu_count"] >= 1
    markdown = (out / "quick.md").read_text()
    assert "## Inference on CPU, 32 px" in markdown and "t7-derm-mn" in markdown
    assert "## Training step" in markdown and "## Data loader (32 px, batch 2" in markdown


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown configuration 'nope'"):
        run(["--rows", "nope", "--out", str(tmp_path)])
    with pytest.raises(UserError, match="multiple of 32"):
        run(["--image-size", "50", "--out", str(tmp_path)])
    with pytest.raises(UserError, match="no such folder"):
        run(["--data-root", str(tmp_path / "absent"), "--out", str(tmp_path)])
