"""Image pipelines for a (clinical, dermoscopy) pair.

Training, as the authors' public pipelines (FusionM4Net, TFormer): with probability
`augment_p` (their outer `Compose(p=0.5)`) a pair is augmented at all; then vertical and
horizontal flips, shift-scale-rotate (shift 0.0625, scale 0.5, rotate 45) and random 90-degree
rotations, drawn once per pair and applied identically to both images, and random
brightness/contrast on the images `photometric` names (theirs: the clinical image only), drawn
per image. Evaluation: resize only. Both end with per-modality normalisation, so each backbone
sees the statistics it was pretrained with.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from src.config import PHOTOMETRIC
from src.data.images import resize_square
from src.data.sampling import mix_seed

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
Stats = tuple[Sequence[float], Sequence[float]]  # (mean, std) per RGB channel, for 0..1 pixels
# data.photometric (one of the schema's PHOTOMETRIC) -> the images whose brightness/contrast
# is augmented
PHOTOMETRIC_TARGETS: dict[str, tuple[str, ...]] = {
    "clin": ("clin",),
    "derm": ("derm",),
    "both": ("clin", "derm"),
    "none": (),
}


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


def photometric_transform() -> A.Compose:
    return A.Compose([A.RandomBrightnessContrast(p=0.5)])


def seed_independently(pipeline: A.Compose, seed: int) -> None:
    """Seed a Compose and give each of its transforms its own stream.

    albumentations' `Compose.set_random_seed` hands every transform the SAME seed, so their
    draws coincide: both flips would always fire together (a 180-degree turn or nothing).
    """
    pipeline.set_random_seed(seed)
    for index, transform in enumerate(pipeline.transforms):
        transform.set_random_seed(mix_seed(seed, index + 1))


def normalisation(stats: Stats) -> tuple[np.ndarray, np.ndarray]:
    """float32 (mean x 255, 1 / (std x 255)) per channel: x_norm = (x - mean_255) * inv_std for
    0..255 pixel values (the CPU and the on-device pipelines both use these)."""
    mean_255 = np.asarray(stats[0], dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(stats[1], dtype=np.float32) * 255.0)
    return mean_255, inv_std


def to_tensor(img: np.ndarray, stats: Stats) -> torch.Tensor:
    """uint8 HWC RGB -> normalised float32 CHW tensor."""
    mean_255, inv_std = normalisation(stats)
    arr = (img.astype(np.float32) - mean_255) * inv_std
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class PairTransform:
    """(clinical uint8 HWC, dermoscopy uint8 HWC) -> two normalised CHW tensors of size x size."""

    def __init__(
        self,
        size: int,
        clin_stats: Stats,
        derm_stats: Stats,
        augment: bool,
        augment_p: float = 0.5,
        photometric: str = "clin",
    ):
        if photometric not in PHOTOMETRIC:
            raise ValueError(
                f"data.photometric={photometric!r}: expected one of {', '.join(PHOTOMETRIC)}"
            )
        if not 0.0 <= augment_p <= 1.0:
            raise ValueError(f"data.augment_p={augment_p} must be in [0, 1]")
        self.size = size
        self.clin_stats = clin_stats
        self.derm_stats = derm_stats
        self.augment = augment
        self.augment_p = augment_p
        self.photometric_targets = PHOTOMETRIC_TARGETS[photometric]
        self.geometry = shared_geometry() if augment else None
        self.photometric = photometric_transform() if augment else None
        self._rng = np.random.default_rng()

    def set_random_seed(self, seed: int) -> None:
        """Make the augmentation stream reproducible (albumentations ignores global seeds)."""
        if self.geometry is not None and self.photometric is not None:
            seed_independently(self.geometry, mix_seed(seed, 0))
            seed_independently(self.photometric, mix_seed(seed, 1))
        self._rng = np.random.default_rng(mix_seed(seed, 2))

    def __call__(self, clin: np.ndarray, derm: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        clin, derm = resize_square(clin, self.size), resize_square(derm, self.size)
        augmenting = self.geometry is not None and self.photometric is not None
        if augmenting and self._rng.random() < self.augment_p:
            out = self.geometry(image=clin, derm=derm)
            images = {"clin": out["image"], "derm": out["derm"]}
            for name in self.photometric_targets:
                images[name] = self.photometric(image=images[name])["image"]
            clin, derm = images["clin"], images["derm"]
        return to_tensor(clin, self.clin_stats), to_tensor(derm, self.derm_stats)


def train_transform(
    size: int,
    clin_stats: Stats,
    derm_stats: Stats,
    augment_p: float = 0.5,
    photometric: str = "clin",
) -> PairTransform:
    return PairTransform(size, clin_stats, derm_stats, True, augment_p, photometric)


def eval_transform(size: int, clin_stats: Stats, derm_stats: Stats) -> PairTransform:
    return PairTransform(size, clin_stats, derm_stats, augment=False)
