"""A torch Dataset of cases: (clinical image, dermoscopy image, labels, metadata)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from src.data.cache import ImageCache
from src.data.clin_dropout import clin_dropped
from src.data.derm7pt import Case
from src.data.missing import missing_like
from src.data.sampling import mix_seed
from src.data.transforms import PairTransform


class PairDataset(Dataset):
    """Item i: (clinic float[3,S,S], derm float[3,S,S], labels long[T], meta long[M]) of
    `cases[i]`: a class index per task and a category index per metadata column of the task
    spec (-1: unknown)."""

    def __init__(
        self,
        cases: Sequence[Case],
        images: ImageCache,
        transform: PairTransform,
        seed: int | None = None,
        clin_dropout_p: float = 0.0,
    ):
        self.cases = list(cases)
        self.images = images
        self.transform = transform
        self.seed = seed  # when set, sample i of epoch e is augmented with seed (seed, e, i)
        # training split only: the clinical image of sample i of epoch e goes missing with this
        # probability, drawn from (seed, e, i) (src.data.clin_dropout)
        self.clin_dropout_p = clin_dropout_p

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(
        self, key: int | tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item `key`: an (epoch, index) pair as `EpochShuffleSampler` yields them, or an index
        (epoch 0)."""
        epoch, i = key if isinstance(key, tuple) else (0, key)
        case = self.cases[i]
        if self.seed is not None:
            self.transform.set_random_seed(mix_seed(self.seed, epoch, i))
        clin, derm = self.transform(self.images.get(case.clinic), self.images.get(case.derm))
        if self.seed is not None and clin_dropped(self.seed, epoch, i, self.clin_dropout_p):
            clin = missing_like(clin)
        return clin, derm, *case_targets(case)


def case_targets(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels long[T], meta long[M]) of a case, as every item of a pair dataset carries them."""
    labels = torch.tensor(case.labels, dtype=torch.long)
    return labels, torch.tensor(case.meta, dtype=torch.long).reshape(-1)
