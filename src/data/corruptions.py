"""Image corruptions at severities 1-5 for the robustness probe: albumentations' own transforms
with one table of parameters per corruption, applied to the resized uint8 RGB image before
normalisation.

The severities follow the spirit of ImageNet-C (Hendrycks & Dietterich, 2019): severity 1 is a
mild flaw of a real photo, severity 5 leaves little of the lesion's detail. Sizes (blur radius)
are fractions of the image side, so a severity means the same at 32 px and at 224 px (at least
1 pixel: at 32-64 px neighbouring blur severities can coincide).

| corruption          | transform                  | severity 1 .. 5                           |
| ------------------- | -------------------------- | ----------------------------------------- |
| gaussian_noise      | GaussNoise                 | std 0.04, 0.08, 0.12, 0.18, 0.26 (x 255)  |
| defocus_blur        | Defocus                    | radius 1%, 2%, 3%, 5%, 7% of the side     |
| jpeg                | ImageCompression (JPEG)    | quality 30, 20, 15, 10, 7                 |
| brightness_contrast | RandomBrightnessContrast   | brightness, contrast -0.1 .. -0.5 (darker) |
| low_resolution      | Downscale (area, bilinear) | scale 0.6, 0.5, 0.4, 0.3, 0.25            |

low_resolution is the chosen fifth: a clinical photo of a lesion is often a crop of a larger
phone picture, so fewer pixels than the network's input were ever there.

Each call is seeded (`seed`): the same image, corruption, severity and seed give the same
pixels, in any order and any process.
"""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A
import cv2
import numpy as np

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

NOISE_STD = (0.04, 0.08, 0.12, 0.18, 0.26)
DEFOCUS_RADIUS = (0.01, 0.02, 0.03, 0.05, 0.07)  # fraction of the image side
JPEG_QUALITY = (30, 20, 15, 10, 7)
DARKER_FLATTER = (-0.1, -0.2, -0.3, -0.4, -0.5)  # brightness and contrast change
DOWNSCALE = (0.6, 0.5, 0.4, 0.3, 0.25)


def _radius(fraction: float, side: int) -> int:
    return max(1, round(fraction * side))


# name -> (severity index 0..4, image side) -> the transform at that severity
CORRUPTIONS: dict[str, Callable[[int, int], A.BasicTransform]] = {
    "gaussian_noise": lambda s, side: A.GaussNoise(
        std_range=(NOISE_STD[s], NOISE_STD[s]), per_channel=True, p=1.0
    ),
    "defocus_blur": lambda s, side: A.Defocus(
        radius=(_radius(DEFOCUS_RADIUS[s], side),) * 2, alias_blur=(0.1, 0.1), p=1.0
    ),
    "jpeg": lambda s, side: A.ImageCompression(
        compression_type="jpeg", quality_range=(JPEG_QUALITY[s], JPEG_QUALITY[s]), p=1.0
    ),
    "brightness_contrast": lambda s, side: A.RandomBrightnessContrast(
        brightness_limit=(DARKER_FLATTER[s],) * 2, contrast_limit=(DARKER_FLATTER[s],) * 2, p=1.0
    ),
    "low_resolution": lambda s, side: A.Downscale(
        scale_range=(DOWNSCALE[s], DOWNSCALE[s]),
        interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR},
        p=1.0,
    ),
}


def check_corruption(name: str, severity: int) -> None:
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """`image` (uint8 HWC RGB) with corruption `name` at `severity` (1-5), seeded."""
    check_corruption(name, severity)
    transform = CORRUPTIONS[name](severity - 1, min(image.shape[:2]))
    transform.set_random_seed(seed)
    return transform(image=image)["image"]


def corruption_table(side: int) -> dict[str, dict[str, object]]:
    """{corruption: {"transform": class, "severities": [its arguments at 1..5]}} at image side
    `side`, as albumentations serialises them (recorded in robustness.json)."""
    table: dict[str, dict[str, object]] = {}
    for name, make in CORRUPTIONS.items():
        args = [make(s - 1, side).to_dict()["transform"] for s in SEVERITIES]
        table[name] = {
            "transform": args[0]["__class_fullname__"],
            "severities": [{k: v for k, v in a.items() if k != "__class_fullname__"} for a in args],
        }
    return table
