"""Lesion boxes of the synthetic datasets (lesions.csv beside the dataset's own files): every
image has one, it lies on the lesion, and the loaders and the data fingerprint ignore the file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from src.data.datamodule import Derm7ptDataModule, as_data_config
from src.data.derm7pt import load_release
from src.data.images import decode_rgb
from src.data.lesions import LESIONS_FILE, LesionBox, read_lesion_boxes
from src.data.paired_csv import PairedCSVDataModule
from src.utils.errors import UserError


def _darker_inside(path: Path, box: LesionBox) -> float:
    """Mean brightness outside the box minus inside it (the lesions are darker than skin)."""
    image = decode_rgb(path).astype(np.float32).mean(axis=2)
    inside = box.mask(*image.shape)
    return float(image[~inside].mean() - image[inside].mean())


def test_release_boxes_cover_every_image_and_lie_on_the_lesion(synthetic_release: Path) -> None:
    release = load_release(synthetic_release)
    boxes = read_lesion_boxes(synthetic_release)
    images = {p.resolve() for c in release.cases for p in (c.clinic, c.derm)}
    assert set(boxes) == images  # one box per image file (the 9 duplicate pairs share one)
    for case in release.splits["test"][:8]:
        for path in (case.clinic, case.derm):
            assert _darker_inside(path, boxes[path.resolve()]) > 10
    derm = [boxes[c.derm.resolve()] for c in release.cases]
    clin = [boxes[c.clinic.resolve()] for c in release.cases if c.clinic != c.derm]
    area = lambda b: (b.x1 - b.x0) * (b.y1 - b.y0)  # noqa: E731
    # the dermoscopy view frames the lesion large, the clinical view small
    assert np.mean([area(b) for b in derm]) > 4 * np.mean([area(b) for b in clin])


def test_paired_boxes_and_fingerprints_leave_the_file_out(
    synthetic_release: Path, synthetic_pairs: Path
) -> None:
    rows = list(csv.DictReader((synthetic_pairs / "pairs.csv").open()))
    boxes = read_lesion_boxes(synthetic_pairs)
    assert set(boxes) == {
        (synthetic_pairs / r[c]).resolve() for r in rows for c in ("clinic", "derm")
    }
    derm7pt = as_data_config({"root": str(synthetic_release)})
    names = [name for name, _ in Derm7ptDataModule.fingerprint_files(derm7pt)]
    assert LESIONS_FILE not in names and "meta/meta.csv" in names
    paired = as_data_config(
        {
            "_target_": "src.data.paired_csv.PairedCSVDataModule",
            "root": str(synthetic_pairs),
            "csv": str(synthetic_pairs / "pairs.csv"),
            "tasks": str(synthetic_pairs / "tasks.yaml"),
        }
    )
    names = [name for name, _ in PairedCSVDataModule.fingerprint_files(paired)]
    assert LESIONS_FILE not in names and "<csv>" in names


def test_bad_lesion_file_is_one_line(tmp_path: Path, synthetic_pairs: Path) -> None:
    assert read_lesion_boxes(tmp_path) == {}  # a dataset without boxes (real data)
    shutil.copy(synthetic_pairs / LESIONS_FILE, tmp_path / LESIONS_FILE)
    with (tmp_path / LESIONS_FILE).open("a") as fh:
        fh.write("images/x.jpg,0.5,0.2,0.1,0.9\n")
    with pytest.raises(UserError, match=r"lesions.csv line \d+: the box .* x0 <= x1"):
        read_lesion_boxes(tmp_path)
