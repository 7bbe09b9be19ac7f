"""Package trained models for others: `python -m src.publish <run or sweep folder>... out=DIR`.

    python -m src.publish logs/train/multiruns/<sweep> out=published [onnx=true]

Writes one folder per configuration under `out` in the Hugging Face Hub model layout (see
src/utils/published.py): per seed the weights as `seed<N>/model.safetensors` (tensors only),
the resolved config, the run's metrics.json, its fusion weights and result identity; per
configuration the task spec, the seed-free identity, mean +- std over seeds, a model card
README.md and manifest.json (sha256 of every file). `onnx=true` adds each seed's ONNX model
(`src.export`'s fused predictor with the run's TTA views, verified against PyTorch within
`atol`, default 1e-4 as src.export). Only complete runs are published;
a configuration's folder appears whole or not at all (written aside, then renamed).

`ckpt_path=<out>/<configuration>` (its best seed on validation) or `.../seed<N>` then works
in src.eval, src.predict and src.export. Upload one configuration with
`huggingface-cli upload <user>/<repo> <out>/<configuration> .` (README.md).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.config import upgrade_config
from src.reporting.aggregate import ConfigResult, group_runs
from src.reporting.model_card import model_card, summary
from src.reporting.naming import slug
from src.reporting.runs import RunRecord, find_runs
from src.runs.files import final_checkpoint
from src.runs.identity import upgrade_identity
from src.utils.checkpoints import read_checkpoint
from src.utils.errors import UserError, exit_on_user_error
from src.utils.io import atomic_path, atomic_write_json, atomic_write_text
from src.utils.output_dir_check import check_writable_folder
from src.utils.published import (
    CONFIG_FILE,
    FUSION_WEIGHTS_FILE,
    IDENTITY_FILE,
    METRICS_FILE,
    ONNX_FILE,
    SEED_PREFIX,
    TASKS_FILE,
    WEIGHTS_FILE,
    write_manifest,
)

OPTIONS = {"out": None, "onnx": "false", "atol": "1e-4"}  # atol: as src.export's
USAGE = "usage: python -m src.publish <run or sweep folder>... out=DIR [onnx=true] [atol=1e-4]"


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """(folders, {"out": Path, "onnx": bool}) from `folder... key=value...`."""
    folders, options = [], dict(OPTIONS)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            folders.append(arg)
        elif key in OPTIONS:
            options[key] = value
        else:
            raise UserError(f"{arg}: unknown option {key!r}; {USAGE}")
    if not folders or not options["out"]:
        raise UserError(USAGE)
    if options["onnx"].lower() not in ("true", "false"):
        raise UserError(f"onnx={options['onnx']}: use onnx=true or onnx=false")
    try:
        atol = float(options["atol"])
    except ValueError:
        raise UserError(f"atol={options['atol']}: not a number") from None
    onnx = atol if options["onnx"].lower() == "true" else None
    return folders, {"out": Path(options["out"]), "onnx": onnx}


def default_seed(result: ConfigResult) -> int:
    """The seed `ckpt_path=<configuration>` loads: best validation AVG AUC (validation
    selects), the lowest seed on a tie."""
    best = max(result.runs, key=lambda r: (r.metrics["valid"]["avg_auc"], -r.seed))
    return int(best.seed)


def _weights_file(state_dict: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    # clone: safetensors stores no two names over one storage, and a file holds only tensors
    tensors = {k: v.detach().clone().contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:  # also the usual file mode, not safetensors' 0600
        save_file(tensors, str(tmp), metadata={"format": "pt"})


def _seed_files(record: RunRecord, folder: Path, onnx: float | None) -> dict[str, Any]:
    """Write one seed's files into `folder` (with the ONNX model, verified within `onnx`,
    unless None); returns its result identity."""
    import yaml

    metrics = record.metrics or {}
    ckpt_path = Path(metrics.get("checkpoint") or final_checkpoint(Path(record.source)))
    ckpt = read_checkpoint(ckpt_path)  # the weights its metrics were computed from
    identity = upgrade_identity(ckpt.get("identity") or metrics.get("identity")) or {}
    folder.mkdir(parents=True)
    _weights_file(ckpt["state_dict"], folder / WEIGHTS_FILE)
    cfg = OmegaConf.to_container(upgrade_config(ckpt["hyper_parameters"]["cfg"]))
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(cfg, sort_keys=False))
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (folder / FUSION_WEIGHTS_FILE).write_text(json.dumps(metrics["fusion_weights"], indent=2))
    (folder / IDENTITY_FILE).write_text(json.dumps(identity, indent=2))
    if onnx is not None:
        _onnx(ckpt_path, folder / ONNX_FILE, onnx)
    return identity


def _onnx(ckpt_path: Path, out: Path, atol: float) -> None:
    from src.inference.onnx import export_onnx, sidecar
    from src.inference.predictor import load_predictor

    predictor = load_predictor(ckpt_path)
    result = export_onnx(predictor.model, predictor.image_size, out, atol)
    info = sidecar(predictor.model, predictor.image_size, predictor.norm_stats, ONNX_FILE)
    info["max_abs_diff"] = result["max_abs_diff"]
    (out.with_name(out.name + ".json")).write_text(json.dumps(info, indent=2))


def configuration_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """A run's identity without what names the seed: the configuration's."""
    settings = {k: v for k, v in identity.get("settings", {}).items() if k != "seed"}
    return {
        "configuration": identity.get("configuration"),
        "settings": settings,
        "data": identity.get("data"),
        "weights": identity.get("weights"),
        "code": identity.get("code"),
    }


def publish_configuration(result: ConfigResult, out: Path, onnx: float | None) -> Path:
    """Write one configuration's published folder under `out`, whole or not at all; with the
    ONNX models (verified within `onnx`) unless None."""
    name = slug(result.config)
    target = out / name
    seed = default_seed(result)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out) as tmp:
        folder = Path(tmp) / name
        identities = {
            r.seed: _seed_files(r, folder / f"{SEED_PREFIX}{r.seed}", onnx) for r in result.runs
        }
        identity = configuration_identity(identities[seed])
        info = summary(result, seed)
        atomic_write_json(folder / TASKS_FILE, result.tasks.to_dict())
        atomic_write_json(folder / IDENTITY_FILE, identity)
        atomic_write_json(folder / METRICS_FILE, info)
        card = model_card(result, identity, info, with_onnx=onnx is not None)
        atomic_write_text(folder / "README.md", card)
        write_manifest(folder, seed, {"configuration": identity["configuration"]})
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)
    return target


def run(argv: Sequence[str]) -> list[Path]:
    folders, options = parse_args(argv)
    out = options["out"]
    check_writable_folder(out, "out")
    out.mkdir(parents=True, exist_ok=True)
    results, _ = group_runs(find_runs(folders))
    ready = [r for r in results if r.runs]
    if not ready:
        raise UserError(f"{', '.join(folders)}: no complete run to publish")
    written = []
    for result in ready:
        if not result.complete:
            note = f"{result.status()}; publishing seeds {result.seeds}"
            print(f"note: {slug(result.config)}: {note}")
        written.append(publish_configuration(result, out, options["onnx"]))
        print(f"wrote {written[-1]} (seeds {', '.join(map(str, result.seeds))})")
    return written


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
