"""The two-stream fusion network: backbones, fusion blocks between their stages, three heads.

`validate_network_config` turns the composed config into a `NetworkSpec` (and rejects
incompatible choices with one line naming the config keys) without building any weights;
`build_network` builds the `FusionNetwork` it describes.

Fusion frameworks (`fusion.mode`):
- sff: both streams use `backbone.name`;
- aff: the clinical stream uses `clin_backbone` (conf/backbone/*.yaml a second time; default:
  the light MobileNetV3), the dermoscopy stream `backbone`;
- derm_only / clin_only: one stream and one head; the other image is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import timm
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from src.config import BLOCK_GATES, BLOCK_TYPES, FUSION_MODES, BlockConfig
from src.models.backbones import NUM_STAGES, StagedBackbone, create_backbone, stage_reductions
from src.models.blocks import FusionBlock, create_block
from src.models.heads import TaskHead
from src.models.metadata import MetadataEncoding
from src.utils.errors import UserError
from src.utils.hashing import sha256_file

STREAMS: tuple[str, ...] = ("clin", "derm")
FUSION = "fusion"
_MODE_STREAMS = {
    "sff": STREAMS,
    "aff": STREAMS,
    "derm_only": ("derm",),
    "clin_only": ("clin",),
}


@dataclass(frozen=True)
class StreamSpec:
    """One modality's backbone and where its weights come from."""

    backbone: str
    pretrained: bool
    pretrained_tag: str | None  # timm's pretrained tag (None: timm's default for the name)
    weights: str | None
    weights_key: str  # the config key that sets `weights`, for error messages
    pretrained_key: str  # the config key that sets `pretrained`, for error messages
    drop_path_rate: float  # stochastic depth of this stream's backbone (always passed to timm)


@dataclass(frozen=True)
class NetworkSpec:
    """Everything `build_network` needs, checked for consistency."""

    mode: str
    streams: tuple[tuple[str, StreamSpec], ...]  # ("clin"|"derm", spec), clinical first
    block: str
    stages: tuple[int, ...]  # stages followed by a fusion block (empty for cat)
    qk_reduction: int
    gate: str  # none (Eq. 1) | zero (learnable scalar from 0)
    image_size: int
    head_hidden: tuple[int, ...]
    head_dropout: float

    @property
    def branches(self) -> tuple[str, ...]:
        names = tuple(name for name, _ in self.streams)
        return (*names, FUSION) if len(names) == 2 else names

    def describe(self) -> str:
        parts = " + ".join(f"{name} {spec.backbone}" for name, spec in self.streams)
        blocks = f"{self.block} after stages {list(self.stages)}" if self.stages else self.block
        return f"{self.mode}: {parts}; block {blocks}"


def _fail(message: str) -> NoReturn:
    raise UserError(message)


def _as_dictconfig(cfg: object) -> DictConfig:
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)


def _mode(cfg: DictConfig) -> str:
    mode = cfg.fusion.mode
    if mode not in FUSION_MODES:
        _fail(f"fusion.mode={mode} is not one of {', '.join(FUSION_MODES)}")
    return mode


def _drop_path_rate(value: object, key: str) -> float:
    rate = float(value)  # type: ignore[arg-type]
    if not 0.0 <= rate < 1.0:
        _fail(f"{key}={value} must be in [0, 1)")
    return rate


def _pretrained_tag(name: str, tag: str | None, key: str) -> str | None:
    """`tag` if timm has pretrained weights `<name>.<tag>`; None keeps timm's default tag."""
    if tag and f"{name}.{tag}" not in timm.list_pretrained(f"{name}.{tag}"):
        known = ", ".join(t.split(".", 1)[1] for t in timm.list_pretrained(f"{name}.*")) or "none"
        _fail(f"{key}={tag}: timm has no pretrained weights {name}.{tag} (its tags: {known})")
    return tag or None


def weight_sources(spec: NetworkSpec) -> dict[str, str]:
    """Where each stream's starting weights come from: `timm:<name>.<tag>`, `file:<sha256>` of a
    local weights file, or `random` (recorded in a result's identity)."""
    sources: dict[str, str] = {}
    for name, stream in spec.streams:
        if stream.weights:
            path = Path(stream.weights)
            if not path.is_file():
                _fail(f"{stream.weights_key}={stream.weights}: no such file")
            sources[name] = f"file:{sha256_file(path)}"
        elif stream.pretrained:
            tag = stream.pretrained_tag or timm.models.get_pretrained_cfg(stream.backbone).tag
            sources[name] = f"timm:{stream.backbone}.{tag}"
        else:
            sources[name] = "random"
    return sources


