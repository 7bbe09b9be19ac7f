"""The paper's names of configurations, e.g. "AFF MN+ST AAB": one definition for run figures
(src.runs) and reports (src.reporting)."""

from __future__ import annotations

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
    if config.get("clin_dropout_p"):
        name += f" clin-dropout {config['clin_dropout_p']:g}"
    if config.get("metadata"):
        name += f" +meta {','.join(config['metadata'])}"
    if config.get("leaky_metadata"):
        name += f" [LEAKY metadata: {','.join(config['leaky_metadata'])}]"
    return name
