"""What a run prints that is not the user's business is quieted, and nothing else: Lightning's
advertisement, repeated device lines, its LeafSpec deprecation, the model summary's FLOPs."""

from __future__ import annotations

import logging
import warnings

import lightning as L
import pytest
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities import rank_zero_deprecation, rank_zero_warn

from src.runs.model_summary import ParamSummary
from src.utils.logging_setup import quiet_library_noise, route_lightning_logs_to_root


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        **kwargs,
    )


def test_device_lines_once_no_tip(caplog: pytest.LogCaptureFixture) -> None:
    route_lightning_logs_to_root()
    quiet_library_noise()
    with caplog.at_level(logging.INFO):
        _trainer(enable_model_summary=False)
        _trainer(enable_model_summary=False)  # the evaluation's second trainer
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "Tip" in m or "litlogger" in m]
    assert len([m for m in messages if m.startswith("GPU available:")]) <= 1


def test_only_the_leafspec_deprecation_is_silenced() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_noise()
        rank_zero_deprecation(
            "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)"
            " and treespec.is_leaf()` instead."
        )
        rank_zero_warn("a warning the user needs")
    assert [str(w.message) for w in caught] == ["a warning the user needs"]


def test_model_summary_has_no_flops(caplog: pytest.LogCaptureFixture) -> None:
    route_lightning_logs_to_root()
    quiet_library_noise()
    with caplog.at_level(logging.INFO):
        trainer = _trainer(callbacks=[ParamSummary(max_depth=1)], max_steps=1, limit_val_batches=0)
        trainer.fit(BoringModel())
    (summary,) = [r.getMessage() for r in caplog.records if r.name == "src.runs.model_summary"]
    assert not [r for r in caplog.records if "already configured" in r.getMessage()]
    assert "layer" in summary and "Params" in summary and "trainable" in summary
    assert "FLOPs" not in summary
