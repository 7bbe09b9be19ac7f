"""SWA as the paper describes it: the mean of end-of-epoch weights, BatchNorm refreshed for it."""

from __future__ import annotations

import copy
import math
from itertools import islice
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from lightning.pytorch import Callback
from torch import nn
from torch.optim.swa_utils import update_bn

from src.data.datamodule import Derm7ptDataModule
from src.models.lr_schedule import lr_factor_schedule
from src.models.module import AMMFMModule
from src.models.swa import swa_callback
from src.train import train
from src.utils.checkpoints import read_checkpoint
from tests.specs import DERM7PT
from tests.train_helpers import tiny_config


class EpochRecorder(Callback):
    """Parameters and BatchNorm buffers at the end of every epoch, LR at its start."""

    def __init__(self) -> None:
        self.params: list[list[torch.Tensor]] = []
        self.bn_buffers: list[list[torch.Tensor]] = []
        self.lrs: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.params.append([p.detach().clone() for p in module.parameters()])
        self.bn_buffers.append(_bn_buffers(module))


def _bn_buffers(module: nn.Module) -> list[torch.Tensor]:
    return [
        buf.detach().clone()
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for buf in (m.running_mean, m.running_var)
    ]


class StackedPair(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, pair: torch.Tensor) -> object:
        return self.module(pair[0], pair[1])


def _fit(release: Path, run_dir: Path, overrides: list[str]):
    cfg = tiny_config(release, run_dir, overrides)
    L.seed_everything(cfg.seed, workers=True)
    module = AMMFMModule(cfg, DERM7PT)
    datamodule = Derm7ptDataModule(
        cfg.data,
        clin_stats=module.network.norm_stats["clin"],
        derm_stats=module.network.norm_stats["derm"],
    )
    swa = swa_callback(cfg.model, int(cfg.trainer.max_epochs), int(cfg.seed))
    recorder = EpochRecorder()
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[swa, recorder], logger=False)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, recorder


def test_final_weights_are_the_mean_of_end_of_epoch_weights(synthetic_release, tmp_path):
    # Dropout off, so the BatchNorm pass depends on the data alone and can be recomputed here.
    overrides = ["trainer.max_epochs=3", "model.swa_epochs=2", "model.head.dropout=0"]
    module, trainer, recorder = _fit(synthetic_release, tmp_path, overrides)
    assert trainer.current_epoch == 3 and len(recorder.params) == 3  # no extra epoch

    expected = [(a + b) / 2 for a, b in zip(recorder.params[1], recorder.params[2])]
    final = [p.detach() for p in module.parameters()]
    for got, want in zip(final, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(final, recorder.params[2]))

    # the refresh passes over the batches one epoch trains on: debug=fast limits them to 2
    assert trainer.num_training_batches == 2 < len(trainer.train_dataloader)
    reference = copy.deepcopy(module)
    epoch = islice(trainer.train_dataloader, trainer.num_training_batches)
    update_bn((torch.stack((clin, derm)) for clin, derm, *_ in epoch), StackedPair(reference))
    refreshed, fresh = _bn_buffers(module), _bn_buffers(reference)
    assert len(refreshed) > 0
    for got, want in zip(refreshed, fresh, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert not all(torch.equal(a, b) for a, b in zip(refreshed, recorder.bn_buffers[-1]))


def test_swa_keeps_the_cosine_schedule_unless_swa_lr_is_set(synthetic_release, tmp_path):
    # the schedule is per epoch: one training batch and no validation are enough to read it
    epochs = [
        "trainer.max_epochs=4",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=0",
    ]
    _, _, cosine = _fit(synthetic_release, tmp_path / "a", epochs)
    want = [1e-3 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert cosine.lrs == pytest.approx(want)

    swa_lr = [*epochs, "model.swa_epochs=2", "model.swa_lr=1e-4"]
    _, _, constant = _fit(synthetic_release, tmp_path / "b", [*swa_lr, "model.swa_anneal_epochs=1"])
    assert constant.lrs == pytest.approx([want[0], want[1], 1e-4, 1e-4])


def test_swa_lr_anneals_from_the_cosine_value():
    factor = lr_factor_schedule(10, swa_epochs=4, swa_lr_ratio=0.2, anneal_epochs=2)
    start = 0.5 * (1 + math.cos(math.pi * 6 / 10))
    assert factor(5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 10)))
    assert factor(6) == pytest.approx(start + (0.2 - start) * 0.5)  # half-way (cosine blend)
    assert [factor(e) for e in (7, 8, 9)] == pytest.approx([0.2, 0.2, 0.2])


def test_one_epoch_averaged_over_one_epoch_evaluates_the_trained_weights(
    synthetic_release, tmp_path
):
    overrides = ["callbacks=default", "trainer.max_epochs=1", "model.swa_epochs=1", "test=false"]
    cfg = tiny_config(synthetic_release, tmp_path, overrides)
    train(cfg)
    final = read_checkpoint(tmp_path / "checkpoints" / "final.ckpt")["state_dict"]
    trained = read_checkpoint(tmp_path / "checkpoints" / "epoch000.ckpt")["state_dict"]
    L.seed_everything(cfg.seed)
    initial = dict(AMMFMModule(cfg, DERM7PT).named_parameters())
    assert all(torch.equal(final[name], trained[name]) for name in initial)
    assert sum(not torch.equal(final[name], p) for name, p in initial.items()) > len(initial) // 2
