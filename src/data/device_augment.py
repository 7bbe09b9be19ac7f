"""The training augmentation of `src.data.transforms`, applied to whole batches on the device.

Same operations, same parameter ranges, same order as the albumentations pipeline: with
probability `augment_p` a pair is augmented at all; then vertical flip, horizontal flip,
Affine (translate +-6.25 % truncated to whole pixels, scale 0.5-1.5, rotate +-45 degrees about
the image centre, bilinear, reflect-101 borders; each p=0.5) and RandomRotate90 (p=0.5, k in
0..3), drawn once per pair and applied to both images; then RandomBrightnessContrast (p=0.5,
alpha = 1 + U(-0.2, 0.2), beta = U(-0.2, 0.2) x 255, on uint8 values: float32, clipped,
truncated) per photometric target image.

The flips, the affine warp and the 90-degree turn are composed into one map from output pixel
to source position, sampled once (a flip or a turn is an exact pixel permutation, so sampling
the composition equals applying them one after the other). Parameters come from a generator
seeded by (seed, epoch, index) for every sample, on the CPU: a batch is augmented the same way
whatever the device, the batch composition or the number of processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from src.data.sampling import mix_seed
from src.data.transforms import Stats, normalisation

TRANSLATE = 0.0625
SCALE = (0.5, 1.5)
ROTATE = 45.0
BRIGHTNESS = 0.2
CONTRAST = 0.2


@dataclass
class PairParams:
    """Per-sample augmentation parameters of a batch (numpy, one row per sample)."""

    vflip: np.ndarray  # bool [B]
    hflip: np.ndarray  # bool [B]
    affine: np.ndarray  # bool [B]
    translate: np.ndarray  # int pixels [B, 2] (x, y)
    scale: np.ndarray  # [B]
    rotate: np.ndarray  # degrees [B]
    rot90: np.ndarray  # int 0..3 [B]
    photometric: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # image -> (on, alpha, beta)


def draw_params(
    seeds: Sequence[int], size: int, augment_p: float, photometric_targets: Sequence[str]
) -> PairParams:
    """Parameters for samples seeded by `seeds` (one per sample, e.g. mix_seed(seed, epoch, i))."""
    rows = [_draw_one(seed, size, augment_p, photometric_targets) for seed in seeds]

    def column(key: str, dtype: type) -> np.ndarray:
        return np.array([row[key] for row in rows], dtype=dtype)

    photometric = {
        name: (
            column(f"{name}_on", bool),
            column(f"{name}_alpha", np.float32),
            column(f"{name}_beta", np.float32),
        )
        for name in photometric_targets
    }
    return PairParams(
        vflip=column("vflip", bool),
        hflip=column("hflip", bool),
        affine=column("affine", bool),
        translate=np.array([row["translate"] for row in rows], dtype=np.int64).reshape(-1, 2),
        scale=column("scale", np.float64),
        rotate=column("rotate", np.float64),
        rot90=column("rot90", np.int64),
        photometric=photometric,
    )


def _draw_one(
    seed: int, size: int, augment_p: float, photometric_targets: Sequence[str]
) -> dict[str, object]:
    rng = np.random.default_rng(mix_seed(seed, 3))
    augment = bool(rng.random() < augment_p)
    # Every draw happens whether or not it is used, so each parameter keeps its own stream.
    row: dict[str, object] = {
        "vflip": augment and bool(rng.random() < 0.5),
        "hflip": augment and bool(rng.random() < 0.5),
        "affine": augment and bool(rng.random() < 0.5),
        "translate": (
            int(rng.uniform(-TRANSLATE, TRANSLATE) * size),
            int(rng.uniform(-TRANSLATE, TRANSLATE) * size),
        ),
        "scale": float(rng.uniform(*SCALE)),
        "rotate": float(rng.uniform(-ROTATE, ROTATE)),
    }
    turn = bool(rng.random() < 0.5)
    row["rot90"] = int(rng.integers(0, 4)) if augment and turn else 0
    for name in photometric_targets:
        on = bool(rng.random() < 0.5)
        row[f"{name}_on"] = augment and on
        row[f"{name}_alpha"] = 1.0 + rng.uniform(-CONTRAST, CONTRAST)
        row[f"{name}_beta"] = rng.uniform(-BRIGHTNESS, BRIGHTNESS) * 255.0
    return row


def affine_matrix(translate: Sequence[int], scale: float, rotate: float, size: int) -> np.ndarray:
    """albumentations' forward 3x3 matrix (source -> output pixel, centre (S/2 - 0.5))."""
    centre = size / 2 - 0.5
    rad = math.radians(rotate % 360)
    cos, sin = math.cos(rad), math.sin(rad)
    to_origin = np.array([[1, 0, -centre], [0, 1, -centre], [0, 0, 1]], dtype=np.float64)
    turn = np.array([[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]], dtype=np.float64)
    zoom = np.diag([scale, scale, 1.0])
    shift = np.array(
        [[1, 0, translate[0] + centre], [0, 1, translate[1] + centre], [0, 0, 1]], dtype=np.float64
    )
    return shift @ turn @ zoom @ to_origin


