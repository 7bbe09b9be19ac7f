"""The conditions of the robustness probe, and a split's cases under one of them.

A condition changes one modality's image of every case and nothing else:
- `as_is`: no change (modality "none", severity 0);
- `missing_mean`: the image is missing, `src.data.missing.missing_like` (THE definition);
- `missing_shuffled`: the image is another case's image of the same modality, the other case
  given by a seeded derangement of the split (a single random cycle: no case keeps its own);
- a corruption of `src.data.corruptions` at severity 1-5, applied to the resized uint8 image
  before normalisation, seeded per (corruption, severity, modality, case).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from src.data.dataset import PairDataset, case_targets
from src.data.images import resize_square
from src.data.missing import missing_like
from src.data.sampling import mix_seed

MODALITIES: tuple[str, ...] = ("clinic", "derm")  # the image a condition changes
NONE = "none"  # the modality of the as_is condition
AS_IS, MISSING_MEAN, MISSING_SHUFFLED = "as_is", "missing_mean", "missing_shuffled"
MISSING_KINDS: tuple[str, ...] = (MISSING_MEAN, MISSING_SHUFFLED)


@dataclass(frozen=True)
class Condition:
    """What is done to the test split: `kind` to the `modality` image at `severity` (1-5 for a
    corruption, 0 otherwise)."""

    modality: str
    kind: str
    severity: int = 0


KINDS: tuple[str, ...] = (*MISSING_KINDS, *CORRUPTIONS)  # what a condition can do to an image


def probe_conditions(kinds: Sequence[str] | None = None) -> list[Condition]:
    """as_is, then per modality: each of `kinds` (default: both missing kinds and every
    corruption), a corruption at every severity."""
    chosen = list(KINDS if kinds is None else kinds)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown condition kinds {unknown}; expected some of {', '.join(KINDS)}")
    conditions = [Condition(NONE, AS_IS)]
    for modality in MODALITIES:
        for kind in (k for k in KINDS if k in chosen):
            severities = SEVERITIES if kind in CORRUPTIONS else (0,)
            conditions += [Condition(modality, kind, s) for s in severities]
    return conditions


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of 0..n-1 without fixed points (n >= 2): one random cycle."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 cases, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    partner = np.empty(n, dtype=np.int64)
    partner[order] = np.roll(order, -1)
    return partner


class ConditionDataset(Dataset):
    """The items of `base` (an evaluation PairDataset) with `condition` applied, seeded."""

    def __init__(self, base: PairDataset, condition: Condition, seed: int) -> None:
        if condition.kind != AS_IS and condition.modality not in MODALITIES:
            raise ValueError(f"condition {condition}: modality must be one of {MODALITIES}")
        if condition.kind not in (AS_IS, *KINDS):
            raise ValueError(f"condition {condition}: unknown kind {condition.kind!r}")
        self.base = base
        self.condition = condition
        self.seed = seed
        m = MODALITIES.index(condition.modality) if condition.modality in MODALITIES else 0
        self._modality_index = m
        shuffled = condition.kind == MISSING_SHUFFLED
        self.partner = derangement(len(base), mix_seed(seed, m)) if shuffled else None

    def __len__(self) -> int:
        return len(self.base)

    def _image(self, i: int, modality: str) -> np.ndarray:
        cases, c = self.base.cases, self.condition
        case = cases[i]
        if c.modality == modality and self.partner is not None:
            case = cases[int(self.partner[i])]
        image = self.base.images.get(case.clinic if modality == "clinic" else case.derm)
        if c.modality == modality and c.kind in CORRUPTIONS:
            image = resize_square(image, self.base.transform.size)
            which = list(CORRUPTIONS).index(c.kind)
            seed = mix_seed(self.seed, which, c.severity, self._modality_index, i)
            image = corrupt(image, c.kind, c.severity, seed)
        return image

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        clin, derm = self.base.transform(self._image(i, "clinic"), self._image(i, "derm"))
        if self.condition.kind == MISSING_MEAN:
            if self.condition.modality == "clinic":
                clin = missing_like(clin)
            else:
                derm = missing_like(derm)
        return clin, derm, *case_targets(self.base.cases[i])
