"""Clinical-image dropout in training (`data.clin_dropout_p`): with probability p a training
case's clinical image is replaced by the missing image (`src.data.missing.missing_like`), so
the network learns to predict when the clinical photo is absent.

Whether case `index` loses its clinical image in `epoch` is a function of (seed, epoch, index)
only, like its augmentation (`src.data.sampling`): the CPU loaders and the device pipeline drop
the same cases, and a resumed run drops what an uninterrupted one would. Only the training
split is ever touched; validation and test see every image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from src.data.sampling import mix_seed

# Keeps the dropout draws apart from the augmentation's, which is seeded from (seed, epoch, i).
_STREAM = 0xC11D


def clin_dropped(seed: int, epoch: int, index: int, p: float) -> bool:
    """Whether training case `index` has its clinical image dropped in `epoch`."""
    if p <= 0.0:
        return False
    generator = torch.Generator().manual_seed(mix_seed(seed, epoch, index, _STREAM))
    return bool(torch.rand((), generator=generator) < p)


def clin_dropout_mask(seed: int, keys: Sequence[Sequence[int]], p: float) -> torch.Tensor:
    """bool [B]: `clin_dropped` for each (epoch, index) of a batch."""
    return torch.tensor([clin_dropped(seed, int(e), int(i), p) for e, i in keys], dtype=torch.bool)
