"""Explain a checkpoint's predictions for image pairs or the first cases of a split: loads the
checkpoint as src.predict does (evaluation preprocessing, TTA, fusion weights) and writes the
panels and explain.json of src/runs/explain.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.data.cases import SPLITS
from src.data.datamodule import build_datamodule
from src.data.lesions import LesionBox, read_lesion_boxes
from src.inference.predictor import ImagePair, Predictor, load_predictor
from src.runs.explain import CaseInput, cam_stage, explain_cases, task_index, write_explanations
from src.utils.errors import UserError

log = logging.getLogger(__name__)
BATCH = 8  # cases explained at once


def split_cases(predictor: Predictor, split: str, n: int, task: int) -> list[CaseInput]:
    """The first `n` cases of `split` of the checkpoint's dataset, with their class of `task`."""
    if split not in SPLITS:
        raise UserError(f"split={split}: expected one of {', '.join(SPLITS)}")
    if n < 1:
        raise UserError(f"n={n} must be >= 1")
    cfg = predictor.model.module.cfg
    datamodule = build_datamodule(cfg.data)
    datamodule.ensure_root(datamodule.cfg)
    cases = datamodule.load().splits[split][:n]
    return [CaseInput(c.case_num, c.clinic, c.derm, c.labels[task]) for c in cases]


def lesion_boxes(predictor: Predictor) -> dict[Path, LesionBox]:
    """The lesion boxes of the checkpoint's dataset (empty when it records none or is gone)."""
    root = predictor.model.module.cfg.data.get("root")
    return read_lesion_boxes(root) if root and Path(root).expanduser().is_dir() else {}


def explain_checkpoint(
    ckpt_path: str | Path,
    out_dir: Path,
    *,
    pairs: Sequence[ImagePair] = (),
    split: str | None = None,
    n: int = 8,
    task: str | None = None,
    fusion_weights: dict[str, Any] | None = None,
    stage: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Explain `pairs`, or the first `n` cases of `split`, for `task` (default: the spec's
    first) into the new folder `out_dir`; returns the explain.json document."""
    if out_dir.exists():
        raise UserError(f"out={out_dir} already exists; delete it or choose another folder")
    predictor = load_predictor(ckpt_path, fusion_weights=fusion_weights, device=device)
    tasks = predictor.tasks
    t = task_index(tasks, task)
    if split is not None:
        inputs = split_cases(predictor, split, n, t)
    else:
        inputs = [CaseInput(p.id, p.clinic, p.derm) for p in pairs]
    network = predictor.model.module.network
    chosen = cam_stage(network, predictor.image_size, stage)
    boxes = lesion_boxes(predictor)
    start = time.perf_counter()
    explained = []
    for first in range(0, len(inputs), BATCH):
        batch = inputs[first : first + BATCH]
        images = [ImagePair(c.id, c.clinic, c.derm) for c in batch]
        probs = predictor.predict(images, BATCH)
        clinic, derm = (x.to(predictor.device) for x in predictor.load(images))
        explained += explain_cases(network, tasks, t, probs, clinic, derm, batch, boxes, chosen)
    info = {
        "checkpoint": str(ckpt_path),
        "task_spec": tasks.name,
        "task": tasks.task_names[t],
        "split": split,
        "image_size": predictor.image_size,
        "cam_stage": chosen,
        "fusion_weights": predictor.weights,
        "tta_views": predictor.views,
        "lesion_boxes": bool(boxes),
    }
    document = write_explanations(out_dir, explained, info)
    seconds = time.perf_counter() - start
    log.info(
        "explained %d case(s) in %.2f s (%.3f s per case, panels included) -> %s",
        len(inputs),
        seconds,
        seconds / max(1, len(inputs)),
        out_dir,
    )
    return document
