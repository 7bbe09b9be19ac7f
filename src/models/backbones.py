"""timm backbones cut into their four feature stages, so fusion blocks can sit between stages.

A `StagedBackbone` runs one stage at a time and always speaks NCHW, whatever layout the timm
model uses inside (Swin works in NHWC). The stages are the model's last four feature levels
(strides 4/8/16/32 for every supported backbone). The pooled vector is the backbone's own
pre-logits features, `forward_head(forward_features(x), pre_logits=True)`: the model's final
norm on the last stage's map (Swin's LayerNorm, ConvNeXt's `norm_pre`), global average pooling,
and the head's norm on the pooled vector (ConvNeXt). Where timm's pre-logits add a layer that
changes the width (MobileNetV3's 1024-wide `conv_head`), the vector is the pooled last stage
(576 for MobileNetV3-Small), the width the paper's parameter totals fix. Layers after that
(`conv_head`, ImageNet classifiers) are left out of the module; their parameters are still
counted in `full_param_count` because the paper's totals include them.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from src.utils.errors import UserError

NUM_STAGES = 4
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _needs_img_size(name: str) -> bool:
    """Models with a fixed input size (Swin) must be built for the size they will see."""
    cfg = timm.models.get_pretrained_cfg(name)
    return bool(cfg is not None and getattr(cfg, "fixed_input_size", False))


def create_timm_model(
    name: str,
    *,
    image_size: int,
    pretrained: bool = False,
    drop_path_rate: float = 0.0,
    pretrained_tag: str | None = None,
) -> nn.Module:
    """The complete timm model (ImageNet classifier included), built for `image_size` inputs;
    `pretrained_tag` picks which of timm's weights (and their normalisation statistics)."""
    if not timm.is_model(name):
        raise UserError(f"backbone {name!r} is not a timm model name (see timm.list_models())")
    # Always passed: timm's own default differs per family (0.1 for Swin), and would apply unseen.
    kwargs: dict[str, object] = {"pretrained": pretrained, "drop_path_rate": drop_path_rate}
    if _needs_img_size(name):
        kwargs["img_size"] = image_size
    return timm.create_model(f"{name}.{pretrained_tag}" if pretrained_tag else name, **kwargs)


def feature_levels(model: nn.Module) -> list[dict]:
    """timm's feature_info entries of the last four levels (the stages the blocks attach to)."""
    info = getattr(model, "feature_info", None)
    levels = list(info) if info is not None else []
    if len(levels) < NUM_STAGES:
        name = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise UserError(
            f"backbone {name!r} exposes {len(levels)} feature levels; {NUM_STAGES} are needed"
        )
    return [dict(level) for level in levels[-NUM_STAGES:]]


def _flat_children(model: nn.Module, ends: list[str]) -> list[tuple[str, nn.Module]]:
    """Top-level children in order; an nn.Sequential holding a feature level is opened.

    Not timm's FeatureDictNet: with flatten_sequential it opens every top-level nn.Sequential,
    ConvNeXt's stem too (`stem.0` would become `stem_0`, and stored checkpoints would not
    load), and ResNet's return layers (`layer1`) would no longer be found; without it, levels
    inside a Sequential (`stages.0`, `layers.0`, `blocks.1`) are not found."""
    flat = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential) and any(e.startswith(f"{name}.") for e in ends):
            flat.extend((f"{name}.{sub}", module) for sub, module in child.named_children())
        else:
            flat.append((name, child))
    return flat


def _is_norm(module: object) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm))