def _stream_spec(node: DictConfig, key: str) -> StreamSpec:
    """The stream built from a conf/backbone node found at config key `key`."""
    if not timm.is_model(node.name):
        _fail(f"{key}.name={node.name} is not a timm model name")
    return StreamSpec(
        node.name,
        bool(node.pretrained),
        _pretrained_tag(node.name, node.pretrained_tag, f"{key}.pretrained_tag"),
        node.weights,
        f"{key}.weights",
        f"{key}.pretrained",
        _drop_path_rate(node.drop_path_rate, f"{key}.drop_path_rate"),
    )


def _stream_specs(cfg: DictConfig, mode: str) -> tuple[tuple[str, StreamSpec], ...]:
    clin_node = cfg.get("clin_backbone")
    if mode != "aff" and clin_node is not None:
        _fail(
            f"fusion.mode={mode} uses backbone for every stream, so clin_backbone must be null "
            f"(got clin_backbone.name={clin_node.name}); use fusion=aff for a clinical backbone "
            "of its own"
        )
    main = _stream_spec(cfg.backbone, "backbone")
    clin = main if clin_node is None else _stream_spec(clin_node, "clin_backbone")
    specs = {"clin": clin, "derm": main}
    return tuple((name, specs[name]) for name in _MODE_STREAMS[mode])


def _check_block_sizes(spec: NetworkSpec) -> None:
    """Blocks need equal spatial sizes: compare the two backbones' strides at block stages."""
    (_, clin), (_, derm) = spec.streams
    if not spec.stages or clin.backbone == derm.backbone:
        return
    clin_red = stage_reductions(clin.backbone, spec.image_size)
    derm_red = stage_reductions(derm.backbone, spec.image_size)
    for stage in spec.stages:
        if clin_red[stage] != derm_red[stage]:
            _fail(
                f"block.stages includes {stage}, where clin_backbone.name={clin.backbone} has "
                f"stride {clin_red[stage]} but backbone.name={derm.backbone} has stride "
                f"{derm_red[stage]}; fusion blocks need equal spatial sizes (change block.stages "
                "or use block=cat)"
            )


def validate_network_config(cfg: object) -> NetworkSpec:
    """Check the network part of a composed config; cheap (no weights are built)."""
    cfg = _as_dictconfig(cfg)
    mode = _mode(cfg)
    block = cfg.block.type
    if block not in BLOCK_TYPES:
        _fail(f"block.type={block} is not one of {', '.join(BLOCK_TYPES)}")
    if len(_MODE_STREAMS[mode]) == 1 and block != "cat":
        _fail(
            f"fusion.mode={mode} has a single stream, so block.type must be cat (got {block}); "
            "fusion blocks need fusion=sff or fusion=aff"
        )
    stages = [int(s) for s in cfg.block.stages]
    if any(s not in range(NUM_STAGES) for s in stages) or len(set(stages)) != len(stages):
        _fail(f"block.stages={stages} must be distinct stage indices in 0..{NUM_STAGES - 1}")
    qk_reduction = int(cfg.block.qk_reduction)
    if qk_reduction < 1:
        _fail(f"block.qk_reduction={qk_reduction} must be a positive integer")
    gate = str(cfg.block.gate)
    if gate not in BLOCK_GATES:
        _fail(f"block.gate={gate} is not one of {', '.join(BLOCK_GATES)}")
    head = cfg.model.head
    hidden = tuple(int(h) for h in head.hidden)
    if any(h < 1 for h in hidden):
        _fail(f"model.head.hidden={list(hidden)} must hold positive widths")
    spec = NetworkSpec(
        mode=mode,
        streams=_stream_specs(cfg, mode),
        block=block,
        stages=tuple(sorted(stages)) if block != "cat" else (),
        qk_reduction=qk_reduction,
        gate=gate,
        image_size=int(cfg.data.image_size),  # a multiple of 32: src.config_checks
        head_hidden=hidden,
        head_dropout=float(head.dropout),
    )
    if len(spec.streams) == 2:
        _check_block_sizes(spec)
    return spec


