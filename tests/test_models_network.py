"""The fusion network built from the real Hydra config: shapes, gradients, block wiring, errors."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import save_file

from src.models.backbones import create_timm_model
from src.models.network import (
    NetworkSpec,
    build_network,
    clin_backbone_name,
    validate_network_config,
)
from src.project import compose_config
from src.utils.errors import UserError
from tests.specs import NUM_CLASSES

SIZE = 32  # the smallest input every backbone accepts (stride-32 stages of 1 x 1)
BACKBONES = ["swin", "swin_v1", "resnet", "convnext", "mobilenet"]
TWO_STREAM = [(f, b) for f in ("sff", "aff") for b in ("cat", "bab", "aab")]
ONE_STREAM = [("derm_only", "cat"), ("clin_only", "cat")]


def _cfg(*overrides: str):
    return compose_config(["backbone.pretrained=false", f"data.image_size={SIZE}", *overrides])


def _spec(*overrides: str) -> NetworkSpec:
    return validate_network_config(_cfg(*overrides))


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, SIZE, SIZE, generator=g), torch.randn(2, 3, SIZE, SIZE, generator=g)


def _check_forward_backward(backbone: str, fusion: str, block: str) -> None:
    torch.manual_seed(0)
    net = build_network(
        _spec(f"backbone={backbone}", f"fusion={fusion}", f"block={block}"), NUM_CLASSES
    )
    out = net(*_images())
    expected = {"clin_only": ("clin",), "derm_only": ("derm",)}.get(
        fusion, ("clin", "derm", "fusion")
    )
    assert net.branches == expected and tuple(out) == expected
    assert all(v.shape == (2, 24) and torch.isfinite(v).all() for v in out.values())
    sum(v.square().mean() for v in out.values()).backward()
    for name, stream in net.streams.items():
        first = next(stream.stages[0].parameters())
        assert first.grad is not None and first.grad.abs().sum() > 0, name

    # Eq. 1 is ungated: every block learns from the first step (a query's gradient is zero
    # only where the stage is 1x1 and the softmax has a single position).
    def learns(p: torch.nn.Parameter) -> bool:
        return p.grad is not None and bool(p.grad.abs().sum() > 0)

    blocks = list(net.blocks.values())
    assert all(learns(b.derm_value.value.weight) for b in blocks)
    assert not blocks or any(learns(b.clin_attention.query.weight) for b in blocks)
    if block != "cat":
        assert len(net.blocks) == 4
    assert set(net.norm_stats) == {"clin", "derm"}


@pytest.mark.parametrize(("fusion", "block"), TWO_STREAM + ONE_STREAM)
def test_every_framework_and_block_with_mobilenet(fusion: str, block: str) -> None:
    _check_forward_backward("mobilenet", fusion, block)


@pytest.mark.parametrize("backbone", ["swin", "swin_v1", "resnet", "convnext"])
def test_every_backbone_in_ammfm(backbone: str) -> None:
    _check_forward_backward(backbone, "aff", "aab")


# sha256 of the sorted state-dict keys of `fusion=sff block=bab` (both streams, a block after
# every stage, three heads) per conf/backbone: stored checkpoints load only while these stay.
STATE_DICT_KEYS = {
    "swin": (534, "d45a5a6af96293ac9fbaf48d118bf9e94d381a87eac3f544393e690f2b3a48ad"),
    "swin_v1": (438, "3acf39dcc6801defe2def2e5ffbeb6d3203dda93c3f4bfe73756b096a25d5908"),
    "resnet": (732, "6122dea7e3dafa57073b71afb3ca30e847a2a8dbf0ed1dbac69d0f86dd651ebc"),
    "convnext": (456, "51c74390c65190928fcf2c1345dd38763e4558c741e7e675b22a67fcc82bde79"),
    "mobilenet": (576, "a57884e27c6a2abcc19e127f329b4d90a0788c938f3890804197d84d5378da59"),
}
FIRST_STAGE_KEY = {  # one readable key each, the first stage's first weight
    "swin": "streams.derm.stages.0.patch_embed.proj.weight",
    "swin_v1": "streams.derm.stages.0.patch_embed.proj.weight",
    "resnet": "streams.derm.stages.0.conv1.weight",
    "convnext": "streams.derm.stages.0.stem.0.weight",
    "mobilenet": "streams.derm.stages.0.conv_stem.weight",
}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_state_dict_keys_of_stored_checkpoints_stay(backbone: str) -> None:
    spec = _spec(f"backbone={backbone}", "fusion=sff", "block=bab")
    with torch.device("meta"):
        keys = sorted(build_network(spec, NUM_CLASSES).state_dict())
    assert FIRST_STAGE_KEY[backbone] in keys
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    assert (len(keys), digest) == STATE_DICT_KEYS[backbone]


@pytest.mark.slow
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize(("fusion", "block"), TWO_STREAM + ONE_STREAM)
def test_full_combination_matrix(backbone: str, fusion: str, block: str) -> None:
    _check_forward_backward(backbone, fusion, block)


def _open_gates(net: torch.nn.Module) -> None:
    for name, param in net.named_parameters():
        if name.endswith("gamma"):
            param.data.fill_(1.0)


@pytest.mark.parametrize(
    ("block", "clin_changes", "derm_changes"),
    [("cat", False, False), ("aab", False, True), ("bab", True, True)],
)
def test_which_stream_each_block_changes(block: str, clin_changes: bool, derm_changes: bool):
    torch.manual_seed(0)
    net = build_network(
        _spec("fusion=aff", f"block={block}", "backbone=mobilenet"), NUM_CLASSES
    ).eval()
    _open_gates(net)
    clinic, derm = _images()
    with torch.no_grad():
        fused = net.stage_features(clinic, derm)
        plain = {"clin": net.streams["clin"](clinic), "derm": net.streams["derm"](derm)}
    for stage in range(4):
        for stream, changes in (("clin", clin_changes), ("derm", derm_changes)):
            same = torch.equal(fused[stage][stream], plain[stream][stage])
            assert same != changes, (block, stream, stage)


@pytest.mark.parametrize(("block", "derm_sees_clinic"), [("cat", False), ("aab", True)])
def test_dermoscopy_branch_sees_the_clinical_image_only_through_blocks(
    block: str, derm_sees_clinic: bool
) -> None:
    torch.manual_seed(0)
    net = build_network(
        _spec("fusion=sff", f"block={block}", "backbone=mobilenet"), NUM_CLASSES
    ).eval()
    _open_gates(net)
    clinic, derm = _images()
    other_clinic, _ = _images(seed=1)
    with torch.no_grad():
        a, b = net(clinic, derm), net(other_clinic, derm)
    assert not torch.equal(a["clin"], b["clin"]) and not torch.equal(a["fusion"], b["fusion"])
    assert torch.equal(a["derm"], b["derm"]) != derm_sees_clinic


def test_single_modal_network_ignores_the_other_image() -> None:
    net = build_network(
        _spec("fusion=derm_only", "block=cat", "backbone=mobilenet"), NUM_CLASSES
    ).eval()
    clinic, derm = _images()
    with torch.no_grad():
        torch.testing.assert_close(net(clinic, derm), net(torch.zeros_like(clinic), derm))
    assert len(net.streams) == 1 and len(net.blocks) == 0


def test_fusion_head_takes_both_pooled_vectors() -> None:
    net = build_network(_spec("fusion=aff", "block=cat", "backbone=resnet"), NUM_CLASSES)
    assert net.heads["fusion"].mlp[0].in_features == 576 + 2048
    assert clin_backbone_name(_cfg("fusion=aff")) == "mobilenetv3_small_100"
    assert clin_backbone_name(_cfg("fusion=derm_only", "block=cat")) is None


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> None:
    """No network and an empty hub cache: any hub download fails, wherever this runs."""
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))


def test_pretrained_without_hub_names_the_stream_keys(tmp_path, offline_hub) -> None:
    with pytest.raises(UserError) as err:
        build_network(
            _spec("fusion=sff", "block=cat", "backbone=mobilenet", "backbone.pretrained=true"),
            NUM_CLASSES,
        )
    message = str(err.value)
    assert "backbone.weights=<file" in message and "backbone.pretrained=false" in message
    assert "\n" not in message
    # AFF: the dermoscopy stream loads a local file, the clinical MobileNetV3 still needs the hub
    derm = tmp_path / "resnet18.safetensors"
    save_file(create_timm_model("resnet18", image_size=SIZE).state_dict(), derm)
    overrides = (
        "fusion=aff",
        "backbone.name=resnet18",
        "backbone.pretrained_tag=null",  # the pinned tag is swin's: timm's default for resnet18
        f"backbone.weights={derm}",
    )
    clin_keys = r"clin_backbone\.weights=<file.*clin_backbone\.pretrained=false"
    with pytest.raises(UserError, match=clin_keys):
        build_network(_spec(*overrides, "backbone.pretrained=true"), NUM_CLASSES)
    build_network(
        _spec(*overrides, "backbone.pretrained=false"), NUM_CLASSES
    )  # the local file alone is fine


def test_block_stages_and_width_are_configurable() -> None:
    net = build_network(
        _spec(
            "fusion=aff",
            "block=aab",
            "backbone=mobilenet",
            "block.stages=[1,3]",
            "block.qk_reduction=4",
        ),
        NUM_CLASSES,
    )
    assert sorted(net.blocks) == ["1", "3"]
    assert net.blocks["1"].clin_attention.query.out_channels == 24 // 4


@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        (["fusion=derm_only", "block=aab"], ["fusion.mode=derm_only", "block.type must be cat"]),
        (["fusion=clin_only", "block=bab"], ["fusion.mode=clin_only", "block.type"]),
        (["fusion.mode=late"], ["fusion.mode=late"]),
        (["block.type=sum"], ["block.type=sum"]),
        (["block.stages=[0,4]"], ["block.stages"]),
        (
            ["fusion=sff", "+backbone@clin_backbone=resnet"],
            ["clin_backbone must be null", "clin_backbone.name=resnet50"],
        ),
        (["clin_backbone.name=no_such_net"], ["clin_backbone.name=no_such_net"]),
        (
            ["clin_backbone.name=vit_tiny_patch16_224", "clin_backbone.pretrained_tag=null"],
            ["block.stages", "clin_backbone.name=vit_tiny_patch16_224", "stride"],
        ),
        (
            ["clin_backbone.name=vit_tiny_patch16_224"],
            ["clin_backbone.pretrained_tag=lamb_in1k", "augreg_in21k_ft_in1k"],
        ),
    ],
)
def test_incompatible_choices_fail_with_one_line(overrides: list[str], keys: list[str]) -> None:
    with pytest.raises(UserError) as err:
        validate_network_config(_cfg(*overrides))
    message = str(err.value)
    assert "\n" not in message
    for key in keys:
        assert key in message


def _drop_path_rates(module: torch.nn.Module) -> list[float]:
    """drop_prob of every stochastic-depth layer (timm's DropPath) in `module`."""
    return [m.drop_prob for m in module.modules() if type(m).__name__ == "DropPath"]


def test_configured_drop_path_rate_is_passed_to_every_stream() -> None:
    net = build_network(_spec("fusion=aff", "backbone=swin", "block=cat"), NUM_CLASSES)
    derm = _drop_path_rates(net.streams["derm"])
    assert derm and max(derm) == pytest.approx(0.2)  # conf/backbone/swin.yaml, the last block
    assert _drop_path_rates(net.streams["clin"]) == []  # MobileNetV3: clin_backbone's rate 0

    off = build_network(
        _spec("backbone=swin", "backbone.drop_path_rate=0", "block=cat"), NUM_CLASSES
    )
    assert _drop_path_rates(off) == []  # 0 is passed, not timm's own 0.1

    swapped = build_network(
        _spec("+experiment/row=ammfm_clin_st_derm_mn", "clin_backbone.drop_path_rate=0.3"),
        NUM_CLASSES,
    )
    assert max(_drop_path_rates(swapped.streams["clin"])) == pytest.approx(0.3)
    assert _drop_path_rates(swapped.streams["derm"]) == []


def test_drop_path_rate_out_of_range_is_one_line() -> None:
    with pytest.raises(UserError, match=r"^backbone.drop_path_rate=1.5 must be in \[0, 1\)$"):
        validate_network_config(_cfg("backbone.drop_path_rate=1.5"))


def test_the_clinical_backbone_is_a_conf_backbone_option() -> None:
    """fusion=aff fills clin_backbone from conf/backbone (MobileNetV3 unless another option is
    picked); the other frameworks have none and use backbone for every stream."""
    streams = dict(validate_network_config(_cfg("backbone@clin_backbone=resnet")).streams)
    assert (streams["clin"].backbone, streams["clin"].pretrained_tag) == ("resnet50", "tv_in1k")
    assert streams["derm"].backbone == "swinv2_tiny_window8_256"
    assert _cfg().clin_backbone.name == "mobilenetv3_small_100"
    for mode in ("sff", "derm_only", "clin_only"):
        assert _cfg(f"fusion={mode}", "block=cat").clin_backbone is None, mode


def test_the_clinical_stream_starts_like_the_dermoscopy_one_unless_set() -> None:
    def pretrained(*overrides: str) -> dict[str, bool]:
        spec = validate_network_config(compose_config(list(overrides)))
        return {name: stream.pretrained for name, stream in spec.streams}

    assert pretrained() == {"clin": True, "derm": True}
    assert pretrained("backbone.pretrained=false") == {"clin": False, "derm": False}
    assert pretrained("backbone.pretrained=false", "clin_backbone.pretrained=true") == {
        "clin": True,
        "derm": False,
    }
    # the configs that must not download: the demo, the smoke-test preset, the benchmarks
    from src.benchmarks.configs import BASE_OVERRIDES

    for overrides in (["experiment=demo"], ["debug=fast"], list(BASE_OVERRIDES)):
        assert pretrained(*overrides) == {"clin": False, "derm": False}, overrides
