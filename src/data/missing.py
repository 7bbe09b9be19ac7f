"""What stands in for an image that is missing: one definition for the robustness probe
(`missing_mean`), clinical-image dropout in training, and anything else that drops a modality.

A missing image is the normalisation mean colour everywhere, i.e. all zeros once normalised:
the network then sees the "average" input of the statistics it was built with, no edges, no
colour, and no information about the case.
"""

from __future__ import annotations

import torch
from torch import Tensor

MISSING_IMAGE = "the normalisation mean colour (zeros after normalisation)"


def missing_like(images: Tensor) -> Tensor:
    """Normalised images [B, C, H, W] (or one [C, H, W]) replaced by the missing-image fill."""
    return torch.zeros_like(images)
