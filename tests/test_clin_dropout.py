"""data.clin_dropout_p: training cases lose their clinical image (the missing image) with
probability p, seeded by (seed, epoch, index), on the CPU loaders and the device pipeline
alike, never in valid or test; and the setting is part of a result's identity and name."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import torch

from src.config import DataConfig, job_suffix
from src.data.clin_dropout import clin_dropped
from src.data.datamodule import Derm7ptDataModule
from src.models.names import describe
from src.project import compose_config
from src.runs.identity import build_identity, identity_differences, result_settings
from src.runs.summary import run_config_summary

P = 0.4


def _datamodule(release: Path, cache_dir: Path, **overrides) -> Derm7ptDataModule:
    values = dict(root=str(release), image_size=32, batch_size=16, eval_batch_size=64)
    values.update(num_workers=0, cache="disk", cache_dir=str(cache_dir), augment_p=0.0)
    values.update(overrides)
    datamodule = Derm7ptDataModule(DataConfig(**values), seed=3)
    datamodule.setup()
    return datamodule


def _missing(clinic: torch.Tensor) -> torch.Tensor:
    """bool [B]: which clinical images are the missing image (all zeros once normalised)."""
    return (clinic == 0).flatten(1).all(1)


BATCHES = 8  # of 16 cases: enough draws to see p, cheap to load


def _batches(datamodule: Derm7ptDataModule, loader) -> list[tuple]:
    return [datamodule.on_after_batch_transfer(b, 0) for b in islice(loader, BATCHES)]


def _epoch(datamodule: Derm7ptDataModule, epoch: int) -> tuple[list, list[tuple]]:
    """The sampler's (epoch, index) keys and the first batches of a training epoch."""
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader.sampler), _batches(datamodule, loader)


def test_training_cases_lose_their_clinical_image_by_seed_epoch_and_index(
    synthetic_release: Path, tmp_path: Path
) -> None:
    cpu = _datamodule(synthetic_release, tmp_path, clin_dropout_p=P)
    keys, batches = _epoch(cpu, 1)
    dropped = torch.cat([_missing(clinic) for clinic, *_ in batches])
    expected = torch.tensor([clin_dropped(3, e, i, P) for e, i in keys[: len(dropped)]])
    assert torch.equal(dropped, expected)  # each case's draw, in loader order
    assert 0.25 < dropped.float().mean() < 0.55  # about p of the 128 cases
    assert not any(_missing(derm).any() for _, derm, *_ in batches)  # dermoscopy never
    again = torch.cat([_missing(c) for c, *_ in _epoch(cpu, 1)[1]])
    other_epoch = torch.cat([_missing(c) for c, *_ in _epoch(cpu, 2)[1]])
    assert torch.equal(again, dropped) and not torch.equal(other_epoch, dropped)

    device = _datamodule(synthetic_release, tmp_path, clin_dropout_p=P, device_pipeline=True)
    device_keys, device_batches = _epoch(device, 1)
    assert device_keys == keys
    assert all(  # the device pipeline drops the same cases, the same pixels otherwise
        torch.equal(a, b) for x, y in zip(batches, device_batches) for a, b in zip(x, y)
    )
    for loader in (device.split_dataloader("test"), device.val_dataloader()):
        assert not any(_missing(c).any() for c, *_ in _batches(device, loader))  # never evaluation


def _identity(*overrides: str) -> dict:
    cfg = compose_config(["experiment=demo", *overrides])
    return build_identity(result_settings(cfg), "data", {"clin": "random"}, None)


def test_clin_dropout_is_part_of_the_identity_and_the_name() -> None:
    base, dropped = _identity(), _identity("data.clin_dropout_p=0.3")
    assert identity_differences(dropped, base) == ["data.clin_dropout_p: <unset> -> 0.3"]
    assert dropped["configuration"] != base["configuration"]  # never one report row
    assert job_suffix(["data.clin_dropout_p=0.3"]) == "_data.clin_dropout_p-0.3"  # sweep folder
    summary = run_config_summary(compose_config(["experiment=demo", "data.clin_dropout_p=0.3"]))
    assert summary["clin_dropout_p"] == 0.3 and describe(summary).endswith(" clin-dropout 0.3")
    assert "clin_dropout_p" not in run_config_summary(compose_config(["experiment=demo"]))
