"""Predict the eight checklist tasks for clinical + dermoscopy image pairs with a checkpoint.

    python -m src.predict ckpt_path=<run>/checkpoints/final.ckpt clinic=<a.jpg> derm=<b.jpg>
    python -m src.predict ckpt_path=... pairs=<folder or pairs.csv> [json=true] [out=preds.csv]

Everything matches evaluation: the images are decoded and resized straight to S x S and
normalised with each stream's statistics (the evaluation transform), the run's TTA views are
averaged, and the branches are combined with the run's fusion weights (Eq. 4), read from the
metrics.json of the run directory the checkpoint belongs to (`<run>/checkpoints/x.ckpt` ->
`<run>/metrics.json`) or given as `fusion_weights={derm: .., clin: .., fusion: ..}`. Without
either, prediction stops: equal weights would silently give a different model.

Batches (`pairs=`):
- a CSV file with columns `clinic` and `derm` (image paths, absolute or relative to the CSV's
  folder) and an optional `id` column (default: the row number);
- or a folder with one sub-folder per case, named by its id, each holding exactly one clinical
  image `clinic.<ext>` and one dermoscopy image `derm.<ext>` (ext: jpg, jpeg or png).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.data.schema import ALL_LABELS, TASKS
from src.evaluation.artifacts import METRICS_FILE
from src.utils.errors import UserError, exit_on_user_error

if TYPE_CHECKING:
    from src.models.module import AMMFMModule

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ImagePair:
    """One case to predict: an id and its two image files."""

    id: str
    clinic: Path
    derm: Path


# ----------------------------------------------------------------------------- the model


def module_from_checkpoint(ckpt_path: str | Path) -> AMMFMModule:
    """The AMMFMModule a checkpoint holds, in eval mode, on the CPU.

    Weights-only loading; the network is rebuilt from the configuration stored in the
    checkpoint, without downloading or loading any pretrained weights.
    """
    from src.models.module import AMMFMModule
    from src.utils.checkpoints import read_checkpoint

    ckpt = read_checkpoint(ckpt_path)
    cfg = OmegaConf.create(ckpt["hyper_parameters"]["cfg"])
    cfg.model.compile = False  # inference and export trace the plain modules
    return AMMFMModule.from_trained(cfg, ckpt["state_dict"], ckpt_path).eval()


def run_metrics_file(ckpt_path: str | Path) -> Path | None:
    """metrics.json of the checkpoint's run: `<run>/checkpoints/x.ckpt` or `<run>/x.ckpt`."""
    ckpt = Path(ckpt_path).resolve()
    for folder in (ckpt.parent.parent, ckpt.parent):
        if (folder / METRICS_FILE).is_file():
            return folder / METRICS_FILE
    return None


def _checked_weights(weights: Any, branches: Sequence[str], source: str) -> dict[str, float]:
    """Validate fusion weights against the network's branches; normalised to sum 1."""
    if not isinstance(weights, dict) or set(weights) != set(branches):
        got = sorted(weights) if isinstance(weights, dict) else weights
        raise UserError(
            f"{source}: fusion weights must name the network's branches {sorted(branches)}, "
            f"got {got}"
        )
    try:
        values = {b: float(weights[b]) for b in branches}
    except (TypeError, ValueError):
        raise UserError(f"{source}: fusion weights must be numbers, got {weights}") from None
    if any(not math.isfinite(v) or v < 0 for v in values.values()) or sum(values.values()) <= 0:
        raise UserError(f"{source}: fusion weights must be >= 0 with a positive sum, got {values}")
    total = sum(values.values())
    return {b: v / total for b, v in values.items()}


def resolve_fusion_weights(
    given: dict[str, Any] | None, ckpt_path: str | Path, branches: Sequence[str]
) -> dict[str, float]:
    """The weights of Eq. 4: `given`, else the run's metrics.json, else a UserError.

    A single-branch network needs no weights (its branch is the prediction).
    """
    if given is not None:
        return _checked_weights(given, branches, "fusion_weights")
    if len(branches) == 1:
        return {branches[0]: 1.0}
    metrics_file = run_metrics_file(ckpt_path)
    if metrics_file is None:
        run_dir = Path(ckpt_path).resolve().parent.parent
        raise UserError(
            f"ckpt_path={ckpt_path}: no fusion weights: {run_dir / METRICS_FILE} does not exist "
            "(evaluate the run with src.eval first), or pass "
            "fusion_weights={derm: <w>, clin: <w>, fusion: <w>}"
        )
    try:
        weights = json.loads(metrics_file.read_text())["fusion_weights"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"{metrics_file}: no readable 'fusion_weights'; pass fusion_weights=... instead"
        ) from None
    return _checked_weights(weights, branches, str(metrics_file))


