"""src.explain: block maps by forward hooks (outputs unchanged), Grad-CAM of each branch with the
grad-cam package, panels and explain.json on a real checkpoint and the synthetic lesion boxes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from src.config import on_schema
from src.data.derm7pt import load_release
from src.evaluation.explanations import points_at_lesion, summary
from src.explain import run
from src.inference.predictor import module_from_checkpoint
from src.models.block_maps import BlockMaps
from src.models.module import AMMFMModule, stored_tasks
from src.project import compose_config
from src.train import train
from src.utils.checkpoints import read_checkpoint
from src.utils.errors import UserError
from tests.train_helpers import RUN_WEIGHTS, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def explain_cfg(*overrides: str):
    return compose_config(overrides, "explain")


def untrained_copy(ckpt: Path, out: Path, **settings: object) -> Path:
    """A checkpoint of `ckpt`'s configuration with `settings` ({"data.image_size": 64}, as
    keyword arguments with "__" for ".") and fresh weights (seed 0), beside a metrics.json with
    the fusion weights src.predict would read."""
    raw = read_checkpoint(ckpt)
    cfg = on_schema(OmegaConf.create(raw["hyper_parameters"]["cfg"]))
    for key, value in settings.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    torch.manual_seed(0)
    module = AMMFMModule(cfg, stored_tasks(raw["hyper_parameters"], ckpt))
    raw["hyper_parameters"]["cfg"] = OmegaConf.to_container(cfg)
    raw["state_dict"] = module.state_dict()
    out.parent.mkdir(parents=True)
    torch.save(raw, out)
    metrics = {"fusion_weights": RUN_WEIGHTS, "checkpoint": str(out)}
    (out.parent.parent / "metrics.json").write_text(json.dumps(metrics))
    return out


def dermoscopy_gradcam(ckpt: Path, out: Path, n: int) -> dict:
    """The summary entry of P_D's Grad-CAM on the dermoscopy image over the first n test cases."""
    document = run(explain_cfg(f"ckpt_path={ckpt}", "split=test", f"n={n}", f"out={out}"))
    return document["summary"]["gradcam/derm/derm"]


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


@pytest.mark.parametrize(
    ("block", "blocks"),
    [("bab", {"attention": {"clin", "derm"}, "refinement": {"clin", "derm"}}), ("cat", {})],
)
def test_one_pair_shows_the_blocks_of_bab_both_ways_and_of_cat_none(
    tiny_ckpt: Path, synthetic_release: Path, tmp_path: Path, block: str, blocks: dict
) -> None:
    stages = [] if block == "cat" else [0, 1, 2, 3]
    ckpt = untrained_copy(
        tiny_ckpt, tmp_path / "run" / "final.ckpt", block__type=block, block__stages=stages
    )
    case = load_release(synthetic_release).splits["test"][0]
    out = tmp_path / "explain"
    overrides = [f"clinic={case.clinic}", f"derm={case.derm}", "task=PN", f"out={out}"]
    document = run(
        explain_cfg(f"ckpt_path={ckpt}", "fusion_weights={derm:1,clin:1,fusion:1}", *overrides)
    )
    (record,) = document["cases"]
    assert document["task"] == "PN" and list(record["probabilities"]) == ["ABS", "TYP", "ATP"]
    assert record["truth"] is None and (out / record["panel"]).is_file()
    found: dict[str, set[str]] = {}
    for m in record["maps"]:
        found.setdefault(m["kind"], set()).add(m["image"])
        assert m["lesion_area_share"] is not None  # the release's boxes, found by file path
    assert found.pop("gradcam") == {"clin", "derm"}
    assert found == blocks


def test_bad_requests_are_one_line(tiny_ckpt: Path, tmp_path: Path) -> None:
    out = f"out={tmp_path / 'x'}"
    with pytest.raises(UserError, match="give either clinic=<image> derm=<image>, or split="):
        run(explain_cfg(f"ckpt_path={tiny_ckpt}", out))
    with pytest.raises(UserError, match="task=XYZ: the model's task spec 'derm7pt' has the tasks"):
        run(explain_cfg(f"ckpt_path={tiny_ckpt}", "split=test", "task=XYZ", out))
    with pytest.raises(UserError, match=r"cam_stage=7 must be a stage index in 0\.\.3"):
        run(explain_cfg(f"ckpt_path={tiny_ckpt}", "split=test", "cam_stage=7", out))
    assert not (tmp_path / "x").exists()


