"""Fusion blocks placed between backbone stages: CAT (none), BAB and AAB.

Both attention blocks use position attention over the N = H*W positions of one stage: 1x1
convolutions give a query and a key with c/qk_reduction channels and a value with c channels;
the map A = softmax(q k^T) is N x N with rows summing to one, and output position j is
sum_i A[j, i] v_i. The scores are not scaled (the paper's softmax(q^T k)). The mixed values are
added to the features as Eq. 1 writes it, with no coefficient (`gate="none"`), or scaled by a
learnable scalar initialised to zero (`gate="zero"`, DANet's position attention), which makes an
untrained block the identity. Because the maps are N x N, the two modalities may have different
channel counts; only their spatial sizes must match.

- BAB (bidirectional, CAFNet): each modality's value is mixed with the OTHER modality's map
  and added back to its own features; both streams change.
- AAB (asymmetric, paper Eq. 1): the map comes from the clinical features, the value from the
  dermoscopy features: D' = D + v_D M_C. The clinical stream passes on unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.config import BLOCK_GATES


def _positions(x: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, N, C], contiguous (fused attention kernels need unit-stride rows)."""
    return x.flatten(2).transpose(1, 2).contiguous()


def attention_map(query: Tensor, key: Tensor) -> Tensor:
    """The N x N map softmax(q k^T) over positions, [B, N, N]; each row sums to one."""
    return torch.softmax(_positions(query) @ _positions(key).transpose(1, 2), dim=-1)


# How `attend` is written into an ONNX graph (see `export_attention`).
EXPORT_ATTENTION = ("matmul", "sdpa")
_EXPORT = {"attention": "matmul"}


@contextmanager
def export_attention(mode: str) -> Iterator[None]:
    """Within an ONNX export, write the fusion blocks' attention as `mode`: "matmul" (the
    default: softmax(q k^T) v with q and k at their own width) or "sdpa" (the eager code:
    scaled_dot_product_attention with q and k zero-padded to the value width, which the
    exporter decomposes into the same ops at the padded width). Both compute the same values:
    the zero channels add nothing to the scores."""
    if mode not in EXPORT_ATTENTION:
        raise ValueError(f"attention export {mode!r}: expected one of {EXPORT_ATTENTION}")
    before = _EXPORT["attention"]
    _EXPORT["attention"] = mode
    try:
        yield
    finally:
        _EXPORT["attention"] = before


def attend(value: Tensor, query: Tensor, key: Tensor) -> Tensor:
    """Mix `value` [B, C, H, W] over positions with the map of (query, key); same shape out.

    Equal to `attention_map(query, key) @ value` per position, computed without storing the
    N x N map where the backend allows it (N is 3136 at stride 4 of a 224 px image). PyTorch's
    fused kernels need q, k and v of one width, so the narrower side is padded with zero
    channels, which change neither the scores q.k nor the mixed values.
    """
    b, c, h, w = value.shape
    if query.shape[-2:] != (h, w) or key.shape[-2:] != (h, w):
        raise ValueError(
            f"fusion block inputs differ in spatial size: {tuple(query.shape[-2:])} vs {(h, w)}"
        )
    q, k, v = _positions(query), _positions(key), _positions(value)
    if torch.onnx.is_in_onnx_export() and _EXPORT["attention"] == "matmul":
        # No fused kernel in an ONNX graph: the padding would only multiply the q k^T work.
        scores = torch.softmax(q @ k.transpose(1, 2), dim=-1)
        return (scores @ v).transpose(1, 2).reshape(b, c, h, w)
    width = max(q.shape[-1], c)
    q, k = (F.pad(t, (0, width - t.shape[-1])) for t in (q, k))
    out = F.scaled_dot_product_attention(q, k, F.pad(v, (0, width - c)), scale=1.0)
    return out[..., :c].transpose(1, 2).reshape(b, c, h, w)


