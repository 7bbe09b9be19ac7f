"""Staged timm backbones: stage split, NCHW output, parameter split, weight loading."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from src.models.backbones import (
    StagedBackbone,
    create_backbone,
    create_timm_model,
    stage_reductions,
)
from src.utils.errors import UserError

BACKBONES = [
    "swinv2_tiny_window8_256",
    "swin_tiny_patch4_window7_224",
    "resnet50",
    "convnext_tiny",
    "mobilenetv3_small_100",
]
MN = "mobilenetv3_small_100"


@pytest.mark.parametrize("name", BACKBONES)
def test_stages_reproduce_timm_features_in_nchw(name: str) -> None:
    torch.manual_seed(0)
    model = create_timm_model(name, image_size=32).eval()
    staged = StagedBackbone(model, name).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours = staged(x)
        expected = model.forward_intermediates(x, intermediates_only=True)[-4:]
    assert [f.shape[1] for f in ours] == list(staged.channels)
    assert [f.shape[-1] for f in ours] == [32 // r for r in staged.reductions]
    assert staged.reductions == (4, 8, 16, 32)
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", BACKBONES)
def test_pooled_vector_is_timms_pre_logits_features(name: str) -> None:
    torch.manual_seed(0)
    model = create_timm_model(name, image_size=64).eval()
    with torch.no_grad():
        for p in model.parameters():  # norms away from their identity initialisation
            p.add_(0.1 * torch.randn_like(p))
    staged = StagedBackbone(model, name).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = staged.pool(staged(x)[-1])
        features = model.forward_features(x)
        if name == MN:  # pre-logits add the 1024-wide conv_head; the paper's width is 576
            expected = model.global_pool(features).flatten(1)
        else:
            expected = model.forward_head(features, pre_logits=True)
    assert ours.shape == (2, staged.out_dim) == expected.shape
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize(
    ("name", "full", "staged", "dim"),
    [
        ("swinv2_tiny_window8_256", 28_347_154, 27_578_154, 768),  # + final LayerNorm
        ("mobilenetv3_small_100", 2_542_856, 927_008, 576),
        ("resnet50", 25_557_032, 23_508_032, 2048),
        ("convnext_tiny", 28_589_128, 27_820_128, 768),  # + head LayerNorm
    ],
)
def test_unused_imagenet_layers_are_left_out_but_counted(
    name: str, full: int, staged: int, dim: int
) -> None:
    with torch.device("meta"):
        backbone = StagedBackbone(create_timm_model(name, image_size=224), name)
    assert backbone.full_param_count == full  # the docs' table (paper accounting)
    assert sum(p.numel() for p in backbone.parameters()) == staged
    assert backbone.out_dim == dim


def test_stage_reductions_read_from_meta_build() -> None:
    assert stage_reductions(MN, 224) == (4, 8, 16, 32)
    assert stage_reductions("vit_tiny_patch16_224", 224) == (16, 16, 16, 16)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_is_loaded(tmp_path, suffix: str) -> None:
    torch.manual_seed(1)
    source = create_timm_model(MN, image_size=64)
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    loaded = create_backbone(MN, image_size=64, pretrained=True, weights=str(path))
    key = "blocks_5.0.conv.weight"
    torch.testing.assert_close(loaded.stages[3].state_dict()[key], state["blocks.5.0.conv.weight"])
    fresh = create_backbone(MN, image_size=64)
    assert not torch.equal(fresh.stages[3].state_dict()[key], state["blocks.5.0.conv.weight"])


def test_local_weights_ignore_a_foreign_classifier(tmp_path) -> None:
    state = create_timm_model(MN, image_size=64).state_dict()
    state["classifier.weight"] = torch.zeros(10, 1024)  # fine-tuned 10-class head
    state["classifier.bias"] = torch.zeros(10)
    torch.save(state, tmp_path / "w.pth")
    loaded = create_backbone(MN, image_size=64, weights=str(tmp_path / "w.pth"))
    key = "blocks_5.0.conv.weight"
    torch.testing.assert_close(loaded.stages[3].state_dict()[key], state["blocks.5.0.conv.weight"])


def test_local_weights_missing_backbone_tensor_is_an_error(tmp_path) -> None:
    state = create_timm_model(MN, image_size=64).state_dict()
    del state["blocks.2.0.conv_pw.weight"]
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(UserError, match=r"backbone.weights=.*lacks 1 tensors"):
        create_backbone(MN, image_size=64, weights=str(tmp_path / "w.pth"))


def test_local_weights_of_another_architecture_are_an_error(tmp_path) -> None:
    torch.save(create_timm_model("resnet18", image_size=64).state_dict(), tmp_path / "r.pth")
    with pytest.raises(UserError) as err:
        create_backbone(MN, image_size=64, weights=str(tmp_path / "r.pth"), weights_key="k.w")
    assert str(err.value).startswith("k.w=") and "\n" not in str(err.value)


def test_local_weights_bad_path_or_suffix(tmp_path) -> None:
    with pytest.raises(UserError, match="file not found"):
        create_backbone(MN, image_size=64, weights=str(tmp_path / "none.pth"))
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(UserError, match=r"expected a \.safetensors"):
        create_backbone(MN, image_size=64, weights=str(tmp_path / "w.txt"))


def test_pickled_code_is_refused(tmp_path) -> None:
    torch.save({"conv_stem.weight": torch.zeros(1), "x": torch.nn.ReLU()}, tmp_path / "p.pth")
    with pytest.raises(UserError, match="cannot read weights"):
        create_backbone(MN, image_size=64, weights=str(tmp_path / "p.pth"))


def test_unknown_backbone_name() -> None:
    with pytest.raises(UserError, match="not a timm model"):
        create_backbone("no_such_net", image_size=64)