def test_report_gallery_explains_each_configurations_first_seed(
    tiny_ckpt: Path, tmp_path: Path
) -> None:
    from src.report import write_report
    from src.reporting.runs import find_runs
    from tests.test_report import AMMFM, BASELINE, complete_run

    for seed in (1, 0):
        run_dir = complete_run(tmp_path / f"m{seed}", AMMFM, seed, 0.8)
        ckpt = run_dir / "checkpoints" / "final.ckpt"
        ckpt.parent.mkdir()
        shutil.copyfile(tiny_ckpt, ckpt)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metrics["checkpoint"] = str(ckpt)  # as src.train records it
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    complete_run(tmp_path / "b0", BASELINE, 0, 0.7)  # no checkpoint: no panels, said so
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False, explain_cases=2)
    (document,) = [json.loads(p.read_text()) for p in out.glob("explain/*/explain.json")]
    assert document["checkpoint"] == str(tmp_path / "m0" / "checkpoints" / "final.ckpt")
    assert document["split"] == "test" and len(document["cases"]) == 2
    index = (out / "explain" / "index.md").read_text()
    assert "No panels: no complete run with its final checkpoint on disk" in index
    assert "explain/index.md" in (out / "report.md").read_text()


def test_an_untrained_models_dermoscopy_gradcam_misses_the_lesions(
    tiny_ckpt: Path, tmp_path: Path
) -> None:
    """The pointing game's bar is not passed by chance: fresh weights at 64 px (Grad-CAM at
    stage 1, 8 x 8) do not point at the lesions."""
    untrained = untrained_copy(
        tiny_ckpt, tmp_path / "run" / "checkpoints" / "final.ckpt", data__image_size=64
    )
    entry = dermoscopy_gradcam(untrained, tmp_path / "explain", 8)
    assert entry["cases"] >= 6
    assert not points_at_lesion(entry)


@pytest.mark.slow
def test_a_trained_models_dermoscopy_gradcam_points_at_the_lesions(
    synthetic_release: Path, tmp_path: Path
) -> None:
    """Trained on the synthetic release (64 px, 4 epochs), P_D's Grad-CAM puts more of its mass
    in the lesion than the lesion's area share over the test cases; the same network untrained
    does not."""
    run_dir = tmp_path / "run"
    overrides = [
        "data.image_size=64",
        "data.batch_size=32",
        "trainer.max_epochs=4",
        "trainer.limit_train_batches=1.0",
        "trainer.limit_val_batches=1.0",
        "model.swa_epochs=1",
    ]
    train(tiny_config(synthetic_release, run_dir, overrides))
    trained = run_dir / "checkpoints" / "final.ckpt"
    entry = dermoscopy_gradcam(trained, tmp_path / "trained", 40)
    assert points_at_lesion(entry), entry
    fresh = tmp_path / "fresh" / "checkpoints" / "final.ckpt"
    untrained = untrained_copy(trained, fresh, data__image_size=64)
    assert not points_at_lesion(dermoscopy_gradcam(untrained, tmp_path / "untrained", 40))


def test_the_wandb_panel_count_is_not_part_of_a_results_identity() -> None:
    from src.runs.identity import result_settings

    base = result_settings(compose_config(["data=synthetic"]))
    fewer = result_settings(compose_config(["data=synthetic", "explain.wandb_cases=0"]))
    assert base == fewer and not [key for key in base if key.startswith("explain")]


def test_a_map_uniform_but_for_rounding_is_no_hit() -> None:
    """A near-constant map (mass in the lesion = area share up to float noise) scores no hits
    and misses the pointing game; a map with clearly more mass in the lesion hits."""

    def records(mass: float) -> list[dict]:
        entry = {"map": "m", "mass_in_lesion": mass, "lesion_area_share": 0.264}
        return [{"maps": [entry]} for _ in range(4)]

    flat = summary(records(0.264 + 1e-7))["m"]
    assert flat["hit_rate"] == 0.0 and not points_at_lesion(flat)
    pointing = summary(records(0.46))["m"]
    assert pointing["hit_rate"] == 1.0 and points_at_lesion(pointing)
