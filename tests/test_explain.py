"""src.explain: block maps by forward hooks (outputs unchanged), Grad-CAM of each branch with the
grad-cam package, panels and explain.json on a real checkpoint and the synthetic lesion boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.explain import run
from src.inference.predictor import module_from_checkpoint
from src.models.block_maps import BlockMaps
from src.project import compose_config
from src.utils.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def explain_cfg(*overrides: str):
    return compose_config(overrides, "explain")


def test_block_maps_leave_outputs_unchanged(tiny_ckpt: Path) -> None:
    network = module_from_checkpoint(tiny_ckpt).network
    torch.manual_seed(0)
    clinic, derm = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = network(clinic, derm)
        with BlockMaps(network) as maps:
            during = network(clinic, derm)
        after = network(clinic, derm)
    for branch in before:
        assert torch.equal(before[branch], during[branch])
        assert torch.equal(before[branch], after[branch])
    assert all(not block._forward_hooks for block in network.blocks.values())
    assert sorted(maps.stages) == [0, 1, 2, 3]
    for stage_maps in maps.stages.values():
        mass = stage_maps.attention["clin"]  # AAB: the clinical map only
        assert set(stage_maps.attention) == {"clin"} and set(stage_maps.refinement) == {"derm"}
        assert mass.shape[0] == 2 and mass.sum(dim=(1, 2)) == pytest.approx([1.0, 1.0], abs=1e-4)
        assert (stage_maps.refinement["derm"] >= 0).all()


def test_split_panels_and_numbers(tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "explain"
    doc = run(explain_cfg(f"ckpt_path={tiny_ckpt}", "split=test", "n=3", f"out={out}"))
    saved = json.loads((out / "explain.json").read_text())
    assert saved == json.loads(json.dumps(doc))
    assert doc["task"] == "DIAG" and doc["lesion_boxes"] is True
    assert len(doc["cases"]) == 3
    for case in doc["cases"]:
        assert (out / case["panel"]).is_file()
        names = {m["map"] for m in case["maps"]}
        assert {"gradcam/derm/derm", "gradcam/clin/clin", "gradcam/fusion/derm"} <= names
        assert {f"attention/stage{s}/clin" for s in range(4)} <= names
        assert {f"refinement/stage{s}/derm" for s in range(4)} <= names
        for m in case["maps"]:
            assert 0 < m["lesion_area_share"] < 1
            assert m["mass_in_lesion"] is None or 0 <= m["mass_in_lesion"] <= 1
    with pytest.raises(UserError, match="already exists"):
        run(explain_cfg(f"ckpt_path={tiny_ckpt}", "split=test", "n=1", f"out={out}"))
