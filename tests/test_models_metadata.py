"""Patient metadata into the fusion head: chosen from the task spec, leaky columns refused
unless allowed and then flagged, one-hot with unknown values as zeros."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.models.metadata import MetadataEncoding, select_metadata
from src.models.network import build_network, validate_network_config
from src.project import compose_config
from src.train import train
from src.utils.errors import UserError
from tests.specs import DERM7PT, NUM_CLASSES
from tests.train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_columns_are_checked_against_the_spec() -> None:
    assert select_metadata(["sex", "elevation"], False, DERM7PT, "aff") == [(1, 2), (0, 3)]
    assert select_metadata([], False, DERM7PT, "derm_only") == []
    with pytest.raises(UserError, match=r"'age' is not a metadata column .*elevation, sex"):
        select_metadata(["age"], False, DERM7PT, "aff")
    with pytest.raises(UserError, match=r"management leaks the labels.*allow_leaky_metadata"):
        select_metadata(["sex", "management"], False, DERM7PT, "aff")
    assert select_metadata(["management"], True, DERM7PT, "sff") == [(3, 3)]
    with pytest.raises(UserError, match=r"fusion=derm_only has none"):
        select_metadata(["sex"], False, DERM7PT, "derm_only")
    with pytest.raises(UserError, match=r"repeats a column"):
        select_metadata(["sex", "sex"], False, DERM7PT, "aff")


def test_one_hot_with_unknown_as_zeros() -> None:
    encode = MetadataEncoding([(2, 3), (0, 2)])
    meta = torch.tensor([[1, 9, 2], [-1, 9, -1]])
    assert encode(meta).tolist() == [[0, 0, 1, 0, 1], [0, 0, 0, 0, 0]]


def test_metadata_changes_only_the_fusion_branch() -> None:
    cfg = compose_config(
        ["fusion=aff", "block=cat", "backbone=mobilenet", "backbone.pretrained=false"]
    )
    torch.manual_seed(0)
    net = build_network(
        validate_network_config(cfg), NUM_CLASSES, load_weights=False, metadata=[(0, 3), (1, 2)]
    ).eval()
    plain_width = net.heads["clin"].mlp[0].in_features + net.heads["derm"].mlp[0].in_features
    assert net.heads["fusion"].mlp[0].in_features == plain_width + 5
    clinic, derm = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    a = net(clinic, derm, torch.tensor([[0, 0], [0, 0]]))
    b = net(clinic, derm, torch.tensor([[2, 1], [2, 1]]))
    assert torch.equal(a["clin"], b["clin"]) and torch.equal(a["derm"], b["derm"])
    assert not torch.allclose(a["fusion"], b["fusion"])
    with pytest.raises(ValueError, match="pass meta"):
        net(clinic, derm)


def test_a_leaky_run_is_allowed_only_on_request_and_then_flagged(
    synthetic_release: Path, tmp_path: Path
) -> None:
    refused = tiny_config(synthetic_release, tmp_path / "refused", ["model.metadata=[management]"])
    with pytest.raises(UserError, match="management leaks the labels"):
        train(refused)
    assert not (tmp_path / "refused").exists()  # refused before anything is written
    overrides = ["model.metadata=[sex,management]", "model.allow_leaky_metadata=true"]
    metrics = train(tiny_config(synthetic_release, tmp_path / "run", overrides))
    assert metrics["metadata"] == {"columns": ["sex", "management"], "leaky": ["management"]}
    assert metrics["config"]["leaky_metadata"] == ["management"]
    assert metrics["identity"]["settings"]["model.metadata"] == ["sex", "management"]
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    from src.reporting.naming import describe

    assert describe(stored["config"]).endswith("+meta sex,management [LEAKY metadata: management]")
