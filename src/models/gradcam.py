"""Grad-CAM of each branch of a fusion network on each image it reads, with the `grad-cam`
package (pytorch_grad_cam).

A branch's map on an image is Grad-CAM of the branch's logit of a chosen class (one logit
column per case) at the output of that image's backbone stage `stage`: P_D on the dermoscopy
image, P_C on the clinical image, P_FU on both. The last stage is the usual choice; at the small
image sizes of CPU runs its map has few positions (2 x 2 at 64 px), so an earlier, finer stage
can be asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from src.models.network import FUSION, STREAMS, FusionNetwork


class _BranchLogits(nn.Module):
    """One input tensor (clinic and dermoscopy stacked on the channel axis) -> one branch's
    logits: the single-input model pytorch_grad_cam expects."""

    def __init__(self, network: FusionNetwork, branch: str) -> None:
        super().__init__()
        self.network, self.branch = network, branch

    def forward(self, pair: Tensor) -> Tensor:
        clinic, derm = pair.chunk(2, dim=1)
        return self.network(clinic, derm)[self.branch]


def _nchw(features: Tensor) -> Tensor:
    """A channels-last stage output (Swin) as the NCHW map Grad-CAM weighs."""
    return features.permute(0, 3, 1, 2)


def branch_images(network: FusionNetwork) -> list[tuple[str, str]]:
    """(branch, stream) of every Grad-CAM map: each single-modal branch on its own image, the
    fusion branch on both."""
    return [
        (branch, stream)
        for branch in network.branches
        for stream in (STREAMS if branch == FUSION else (branch,))
        if stream in network.streams
    ]


def grad_cams(
    network: FusionNetwork,
    clinic: Tensor,
    derm: Tensor,
    columns: Sequence[int],
    stage: int,
) -> dict[tuple[str, str], np.ndarray]:
    """{(branch, stream): float32 [B, S, S] maps in [0, 1]} of the logit column `columns[b]` of
    case b (see `branch_images`), upsampled to the input size by the package."""
    pair = torch.cat([clinic, derm], dim=1)
    targets = [ClassifierOutputTarget(int(c)) for c in columns]
    maps = {}
    was_training = network.training  # pytorch_grad_cam puts the model in eval mode
    with torch.enable_grad():
        for branch, stream in branch_images(network):
            backbone = network.streams[stream]
            with GradCAM(
                model=_BranchLogits(network, branch),
                target_layers=[backbone.stages[stage]],
                reshape_transform=_nchw if backbone.nhwc else None,
            ) as cam:
                maps[branch, stream] = cam(input_tensor=pair, targets=targets).astype(np.float32)
    network.train(was_training)
    network.zero_grad(set_to_none=True)
    return maps