def source_positions(params: PairParams, size: int, device: torch.device) -> Tensor:
    """For every output pixel of every sample, the (x, y) position in the source image that the
    composed flips, affine warp and 90-degree turn read: float32 [B, S, S, 2]."""
    batch = len(params.rot90)
    rows, cols = torch.meshgrid(
        torch.arange(size, device=device), torch.arange(size, device=device), indexing="ij"
    )
    last = size - 1
    # np.rot90(a, k) turns counter-clockwise: output (row, col) reads the pre-turn image at
    # k = 1: (col, last - row); k = 2: (last - row, last - col); k = 3: (last - col, row).
    turns = [(rows, cols), (cols, last - rows), (last - rows, last - cols), (last - cols, rows)]
    k = torch.as_tensor(params.rot90, device=device)
    r = torch.stack([t[0] for t in turns])[k].float()  # [B, S, S] row in the warped image
    c = torch.stack([t[1] for t in turns])[k].float()
    inverse = np.stack(
        [
            np.linalg.inv(
                affine_matrix(params.translate[b], params.scale[b], params.rotate[b], size)
            )
            if params.affine[b]
            else np.eye(3)
            for b in range(batch)
        ]
    )
    m = torch.as_tensor(inverse[:, :2, :], dtype=torch.float32, device=device)  # [B, 2, 3]
    x = m[:, 0, 0, None, None] * c + m[:, 0, 1, None, None] * r + m[:, 0, 2, None, None]
    y = m[:, 1, 0, None, None] * c + m[:, 1, 1, None, None] * r + m[:, 1, 2, None, None]
    hflip = torch.as_tensor(params.hflip, device=device)[:, None, None]
    vflip = torch.as_tensor(params.vflip, device=device)[:, None, None]
    x = torch.where(hflip, last - x, x)
    y = torch.where(vflip, last - y, y)
    return torch.stack((x, y), dim=-1)


def _reflect101(index: Tensor, size: int) -> Tensor:
    """OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba) for integer positions."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = torch.remainder(index, period)
    return torch.where(index >= size, period - index, index)


def sample_bilinear(images: Tensor, positions: Tensor) -> Tensor:
    """images uint8/float [B, C, S, S] read at positions [B, S, S, 2] with bilinear weights and
    reflect-101 borders, rounded to whole values as a uint8 warp is: float32 [B, C, S, S]."""
    batch, channels, height, width = images.shape
    x, y = positions[..., 0], positions[..., 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.long(), y0.long()
    flat = images.reshape(batch, channels, height * width).float()

    def read(yy: Tensor, xx: Tensor) -> Tensor:
        index = _reflect101(yy, height) * width + _reflect101(xx, width)  # [B, S, S]
        index = index.reshape(batch, 1, -1).expand(-1, channels, -1)
        return flat.gather(2, index).reshape(batch, channels, *yy.shape[1:])

    top = read(y0, x0) * (1 - fx) + read(y0, x0 + 1) * fx
    bottom = read(y0 + 1, x0) * (1 - fx) + read(y0 + 1, x0 + 1) * fx
    return torch.round(top * (1 - fy) + bottom * fy).clamp_(0, 255)


def brightness_contrast(images: Tensor, on: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """uint8-valued float images [B, C, S, S]: v * alpha + beta in float32, clipped to 0..255
    and truncated, where `on` [B]; unchanged elsewhere."""
    adjusted = torch.trunc(
        (images * alpha[:, None, None, None] + beta[:, None, None, None]).clamp(0, 255)
    )
    return torch.where(on[:, None, None, None], adjusted, images)


def augment_pair(clin: Tensor, derm: Tensor, params: PairParams) -> tuple[Tensor, Tensor]:
    """uint8 [B, 3, S, S] pairs -> augmented float32 images with values in 0..255."""
    positions = source_positions(params, clin.shape[-1], clin.device)
    images = {"clin": sample_bilinear(clin, positions), "derm": sample_bilinear(derm, positions)}
    for name, (on, alpha, beta) in params.photometric.items():
        device = images[name].device
        images[name] = brightness_contrast(
            images[name],
            torch.as_tensor(on, device=device),
            torch.as_tensor(alpha, device=device),
            torch.as_tensor(beta, device=device),
        )
    return images["clin"], images["derm"]


def normalise(images: Tensor, stats: Stats) -> Tensor:
    """0..255 values [B, 3, S, S] -> normalised float32, with `transforms.to_tensor`'s numbers."""
    mean_255, inv_std = (torch.from_numpy(a).to(images.device) for a in normalisation(stats))
    return (images.float() - mean_255[:, None, None]) * inv_std[:, None, None]