class FusedPredictor(nn.Module):
    """(clinic, derm) normalised [B,3,S,S] -> P_FI [B,24]: TTA-averaged, fusion-weighted.

    Exactly the evaluation's arithmetic (tta_probabilities, then fuse); traceable for export.
    """

    def __init__(self, module: nn.Module, weights: dict[str, float], views: Sequence[str]):
        super().__init__()
        from src.evaluation.tta import check_tta_views

        self.module = module
        self.weights = dict(weights)
        self.views = check_tta_views(views)

    def branch_probabilities(self, clinic: Tensor, derm: Tensor) -> dict[str, Tensor]:
        from src.evaluation.tta import tta_probabilities

        return tta_probabilities(self.module, clinic, derm, self.views)

    def forward(self, clinic: Tensor, derm: Tensor) -> Tensor:
        from src.evaluation.fusion_weights import fuse

        return fuse(self.branch_probabilities(clinic, derm), self.weights)


@dataclass
class Predictor:
    """A checkpoint ready to predict: the fused model and the evaluation preprocessing."""

    model: FusedPredictor
    image_size: int
    norm_stats: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    checkpoint: Path
    device: torch.device

    @property
    def weights(self) -> dict[str, float]:
        return self.model.weights

    @property
    def views(self) -> list[str]:
        return self.model.views

    def load(self, pairs: Sequence[ImagePair]) -> tuple[Tensor, Tensor]:
        """Decode, resize and normalise a batch of pairs as evaluation does."""
        from src.data.cache import ImageCache
        from src.data.transforms import eval_transform

        images = ImageCache(self.image_size, mode="none")  # decode + resize, as the cache does
        transform = eval_transform(
            self.image_size, self.norm_stats["clin"], self.norm_stats["derm"]
        )
        tensors = [transform(images.get(p.clinic), images.get(p.derm)) for p in pairs]
        return torch.stack([c for c, _ in tensors]), torch.stack([d for _, d in tensors])

    @torch.no_grad()
    def predict(self, pairs: Sequence[ImagePair], batch_size: int = 8) -> Tensor:
        """P_FI [N, 24] (columns in ALL_LABELS order) for `pairs`, `batch_size` at a time."""
        out = []
        for start in range(0, len(pairs), batch_size):
            clinic, derm = self.load(pairs[start : start + batch_size])
            out.append(self.model(clinic.to(self.device), derm.to(self.device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, len(ALL_LABELS))


def load_predictor(
    ckpt_path: str | Path,
    fusion_weights: dict[str, Any] | None = None,
    tta_views: Sequence[str] | None = None,
    device: str = "cpu",
) -> Predictor:
    """Everything prediction needs from a checkpoint (weights, TTA views, fusion weights)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device}: CUDA is not available here; use device=cpu")
    module = module_from_checkpoint(ckpt_path)
    cfg = module.cfg
    views = list(tta_views) if tta_views is not None else list(cfg.model.tta_views)
    weights = resolve_fusion_weights(fusion_weights, ckpt_path, module.branches)
    model = FusedPredictor(module, weights, views).to(device).eval()
    return Predictor(
        model=model,
        image_size=int(cfg.data.image_size),
        norm_stats=module.network.norm_stats,
        checkpoint=Path(ckpt_path),
        device=torch.device(device),
    )


# ----------------------------------------------------------------------------- inputs


def _existing(path: Path, where: str) -> Path:
    if not path.is_file():
        raise UserError(f"{where}: image {path} does not exist")
    return path


def pairs_from_csv(csv_path: Path) -> list[ImagePair]:
    """Pairs listed in a CSV with columns clinic, derm (and optionally id)."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"pairs={csv_path}: cannot read the CSV ({err})") from None
    missing = [c for c in ("clinic", "derm") if c not in columns]
    if missing:
        raise UserError(
            f"pairs={csv_path}: missing column(s) {missing}; expected columns clinic, derm "
            f"(and optionally id), got {columns}"
        )
    pairs = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        paths = {}
        for column in ("clinic", "derm"):
            value = (row.get(column) or "").strip()
            if not value:
                raise UserError(f"pairs={csv_path}: line {number}: empty '{column}'")
            paths[column] = _existing(csv_path.parent / value, f"pairs={csv_path}: line {number}")
        case_id = (row.get("id") or "").strip() or str(number - 1)
        pairs.append(ImagePair(case_id, paths["clinic"], paths["derm"]))
    if not pairs:
        raise UserError(f"pairs={csv_path}: the CSV lists no pairs")
    return pairs


def _one_image(folder: Path, stem: str) -> Path:
    found = [
        p for p in folder.iterdir() if p.stem.lower() == stem and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise UserError(
            f"pairs folder case {folder}: {what} '{stem}' image(s); each case folder needs "
            f"exactly one {stem}.jpg (or .jpeg/.png)"
        )
    return found[0]


def pairs_from_folder(folder: Path) -> list[ImagePair]:
    """One pair per sub-folder holding clinic.<ext> and derm.<ext>, in sorted folder order."""
    cases = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not cases:
        raise UserError(
            f"pairs={folder}: no case folders; expected <case id>/clinic.jpg and "
            "<case id>/derm.jpg in it"
        )
    return [ImagePair(c.name, _one_image(c, "clinic"), _one_image(c, "derm")) for c in cases]


def read_pairs(cfg: DictConfig) -> list[ImagePair]:
    """The pairs a command line asks for: clinic= and derm=, or pairs=<folder or CSV>."""
    single = cfg.get("clinic") is not None or cfg.get("derm") is not None
    if single == (cfg.get("pairs") is not None):
        raise UserError("give either clinic=<image> derm=<image>, or pairs=<folder or CSV>")
    if single:
        if cfg.get("clinic") is None or cfg.get("derm") is None:
            raise UserError("a single pair needs both clinic=<image> and derm=<image>")
        clinic = _existing(Path(cfg.clinic), "clinic")
        derm = _existing(Path(cfg.derm), "derm")
        return [ImagePair(clinic.stem, clinic, derm)]
    source = Path(cfg.pairs)
    if source.is_dir():
        return pairs_from_folder(source)
    if source.is_file():
        return pairs_from_csv(source)
    raise UserError(f"pairs={source}: no such folder or CSV file")


# ----------------------------------------------------------------------------- outputs


def task_results(probs: Tensor) -> dict[str, dict[str, Any]]:
    """{task: {"predicted": class, "probabilities": {class: p}}} of one P_FI row [24]."""
    results, col = {}, 0
    for task in TASKS:
        segment = probs[col : col + task.num_classes].tolist()
        col += task.num_classes
        best = max(range(task.num_classes), key=segment.__getitem__)  # first maximum
        results[task.name] = {
            "predicted": task.classes[best],
            "probabilities": {c: round(p, 6) for c, p in zip(task.classes, segment)},
        }
    return results


def results_document(predictor: Predictor, pairs: Sequence[ImagePair], probs: Tensor) -> dict:
    return {
        "checkpoint": str(predictor.checkpoint),
        "fusion_weights": predictor.weights,
        "tta_views": predictor.views,
        "image_size": predictor.image_size,
        "predictions": [
            {"id": p.id, "clinic": str(p.clinic), "derm": str(p.derm), "tasks": task_results(row)}
            for p, row in zip(pairs, probs)
        ],
    }


def format_text(document: dict) -> str:
    """Human-readable: per pair, each task's predicted class and all class probabilities."""
    weights = {k: round(v, 4) for k, v in document["fusion_weights"].items()}
    lines = [f"fusion weights {json.dumps(weights)}; TTA views {', '.join(document['tta_views'])}"]
    for pred in document["predictions"]:
        lines.append(f"\n{pred['id']}  (clinic {pred['clinic']}, derm {pred['derm']})")
        for task, result in pred["tasks"].items():
            probs = "  ".join(f"{c} {p:.3f}" for c, p in result["probabilities"].items())
            lines.append(f"  {task:<4} -> {result['predicted']:<4}  {probs}")
    return "\n".join(lines)


def write_results(path: Path, document: dict, probs: Tensor) -> None:
    """Atomically write the results: .json (the document) or .csv (one row per pair)."""
    from src.utils.io import atomic_path, atomic_write_json

    if path.suffix.lower() == ".json":
        atomic_write_json(path, document)
        return
    if path.suffix.lower() != ".csv":
        raise UserError(f"out={path}: use a .csv or .json file name")
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "clinic", "derm", *(f"pred_{t.name}" for t in TASKS), *ALL_LABELS])
        for pred, row in zip(document["predictions"], probs):
            predicted = [pred["tasks"][t.name]["predicted"] for t in TASKS]
            values = [f"{p:.6f}" for p in row.tolist()]
            writer.writerow([pred["id"], pred["clinic"], pred["derm"], *predicted, *values])


def run(cfg: DictConfig) -> dict:
    """Predict what `cfg` asks for; returns the results document (also printed / written)."""
    pairs = read_pairs(cfg)  # input errors before the model is built
    if int(cfg.batch_size) < 1:
        raise UserError(f"batch_size={cfg.batch_size} must be >= 1")
    weights = cfg.get("fusion_weights")
    predictor = load_predictor(
        cfg.ckpt_path,
        fusion_weights=OmegaConf.to_container(weights) if weights is not None else None,
        tta_views=list(cfg.tta_views) if cfg.get("tta_views") is not None else None,
        device=str(cfg.device),
    )
    probs = predictor.predict(pairs, int(cfg.batch_size))
    document = results_document(predictor, pairs, probs)
    if cfg.get("out"):
        write_results(Path(cfg.out), document, probs)
    print(json.dumps(document, indent=2) if cfg.json else format_text(document))
    return document


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
