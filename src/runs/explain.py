"""Explain cases of a trained network: per case one PNG panel (src/evaluation/explain_panel.py)
and `explain.json` with, per case and map, `mass_in_lesion` and `lesion_area_share` where the
dataset records its lesion boxes (src/data/lesions.py).

Maps: Grad-CAM of each branch for the explained task's predicted class (of P_FI, the fused
prediction src.predict gives) at the backbone stage `cam_stage` (src/models/gradcam.py), and per
fusion block stage its attention mass and refinement (src/models/block_maps.py). The class is
the same for every branch, so their maps answer one question.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from src.config import ExplainConfig
from src.data.images import decode_rgb, resize_square
from src.data.lesions import LesionBox, read_lesion_boxes
from src.data.synthetic.folder import build_folder
from src.data.tasks import TaskSpec
from src.evaluation.explain_panel import save_panel
from src.evaluation.explanations import ExplainedCase, ExplainedMap, case_record, summary, upsample
from src.models.block_maps import BlockMaps
from src.models.gradcam import grad_cams
from src.models.network import FusionNetwork
from src.utils.errors import UserError
from src.utils.io import atomic_write_json

EXPLAIN_FILE = "explain.json"
DISPLAY_SIZE = 192  # pixels a side of the images a panel draws on
MIN_CAM_SIDE = 7  # cam_stage=null: the deepest stage with a map this wide (7: 224 px, last stage)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CaseInput:
    """One case to explain: an id, its image files and, when known, its class of the task."""

    id: str
    clinic: Path
    derm: Path
    truth: int | None = None


def cam_stage(network: FusionNetwork, image_size: int, asked: int | None) -> int:
    """The backbone stage Grad-CAM reads: `asked`, or the deepest stage whose feature map is at
    least MIN_CAM_SIDE positions a side at `image_size`: the last stage (the usual Grad-CAM
    layer) from 224 px up, stage 1 (8 x 8) at 64 px, where the last stage has 2 x 2 positions."""
    stages = len(next(iter(network.streams.values())).stages)
    if asked is not None:
        if not 0 <= asked < stages:
            raise UserError(f"cam_stage={asked} must be a stage index in 0..{stages - 1} or null")
        return asked
    reductions = max(
        (stream.reductions for stream in network.streams.values()), key=lambda r: r[-1]
    )
    fine = [s for s, r in enumerate(reductions) if image_size // r >= MIN_CAM_SIDE]
    return fine[-1] if fine else 0


def task_index(tasks: TaskSpec, task: str | None) -> int:
    """The index of `task` in the spec (None: the spec's first task); a UserError if unknown."""
    if task is None:
        return 0
    if task not in tasks.task_names:
        raise UserError(
            f"task={task}: the model's task spec {tasks.name!r} has the tasks "
            f"{', '.join(tasks.task_names)}"
        )
    return tasks.task_names.index(task)


def _maps(
    network: FusionNetwork, clinic: Tensor, derm: Tensor, columns: Sequence[int], stage: int
) -> list[list[ExplainedMap]]:
    """Every map of every case of the batch, at the input size."""
    size = clinic.shape[-1]
    cams = grad_cams(network, clinic, derm, columns, stage)
    with torch.no_grad(), BlockMaps(network) as blocks:
        network(clinic, derm)
    out: list[list[ExplainedMap]] = [[] for _ in range(clinic.shape[0])]
    for (branch, image), values in cams.items():
        for b, case_maps in enumerate(out):
            case_maps.append(ExplainedMap("gradcam", image, values[b], branch=branch))
    for stage_index, stage_maps in sorted(blocks.stages.items()):
        for kind, per_stream in (
            ("attention", stage_maps.attention),
            ("refinement", stage_maps.refinement),
        ):
            for image, values in per_stream.items():
                for b, case_maps in enumerate(out):
                    resized = upsample(values[b].numpy(), size)
                    case_maps.append(ExplainedMap(kind, image, resized, stage=stage_index))
    return out


def explain_cases(
    network: FusionNetwork,
    tasks: TaskSpec,
    task: int,
    probs: Tensor,
    clinic: Tensor,
    derm: Tensor,
    cases: Sequence[CaseInput],
    boxes: Mapping[Path, LesionBox],
    stage: int,
) -> list[ExplainedCase]:
    """The explanations of a batch: `probs` [B, L] the fused prediction, `clinic` and `derm`
    the normalised model inputs [B, 3, S, S], `boxes` the lesion boxes by resolved image path."""
    spec = tasks.tasks[task]
    offset = tasks.offsets[task]
    segment = probs[:, offset : offset + spec.num_classes].float()
    predicted = segment.argmax(dim=1).tolist()
    was_training = network.training
    maps = _maps(network.eval(), clinic, derm, [offset + p for p in predicted], stage)
    network.train(was_training)
    explained = []
    for case, row, best, case_maps in zip(cases, segment.tolist(), predicted, maps):
        paths = {"clin": case.clinic, "derm": case.derm}
        explained.append(
            ExplainedCase(
                id=case.id,
                paths={k: str(p) for k, p in paths.items()},
                task=spec.name,
                classes=list(spec.classes),
                probabilities=row,
                predicted=spec.classes[best],
                truth=None if case.truth is None else spec.classes[case.truth],
                boxes={k: boxes.get(p.resolve()) for k, p in paths.items()},
                images={k: resize_square(decode_rgb(p), DISPLAY_SIZE) for k, p in paths.items()},
                maps=case_maps,
            )
        )
    return explained


def panel_name(case_id: str, taken: set[str]) -> str:
    """A file name for a case's panel, unique among `taken` (which it joins)."""
    stem = _UNSAFE.sub("_", case_id).strip("._") or "case"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}.png"
    taken.add(name)
    return name


