"""Pair transforms: shared geometry, per-image lighting, resize-only evaluation, normalisation."""

from __future__ import annotations

import numpy as np
import torch

from src.config import PHOTOMETRIC
from src.data.images import resize_square
from src.data.sampling import mix_seed
from src.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PHOTOMETRIC_TARGETS,
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
    transform = train_transform(32, STATS, STATS, augment_p=1.0, photometric="both")
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


def _unchanged_fraction(augment_p: float, seeds: int = 200) -> float:
    img = _asymmetric_image()
    plain = eval_transform(32, STATS, STATS)(img, img)
    transform = train_transform(32, STATS, STATS, augment_p=augment_p)
    same = 0
    for seed in range(seeds):
        transform.set_random_seed(seed)
        clin, derm = transform(img, img)
        same += torch.equal(clin, plain[0]) and torch.equal(derm, plain[1])
    return same / seeds


def test_outer_probability_leaves_pairs_untouched():
    assert _unchanged_fraction(0.0) == 1.0
    # Inside, each of the 5 transforms fires with p=0.5: 1/32 of augmented pairs stay as they are.
    assert _unchanged_fraction(1.0) < 0.1
    assert 0.4 < _unchanged_fraction(0.5) < 0.6


def test_photometric_augmentation_touches_only_the_chosen_images():
    img = _asymmetric_image()

    def outputs(photometric: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        transform = train_transform(32, STATS, STATS, augment_p=1.0, photometric=photometric)
        transform.set_random_seed(seed)
        return transform(img, img)

    seeds = range(12)
    for seed in seeds:  # same geometry; lighting only where asked for
        none, clin_only, derm_only = (
            outputs("none", seed),
            outputs("clin", seed),
            outputs("derm", seed),
        )
        assert torch.equal(clin_only[1], none[1]) and torch.equal(derm_only[0], none[0])
    assert any(not torch.equal(outputs("clin", s)[0], outputs("none", s)[0]) for s in seeds)
    assert any(not torch.equal(outputs("derm", s)[1], outputs("none", s)[1]) for s in seeds)


def test_each_transform_draws_independently_when_seeded():
    """Both flips fire together only a quarter of the time (they are independent at p=0.5)."""
    img = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    transform = train_transform(16, STATS, STATS, augment_p=1.0, photometric="none")
    transform.geometry.transforms = transform.geometry.transforms[:2]  # the two flips only
    flips = {"v": img[::-1], "h": img[:, ::-1], "vh": img[::-1, ::-1], "": img}
    counts = dict.fromkeys(flips, 0)
    for seed in range(400):
        transform.set_random_seed(mix_seed(5, 0, seed))
        out = transform(img, img)[0]
        for name, flipped in flips.items():
            counts[name] += torch.equal(out, to_tensor(flipped, STATS))
    assert sum(counts.values()) == 400
    assert all(60 < n < 140 for n in counts.values()), counts


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


def test_photometric_targets_cover_exactly_the_schemas_values() -> None:
    assert tuple(PHOTOMETRIC_TARGETS) == PHOTOMETRIC == ("clin", "derm", "both", "none")
