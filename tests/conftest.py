"""Shared fixtures: one small synthetic release per test session, and throw-away copies of it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

# Photos of 80-112 px on the long side: the real format and label structure, generated in seconds.
SMALL_LONG_SIDE = (80, 112)

# The real release's metadata (no images), present next to the repository in development only.
REAL_META_DIR = Path(__file__).resolve().parents[2] / "shared/validation/derm7pt-meta"


@pytest.fixture(scope="session")
def synthetic_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete synthetic release_v0 folder with small images. Treat it as read-only."""
    from src.data.synthetic import generate_synthetic_release

    root = tmp_path_factory.mktemp("data") / "synthetic_release_v0"
    return generate_synthetic_release(root, seed=0, long_side=SMALL_LONG_SIDE)


@pytest.fixture
def release_copy(synthetic_release: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic release to break: meta/ copied, images symlinked per file
    (so deleting or overwriting one image does not touch the shared release)."""
    root = tmp_path / "release_v0"
    shutil.copytree(synthetic_release / "meta", root / "meta")
    shutil.copytree(synthetic_release / "images", root / "images", copy_function=os.symlink)
    return root
