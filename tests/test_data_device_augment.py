"""The batched on-device augmentation against the albumentations pipeline it reproduces."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from src.data.device_augment import (
    PairParams,
    augment_pair,
    brightness_contrast,
    draw_params,
    normalise,
    sample_bilinear,
    source_positions,
)
from src.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    photometric_transform,
    seed_independently,
    shared_geometry,
    to_tensor,
)

SIZE = 48


def _image(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A textured, mostly smooth uint8 RGB image (like a skin photo at low resolution)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-6, 7, smooth.shape)
    return np.clip(smooth.astype(int) + noise, 0, 255).astype(np.uint8)


def _params(vflip=False, hflip=False, affine=None, rot90=0, photometric=None) -> PairParams:
    translate, scale, rotate = affine or ((0, 0), 1.0, 0.0)
    return PairParams(
        vflip=np.array([vflip]),
        hflip=np.array([hflip]),
        affine=np.array([affine is not None]),
        translate=np.array([translate]),
        scale=np.array([scale]),
        rotate=np.array([rotate]),
        rot90=np.array([rot90]),
        photometric=photometric or {},
    )


def _on_device(params: PairParams, image: np.ndarray) -> np.ndarray:
    batch = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())
    out = sample_bilinear(batch, source_positions(params, image.shape[0], batch.device))
    return out[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("vflip", [False, True])
@pytest.mark.parametrize("hflip", [False, True])
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_flips_and_quarter_turns_are_exact(vflip: bool, hflip: bool, k: int):
    image = _image()
    expected = image
    if vflip:
        expected = A.VerticalFlip(p=1)(image=expected)["image"]
    if hflip:
        expected = A.HorizontalFlip(p=1)(image=expected)["image"]
    expected = A.RandomRotate90(p=1).apply(expected, factor=k)
    got = _on_device(_params(vflip, hflip, rot90=k), image)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "affine", [((3, -2), 1.3, 30.0), ((-1, 2), 0.6, -44.0), ((0, 0), 1.0, 90.0), ((2, 2), 1.5, 7.5)]
)
@pytest.mark.parametrize("then", [(False, False, 0), (True, False, 1), (True, True, 3)])
def test_affine_warps_like_albumentations(affine, then):
    """Bilinear with reflect-101 borders; OpenCV rounds positions to 1/32 px, so values may
    differ by a few levels where the image is steep."""
    (tx, ty), scale, rotate = affine
    vflip, hflip, k = then
    image = _image(1)
    warp = A.Affine(
        translate_px={"x": (tx, tx), "y": (ty, ty)},
        scale=(scale, scale),
        rotate=(rotate, rotate),
        keep_ratio=True,
        border_mode=cv2.BORDER_REFLECT_101,
        p=1,
    )
    expected = image[::-1] if vflip else image
    expected = np.ascontiguousarray(expected[:, ::-1] if hflip else expected)
    expected = A.RandomRotate90(p=1).apply(warp(image=expected)["image"], factor=k)
    got = _on_device(_params(vflip, hflip, affine, k), image)
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.mean() < 0.25, diff.mean()
    assert np.percentile(diff, 99) <= 2 and diff.max() <= 8


def test_brightness_contrast_equals_albumentations_exactly():
    image = _image(2)
    transform = A.RandomBrightnessContrast(p=1)
    tensor = torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32))
    for alpha, beta in [(1.13, 20.7), (0.85, -30.2), (1.19, 50.0), (0.8, -51.0)]:
        expected = transform.apply(image, alpha=alpha, beta=beta)
        got = brightness_contrast(
            tensor, torch.tensor([True]), torch.tensor([alpha]), torch.tensor([beta])
        )
        np.testing.assert_array_equal(got[0].numpy().transpose(1, 2, 0), expected)
    off = brightness_contrast(
        tensor, torch.tensor([False]), torch.tensor([2.0]), torch.tensor([9.0])
    )
    assert torch.equal(off, tensor)


def test_normalisation_equals_the_cpu_pipeline_bit_for_bit():
    image = _image(3)
    tensor = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())
    got = normalise(tensor, (IMAGENET_MEAN, IMAGENET_STD))[0]
    assert torch.equal(got, to_tensor(image, (IMAGENET_MEAN, IMAGENET_STD)))


def _albumentations_draws(n: int) -> dict[str, list]:
    """Parameters albumentations' own pipeline applies, over n seeded pairs."""
    geometry = A.Compose(
        shared_geometry().transforms, additional_targets={"derm": "image"}, save_applied_params=True
    )
    photometric = A.Compose(photometric_transform().transforms, save_applied_params=True)
    image = _image(4, 32)
    draws: dict[str, list] = {k: [] for k in ("vflip", "hflip", "affine", "scale", "rotate",
                                              "tx", "rot90", "bc", "alpha", "beta")}  # fmt: skip
    for seed in range(n):
        seed_independently(geometry, seed)
        seed_independently(photometric, seed + 10**6)
        applied = dict(geometry(image=image, derm=image)["applied_transforms"])
        draws["vflip"].append("VerticalFlip" in applied)
        draws["hflip"].append("HorizontalFlip" in applied)
        draws["affine"].append("Affine" in applied)
        if "Affine" in applied:
            p = applied["Affine"]
            draws["scale"].append(p["scale"]["x"])
            draws["rotate"].append(p["rotate"])
            centre = np.array([32 / 2 - 0.5, 32 / 2 - 0.5, 1.0])
            draws["tx"].append((p["matrix"] @ centre)[0] - centre[0])
        draws["rot90"].append(applied.get("RandomRotate90", {}).get("factor", 0))
        bc = dict(photometric(image=image)["applied_transforms"]).get("RandomBrightnessContrast")
        draws["bc"].append(bc is not None)
        if bc is not None:
            draws["alpha"].append(bc["alpha"])
            draws["beta"].append(bc["beta"])
    return draws