def network_summary(cfg: object) -> dict[str, Any]:
    """The network part of a run's configuration summary (metrics.json "config"), as configured;
    checked by `validate_network_config` first."""
    cfg = _as_dictconfig(cfg)
    validate_network_config(cfg)
    return {
        "fusion": cfg.fusion.mode,
        "block": cfg.block.type,
        "backbone": cfg.backbone.name,
        "clin_backbone": clin_backbone_name(cfg),
        "block_stages": list(cfg.block.stages),
        "qk_reduction": cfg.block.qk_reduction,
        "block_gate": cfg.block.gate,
    }


def architecture(summary: Mapping[str, Any]) -> tuple:
    """What identifies a network, from a configuration summary (`network_summary`, or a
    metrics.json "config"): (fusion, block, dermoscopy backbone, clinical backbone, (block
    stages, q/k width, gate)); the last part is empty for cat, which has no attention blocks.

    The one definition that paper rows, `python -m src.params` and the report compare.
    """
    block = summary["block"]
    attention = (
        ()
        if block == "cat"
        else (
            tuple(sorted(summary["block_stages"])),
            summary["qk_reduction"],
            summary.get("block_gate", BlockConfig.gate),  # metrics.json from before block.gate
        )
    )
    return (summary["fusion"], block, summary["backbone"], summary.get("clin_backbone"), attention)


def clin_backbone_name(cfg: object) -> str | None:
    """timm name of the clinical stream's backbone; None when the network has no such stream."""
    cfg = _as_dictconfig(cfg)
    streams = dict(_stream_specs(cfg, _mode(cfg)))
    return streams["clin"].backbone if "clin" in streams else None


def relative_change(before: Tensor, after: Tensor) -> Tensor:
    """||after - before|| / ||before|| per sample (norms over all features), float32 [B]."""
    before, after = before.float().flatten(1), after.float().flatten(1)
    return (after - before).norm(dim=1) / before.norm(dim=1).clamp_min(1e-12)


class FusionNetwork(nn.Module):
    """Clinical and/or dermoscopy streams, fusion blocks between stages, one head per branch.

    forward(clinic, derm, meta) -> {branch: logits [B, L]} (L: the task spec's labels) for
    branches "clin", "derm" and "fusion" (a single-modal network has only its own branch and
    ignores the other image; `meta` only when the fusion head reads patient metadata).
    """

    def __init__(
        self,
        streams: dict[str, StagedBackbone],
        blocks: dict[int, FusionBlock],
        heads: dict[str, TaskHead],
        metadata: MetadataEncoding | None = None,
    ) -> None:
        super().__init__()
        self.streams = nn.ModuleDict({name: streams[name] for name in STREAMS if name in streams})
        self.blocks = nn.ModuleDict({str(stage): block for stage, block in blocks.items()})
        self.heads = nn.ModuleDict(heads)
        self.metadata = metadata  # patient metadata into the fusion head (model.metadata)
        self._branches = tuple(name for name in (*STREAMS, FUSION) if name in heads)

    @property
    def branches(self) -> tuple[str, ...]:
        return self._branches

    @property
    def norm_stats(self) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
        """Per-modality (mean, std) the backbone was pretrained with; single-modal: its own."""
        own = {name: stream.norm_stats for name, stream in self.streams.items()}
        fallback = next(iter(own.values()))
        return {name: own.get(name, fallback) for name in STREAMS}

    def _run_streams(
        self,
        clinic: Tensor,
        derm: Tensor,
        keep: list[dict[str, Tensor]] | None = None,
        refinement: dict[int, dict[str, Tensor]] | None = None,
    ) -> dict[str, Tensor]:
        x = {name: img for name, img in (("clin", clinic), ("derm", derm)) if name in self.streams}
        for stage in range(NUM_STAGES):
            x = {name: self.streams[name].forward_stage(stage, feat) for name, feat in x.items()}
            if str(stage) in self.blocks:
                block, before = self.blocks[str(stage)], x
                x = dict(zip(STREAMS, block(x["clin"], x["derm"])))
                if refinement is not None:
                    refinement[stage] = {
                        name: relative_change(before[name], x[name]) for name in block.refines
                    }
            if keep is not None:
                keep.append(dict(x))
        return x

    def stage_features(self, clinic: Tensor, derm: Tensor) -> list[dict[str, Tensor]]:
        """Each stream's NCHW features after every stage (after that stage's fusion block)."""
        keep: list[dict[str, Tensor]] = []
        self._run_streams(clinic, derm, keep)
        return keep

    def forward(
        self, clinic: Tensor, derm: Tensor, meta: Tensor | None = None
    ) -> dict[str, Tensor]:
        return self._heads(self._run_streams(clinic, derm), meta)

    def forward_with_refinement(
        self, clinic: Tensor, derm: Tensor, meta: Tensor | None = None
    ) -> tuple[dict[str, Tensor], dict[int, dict[str, Tensor]]]:
        """Logits, and per block stage and refined stream the relative change
        ||x_refined - x|| / ||x|| of every sample's features [B] (how much each block acts)."""
        refinement: dict[int, dict[str, Tensor]] = {}
        features = self._run_streams(clinic, derm, refinement=refinement)
        return self._heads(features, meta), refinement

    def gate_values(self) -> dict[int, dict[str, float]]:
        """{stage: {stream: gamma}} of gated blocks (block.gate=zero); empty otherwise."""
        gates = {int(stage): block.gate_values() for stage, block in self.blocks.items()}
        return {stage: values for stage, values in gates.items() if values}

    def _heads(self, features: dict[str, Tensor], meta: Tensor | None) -> dict[str, Tensor]:
        pooled = {name: self.streams[name].pool(feat) for name, feat in features.items()}
        logits = {name: self.heads[name](vec) for name, vec in pooled.items()}
        if FUSION in self.heads:
            fused = [pooled["clin"], pooled["derm"]]
            if self.metadata is not None:
                if meta is None:
                    raise ValueError("this network takes patient metadata: pass meta")
                fused.append(self.metadata(meta).to(pooled["derm"].dtype))
            logits[FUSION] = self.heads[FUSION](torch.cat(fused, dim=1))
        return {name: logits[name] for name in self.branches}

    def parameter_counts(self) -> dict[str, int]:
        """Honest counts, plus the paper's accounting (full timm models, classifiers included)."""

        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        backbones = count(self.streams)
        blocks, heads = count(self.blocks), count(self.heads)
        full = sum(stream.full_param_count for stream in self.streams.values())
        return {
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "total": backbones + blocks + heads,
            "backbones": backbones,
            "blocks": blocks,
            "heads": heads,
            "unused_imagenet_layers": full - backbones,
            "paper_accounting": full + blocks + heads,
        }