class PositionAttention(nn.Module):
    """Query and key projections of one modality, producing its N x N attention map."""

    def __init__(self, channels: int, qk_reduction: int) -> None:
        super().__init__()
        qk_channels = max(1, channels // qk_reduction)
        self.query = nn.Conv2d(channels, qk_channels, kernel_size=1)
        self.key = nn.Conv2d(channels, qk_channels, kernel_size=1)

    def map(self, x: Tensor) -> Tensor:
        return attention_map(self.query(x), self.key(x))

    def mix(self, x: Tensor, value: Tensor) -> Tensor:
        """Mix `value` with this modality's map of `x`."""
        return attend(value, self.query(x), self.key(x))


class RefinedValue(nn.Module):
    """Value projection of one refined stream and how its mixed values join the features:
    x + mixed (Eq. 1, gate "none") or x + gamma * mixed with gamma learnable from 0 ("zero")."""

    def __init__(self, channels: int, gate: str) -> None:
        super().__init__()
        if gate not in BLOCK_GATES:
            raise ValueError(f"gate={gate!r}: expected one of {', '.join(BLOCK_GATES)}")
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1)) if gate == "zero" else None

    def add(self, x: Tensor, mixed: Tensor) -> Tensor:
        return x + mixed if self.gamma is None else x + self.gamma * mixed


class FusionBlock(nn.Module):
    """A block between two stages: forward(clin, derm) -> (clin', derm'). `refines` names the
    streams it changes (the others pass on as the same tensors); `refined_values` gives each
    refined stream's value projection and gate."""

    refines: tuple[str, ...] = ()

    def refined_values(self) -> dict[str, RefinedValue]:
        raise NotImplementedError

    def gate_values(self) -> dict[str, float]:
        """{stream: gamma} of the refined streams when gated (gate "zero"); empty when not."""
        return {
            stream: float(refined.gamma.detach())
            for stream, refined in self.refined_values().items()
            if refined.gamma is not None
        }


class BidirectionalAttentionBlock(FusionBlock):
    """BAB: x_c' = x_c + v_c A_d and x_d' = x_d + v_d A_c (each optionally gated)."""

    refines = ("clin", "derm")

    def __init__(
        self, clin_channels: int, derm_channels: int, qk_reduction: int, gate: str
    ) -> None:
        super().__init__()
        self.clin_attention = PositionAttention(clin_channels, qk_reduction)
        self.derm_attention = PositionAttention(derm_channels, qk_reduction)
        self.clin_value = RefinedValue(clin_channels, gate)
        self.derm_value = RefinedValue(derm_channels, gate)

    def forward(self, clin: Tensor, derm: Tensor) -> tuple[Tensor, Tensor]:
        clin_mixed = self.derm_attention.mix(derm, self.clin_value.value(clin))
        derm_mixed = self.clin_attention.mix(clin, self.derm_value.value(derm))
        return self.clin_value.add(clin, clin_mixed), self.derm_value.add(derm, derm_mixed)

    def attention_maps(self, clin: Tensor, derm: Tensor) -> dict[str, Tensor]:
        return {"clin": self.clin_attention.map(clin), "derm": self.derm_attention.map(derm)}

    def refined_values(self) -> dict[str, RefinedValue]:
        return {"clin": self.clin_value, "derm": self.derm_value}


class AsymmetricAttentionBlock(FusionBlock):
    """AAB (paper Eq. 1): D' = D + v_D M_C; the clinical features pass on unchanged."""

    refines = ("derm",)

    def __init__(
        self, clin_channels: int, derm_channels: int, qk_reduction: int, gate: str
    ) -> None:
        super().__init__()
        self.clin_attention = PositionAttention(clin_channels, qk_reduction)
        self.derm_value = RefinedValue(derm_channels, gate)

    def forward(self, clin: Tensor, derm: Tensor) -> tuple[Tensor, Tensor]:
        derm_mixed = self.clin_attention.mix(clin, self.derm_value.value(derm))
        return clin, self.derm_value.add(derm, derm_mixed)

    def attention_maps(self, clin: Tensor, derm: Tensor) -> dict[str, Tensor]:
        return {"clin": self.clin_attention.map(clin)}

    def refined_values(self) -> dict[str, RefinedValue]:
        return {"derm": self.derm_value}


_BLOCKS: dict[str, type[FusionBlock] | None] = {
    "cat": None,
    "bab": BidirectionalAttentionBlock,
    "aab": AsymmetricAttentionBlock,
}


def create_block(
    block_type: str, clin_channels: int, derm_channels: int, qk_reduction: int, gate: str
) -> FusionBlock | None:
    """The block of `block_type` for one stage; None for CAT (features pass through)."""
    cls = _BLOCKS[block_type]
    return None if cls is None else cls(clin_channels, derm_channels, qk_reduction, gate)
