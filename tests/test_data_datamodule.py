"""The LightningDataModule: batches, split order, reproducible shuffling, synthetic creation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from lightning import seed_everything
from omegaconf import OmegaConf

import src.data.datamodule as datamodule_module
from src.config import DataConfig
from src.data.datamodule import Derm7ptDataModule, as_data_config
from src.data.derm7pt import load_release
from src.project import compose_config
from src.utils.errors import UserError
from tests.specs import SPLIT_SIZES


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One disk cache for the module's datamodules: only the first set-up decodes JPEGs."""
    return tmp_path_factory.mktemp("cache")


def _cfg(root, cache_dir, **overrides) -> DataConfig:
    values = dict(
        root=str(root),
        image_size=32,
        batch_size=16,
        eval_batch_size=64,
        num_workers=0,
        cache="disk",
        cache_dir=str(cache_dir),
    )
    values.update(overrides)
    return DataConfig(**values)


def _labels(loader) -> torch.Tensor:
    return torch.cat([y for _, _, y, _ in loader])


def test_batches_and_split_order(synthetic_release, cache_dir):
    dm = Derm7ptDataModule(_cfg(synthetic_release, cache_dir))
    dm.setup("fit")
    clin, derm, labels, meta = next(iter(dm.train_dataloader()))
    assert clin.shape == derm.shape == (16, 3, 32, 32)
    assert clin.dtype == derm.dtype == torch.float32 and labels.dtype == torch.long
    assert labels.shape == (16, 8)
    # every metadata column of the derm7pt spec: a category index each (the release has all)
    assert meta.shape == (16, 5) and meta.dtype == torch.long and (meta >= 0).all()
    assert len(dm.train_dataloader()) == SPLIT_SIZES["train"] // 16  # drop_last
    for split, loader in (("valid", dm.val_dataloader()), ("test", dm.test_dataloader())):
        expected = torch.tensor([c.labels for c in dm.cases(split)])
        assert torch.equal(_labels(loader), expected)  # not shuffled, all cases, in order
        first, again = next(iter(loader)), next(iter(loader))
        assert torch.equal(first[1], again[1])  # no augmentation
    release = load_release(synthetic_release)
    assert dm.cases("test") == release.splits["test"]


def test_small_train_split_keeps_its_only_batch(synthetic_release, cache_dir):
    dm = Derm7ptDataModule(_cfg(synthetic_release, cache_dir, batch_size=500))
    assert len(dm.train_dataloader()) == 1  # 413 < 500: drop_last would leave nothing


def test_shuffling_and_augmentation_are_reproducible(synthetic_release, cache_dir):
    def first_batches(seed: int, workers: int):
        seed_everything(seed, workers=True)
        torch.rand(5)  # model initialisation consumes the global generator
        dm = Derm7ptDataModule(_cfg(synthetic_release, cache_dir, num_workers=workers))
        it = iter(dm.train_dataloader())
        return [next(it) for _ in range(2)]

    a, b, c = first_batches(0, 0), first_batches(0, 0), first_batches(1, 0)
    for x, y in zip(a, b):
        assert all(torch.equal(u, v) for u, v in zip(x, y))
    assert not torch.equal(a[0][2], c[0][2])
    w1, w2 = first_batches(0, 2), first_batches(0, 2)
    for x, y in zip(w1, w2):
        assert all(torch.equal(u, v) for u, v in zip(x, y))


def test_epochs_reshuffle(synthetic_release, cache_dir):
    seed_everything(0)
    loader = Derm7ptDataModule(_cfg(synthetic_release, cache_dir)).train_dataloader()
    first = _labels(loader)
    loader.sampler.set_epoch(1)  # what the Trainer does before every epoch
    assert not torch.equal(first, _labels(loader))


def test_an_epoch_replays_identically_in_a_fresh_loader(synthetic_release, cache_dir):
    """What resuming relies on: epoch k's batches depend on (seed, k), not on history."""

    def epoch_batch(history: int, epoch: int):
        seed_everything(0)
        torch.rand(history)  # different amounts of randomness consumed before
        loader = Derm7ptDataModule(_cfg(synthetic_release, cache_dir)).train_dataloader()
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))

    a, b = epoch_batch(history=1, epoch=3), epoch_batch(history=50, epoch=3)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    c = epoch_batch(history=1, epoch=4)
    assert not torch.equal(a[1], c[1])


def test_persistent_workers_serve_each_epoch_like_fresh_ones(synthetic_release, cache_dir):
    """Workers that live across epochs augment epoch 2 as workers started for epoch 2 do
    (the epoch travels with each index), and as the main process does."""

    def epoch_batches(workers: int, persistent: bool, epochs: tuple[int, ...]):
        seed_everything(0)
        cfg = _cfg(synthetic_release, cache_dir, num_workers=workers, persistent_workers=persistent)
        loader = Derm7ptDataModule(cfg).train_dataloader()
        assert loader.persistent_workers is (persistent and workers > 0)
        batches = []
        for epoch in epochs:
            loader.sampler.set_epoch(epoch)
            batches.append(next(iter(loader)))
        return batches

    persistent = epoch_batches(2, True, (0, 1, 2))
    fresh = epoch_batches(2, False, (0, 1, 2))
    main_process = epoch_batches(0, False, (0, 1, 2))
    for p, f, m in zip(persistent, fresh, main_process, strict=True):
        assert all(torch.equal(u, v) and torch.equal(u, w) for u, v, w in zip(p, f, m))
    assert not torch.equal(persistent[1][0], persistent[2][0])  # epochs differ


