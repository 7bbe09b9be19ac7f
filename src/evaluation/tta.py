"""Test-time augmentation: six geometric views of an image pair, probabilities averaged.

Each view is applied identically to the clinical and the dermoscopy image of a case, the network
is run once per view, logits become per-task probabilities (softmax per view), and the
probabilities of all views are averaged, branch by branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from src.evaluation.probabilities import task_softmax

Forward = Callable[[Tensor, Tensor], dict[str, Tensor]]

_H, _W = -2, -1  # spatial dims of an NCHW batch


def _identity(x: Tensor) -> Tensor:
    return x


def _vflip(x: Tensor) -> Tensor:
    """Upside down: the top row becomes the bottom row."""
    return x.flip(_H)


def _hflip(x: Tensor) -> Tensor:
    """Mirror left-right."""
    return x.flip(_W)


def _vhflip(x: Tensor) -> Tensor:
    """Both flips, which is a 180-degree rotation."""
    return x.flip(_H, _W)


def _rot90cw(x: Tensor) -> Tensor:
    """Rotate 90 degrees clockwise (as the image is displayed, row 0 at the top)."""
    return torch.rot90(x, k=-1, dims=(_H, _W))


def _rot90ccw(x: Tensor) -> Tensor:
    """Rotate 90 degrees counter-clockwise."""
    return torch.rot90(x, k=1, dims=(_H, _W))


# Names match src.config.TTA_VIEW_NAMES (the values `model.tta_views` accepts).
TTA_VIEWS: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": _identity,
    "vflip": _vflip,
    "hflip": _hflip,
    "vhflip": _vhflip,
    "rot90cw": _rot90cw,
    "rot90ccw": _rot90ccw,
}


@torch.no_grad()
def tta_probabilities(
    forward: Forward,
    clinic: Tensor,
    derm: Tensor,
    views: Sequence[str],
    num_classes: Sequence[int],
) -> dict[str, Tensor]:
    """Mean over `views` of the per-task softmax of each branch's logits.

    `forward(clinic, derm)` returns {branch: logits [N, L]}, one segment per task of
    `num_classes` classes; the result has the same branches with float32 probabilities [N, L].
    Rotations swap height and width, so non-square inputs
    only work with a network that accepts both orientations. `model.tta_views` is checked
    when the config is (src.config_checks).
    """
    names = list(views)
    if not names or any(name not in TTA_VIEWS for name in names):
        raise ValueError(f"views must be a non-empty list of {', '.join(TTA_VIEWS)}: {names}")
    total: dict[str, Tensor] = {}
    for name in names:
        view = TTA_VIEWS[name]
        logits = forward(view(clinic), view(derm))
        if total and logits.keys() != total.keys():
            raise ValueError(
                f"forward returned branches {sorted(logits)} for view {name!r}, "
                f"but {sorted(total)} for {names[0]!r}"
            )
        for branch, branch_logits in logits.items():
            probs = task_softmax(branch_logits.float(), num_classes)
            total[branch] = total[branch] + probs if branch in total else probs
    return {branch: summed / len(names) for branch, summed in total.items()}