def build_network(
    spec: NetworkSpec,
    num_classes: Sequence[int],
    *,
    load_weights: bool = True,
    metadata: Sequence[tuple[int, int]] = (),
) -> FusionNetwork:
    """Build the network `spec` describes (`validate_network_config` of a composed config),
    each head with one segment of `num_classes[t]` logits per task (the task spec's), the fusion
    head also reading the `metadata` columns ((index, categories), from `select_metadata`)
    one-hot.

    With load_weights=False no pretrained or local weights are loaded (parameter counting).
    """
    streams = {
        name: create_backbone(
            stream.backbone,
            image_size=spec.image_size,
            pretrained=stream.pretrained and load_weights,
            pretrained_tag=stream.pretrained_tag,
            weights=stream.weights if load_weights else None,
            drop_path_rate=stream.drop_path_rate,
            weights_key=stream.weights_key,
            pretrained_key=stream.pretrained_key,
        )
        for name, stream in spec.streams
    }
    blocks: dict[int, FusionBlock] = {}
    for stage in spec.stages:
        block = create_block(
            spec.block,
            streams["clin"].channels[stage],
            streams["derm"].channels[stage],
            spec.qk_reduction,
            spec.gate,
        )
        if block is not None:
            blocks[stage] = block
    dims = {name: stream.out_dim for name, stream in streams.items()}
    encoding = MetadataEncoding(metadata) if metadata else None
    if len(dims) == 2:
        dims[FUSION] = dims["clin"] + dims["derm"] + (encoding.width if encoding else 0)
    heads = {
        name: TaskHead(dim, num_classes, spec.head_hidden, spec.head_dropout)
        for name, dim in dims.items()
    }
    return FusionNetwork(streams, blocks, heads, encoding)


def count_parameters(spec: NetworkSpec, num_classes: Sequence[int]) -> dict[str, int]:
    """`FusionNetwork.parameter_counts` of the network `spec` describes, built on the meta
    device without weights: fast and offline."""
    with torch.device("meta"):
        network = build_network(spec, num_classes, load_weights=False)
    return network.parameter_counts()
