"""Shared fixtures: one small synthetic release per test session and throw-away copies of it,
one tiny trained checkpoint per session, and a one-thread torch setting for tiny models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.specs import DERM7PT, NUM_CLASSES

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
# One intra-op thread per test process (child processes inherit it): the suite's networks are
# tiny, the suite runs one process per core (pytest-xdist, `make test`), and a second thread per
# process on a busy machine makes every operation wait for a core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

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


@pytest.fixture(scope="session")
def synthetic_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small second synthetic dataset (paired-CSV layout, 11-class diagnosis and two binary
    findings: src/data/specs/synthetic_lesions.yaml). Treat it as read-only."""
    from src.data.synthetic.paired import generate_synthetic_pairs

    root = tmp_path_factory.mktemp("data") / "synthetic_lesions"
    sizes = {"train": 48, "valid": 30, "test": 40}
    return generate_synthetic_pairs(root, seed=0, sizes=sizes, long_side=SMALL_LONG_SIDE)


@pytest.fixture
def release_copy(synthetic_release: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic release to break: meta/ copied, images symlinked per file
    (so deleting or overwriting one image does not touch the shared release)."""
    root = tmp_path / "release_v0"
    shutil.copytree(synthetic_release / "meta", root / "meta")
    shutil.copytree(synthetic_release / "images", root / "images", copy_function=os.symlink)
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread, and a second thread on a busy 2-core machine can
    stall every operation; the previous setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one_step_checkpoint(release: Path, run_dir: Path, overrides: tuple[str, ...] = ()) -> Path:
    """<run_dir>/checkpoints/final.ckpt of the tiny network (`tiny_config` with `overrides`)
    after one training step (a real Lightning checkpoint), beside a metrics.json holding
    RUN_WEIGHTS."""
    import lightning as L

    from src.benchmarks.training import batch_loader, random_batch
    from src.models.module import AMMFMModule
    from tests.train_helpers import RUN_WEIGHTS, tiny_config

    cfg = tiny_config(release, run_dir, overrides)  # 32 px, TTA views identity + hflip
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    L.seed_everything(0)
    module = AMMFMModule(cfg, DERM7PT)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )
    trainer.fit(module, train_dataloaders=batch_loader(random_batch(4, 32, NUM_CLASSES), 1))
    torch.set_num_threads(before)
    path = run_dir / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(path)
    metrics = {"fusion_weights": RUN_WEIGHTS, "checkpoint": str(path)}  # as src.train records
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory, synthetic_release: Path) -> Path:
    """<run>/checkpoints/final.ckpt of the tiny AFF + AAB MobileNet network after one training
    step (a real Lightning checkpoint), beside a metrics.json holding RUN_WEIGHTS. Read-only."""
    return one_step_checkpoint(synthetic_release, tmp_path_factory.mktemp("tiny") / "run")