def test_parameters_are_drawn_from_albumentations_distributions():
    n = 4000
    ours = draw_params(range(n), 32, augment_p=1.0, photometric_targets=("clin",))
    theirs = _albumentations_draws(n)
    tol = 4 * np.sqrt(0.25 / n)  # 4 standard errors of a proportion near 1/2
    for key, mine in (("vflip", ours.vflip), ("hflip", ours.hflip), ("affine", ours.affine)):
        assert abs(mine.mean() - np.mean(theirs[key])) < 2 * tol, key
    on, alpha, beta = ours.photometric["clin"]
    assert abs(on.mean() - np.mean(theirs["bc"])) < 2 * tol
    quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
    for key, mine, spread in (
        ("scale", ours.scale[ours.affine], 1.0),
        ("rotate", ours.rotate[ours.affine], 90.0),
        ("alpha", alpha[on], 0.4),
        ("beta", beta[on], 102.0),
    ):
        gap = np.abs(np.quantile(mine, quantiles) - np.quantile(theirs[key], quantiles))
        assert gap.max() < 0.06 * spread, (key, gap)
    for k in range(4):
        mine_k = (ours.rot90 == k).mean()
        theirs_k = np.mean(np.array(theirs["rot90"]) == k)
        assert abs(mine_k - theirs_k) < 2 * tol, k
    shifts, theirs_tx = ours.translate[ours.affine, 0], np.round(theirs["tx"])  # whole pixels
    assert set(np.unique(shifts)) == set(np.unique(theirs_tx))
    for value in np.unique(shifts):
        assert abs((shifts == value).mean() - (theirs_tx == value).mean()) < 2 * tol, value


def test_augment_p_gates_every_operation_and_draws_are_per_sample():
    none = draw_params(range(200), 32, augment_p=0.0, photometric_targets=("clin",))
    assert not (none.vflip.any() or none.hflip.any() or none.affine.any() or none.rot90.any())
    assert not none.photometric["clin"][0].any()
    a = draw_params([5, 6, 7], 32, 0.5, ("clin",))
    b = draw_params([7], 32, 0.5, ("clin",))  # a sample's draw does not depend on its batch
    assert a.rotate[2] == b.rotate[0] and a.rot90[2] == b.rot90[0]


def test_augment_pair_applies_the_same_geometry_to_both_images():
    clin = torch.from_numpy(_image(5).transpose(2, 0, 1)[None].copy())
    params = _params(True, False, ((2, -3), 1.2, 20.0), 1)
    out_clin, out_derm = augment_pair(clin, clin.clone(), params)
    assert torch.equal(out_clin, out_derm)
    assert out_clin.dtype == torch.float32 and out_clin.shape == clin.shape
