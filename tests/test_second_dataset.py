"""A dataset with another task layout, end to end: the second synthetic dataset (an 11-class
diagnosis and two binary findings, data=synthetic_lesions) trains, evaluates, predicts, exports
and reports, with nothing of derm7pt's 8 tasks anywhere in its results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from src.data.tasks import load_task_spec
from src.train import train
from tests.train_helpers import tiny_config

SPEC = load_task_spec("synthetic_lesions")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sweep(synthetic_pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds of the tiny AFF + AAB network on the second synthetic dataset."""
    root = tmp_path_factory.mktemp("sweep")
    for seed in (0, 1):
        cfg = tiny_config(
            synthetic_pairs, root / f"seed{seed}", ["data=synthetic_lesions", f"seed={seed}"]
        )
        train(cfg)
    return root


def test_the_run_follows_the_spec(sweep: Path) -> None:
    metrics = json.loads((sweep / "seed0" / "metrics.json").read_text())
    assert metrics["tasks"] == SPEC.to_dict()
    assert list(metrics["auc"]) == list(SPEC.all_labels)  # 15 labels, not derm7pt's 24
    assert list(metrics["acc"]) == ["DX", "VEIL", "VESS"]
    assert set(metrics["melanoma"]) == {"DX/MEL", "VEIL/PRS", "VESS/PRS"}
    assert metrics["avg_auc_n_labels"] <= len(SPEC.avg_auc_labels) == 13
    frame = pd.read_csv(sweep / "seed0" / "predictions.csv")
    assert len(frame) == 40 and "pred_DX" in frame and "final:DX/MISC" in frame
    assert not any("DIAG" in c for c in frame.columns)


def test_predict_gives_the_evaluated_probabilities(sweep: Path, synthetic_pairs: Path) -> None:
    from src.inference.predictor import ImagePair, load_predictor

    pairs = pd.read_csv(synthetic_pairs / "pairs.csv")
    case = pairs[pairs.split == "test"].iloc[0]
    predictor = load_predictor(sweep / "seed0" / "checkpoints" / "final.ckpt")
    pair = ImagePair(case.case_id, synthetic_pairs / case.clinic, synthetic_pairs / case.derm)
    probs = predictor.predict([pair])[0]
    evaluated = pd.read_csv(sweep / "seed0" / "predictions.csv").set_index("case_num")
    expected = evaluated.loc[case.case_id, [f"final:{label}" for label in SPEC.all_labels]]
    torch.testing.assert_close(probs.double(), torch.tensor(expected.to_numpy()), atol=1e-4, rtol=0)
    assert predictor.tasks == SPEC


def test_onnx_export_names_the_specs_labels(sweep: Path, tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from src.export import run

    out = tmp_path / "model.onnx"
    run(
        OmegaConf.create(
            {
                "ckpt_path": str(sweep / "seed1" / "checkpoints" / "final.ckpt"),
                "format": "onnx",
                "out": str(out),
                "tta": True,
                "tta_views": None,
                "fusion_weights": None,
                "atol": 1e-4,
                "derm_only": False,  # the fused graph's labels; derm-only: tests/test_derm_only.py
            }
        )
    )
    sidecar = json.loads(out.with_suffix(".onnx.json").read_text())
    assert sidecar["output"]["labels"] == list(SPEC.all_labels)
    assert sidecar["output"]["shape"] == ["batch", 15] and sidecar["tasks"]["name"] == SPEC.name


def test_the_report_groups_both_seeds_and_matches_no_paper_row(sweep: Path, tmp_path: Path) -> None:
    from src.report import main

    main([str(sweep), "--out", str(tmp_path / "report"), "--no-plots"])
    configurations = pd.read_csv(tmp_path / "report" / "configurations.csv")
    assert len(configurations) == 1 and int(configurations.iloc[0]["n"]) == 2
    aucs = [
        json.loads((sweep / f"seed{s}" / "metrics.json").read_text())["avg_auc"] for s in (0, 1)
    ]
    assert configurations.iloc[0]["avg_auc_mean"] == pytest.approx(100 * sum(aucs) / 2, abs=0.01)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "synthetic_lesions" in report
