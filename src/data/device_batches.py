"""`data.device_pipeline=true`: the training and validation images live on the training device.

All decoded uint8 images of the training and validation splits (about 190 MB at 224 px) are
copied to the device once; the loaders then yield only keys (split, epoch, index), and the
datamodule's `on_after_batch_transfer` gathers each batch on the device, augments it there
(`src.data.device_augment`, the albumentations pipeline's operations and ranges) and
normalises it. No worker process decodes or augments anything. Evaluation after training
(TTA, the fusion weight search, test metrics) keeps the ordinary loaders.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from src.data.clin_dropout import clin_dropout_mask
from src.data.dataset import PairDataset
from src.data.device_augment import augment_pair, draw_params, normalise
from src.data.missing import missing_like
from src.data.sampling import mix_seed
from src.data.transforms import PHOTOMETRIC_TARGETS, Stats

DEVICE_SPLITS = ("train", "valid")


class KeyDataset(Dataset):
    """Item `key` of a split: the LongTensor [split id, epoch, index] (the images stay put)."""

    def __init__(self, split_id: int, length: int) -> None:
        self.split_id, self.length = split_id, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | tuple[int, int]) -> Tensor:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        return torch.tensor([self.split_id, epoch, index], dtype=torch.long)


def _stack(dataset: PairDataset) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """uint8 [N, 3, S, S] clinical and dermoscopy images, long [N, T] labels and long [N, M]
    metadata of a split."""
    size = dataset.transform.size
    clin = np.empty((len(dataset), 3, size, size), dtype=np.uint8)
    derm = np.empty_like(clin)
    for i, case in enumerate(dataset.cases):
        clin[i] = dataset.images.get(case.clinic).transpose(2, 0, 1)
        derm[i] = dataset.images.get(case.derm).transpose(2, 0, 1)
    labels = torch.tensor([case.labels for case in dataset.cases], dtype=torch.long)
    meta = torch.tensor([case.meta for case in dataset.cases], dtype=torch.long)
    meta = meta.reshape(len(dataset), -1)
    return torch.from_numpy(clin), torch.from_numpy(derm), labels, meta


class DeviceImages:
    """The images of `DEVICE_SPLITS`, moved to a device on first use, and batches built there."""

    def __init__(
        self,
        datasets: dict[str, PairDataset],
        stats: dict[str, Stats],
        augment: bool,
        augment_p: float,
        photometric: str,
        clin_dropout_p: float = 0.0,
    ) -> None:
        self.splits = {name: _stack(datasets[name]) for name in DEVICE_SPLITS}
        self.clin_dropout_p = clin_dropout_p  # training split only (src.data.clin_dropout)
        self.stats = stats
        self.augment = augment
        self.augment_p = augment_p
        self.photometric_targets: Sequence[str] = PHOTOMETRIC_TARGETS[photometric]
        self.seed = 0  # set by the datamodule with the training loader (the run's seed)
        self._device: torch.device | None = None

    def key_dataset(self, split: str) -> KeyDataset:
        return KeyDataset(DEVICE_SPLITS.index(split), len(self.splits[split][0]))

    def _on(self, device: torch.device) -> None:
        if self._device != device:
            self.splits = {
                name: tuple(t.to(device) for t in tensors)  # type: ignore[misc]
                for name, tensors in self.splits.items()
            }
            self._device = device

    def batch(self, keys: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(clinic, derm, labels, meta) for keys [B, 3] of one split, on the keys' device."""
        self._on(keys.device)
        split = DEVICE_SPLITS[int(keys[0, 0])]
        index = keys[:, 2]
        clin, derm, labels, meta = (t[index] for t in self.splits[split])
        if split == "train" and self.augment:
            rows = keys[:, 1:].tolist()
            seeds = [mix_seed(self.seed, epoch, i) for epoch, i in rows]
            params = draw_params(seeds, clin.shape[-1], self.augment_p, self.photometric_targets)
            clin, derm = augment_pair(clin, derm, params)
        clin, derm = normalise(clin, self.stats["clin"]), normalise(derm, self.stats["derm"])
        if split == "train" and self.clin_dropout_p > 0:
            dropped = clin_dropout_mask(self.seed, keys[:, 1:].tolist(), self.clin_dropout_p)
            dropped = dropped.to(clin.device).view(-1, 1, 1, 1)
            clin = torch.where(dropped, missing_like(clin), clin)
        return clin, derm, labels, meta


def is_key_batch(batch: object) -> bool:
    return isinstance(batch, Tensor) and batch.dim() == 2 and batch.shape[1] == 3
