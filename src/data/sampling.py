"""Epoch-keyed randomness for training batches, so a resumed run replays the same epochs.

The shuffling order and every sample's augmentation are functions of (seed, epoch, index)
only, not of how many random numbers were drawn before. A run restarted from the checkpoint
of epoch k therefore sees exactly the batches an uninterrupted run sees from epoch k + 1,
whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch.utils.data import Sampler


class EpochAware(Protocol):
    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...


def mix_seed(*parts: int) -> int:
    """A 31-bit seed from integers (seed, epoch, index ...); distinct inputs, distinct streams."""
    value = 0x9E3779B1
    for part in parts:
        value = (value * 1_000_003 + int(part) + 0x7F4A7C15) % (2**61 - 1)
    return value % (2**31 - 1)


class EpochShuffleSampler(Sampler[int]):
    """Random permutation of the dataset that depends only on (seed, epoch).

    Lightning calls `set_epoch` before each epoch; the sampler passes the epoch on to the
    dataset, which seeds each sample's augmentation from (seed, epoch, index).
    """

    def __init__(self, dataset: EpochAware, seed: int, epoch: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        yield from torch.randperm(len(self.dataset), generator=generator).tolist()
