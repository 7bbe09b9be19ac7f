"""Image pipelines for a (clinical, dermoscopy) pair.

Training, as the public derm7pt pipelines: vertical and horizontal flips, shift-scale-rotate
(shift 0.0625, scale 0.5, rotate 45), random 90-degree rotations, drawn once per pair and
applied identically to both images; then random brightness/contrast drawn per image (each
photo has its own lighting). Evaluation: resize only. Both end with per-modality
normalisation, so each backbone sees the statistics it was pretrained with.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from src.data.images import resize_square

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
Stats = tuple[Sequence[float], Sequence[float]]  # (mean, std) per RGB channel, for 0..1 pixels


def shared_geometry() -> A.Compose:
    """The geometric augmentation; the dermoscopy image rides along as target "derm"."""
    return A.Compose(
        [
            A.VerticalFlip(p=0.5),
            A.HorizontalFlip(p=0.5),
            A.Affine(  # ShiftScaleRotate(shift_limit=0.0625, scale_limit=0.5, rotate_limit=45)
                translate_percent=(-0.0625, 0.0625),
                scale=(0.5, 1.5),
                rotate=(-45, 45),
                keep_ratio=True,
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.5,
            ),
            A.RandomRotate90(p=0.5),
        ],
        additional_targets={"derm": "image"},
    )


def photometric() -> A.Compose:
    return A.Compose([A.RandomBrightnessContrast(p=0.5)])


def to_tensor(img: np.ndarray, stats: Stats) -> torch.Tensor:
    """uint8 HWC RGB -> normalised float32 CHW tensor."""
    mean = np.asarray(stats[0], dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(stats[1], dtype=np.float32) * 255.0)
    arr = (img.astype(np.float32) - mean) * inv_std
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class PairTransform:
    """(clinical uint8 HWC, dermoscopy uint8 HWC) -> two normalised CHW tensors of size x size."""

    def __init__(self, size: int, clin_stats: Stats, derm_stats: Stats, augment: bool):
        self.size = size
        self.clin_stats = clin_stats
        self.derm_stats = derm_stats
        self.augment = augment
        self.geometry = shared_geometry() if augment else None
        self.photometric = photometric() if augment else None

    def set_random_seed(self, seed: int) -> None:
        """Make the augmentation stream reproducible (albumentations ignores global seeds)."""
        if self.geometry is not None and self.photometric is not None:
            self.geometry.set_random_seed(seed)
            self.photometric.set_random_seed(seed + 1)

    def __call__(self, clin: np.ndarray, derm: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        clin, derm = resize_square(clin, self.size), resize_square(derm, self.size)
        if self.geometry is not None and self.photometric is not None:
            out = self.geometry(image=clin, derm=derm)
            clin = self.photometric(image=out["image"])["image"]
            derm = self.photometric(image=out["derm"])["image"]
        return to_tensor(clin, self.clin_stats), to_tensor(derm, self.derm_stats)


def train_transform(size: int, clin_stats: Stats, derm_stats: Stats) -> PairTransform:
    return PairTransform(size, clin_stats, derm_stats, augment=True)


def eval_transform(size: int, clin_stats: Stats, derm_stats: Stats) -> PairTransform:
    return PairTransform(size, clin_stats, derm_stats, augment=False)
