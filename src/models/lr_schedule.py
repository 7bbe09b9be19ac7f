"""The learning-rate schedule, as a function of the epoch (so a resumed run gets the same LRs).

Cosine annealing over all epochs (the authors' earlier code: lr/2 * (1 + cos(pi e / E)), set
per epoch). With `swa_lr` set, the SWA epochs instead anneal from the cosine value at the first
SWA epoch to the constant `swa_lr` over `anneal_epochs` epochs (Izmailov et al.'s SWA schedule,
as torch's SWALR does); with `swa_lr=None` the cosine schedule continues while averaging, as in
the authors' code.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def cosine_factor(epoch: int, max_epochs: int) -> float:
    """Multiplier of the base LR at `epoch` (0-based) of a cosine schedule over `max_epochs`."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / max(max_epochs, 1)))


def lr_factor_schedule(
    max_epochs: int,
    swa_epochs: int = 0,
    swa_lr_ratio: float | None = None,
    anneal_epochs: int = 10,
) -> Callable[[int], float]:
    """epoch -> LR multiplier; `swa_lr_ratio` is swa_lr / base lr (None: cosine throughout)."""
    swa_start = max_epochs - swa_epochs

    def factor(epoch: int) -> float:
        if swa_lr_ratio is None or swa_epochs <= 0 or epoch < swa_start:
            return cosine_factor(epoch, max_epochs)
        start = cosine_factor(swa_start, max_epochs)
        progress = 1.0 if anneal_epochs <= 0 else min(1.0, (epoch - swa_start + 1) / anneal_epochs)
        blend = 0.5 * (1.0 - math.cos(math.pi * progress))
        return start + (swa_lr_ratio - start) * blend

    return factor