def write_explanations(
    out_dir: Path, cases: Sequence[ExplainedCase], info: Mapping[str, Any]
) -> dict[str, Any]:
    """Write each case's panel and explain.json (`info`: what was explained, with what) into
    the new folder `out_dir`, all at once (a failed run leaves no folder); returns the
    document."""
    records: list[dict[str, Any]] = []

    def write(tmp: Path) -> None:
        taken: set[str] = set()
        for case in cases:
            name = panel_name(case.id, taken)
            save_panel(case, tmp / name)
            records.append(case_record(case, name))
        atomic_write_json(
            tmp / EXPLAIN_FILE, {**info, "cases": records, "summary": summary(records)}
        )

    build_folder(out_dir, write, EXPLAIN_FILE)
    return {**info, "cases": records, "summary": summary(records)}


def mean_numbers(document: Mapping[str, Any], map_name: str) -> tuple[float, float] | None:
    """(mean mass_in_lesion, mean lesion_area_share) of one map over the cases, if known."""
    entry = document["summary"].get(map_name)
    return (
        None if entry is None else (entry["mean_mass_in_lesion"], entry["mean_lesion_area_share"])
    )


def wandb_panels(
    cfg: Any,
    module: Any,
    datamodule: Any,
    final_probs: Tensor,
    run_dir: Path,
    loggers: Sequence[Any],
) -> dict[str, Path]:
    """With a W&B logger among `loggers`: the panels of the first `explain.wandb_cases` test
    cases (P_FI `final_probs` in test order) in `<run>/explain/`, as {"explain/<case>": png}
    for the run's media; otherwise (or for a model that also reads patient metadata) none."""
    from lightning.pytorch.loggers import WandbLogger

    if not any(isinstance(logger, WandbLogger) for logger in loggers):
        return {}
    # a config stored before the `explain` node existed takes the schema's default
    count = int(OmegaConf.select(cfg, "explain.wandb_cases", default=ExplainConfig.wandb_cases))
    network = module.network
    if count < 1 or network.metadata is not None:
        return {}
    dataset = datamodule.datasets["test"]
    cases = list(dataset.cases)[:count]
    items = [dataset[i] for i in range(len(cases))]
    clinic = torch.stack([item[0] for item in items]).to(module.device)
    derm = torch.stack([item[1] for item in items]).to(module.device)
    inputs = [CaseInput(c.case_num, c.clinic, c.derm, c.labels[0]) for c in cases]
    stage = cam_stage(network, int(cfg.data.image_size), None)
    boxes = read_lesion_boxes(cfg.data.root)
    explained = explain_cases(
        network, module.tasks, 0, final_probs[: len(cases)], clinic, derm, inputs, boxes, stage
    )
    out = run_dir / "explain"
    if out.exists():  # an earlier evaluation of this run
        shutil.rmtree(out)
    document = write_explanations(out, explained, {"split": "test", "cam_stage": stage})
    return {f"explain/{Path(c['panel']).stem}": out / c["panel"] for c in document["cases"]}
