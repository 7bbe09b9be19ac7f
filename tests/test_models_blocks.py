"""Fusion blocks: N x N softmax maps, which stream each block refines, parameter counts."""

from __future__ import annotations

import pytest
import torch

from src.models.blocks import (
    AsymmetricAttentionBlock,
    BidirectionalAttentionBlock,
    attend,
    attention_map,
    create_block,
)


def _features(channels: int, size: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _open_gates(block: torch.nn.Module, value: float = 0.7) -> None:
    for name, param in block.named_parameters():
        if name.endswith("gamma"):
            param.data.fill_(value)


def _mix(x: torch.Tensor, amap: torch.Tensor) -> torch.Tensor:
    """Reference: output position j = sum_i A[j, i] v_i, written with an explicit map."""
    b, c, h, w = x.shape
    return (x.flatten(2) @ amap.transpose(1, 2)).reshape(b, c, h, w)


@pytest.mark.parametrize("block_cls", [AsymmetricAttentionBlock, BidirectionalAttentionBlock])
def test_attention_maps_are_row_softmax_over_positions(block_cls) -> None:
    block = block_cls(16, 48, 8, "none")
    maps = block.attention_maps(_features(16), _features(48, seed=1))
    assert set(maps) == ({"clin"} if block_cls is AsymmetricAttentionBlock else {"clin", "derm"})
    for amap in maps.values():
        assert amap.shape == (2, 36, 36)
        assert (amap >= 0).all()
        torch.testing.assert_close(amap.sum(-1), torch.ones(2, 36))


@pytest.mark.parametrize(("qk", "value"), [(4, 24), (24, 24), (24, 4)])
def test_attend_equals_the_explicit_map_forward_and_backward(qk: int, value: int) -> None:
    grads = []
    for fn in (attend, lambda v, q, k: _mix(v, attention_map(q, k))):
        q, k, v = (_features(c, seed=s).requires_grad_() for c, s in ((qk, 0), (qk, 1), (value, 2)))
        out = fn(v, q, k)
        out.square().sum().backward()
        grads.append((out.detach(), q.grad, k.grad, v.grad))
    for ours, explicit in zip(*grads):  # fused kernels sum in another order: float32 noise
        torch.testing.assert_close(ours, explicit, rtol=1e-4, atol=1e-4)


def test_aab_is_eq1_as_written_by_default() -> None:
    block = AsymmetricAttentionBlock(16, 48, 8, "none")
    clin, derm = _features(16), _features(48, seed=1)
    out_clin, out_derm = block(clin, derm)
    assert torch.equal(out_clin, clin)  # the clinical stream passes on unchanged
    value = block.derm_value.value(derm)
    expected = derm + _mix(value, block.attention_maps(clin, derm)["clin"])  # D_v M_c + D
    torch.testing.assert_close(out_derm, expected)
    assert not torch.allclose(out_derm, derm)


def test_zero_gate_starts_as_identity_and_scales_the_refinement() -> None:
    block = AsymmetricAttentionBlock(16, 48, 8, "zero")
    clin, derm = _features(16), _features(48, seed=1)
    out_clin, out_derm = block(clin, derm)
    assert torch.equal(out_clin, clin) and torch.equal(out_derm, derm)
    _open_gates(block)
    value = block.derm_value.value(derm)
    expected = derm + 0.7 * _mix(value, block.attention_maps(clin, derm)["clin"])
    torch.testing.assert_close(block(clin, derm)[1], expected)


@pytest.mark.parametrize(("gate", "scale"), [("none", 1.0), ("zero", 0.7)])
def test_bab_refines_each_stream_with_the_other_map(gate: str, scale: float) -> None:
    block = BidirectionalAttentionBlock(16, 48, 8, gate)
    clin, derm = _features(16), _features(48, seed=1)
    _open_gates(block)
    out_clin, out_derm = block(clin, derm)
    maps = block.attention_maps(clin, derm)
    v_clin, v_derm = block.clin_value.value(clin), block.derm_value.value(derm)
    torch.testing.assert_close(out_clin, clin + scale * _mix(v_clin, maps["derm"]))
    torch.testing.assert_close(out_derm, derm + scale * _mix(v_derm, maps["clin"]))


def test_spatial_mismatch_is_reported() -> None:
    block = AsymmetricAttentionBlock(16, 48, 8, "none")
    with pytest.raises(ValueError, match="spatial size"):
        block(_features(16, size=6), _features(48, size=4))


def _per_modality_bab(c: int, gated: int, r: int = 8) -> int:
    return 2 * (c * (c // r) + c // r) + c * c + c + gated  # q, k at c/r; v at c; gate


@pytest.mark.parametrize(("gate", "gated"), [("none", 0), ("zero", 1)])
@pytest.mark.parametrize(("cc", "cd"), [(96, 96), (16, 96), (576, 768)])
def test_parameter_counts_follow_the_design(cc: int, cd: int, gate: str, gated: int) -> None:
    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    bab = _per_modality_bab(cc, gated) + _per_modality_bab(cd, gated)
    assert count(create_block("bab", cc, cd, 8, gate)) == bab
    qk = 2 * (cc * (cc // 8) + cc // 8)
    assert count(create_block("aab", cc, cd, 8, gate)) == qk + cd * cd + cd + gated
    assert create_block("cat", cc, cd, 8, gate) is None


@pytest.mark.parametrize("block_type", ["aab", "bab"])
@pytest.mark.parametrize("gate", ["none", "zero"])
def test_a_block_declares_the_streams_it_refines_and_their_gates(block_type: str, gate: str):
    block = create_block(block_type, 16, 48, 8, gate)
    _open_gates(block)
    clin, derm = _features(16), _features(48, seed=1)
    out = dict(zip(("clin", "derm"), block(clin, derm)))
    inputs = {"clin": clin, "derm": derm}
    assert block.refines == ("derm",) if block_type == "aab" else ("clin", "derm")
    for stream in ("clin", "derm"):
        assert (out[stream] is not inputs[stream]) == (stream in block.refines)
    expected = {stream: 0.7 for stream in block.refines} if gate == "zero" else {}
    assert block.gate_values() == pytest.approx(expected)
