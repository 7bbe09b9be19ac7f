"""Epoch-keyed randomness for training batches, so a resumed run replays the same epochs.

The shuffling order and every sample's augmentation are functions of (seed, epoch, index)
only, not of how many random numbers were drawn before. A run restarted from the checkpoint
of epoch k therefore sees exactly the batches an uninterrupted run sees from epoch k + 1,
whatever the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler, Sampler


def mix_seed(*parts: int) -> int:
    """A 31-bit seed from integers (seed, epoch, index ...); distinct inputs, distinct streams."""
    value = 0x9E3779B1
    for part in parts:
        value = (value * 1_000_003 + int(part) + 0x7F4A7C15) % (2**61 - 1)
    return value % (2**31 - 1)


class EpochShuffleSampler(Sampler[tuple[int, int]]):
    """Random permutation of the dataset that depends only on (seed, epoch).

    Lightning calls `set_epoch` before each epoch. The sampler yields (epoch, index) keys: the
    dataset seeds each sample's augmentation from (seed, epoch, index) whichever worker
    process serves it, so loader workers can live across epochs (persistent workers).

    With `num_replicas` > 1 (distributed training) every process draws the same permutation,
    padded at the end with its first indices to a multiple of `num_replicas`, and takes every
    `num_replicas`-th index from position `rank`: the processes together see each sample of
    the epoch once (the padding aside), as one process would.
    """

    def __init__(
        self,
        dataset: Sized,
        seed: int,
        epoch: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1}")
        self.dataset = dataset
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.num_replicas)

    def indices(self) -> list[int]:
        """This process's dataset indices of the current epoch, in order."""
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.dataset), generator=generator).tolist()
        if self.num_replicas > 1:
            order += order[: len(self) * self.num_replicas - len(order)]
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, i) for i in self.indices())


def shard_sampler(dataset: Sized, num_replicas: int, rank: int) -> DistributedSampler | None:
    """The in-order share of `dataset` that process `rank` evaluates (None: one process).

    torch's layout: indices padded with the first ones to a multiple of `num_replicas`, then
    every `num_replicas`-th from `rank`; `unshard` puts the gathered results back in order.
    """
    if num_replicas == 1:
        return None
    return DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)


def unshard(gathered: Tensor, length: int) -> Tensor:
    """Results gathered from `shard_sampler`'s processes, [num_replicas, per_process, ...],
    back in dataset order with the padding dropped: [length, ...]."""
    per_process_first = gathered.transpose(0, 1).reshape(-1, *gathered.shape[2:])
    if per_process_first.shape[0] < length:
        raise ValueError(f"gathered {per_process_first.shape[0]} results for {length} samples")
    return per_process_first[:length]
