"""Pair transforms: shared geometry, per-image lighting, resize-only evaluation, normalisation."""

from __future__ import annotations

import numpy as np
import torch

from src.data.images import resize_square
from src.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    to_tensor,
    train_transform,
)

STATS = (IMAGENET_MEAN, IMAGENET_STD)


def _asymmetric_image(h: int = 40, w: int = 56) -> np.ndarray:
    """No symmetry, so any flip, rotation or shift changes it; values in 90..160, so that
    brightness/contrast changes never clip."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w, y / h, ((x * y) % 17) / 17 * 0.5 + 0.5 * x / w], axis=-1)
    return (90 + 70 * img).astype(np.uint8)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def test_geometry_is_shared_by_the_pair():
    img = _asymmetric_image()
    transform = train_transform(32, STATS, STATS)
    transform.set_random_seed(0)
    plain = to_tensor(resize_square(img, 32), STATS)
    changed = 0
    for _ in range(20):
        clin, derm = transform(img, img.copy())
        assert clin.shape == derm.shape == (3, 32, 32) and clin.dtype == torch.float32
        # brightness/contrast is drawn per image: per channel the two outputs differ at most by
        # a gain and an offset, which keeps them perfectly correlated unless geometry differs
        for c in range(3):
            assert _pearson(clin[c], derm[c]) > 0.99
        changed += not torch.allclose(clin, plain, atol=1e-4)
    assert changed >= 10  # and the augmentation really moves things


def test_different_pairs_get_different_draws():
    img = _asymmetric_image()
    transform = train_transform(32, STATS, STATS)
    transform.set_random_seed(0)
    first = [transform(img, img)[0] for _ in range(6)]
    assert any(not torch.equal(first[0], other) for other in first[1:])


def test_seeded_augmentation_is_reproducible():
    img = _asymmetric_image()
    a, b = train_transform(32, STATS, STATS), train_transform(32, STATS, STATS)
    a.set_random_seed(7)
    b.set_random_seed(7)
    for _ in range(5):
        (ca, da), (cb, db) = a(img, img), b(img, img)
        assert torch.equal(ca, cb) and torch.equal(da, db)


def test_eval_is_resize_only_with_per_modality_stats():
    clin_img, derm_img = _asymmetric_image(40, 56), _asymmetric_image(70, 50)
    clin_stats = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    transform = eval_transform(24, clin_stats, STATS)
    for _ in range(2):  # deterministic
        clin, derm = transform(clin_img, derm_img)
        expected_clin = (resize_square(clin_img, 24).astype(np.float32) / 255 - 0.5) / 0.5
        np.testing.assert_allclose(clin.numpy(), expected_clin.transpose(2, 0, 1), atol=1e-5)
        mean = np.array(IMAGENET_MEAN, np.float32)
        std = np.array(IMAGENET_STD, np.float32)
        expected_derm = (resize_square(derm_img, 24).astype(np.float32) / 255 - mean) / std
        np.testing.assert_allclose(derm.numpy(), expected_derm.transpose(2, 0, 1), atol=1e-5)


def test_resize_is_straight_to_square_without_crop():
    img = np.zeros((30, 90, 3), np.uint8)
    img[:, :30] = 255  # left third white
    out = resize_square(img, 30)
    assert out.shape == (30, 30, 3)
    assert out[:, :9].min() == 255 and out[:, 11:].max() == 0  # squeezed, not cropped
