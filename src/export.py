"""Export a checkpoint's full fused predictor to ONNX and check it against PyTorch.

    python -m src.export ckpt_path=<run>/checkpoints/final.ckpt [format=onnx] [out=model.onnx]

The graph (opset 17) takes `clinic` and `derm`, float32 [batch, 3, S, S], each image resized
straight to S x S and normalised with its stream's mean/std (both written to the sidecar
`<out>.json`), and returns `p_fi`, float32 [batch, L]: P_FI of Eq. 4, the fusion-weighted
per-task probabilities, columns in the order of the task spec's labels (the sidecar lists them
and holds the spec; derm7pt: 24). The batch axis is dynamic.
The graph holds the run's TTA views by default (one pass per view, same weights), so it gives
the probabilities `src.predict` and the run's evaluation give; `tta_views=[...]` picks others,
`tta=false` exports one pass (the identity view).
Fusion weights come from the run's metrics.json or `fusion_weights=`, as in `src.predict`.

Beside it (`derm_only=true`, the default) goes `<out stem>.derm_only.onnx` with its own sidecar:
input `derm` alone, output `p_d`, the dermoscopy branch's P_D with the missing image as the
network's clinical input, what `src.predict derm=<image>` gives for a case without a clinical
photo. A second graph rather than an input flag: a deployment without a clinical camera feeds
one tensor and nothing it could get wrong, and each graph stays a plain feed-forward one.

The model is written to a temporary file, run with onnxruntime on random inputs at two batch
sizes, compared with PyTorch, and renamed into place only if the largest absolute difference is
within `atol` (default 1e-4); the difference is printed either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.inference.onnx import VERIFY_BATCHES, Exportable, export_onnx, sidecar
from src.inference.predictor import Predictor, load_predictor
from src.utils.errors import UserError, exit_on_user_error
from src.utils.io import atomic_write_json
from src.utils.output_dir_check import check_writable_folder


def run(cfg: DictConfig) -> dict[str, Any]:
    if cfg.format != "onnx":
        raise UserError(f"format={cfg.format}: only onnx is supported")
    if cfg.get("out") and Path(cfg.out).is_dir():
        raise UserError(
            f"out={cfg.out} is a folder; give the ONNX file to write, e.g. "
            f"{Path(cfg.out) / 'model.onnx'}"
        )
    ckpt = Path(cfg.ckpt_path)
    out = Path(cfg.out) if cfg.get("out") else ckpt.with_suffix(".onnx")
    # A folder the model cannot be written to is found before the model is loaded and exported.
    check_writable_folder(out.parent, "out" if cfg.get("out") else "out (beside ckpt_path)")
    weights = cfg.get("fusion_weights")
    predictor = load_predictor(
        cfg.ckpt_path,
        fusion_weights=OmegaConf.to_container(weights) if weights is not None else None,
        tta_views=(cfg.get("tta_views") if cfg.tta else ["identity"]),
    )
    models: dict[Path, Exportable] = {out: predictor.model}
    if cfg.derm_only and "derm" in predictor.model.module.branches:
        models[derm_only_path(out)] = predictor.derm_only
    elif cfg.derm_only:
        print(f"no derm-only model: the network has no dermoscopy branch ({ckpt})")
    results = _export_all(models, predictor, float(cfg.atol))
    for path, model in models.items():
        info = sidecar(model, predictor.image_size, predictor.norm_stats, str(ckpt))
        info["max_abs_diff"] = results[path]["max_abs_diff"]
        atomic_write_json(path.with_name(path.name + ".json"), info)
        print(
            f"wrote {path} ({model.prediction}; {results[path]['bytes'] / 2**20:.1f} MiB, TTA "
            f"views: {', '.join(predictor.views)}); max |onnxruntime - PyTorch| = "
            f"{results[path]['max_abs_diff']:.2e} over batches {list(VERIFY_BATCHES)}"
        )
    return results[out]


def derm_only_path(out: Path) -> Path:
    """Where the derm-only graph of the model exported to `out` goes: <stem>.derm_only.onnx."""
    return out.with_name(f"{out.stem}.derm_only{out.suffix}")


def _export_all(
    models: dict[Path, Exportable], predictor: Predictor, atol: float
) -> dict[Path, dict[str, Any]]:
    """Export every model, all or none: when one fails its check, those written go again."""
    results: dict[Path, dict[str, Any]] = {}
    try:
        for path, model in models.items():
            results[path] = export_onnx(model, predictor.image_size, path, atol)
    except BaseException:
        for path in results:
            path.unlink(missing_ok=True)
        raise
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
