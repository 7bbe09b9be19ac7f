"""Predict the eight checklist tasks for clinical + dermoscopy image pairs with a checkpoint.

    python -m src.predict ckpt_path=<run>/checkpoints/final.ckpt clinic=<a.jpg> derm=<b.jpg>
    python -m src.predict ckpt_path=<run>/checkpoints/final.ckpt derm=<b.jpg>   (derm-only)
    python -m src.predict ckpt_path=... pairs=<folder or pairs.csv> [json=true] [out=preds.csv]

Everything matches evaluation: the images are decoded and resized straight to S x S and
normalised with each stream's statistics (the evaluation transform), the run's TTA views are
averaged, and the branches are combined with the run's fusion weights (Eq. 4), read from the
metrics.json of the run directory the checkpoint belongs to (`<run>/checkpoints/x.ckpt` ->
`<run>/metrics.json`) or given as `fusion_weights={derm: .., clin: .., fusion: ..}`. Without
either, prediction stops: equal weights would silently give a different model.

Without a clinical image (`derm=` alone, or an empty `clinic` cell of a CSV) a case gets P_D,
the dermoscopy branch's probabilities, with the missing image (`src.data.missing`) as the
network's clinical input; every output names which prediction each case got
(`"prediction": "P_D (dermoscopy only: no clinical image)"` or P_FI).

Batches (`pairs=`):
- a CSV file with columns `clinic` and `derm` (image paths, absolute or relative to the CSV's
  folder; an empty `clinic` cell, or no `clinic` column, predicts from the dermoscopy image
  alone) and an optional `id` column (default: the row number);
- or a folder with one sub-folder per case, named by its id, each holding exactly one clinical
  image `clinic.<ext>` and one dermoscopy image `derm.<ext>` (ext: jpg, jpeg or png).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.data.tasks import TaskSpec
from src.inference.predictor import ImagePair, Predictor, load_predictor
from src.utils.errors import UserError, exit_on_user_error
from src.utils.output_dir_check import check_writable_folder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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
    if "derm" not in columns:
        raise UserError(
            f"pairs={csv_path}: missing column 'derm'; expected columns clinic, derm "
            f"(and optionally id), got {columns}"
        )
    pairs = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"pairs={csv_path}: line {number}"
        derm, clinic = ((row.get(c) or "").strip() for c in ("derm", "clinic"))
        if not derm:
            raise UserError(f"{where}: empty 'derm' (every case needs its dermoscopy image)")
        case_id = (row.get("id") or "").strip() or str(number - 1)
        pairs.append(
            ImagePair(
                case_id,
                _existing(csv_path.parent / clinic, where) if clinic else None,  # derm-only
                _existing(csv_path.parent / derm, where),
            )
        )
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
    """The pairs a command line asks for: [clinic=] derm=, or pairs=<folder or CSV>."""
    single = cfg.get("clinic") is not None or cfg.get("derm") is not None
    if single == (cfg.get("pairs") is not None):
        raise UserError(
            "give either clinic=<image> derm=<image> (or derm=<image> alone), or "
            "pairs=<folder or CSV>"
        )
    if single:
        if cfg.get("derm") is None:
            raise UserError(
                "derm=<image> is needed: a case is predicted from both images, or from its "
                "dermoscopy image alone, never from the clinical image alone"
            )
        derm = _existing(Path(cfg.derm), "derm")
        if cfg.get("clinic") is None:
            return [ImagePair(derm.stem, None, derm)]  # derm-only: P_D
        clinic = _existing(Path(cfg.clinic), "clinic")
        return [ImagePair(clinic.stem, clinic, derm)]
    source = Path(cfg.pairs)
    if source.is_dir():
        return pairs_from_folder(source)
    if source.is_file():
        return pairs_from_csv(source)
    raise UserError(f"pairs={source}: no such folder or CSV file")


# ----------------------------------------------------------------------------- outputs


def task_results(probs: Tensor, tasks: TaskSpec) -> dict[str, dict[str, Any]]:
    """{task: {"predicted": class, "probabilities": {class: p}}} of one P_FI row [L]."""
    results, col = {}, 0
    for task in tasks.tasks:
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
        "task_spec": predictor.tasks.name,
        "predictions": [
            {
                "id": p.id,
                "clinic": None if p.clinic is None else str(p.clinic),
                "derm": str(p.derm),
                "prediction": p.prediction,
                "tasks": task_results(row, predictor.tasks),
            }
            for p, row in zip(pairs, probs)
        ],
    }


def format_text(document: dict) -> str:
    """Human-readable: per pair, each task's predicted class and all class probabilities."""
    weights = {k: round(v, 4) for k, v in document["fusion_weights"].items()}
    fused = any(pred["clinic"] is not None for pred in document["predictions"])
    used = f"fusion weights {json.dumps(weights)}" if fused else "no fusion (no clinical image)"
    lines = [f"{used}; TTA views {', '.join(document['tta_views'])}"]
    for pred in document["predictions"]:
        clinic = pred["clinic"] or "none"
        lines.append(f"\n{pred['id']}  (clinic {clinic}, derm {pred['derm']})")
        lines.append(f"  prediction: {pred['prediction']}")
        for task, result in pred["tasks"].items():
            probs = "  ".join(f"{c} {p:.3f}" for c, p in result["probabilities"].items())
            lines.append(f"  {task:<4} -> {result['predicted']:<4}  {probs}")
    return "\n".join(lines)


OUT_SUFFIXES = (".csv", ".json")


def out_suffix(path: Path) -> str:
    """The results format `path` names (.csv or .json); any other name is a UserError."""
    suffix = path.suffix.lower()
    if suffix not in OUT_SUFFIXES:
        raise UserError(f"out={path}: use a .csv or .json file name")
    return suffix


def write_results(path: Path, document: dict, probs: Tensor, tasks: TaskSpec) -> None:
    """Atomically write the results: .json (the document) or .csv (one row per pair)."""
    from src.utils.io import atomic_path, atomic_write_json

    if out_suffix(path) == ".json":
        atomic_write_json(path, document)
        return
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        predicted_columns = [f"pred_{name}" for name in tasks.task_names]
        header = ["id", "clinic", "derm", "prediction", *predicted_columns, *tasks.all_labels]
        writer.writerow(header)
        for pred, row in zip(document["predictions"], probs):
            predicted = [pred["tasks"][name]["predicted"] for name in tasks.task_names]
            values = [f"{p:.6f}" for p in row.tolist()]
            case = [pred["id"], pred["clinic"] or "", pred["derm"], pred["prediction"]]
            writer.writerow([*case, *predicted, *values])


def run(cfg: DictConfig) -> dict:
    """Predict what `cfg` asks for; returns the results document (also printed / written)."""
    if cfg.get("out"):
        out_suffix(Path(cfg.out))  # a bad file name before anything is loaded
        check_writable_folder(Path(cfg.out).parent, "out")
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
        write_results(Path(cfg.out), document, probs, predictor.tasks)
    print(json.dumps(document, indent=2) if cfg.json else format_text(document))
    return document


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
