"""LightningDataModules over paired clinical/dermoscopy datasets with official splits.

`PairDataModule` makes the batches (image cache, transforms, seeded sampling, device
pipeline); each subclass reads one dataset format into cases labelled by the dataset's task spec
(`data.tasks`), which the datamodule owns and hands to the network, metrics and outputs:
`Derm7ptDataModule` (a derm7pt release_v0 folder, real or synthetic) and, in
src/data/paired_csv.py, `PairedCSVDataModule` (one CSV of pairs). `data._target_` names the
class; `build_datamodule` makes it.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class
from lightning import LightningDataModule
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch.utils.data import DataLoader, get_worker_info

from src.config import DataConfig
from src.data.cache import ImageCache, check_cache_mode
from src.data.cases import SPLITS, Case, Release
from src.data.dataset import PairDataset
from src.data.derm7pt import check_data_root, load_release
from src.data.device_batches import DEVICE_SPLITS, DeviceImages, is_key_batch
from src.data.images import ImageLimits
from src.data.sampling import EpochShuffleSampler, shard_sampler
from src.data.synthetic import generate_synthetic_release
from src.data.tasks import TaskSpec, load_task_spec
from src.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Stats, eval_transform, train_transform
from src.utils.errors import UserError

log = logging.getLogger(__name__)

IMAGENET_STATS: Stats = (IMAGENET_MEAN, IMAGENET_STD)


def as_data_config(cfg: DataConfig | DictConfig | dict[str, Any]) -> DataConfig:
    """Validate a data config against the DataConfig schema (defaults fill missing keys)."""
    if not isinstance(cfg, DataConfig):
        try:
            plain = (
                OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
            )
            cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), plain))  # type: ignore[assignment]
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None)
            where = f"data.{key}" if key else "data config"
            raise UserError(f"{where}: {str(err).splitlines()[0]}") from None
    check_cache_mode(cfg.cache)
    return cfg  # type: ignore[return-value]


def datamodule_class(cfg: DataConfig | DictConfig | dict[str, Any]) -> type[PairDataModule]:
    """The PairDataModule subclass `data._target_` names; one line when it names none."""
    target = as_data_config(cfg)._target_
    try:
        cls = get_class(target)
    except Exception:  # Hydra wraps the import error in its own
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, PairDataModule)):
        raise UserError(
            f"data._target_={target}: not a datamodule class of this project; use "
            "src.data.datamodule.Derm7ptDataModule or src.data.paired_csv.PairedCSVDataModule"
        )
    return cls


def build_datamodule(
    cfg: DataConfig | DictConfig | dict[str, Any],
    norm_stats: dict[str, Stats] | None = None,
    seed: int | None = None,
) -> PairDataModule:
    """The datamodule of `cfg` (a `data` node), normalising each stream with `norm_stats` and
    shuffling and augmenting from `seed` (the run's)."""
    stats = norm_stats or {}
    return datamodule_class(cfg)(
        cfg,
        clin_stats=stats.get("clin", IMAGENET_STATS),
        derm_stats=stats.get("derm", IMAGENET_STATS),
        seed=seed,
    )


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and `random` in each worker (augmentation is seeded per sample)."""
    info = get_worker_info()
    assert info is not None
    seed = info.seed % 2**32
    np.random.seed(seed)
    random.seed(seed)


class PairDataModule(LightningDataModule):
    """Batches of (clinic float[B,3,S,S], derm float[B,3,S,S], labels long[B,T], meta long[B,M]):
    T the tasks and M the metadata columns of `self.tasks`. Subclasses implement `check_local`,
    `generate`, `fingerprint_files` and `load`."""

    def __init__(
        self,
        cfg: DataConfig | DictConfig,
        clin_stats: Stats = IMAGENET_STATS,
        derm_stats: Stats = IMAGENET_STATS,
        seed: int | None = None,
    ):
        super().__init__()
        self.cfg = as_data_config(cfg)
        self.tasks: TaskSpec = load_task_spec(self.cfg.tasks)
        # The seed of shuffling and augmentation (the run's seed). None: the global generator's
        # initial seed when the first loader is made, kept for every later loader.
        self.seed = seed
        self.clin_stats = clin_stats
        self.derm_stats = derm_stats
        self.release: Release | None = None
        self.datasets: dict[str, PairDataset] = {}
        self.device_images: DeviceImages | None = None  # data.device_pipeline=true

    def normalize_with(self, norm_stats: dict[str, Stats]) -> None:
        """Normalise each stream with its backbone's statistics (before `setup`)."""
        if self.release is not None:
            raise RuntimeError("normalize_with must come before setup")
        self.clin_stats = norm_stats.get("clin", IMAGENET_STATS)
        self.derm_stats = norm_stats.get("derm", IMAGENET_STATS)

    @classmethod
    def check_local(cls, cfg: DataConfig) -> None:
        """The cheap local checks (the data is there, in its layout) that come before anything
        is built or fetched; a synthetic dataset not generated yet passes."""
        raise NotImplementedError

    @classmethod
    def generate(cls, root: Path, seed: int) -> None:
        """Write the synthetic stand-in of this format at `root`."""
        raise NotImplementedError

    @classmethod
    def fingerprint_files(cls, cfg: DataConfig) -> list[tuple[str, Path]]:
        """(name, path) of every file a run reads: what the data fingerprint hashes."""
        raise NotImplementedError

    def load(self) -> Release:
        """The cases and splits of the dataset, labelled by `self.tasks`."""
        raise NotImplementedError

    @classmethod
    def ensure_root(cls, cfg: DataConfig) -> Path:
        """The data folder; a synthetic one is generated first if asked for and not there yet."""
        root = Path(cfg.root).expanduser()
        if cfg.synthetic and not root.exists():
            log.info(
                "creating the synthetic %s dataset at %s (seed %d)",
                cfg.name,
                root,
                cfg.synthetic_seed,
            )
            cls.generate(root, cfg.synthetic_seed)
        return root

    def prepare_data(self) -> None:
        self.ensure_root(self.cfg)

    def setup(self, stage: str | None = None) -> None:
        if self.release is not None:
            return
        cfg = self.cfg
        self.ensure_root(cfg)
        release = self.load()
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else release.root / ".cache"
        limits = ImageLimits(cfg.max_image_pixels, cfg.min_image_side)
        images = ImageCache(cfg.image_size, cfg.cache, cache_dir, release.images_dir, limits)
        paths = [p for cases in release.splits.values() for c in cases for p in (c.clinic, c.derm)]
        threads = min(max(1, cfg.num_workers), os.cpu_count() or 1)
        images.warm(paths, threads=threads)
        size, clin, derm = cfg.image_size, self.clin_stats, self.derm_stats
        for split, cases in release.splits.items():
            if split == "train" and cfg.augment:
                transform = train_transform(size, clin, derm, cfg.augment_p, cfg.photometric)
            else:
                transform = eval_transform(size, clin, derm)
            dropout = cfg.clin_dropout_p if split == "train" else 0.0  # never valid/test
            self.datasets[split] = PairDataset(cases, images, transform, clin_dropout_p=dropout)
        if cfg.device_pipeline:
            self.device_images = DeviceImages(
                self.datasets,
                {"clin": clin, "derm": derm},
                cfg.augment,
                cfg.augment_p,
                cfg.photometric,
                cfg.clin_dropout_p,
            )
        self.release = release

    def cases(self, split: str) -> list[Case]:
        """The cases of `split` ("train", "valid", "test") in dataloader order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.setup()
        return list(self.datasets[split].cases)

    def _data_seed(self) -> int:
        """The seed every loader of this datamodule uses, fixed on first use.

        Never re-read from the global generator: the module re-seeds it every epoch, so a
        loader Lightning makes later (`reload_dataloaders_every_n_epochs`, another `fit`)
        would otherwise shuffle and augment from another seed.
        """
        if self.seed is None:
            self.seed = torch.initial_seed() % 2**31
        return self.seed

    def _shard(self) -> tuple[int, int]:
        """(processes, this process's rank) of the attached trainer; (1, 0) without one.

        Each loader shards itself (the trainer presets set `use_distributed_sampler: false`),
        so training keeps its (seed, epoch) order and evaluation can be put back in order.
        """
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, split: str, batch_size: int, train: bool, sharded: bool) -> DataLoader:
        self.setup()
        dataset: Any = self.datasets[split]
        workers = self.cfg.num_workers
        keys = sharded and self.device_images is not None and split in DEVICE_SPLITS
        if keys:  # the images are on the device: the loader only deals out keys
            assert self.device_images is not None
            dataset, workers = self.device_images.key_dataset(split), 0
        replicas, rank = self._shard() if sharded else (1, 0)
        sampler: Any = None if train else shard_sampler(dataset, replicas, rank)
        if train:
            # Order and augmentation depend on (seed, epoch, index) only, so a run resumed
            # from a checkpoint replays exactly the epochs an uninterrupted run would see.
            # The epoch travels with every index, so workers may persist across epochs.
            # The epoch Lightning will pass to `set_epoch` next (after a resume from an
            # end-of-epoch checkpoint this is current_epoch + 1): the first batch is prefetched
            # before that call.
            trainer = self.trainer
            epoch = trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0
            seed = self._data_seed()
            self.datasets[split].seed = seed
            if self.device_images is not None:
                self.device_images.seed = seed
            sampler = EpochShuffleSampler(dataset, seed, epoch, replicas, rank)
        samples = len(sampler) if sampler is not None else len(dataset)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=train and samples >= batch_size,
            num_workers=workers,
            pin_memory=self.cfg.pin_memory and not keys,
            persistent_workers=workers > 0 and self.cfg.persistent_workers,
            worker_init_fn=_seed_worker if workers > 0 else None,
            # A private generator: creating an iterator must not draw from the global RNG,
            # or dropout would depend on when Lightning happens to create it (fresh vs resumed).
            generator=torch.Generator().manual_seed(self._data_seed()),
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """With data.device_pipeline, a batch of keys becomes images here, on the device."""
        if self.device_images is not None and is_key_batch(batch):
            return self.device_images.batch(batch)
        return batch

    def split_dataloader(self, split: str) -> DataLoader:
        """All of `split` ("valid" or "test") in case order on this process, whatever the
        trainer's processes: for evaluating a trained model once."""
        if split not in ("valid", "test"):
            raise ValueError(f"split_dataloader serves 'valid' or 'test', not {split!r}")
        return self._loader(split, self.cfg.eval_batch_size, train=False, sharded=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.cfg.batch_size, train=True, sharded=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", self.cfg.eval_batch_size, train=False, sharded=True)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.cfg.eval_batch_size, train=False, sharded=True)


class Derm7ptDataModule(PairDataModule):
    """A derm7pt release_v0 folder (meta/meta.csv, the three index files, images/), real or
    the synthetic stand-in (`data.synthetic=true`)."""

    @classmethod
    def check_local(cls, cfg: DataConfig) -> None:
        check_data_root(cfg.root, cfg.synthetic)

    @classmethod
    def generate(cls, root: Path, seed: int) -> None:
        generate_synthetic_release(root, seed=seed)

    @classmethod
    def fingerprint_files(cls, cfg: DataConfig) -> list[tuple[str, Path]]:
        root = Path(cfg.root).expanduser()
        return files_under(root, ("meta", "images"))

    def load(self) -> Release:
        return load_release(self.cfg.root, self.tasks, self.cfg.drop_duplicate_pairs)


def files_under(root: Path, folders: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(path relative to `root`, path) of every file under `root/<folder>`, hidden folders
    skipped, sorted."""
    found: list[tuple[str, Path]] = []
    for top in folders:
        for folder, dirs, names in os.walk(root / top):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                path = Path(folder) / name
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)
