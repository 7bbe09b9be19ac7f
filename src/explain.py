"""Where the model looks: panels and lesion numbers of a checkpoint's predictions.

    python -m src.explain ckpt_path=<run>/checkpoints/final.ckpt clinic=<a.jpg> derm=<b.jpg> \
        [task=DIAG] out=<dir>
    python -m src.explain ckpt_path=... split=test n=8 out=<dir>

Per case one PNG panel (both images; Grad-CAM of P_D, P_C and P_FU for the task's predicted
class; per block stage the attention mass on the key image and the per-position refinement) and
`explain.json` with, per case and map, `mass_in_lesion` and `lesion_area_share` when the dataset
records lesion boxes (the synthetic ones do). Preprocessing, TTA and fusion weights as src.predict.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import src.project  # noqa: F401  (the set-up: root, environment, schema)
from src.inference.explain import explain_checkpoint
from src.inference.predictor import ImagePair
from src.utils.errors import UserError, exit_on_user_error
from src.utils.output_dir_check import check_writable_folder


def _pairs(cfg: DictConfig) -> list[ImagePair]:
    """The one pair clinic= and derm= name, or none when split= is given."""
    single = cfg.get("clinic") is not None or cfg.get("derm") is not None
    if single == (cfg.get("split") is not None):
        raise UserError("give either clinic=<image> derm=<image>, or split=<train|valid|test>")
    if not single:
        return []
    paths = {}
    for key in ("clinic", "derm"):
        if cfg.get(key) is None:
            raise UserError(f"a single pair needs both clinic=<image> and derm=<image> ({key})")
        paths[key] = Path(cfg[key])
        if not paths[key].is_file():
            raise UserError(f"{key}: image {paths[key]} does not exist")
    return [ImagePair(paths["clinic"].stem, paths["clinic"], paths["derm"])]


def run(cfg: DictConfig) -> dict:
    """Explain what `cfg` asks for; returns the explain.json document."""
    out = Path(cfg.out)
    check_writable_folder(out.parent, "out")
    pairs = _pairs(cfg)  # input errors before the model is built
    weights = cfg.get("fusion_weights")
    document = explain_checkpoint(
        cfg.ckpt_path,
        out,
        pairs=pairs,
        split=cfg.get("split"),
        n=int(cfg.n),
        task=cfg.get("task"),
        fusion_weights=OmegaConf.to_container(weights) if weights is not None else None,
        stage=cfg.get("cam_stage"),
        device=str(cfg.device),
    )
    print(f"{len(document['cases'])} case(s) explained -> {out}")
    for name, entry in document["summary"].items():
        print(
            f"  {name:<24} mass in lesion {entry['mean_mass_in_lesion']:.3f}  lesion area "
            f"share {entry['mean_lesion_area_share']:.3f}  hit rate {entry['hit_rate']:.2f}  "
            f"({entry['cases']} cases)"
        )
    return document


@hydra.main(version_base="1.3", config_path="../conf", config_name="explain")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(cfg)


if __name__ == "__main__":
    main()