def test_drop_duplicate_pairs(synthetic_release, cache_dir):
    dm = Derm7ptDataModule(_cfg(synthetic_release, cache_dir, drop_duplicate_pairs=True))
    cases = [c for s in ("train", "valid", "test") for c in dm.cases(s)]
    assert len(cases) == sum(SPLIT_SIZES.values()) - 9
    assert all(c.clinic != c.derm for c in cases)


def test_synthetic_release_is_created_once_and_reused(
    synthetic_release, cache_dir, tmp_path, monkeypatch
):
    calls = []

    def generator(root, seed):  # stands in for the generator (tested on its own): a copy
        calls.append(seed)
        shutil.copytree(synthetic_release, root)
        return root

    monkeypatch.setattr(datamodule_module, "generate_synthetic_release", generator)
    root = tmp_path / "data" / "synthetic_release_v0_seed3"
    cfg = _cfg(root, cache_dir, synthetic=True, synthetic_seed=3)
    dm = Derm7ptDataModule(cfg)
    dm.prepare_data()
    dm.setup()
    assert calls == [3] and len(dm.cases("valid")) == SPLIT_SIZES["valid"]
    again = Derm7ptDataModule(cfg)
    again.prepare_data()
    again.setup()
    assert calls == [3]
    assert again.cases("test") == dm.cases("test")


def test_composed_hydra_config_is_accepted(synthetic_release, cache_dir, tmp_path):
    cfg = compose_config(
        [
            "data=synthetic",
            f"data.root={synthetic_release}",
            "data.image_size=32",
            "data.num_workers=0",
            f"data.cache_dir={cache_dir}",
            f"paths.root_dir={tmp_path}",
        ]
    )
    dm = Derm7ptDataModule(cfg.data)
    assert dm.cfg.synthetic and dm.cfg.root == str(synthetic_release)
    clin, *_ = next(iter(dm.val_dataloader()))
    assert clin.shape == (dm.cfg.eval_batch_size, 3, 32, 32)


def test_bad_config_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="root"):
        as_data_config(OmegaConf.create({"image_size": 32}))
    with pytest.raises(UserError, match="image_size"):
        as_data_config(OmegaConf.create({"root": "x", "image_size": "big"}))
    with pytest.raises(UserError, match=r"data\.cache must be one of"):
        Derm7ptDataModule(_cfg(tmp_path, tmp_path, cache="ram"))


def test_corrupt_jpeg_stops_setup_with_the_file_name(release_copy, tmp_path):
    bad = load_release(release_copy).splits["valid"][3].derm
    bad.unlink()
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UserError) as info:
        Derm7ptDataModule(_cfg(release_copy, tmp_path / "cache")).setup()
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_image_size_limits_come_from_the_data_config(release_copy, tmp_path):
    """data.min_image_side / data.max_image_pixels reach every image read at set-up, whatever
    the cache mode: the file is named with the key to change, before any training."""
    small = load_release(release_copy).splits["train"][0].clinic
    small.unlink()
    from PIL import Image

    Image.new("RGB", (20, 300)).save(small, format="JPEG")
    for mode in ("disk", "none"):
        with pytest.raises(UserError, match=r"data\.min_image_side=32") as info:
            Derm7ptDataModule(_cfg(release_copy, tmp_path / "cache", cache=mode)).setup()
        assert str(small) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match=r"data\.max_image_pixels=5,000"):
        cfg = _cfg(release_copy, tmp_path / "cache", min_image_side=1, max_image_pixels=5000)
        Derm7ptDataModule(cfg).setup()


def _first_batch(root, cache_dir, split: str, **overrides):
    seed_everything(0)
    dm = Derm7ptDataModule(_cfg(root, cache_dir, **overrides))
    loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
    return dm.on_after_batch_transfer(next(iter(loader)), 0)


@pytest.mark.parametrize("split", ["train", "valid"])
def test_device_pipeline_batches_equal_the_loaders_where_nothing_is_random(
    synthetic_release, cache_dir, split
):
    """data.device_pipeline: the same cases in the same order, the same pixels, normalised
    bit for bit as on the CPU, when no augmentation fires (augment_p=0)."""
    cpu = _first_batch(synthetic_release, cache_dir, split, augment_p=0.0)
    device = _first_batch(synthetic_release, cache_dir, split, augment_p=0.0, device_pipeline=True)
    assert all(torch.equal(a, b) for a, b in zip(cpu, device, strict=True))


def test_device_pipeline_augments_by_seed_epoch_and_index(synthetic_release, cache_dir):
    plain = _first_batch(synthetic_release, cache_dir, "train", augment_p=0.0, device_pipeline=True)
    a = _first_batch(synthetic_release, cache_dir, "train", augment_p=1.0, device_pipeline=True)
    b = _first_batch(synthetic_release, cache_dir, "train", augment_p=1.0, device_pipeline=True)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # reproducible
    assert torch.equal(a[2], plain[2]) and not torch.equal(a[1], plain[1])  # same cases, moved
    changed = (a[0] != plain[0]).flatten(1).any(1)
    assert changed.float().mean() > 0.5  # most pairs augmented at p=1 (some draws are no-ops)