def feature_norms(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(norm of the last stage's map, norm of the pooled vector) that timm applies before its
    pre-logits output; nn.Identity where the model has none. The map norm is `norm` (Swin) or
    `norm_pre` (ConvNeXt) in forward_features; the vector norm is a NormMlpClassifierHead's."""
    map_norm = next(
        (m for m in (getattr(model, n, None) for n in ("norm", "norm_pre")) if _is_norm(m)),
        nn.Identity(),
    )
    head_norm = getattr(getattr(model, "head", None), "norm", None)
    return map_norm, head_norm if _is_norm(head_norm) else nn.Identity()


class StagedBackbone(nn.Module):
    """The first layers of a timm model up to its stride-32 features, split into four stages."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        if any(True for _ in model.named_parameters(recurse=False)):
            raise UserError(
                f"backbone {name!r} keeps parameters outside its sub-modules and cannot be split "
                "into stages; choose a convolutional or Swin backbone"
            )
        levels = feature_levels(model)
        ends = [level["module"] for level in levels]
        segments: list[OrderedDict[str, nn.Module]] = [OrderedDict()]
        for child_name, child in _flat_children(model, ends):
            segments[-1][child_name.replace(".", "_")] = child
            if child_name == ends[len(segments) - 1]:
                if len(segments) == NUM_STAGES:
                    break
                segments.append(OrderedDict())
        if len(segments) != NUM_STAGES or not segments[-1]:
            raise UserError(f"backbone {name!r}: could not locate its feature stages {ends}")
        self.name = name
        self.stages = nn.ModuleList(nn.Sequential(segment) for segment in segments)
        self.channels: tuple[int, ...] = tuple(int(level["num_chs"]) for level in levels)
        self.reductions: tuple[int, ...] = tuple(int(level["reduction"]) for level in levels)
        self.nhwc = getattr(model, "output_fmt", "NCHW") == "NHWC"
        self.final_norm, self.pooled_norm = feature_norms(model)
        self.full_param_count = sum(p.numel() for p in model.parameters())
        cfg = model.pretrained_cfg
        self.norm_stats: tuple[tuple[float, ...], tuple[float, ...]] = (
            tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
            tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        )

    @property
    def out_dim(self) -> int:
        """Length of the pooled feature vector."""
        return self.channels[-1]

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        """Run stage `index` on NCHW input (the image for stage 0); returns NCHW features."""
        if self.nhwc and index > 0:
            x = x.permute(0, 2, 3, 1)
        x = self.stages[index](x)
        return x.permute(0, 3, 1, 2) if self.nhwc else x

    def pool(self, x: Tensor) -> Tensor:
        """The pre-logits vector [B, C] of the last stage's NCHW map (see the module doc)."""
        if self.nhwc:  # a LayerNorm over channels, as the model applies it
            pooled = self.final_norm(x.permute(0, 2, 3, 1)).mean(dim=(1, 2))
        else:
            pooled = self.final_norm(x).mean(dim=(2, 3))
        return self.pooled_norm(pooled[:, :, None, None]).flatten(1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Stage features without any fusion block (NCHW, strides 4/8/16/32)."""
        features = []
        for index in range(NUM_STAGES):
            x = self.forward_stage(index, x)
            features.append(x)
        return features


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = model.pretrained_cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{n}." for n in names)


def _checkpoint_filter(model: nn.Module) -> Callable | None:
    """The model family's own converter for older checkpoint layouts, if it has one."""
    return getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)


def load_local_weights(
    model: nn.Module, staged: StagedBackbone, path: str, config_key: str
) -> None:
    """Load a local .safetensors/.pth state dict into `model` (weights-only, never pickled code).

    ImageNet classifier keys are ignored. Every tensor the staged backbone uses must be present;
    keys the model does not know mean the file is for another architecture: both are errors.
    """
    file = Path(path).expanduser()
    if file.suffix not in WEIGHT_SUFFIXES:
        raise UserError(f"{config_key}={path}: expected a {'/'.join(WEIGHT_SUFFIXES)} file")
    if not file.is_file():
        raise UserError(f"{config_key}={path}: file not found")
    try:
        state = timm.models.load_state_dict(str(file), weights_only=True)
        filter_fn = _checkpoint_filter(model)
        if filter_fn is not None:
            state = filter_fn(state, model)
    except Exception as err:
        raise UserError(f"{config_key}={path}: cannot read weights ({_one_line(err)})") from err
    classifier = _classifier_prefixes(model)
    state = {k: v for k, v in state.items() if not k.startswith(classifier)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        detail = next(
            (line.strip() for line in str(err).splitlines() if "size mismatch" in line),
            _one_line(err),
        )
        raise UserError(f"{config_key}={path} does not fit {staged.name}: {detail}") from err
    used = {id(t) for t in staged.state_dict(keep_vars=True).values()}
    tensors = model.state_dict(keep_vars=True)
    missing = [k for k in result.missing_keys if id(tensors[k]) in used]
    if missing:
        raise UserError(
            f"{config_key}={path} lacks {len(missing)} tensors of {staged.name} "
            f"(first: {missing[0]}); is it a checkpoint of this architecture?"
        )
    if result.unexpected_keys:
        raise UserError(
            f"{config_key}={path} holds {len(result.unexpected_keys)} tensors {staged.name} does "
            f"not have (first: {result.unexpected_keys[0]}); is it for another architecture?"
        )


def create_backbone(
    name: str,
    *,
    image_size: int,
    pretrained: bool = False,
    weights: str | None = None,
    drop_path_rate: float = 0.0,
    pretrained_tag: str | None = None,
    pretrained_key: str = "backbone.pretrained",
    weights_key: str = "backbone.weights",
) -> StagedBackbone:
    """Build a staged backbone: random init, hub ImageNet weights, or a local weights file.

    `weights` wins over `pretrained`. The config keys name the setting in error messages.
    """
    hub = pretrained and not weights
    try:
        model = create_timm_model(
            name,
            image_size=image_size,
            pretrained=hub,
            drop_path_rate=drop_path_rate,
            pretrained_tag=pretrained_tag,
        )
    except UserError:
        raise
    except Exception as err:
        if not hub:
            raise
        raise UserError(
            f"{pretrained_key}=true but the ImageNet weights of {name} could not be fetched "
            f"({_one_line(err)}); set {weights_key}=<file.safetensors|.pth> to load a local "
            f"copy, or {pretrained_key}=false to train from random initialisation"
        ) from err
    staged = StagedBackbone(model, name)
    if weights:
        load_local_weights(model, staged, weights, weights_key)
    return staged


@lru_cache(maxsize=64)
def stage_reductions(name: str, image_size: int) -> tuple[int, ...]:
    """Strides of the four stages, read from a parameter-free (meta device) build."""
    with torch.device("meta"):
        model = create_timm_model(name, image_size=image_size)
    return tuple(int(level["reduction"]) for level in feature_levels(model))
