"""The LightningModule: the network it builds from the config's spec, what its checkpoints keep."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from src.benchmarks.training import batch_loader, random_batch
from src.inference.predictor import module_from_checkpoint
from src.models.module import AMMFMModule
from src.models.network import validate_network_config
from src.utils.checkpoints import read_checkpoint
from tests.specs import DERM7PT, NUM_CLASSES
from tests.train_helpers import tiny_config


def test_block_summary_reports_the_configured_blocks(tmp_path: Path, one_thread) -> None:
    blocks = ("fusion=sff", "block=bab", "block.stages=[1,3]", "block.gate=zero")
    cfg = tiny_config(tmp_path, tmp_path / "run", blocks)  # no data is read
    torch.manual_seed(0)
    module = AMMFMModule(cfg, DERM7PT)
    assert module.network_spec == validate_network_config(cfg)
    summary = module.block_summary(batch_loader(random_batch(2, 32, NUM_CLASSES), 1))
    assert (summary["type"], summary["gate"], summary["stages"]) == ("bab", "zero", [1, 3])
    assert set(summary["refinement"]) == set(summary["clin_refinement"]) == {"1", "3"}
    assert summary["gates"] == {"1": {"clin": 0.0, "derm": 0.0}, "3": {"clin": 0.0, "derm": 0.0}}


def test_checkpoint_keeps_the_whole_resolved_config(tiny_ckpt: Path) -> None:
    ckpt = read_checkpoint(tiny_ckpt)
    stored = ckpt["hyper_parameters"]["cfg"]
    assert {"seed", "model", "data", "backbone", "fusion", "block", "trainer"} <= set(stored)
    module = module_from_checkpoint(tiny_ckpt)
    assert OmegaConf.to_container(module.cfg.data) == stored["data"]  # provenance, unchanged
    assert module.recipe == module.cfg.model and module.seed == stored["seed"]
    weights = module.state_dict()
    assert weights.keys() == ckpt["state_dict"].keys()
    assert all(torch.equal(weights[k], v) for k, v in ckpt["state_dict"].items())
