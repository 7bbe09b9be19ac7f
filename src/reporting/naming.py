"""Human names for configurations: the paper's row names, settings and file-name slugs."""

from __future__ import annotations

import re
from typing import Any

from src.config import BlockConfig

# The paper's names of the timm backbones it uses.
PAPER_NAMES = {
    "swinv2_tiny_window8_256": "ST",
    "mobilenetv3_small_100": "MN",
    "resnet50": "ResNet50",
    "convnext_tiny": "ConvNeXt-T",
}
DEFAULT_BLOCK_STAGES = BlockConfig().stages
DEFAULT_QK_REDUCTION = BlockConfig().qk_reduction


def short(backbone: str | None) -> str:
    return "-" if backbone is None else PAPER_NAMES.get(backbone, backbone)


def describe(config: dict[str, Any]) -> str:
    """e.g. "AFF MN+ST AAB" (clinical + dermoscopy backbones, as the paper writes them)."""
    fusion, block = config["fusion"], config["block"]
    derm, clin = short(config["backbone"]), short(config.get("clin_backbone"))
    if fusion == "derm_only":
        name = f"derm-only {derm}"
    elif fusion == "clin_only":
        name = f"clin-only {clin}"
    else:
        name = f"{fusion.upper()} {clin}+{derm} {block.upper()}"
    if block != "cat":
        stages = list(config.get("block_stages") or [])
        qk = config.get("qk_reduction")
        if stages != DEFAULT_BLOCK_STAGES:
            name += f" stages {','.join(map(str, stages))}"
        if qk not in (None, DEFAULT_QK_REDUCTION):
            name += f" qk c/{qk}"
        if config.get("block_gate", "none") != "none":
            name += f" gate {config['block_gate']}"
    return name


PAPER_PRECISIONS = ("32-true", "32", "32-mixed")  # fp32 training, as the paper's code


def off_recipe_precision(config: dict[str, Any]) -> str | None:
    """The trainer precision when it is not the paper's fp32 (e.g. "bf16-mixed"), else None."""
    precision = str(config.get("precision", "32-true"))
    return None if precision in PAPER_PRECISIONS else precision


def setting(config: dict[str, Any]) -> str:
    """How a configuration was trained, e.g. "derm7pt 224px 250ep SWA50 pretrained"; a
    precision other than fp32 is named, marked as off the paper's recipe."""
    weights = "pretrained" if config.get("pretrained") else "from scratch"
    swa = f" SWA{config['swa_epochs']}" if config.get("swa_epochs") else ""
    precision = off_recipe_precision(config)
    off = f" {precision} (off recipe)" if precision else ""
    return (
        f"{config.get('data')} {config.get('image_size')}px "
        f"{config.get('max_epochs')}ep{swa} {weights}{off}"
    )


def slug(config: dict[str, Any]) -> str:
    """A file-name-safe name unique to the configuration and its setting."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", f"{describe(config)} {setting(config)}").strip("_")
