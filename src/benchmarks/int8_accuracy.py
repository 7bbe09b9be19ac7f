"""What int8 costs in accuracy: a trained checkpoint's test AVG AUC and AVG ACC from its fp32
ONNX export and from each int8 version of it, all in ONNX Runtime.

The models are exported as `src.export` writes them (the run's TTA views and fusion weights);
static quantization calibrates on the first training pairs of the checkpoint's own data
(evaluation preprocessing; as many as the int8-static recipe says). Each int8 method's recipe is
recorded beside its numbers. The test split is only reported on, as everywhere: nothing is
selected on it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.benchmarks.deployed import export_all, int8_recipes, training_feeds
from src.benchmarks.quantize import FP32, INT8_STATIC, RECIPES
from src.evaluation.metrics import compute_metrics
from src.inference.onnx import onnx_session, run_onnx
from src.inference.predictor import FusedPredictor, load_predictor

log = logging.getLogger("src.bench")


def _test_split(predictor: Any) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """The checkpoint's test split as evaluation loads it: (image batches, labels)."""
    from omegaconf import OmegaConf

    from src.data.datamodule import build_datamodule

    data_cfg = OmegaConf.merge(predictor.model.module.cfg.data, {"num_workers": 0})
    datamodule = build_datamodule(data_cfg, predictor.norm_stats)
    batches, labels = [], []
    for clinic, derm, batch_labels, _meta in datamodule.split_dataloader("test"):
        batches.append((clinic, derm))
        labels.append(batch_labels)
    return batches, torch.cat(labels)


def measure_checkpoint(
    ckpt_path: str | Path,
    folder: Path,
    calibration_pairs: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Test AVG AUC / AVG ACC (fractions) per precision, and each int8's difference from fp32
    in percentage points. `calibration_pairs`: None, the int8-static recipe's."""
    if calibration_pairs is None:
        calibration_pairs = RECIPES[INT8_STATIC].calibration_pairs
    predictor = load_predictor(ckpt_path)
    size = predictor.image_size
    cfg = predictor.model.module.cfg
    calibration = training_feeds(cfg.data, predictor.norm_stats, calibration_pairs)
    log.info("int8 accuracy: exporting %s (%d px)", ckpt_path, size)
    paths = export_all(predictor.model, size, folder, calibration)
    batches, labels = _test_split(predictor)
    scores: dict[str, dict[str, float]] = {}
    for precision, path in paths.items():
        session = onnx_session(path, threads)
        probs = np.concatenate([run_onnx(session, FusedPredictor, c, d) for c, d in batches])
        metrics = compute_metrics(torch.from_numpy(probs), labels, predictor.tasks)
        scores[precision] = {"avg_auc": metrics["avg_auc"], "avg_acc": metrics["avg_acc"]}
    reference = scores[FP32]
    return {
        "checkpoint": str(ckpt_path),
        "image_size": size,
        "tta_views": predictor.views,
        "test_cases": int(labels.shape[0]),
        "calibration_pairs": len(calibration),
        "int8_recipes": int8_recipes(),
        "scores": scores,
        "delta_points": {
            precision: {key: 100 * (value - reference[key]) for key, value in score.items()}
            for precision, score in scores.items()
            if precision != FP32
        },
    }
