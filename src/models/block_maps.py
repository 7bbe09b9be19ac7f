"""Where each fusion block looks, captured with forward hooks (the network is not changed: a
forward without `BlockMaps` runs exactly as before, and with it gives the same outputs).

Per block stage and per attention map of the block (AAB: the clinical map M_C; BAB: M_C and the
dermoscopy map M_D), the attention mass on each key position: the N x N map averaged over its
query positions, a distribution over the N positions of the modality it is computed from (for
M_C: how much the dermoscopy positions, mixed by M_C, draw from each clinical position). Per
refined stream, the per-position refinement ||x_refined - x|| over channels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from src.models.blocks import FusionBlock

STREAM_ORDER = ("clin", "derm")  # the order of a block's inputs and outputs


@dataclass
class StageMaps:
    """One block stage's maps, each [B, h, w] on the CPU: `attention[stream]` is the mass on
    the positions of `stream` (the modality whose map it is), `refinement[stream]` the change
    of the refined stream `stream`."""

    attention: dict[str, Tensor] = field(default_factory=dict)
    refinement: dict[str, Tensor] = field(default_factory=dict)


class BlockMaps:
    """`with BlockMaps(network) as maps: network(clinic, derm)` fills `maps.stages`
    ({stage: StageMaps}) for that forward; the hooks are removed on exit."""

    def __init__(self, network: nn.Module) -> None:
        self.blocks: dict[int, FusionBlock] = {
            int(stage): block  # type: ignore[misc]
            for stage, block in network.blocks.items()  # type: ignore[union-attr]
        }
        self.stages: dict[int, StageMaps] = {}
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> BlockMaps:
        for stage, block in self.blocks.items():
            self._handles.append(block.register_forward_hook(self._hook(stage)))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, stage: int) -> Callable[..., None]:
        def record(block: FusionBlock, inputs: tuple[Any, ...], outputs: tuple[Any, ...]) -> None:
            with torch.no_grad():
                clin, derm = inputs
                maps = StageMaps()
                for stream, attention in block.attention_maps(clin, derm).items():  # type: ignore[operator]
                    size = (clin if stream == "clin" else derm).shape[-2:]
                    mass = attention.float().mean(dim=1)  # over queries: [B, N]
                    maps.attention[stream] = mass.reshape(-1, *size).cpu()
                for stream in block.refines:
                    i = STREAM_ORDER.index(stream)
                    change = (outputs[i].float() - inputs[i].float()).norm(dim=1)
                    maps.refinement[stream] = change.cpu()
                self.stages[stage] = maps

        return record
