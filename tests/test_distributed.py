"""Distributed (DDP) training: sharded loaders, whole-split validation, one evaluation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from src.data.sampling import EpochShuffleSampler, shard_sampler, unshard
from src.models.module import AMMFMModule
from src.runs.setup import datamodule_for, trainer_settings
from src.utils.checkpoints import read_checkpoint
from src.utils.distributed import requested_processes
from tests.specs import DERM7PT
from tests.train_helpers import SUBPROCESS_ENV, run_ok, train_command


class _Items:
    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, -1

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


@pytest.mark.parametrize(("n", "replicas"), [(203, 2), (413, 3), (8, 4)])
def test_shuffle_shards_cover_the_single_process_permutation(n: int, replicas: int):
    items = _Items(n)
    whole = EpochShuffleSampler(items, seed=5, epoch=3).indices()
    shards = [EpochShuffleSampler(items, 5, 3, replicas, r).indices() for r in range(replicas)]
    assert list(EpochShuffleSampler(items, 5, 3, replicas, 1)) == [(3, i) for i in shards[1]]
    assert {len(s) for s in shards} == {-(-n // replicas)}  # equal shares: equal step counts
    interleaved = [i for row in zip(*shards, strict=True) for i in row]
    assert interleaved[:n] == whole  # the epoch's order, dealt out round-robin
    assert sorted(set(interleaved)) == list(range(n))
    assert EpochShuffleSampler(items, 5, 4, replicas, 0).indices() != shards[0]  # epochs differ


@pytest.mark.parametrize(("n", "replicas"), [(203, 2), (395, 3), (5, 4), (6, 2)])
def test_unshard_restores_dataset_order_and_drops_the_padding(n: int, replicas: int):
    shares = [list(shard_sampler(range(n), replicas, r)) for r in range(replicas)]
    gathered = torch.tensor(shares)  # what all_gather of each process's indices returns
    assert unshard(gathered, n).tolist() == list(range(n))
    values = torch.tensor([[[i, -i] for i in share] for share in shares])  # [W, n_local, 2]
    assert unshard(values, n)[:, 1].tolist() == [-i for i in range(n)]
    assert shard_sampler(range(n), 1, 0) is None


def test_sync_batchnorm_is_turned_off_where_it_cannot_run():
    ddp = OmegaConf.create({"accelerator": "cpu", "strategy": "ddp", "sync_batchnorm": True})
    assert trainer_settings(ddp).sync_batchnorm is False
    assert ddp.sync_batchnorm is True  # the config itself is left as it was
    gpu = OmegaConf.create({"accelerator": "gpu", "sync_batchnorm": True})
    assert trainer_settings(gpu).sync_batchnorm is True


@pytest.mark.slow  # two training processes: the fast suite checks the sharding above in-process
def test_ddp_on_two_cpu_processes_validates_the_whole_split_and_evaluates_once(
    synthetic_release: Path, tmp_path: Path
):
    run_dir = tmp_path / "ddp"
    run_ok(
        train_command(
            synthetic_release,
            run_dir,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_epochs=1",
            "model.swa_epochs=0",  # the validated weights are the saved ones
            "data.num_workers=0",
            "logger=csv",
        ),
        timeout=1800,  # generous: two training processes on a shared 2-core machine
    )
    # Both processes trained; rank zero alone evaluated and wrote the results.
    assert (run_dir / "train_ddp_process_1.log").is_file()
    logs = (run_dir / "train.log").read_text() + (run_dir / "train_ddp_process_1.log").read_text()
    assert logs.count("test AVG AUC") == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test_cases = len(pd.read_csv(run_dir / "predictions.csv"))
    assert test_cases == 395

    # The validation metrics logged under DDP are those of one process over the whole split.
    logged = pd.read_csv(run_dir / "csv" / "metrics.csv")
    logged = logged.dropna(subset=["val/avg_acc"]).iloc[-1]
    stored = read_checkpoint(Path(metrics["checkpoint"]))
    module = AMMFMModule.from_trained(
        stored["hyper_parameters"]["cfg"], DERM7PT, stored["state_dict"], "t"
    )
    datamodule = datamodule_for(module.cfg, module)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    (single,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    for key in ("val/avg_acc", "val/avg_auc", "val/avg_acc_derm", "val/refinement/stage3"):
        assert logged[key] == pytest.approx(single[key], abs=1e-6), key


@pytest.mark.parametrize(
    ("devices", "processes"), [(1, 1), (2, 2), ("4", 4), ("0,1", 2), ([0, 1, 2], 3), ("cpu", 1)]
)
def test_requested_processes(devices: object, processes: int):
    assert requested_processes(devices) == processes


def test_ddp_in_a_local_multirun_is_refused_in_one_line(tmp_path: Path):
    result = subprocess.run(
        [
            *train_command(tmp_path / "release", tmp_path / "run", "trainer=ddp"),
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "seed=0,1",
            "-m",
        ],
        env={k: v for k, v in SUBPROCESS_ENV.items() if k != "SLURM_NTASKS"},
        capture_output=True,
        text=True,
        timeout=600,  # refused at start-up, but interpreter and Hydra start-up are slow under load
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "trainer.devices=2 in a multirun" in line
    assert not (tmp_path / "release").exists()  # refused before any data was made
