"""The robustness probe (`python -m src.probe`, `probe=true`): the as_is condition repeats the
run's evaluation, every condition is seeded, and each changes only the image it names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.conditions import (
    AS_IS,
    MISSING_MEAN,
    MISSING_SHUFFLED,
    NONE,
    Condition,
    ConditionDataset,
    derangement,
    probe_conditions,
)
from src.data.corruptions import CORRUPTIONS, SEVERITIES
from src.data.datamodule import build_datamodule
from src.probe import probe_checkpoint
from src.project import compose_config
from src.reporting.aggregate import group_runs
from src.reporting.reliance import DROPS, reliance, run_drops
from src.reporting.runs import find_runs
from src.runs.files import METRICS_FILE, ROBUSTNESS_FILE, ROBUSTNESS_PLOT
from src.train import train
from src.utils.errors import UserError
from tests.train_helpers import tiny_config

MISSING_ONLY = "kinds=[missing_mean,missing_shuffled]"


@pytest.fixture(scope="module")
def trained_run(synthetic_release: Path, tmp_path_factory: pytest.TempPathFactory, one_thread):
    """A tiny AFF + AAB run, trained (one epoch) and evaluated by src.train (metrics.json,
    final.ckpt)."""
    run_dir = tmp_path_factory.mktemp("probe") / "aff-aab"
    train(tiny_config(synthetic_release, run_dir, ["trainer.max_epochs=1", "model.swa_epochs=0"]))
    return run_dir


def _probe(run_dir: Path, *overrides: str) -> dict:
    """src.probe's recipe on the probe config composed as the command line would."""
    ckpt = run_dir / "checkpoints" / "final.ckpt"
    cfg = compose_config([f"ckpt_path={ckpt}", *overrides], "probe", hydra_config=True)
    return probe_checkpoint(cfg)


@pytest.fixture(scope="module")
def probed_run(trained_run: Path) -> tuple[Path, dict]:
    """The run probed with the missing-image conditions into its own folder (the default)."""
    return trained_run, _probe(trained_run, MISSING_ONLY)


def test_as_is_is_the_run_evaluation_and_two_calls_agree(probed_run, tmp_path: Path):
    trained_run, first = probed_run
    metrics = json.loads((trained_run / METRICS_FILE).read_text())
    as_is = first["conditions"][0]
    assert (as_is["modality"], as_is["kind"], as_is["severity"]) == (NONE, AS_IS, 0)
    assert as_is["avg_auc"] == pytest.approx(metrics["avg_auc"], abs=1e-6)
    assert as_is["avg_acc"] == pytest.approx(metrics["avg_acc"], abs=1e-6)
    for branch, block in as_is["branches"].items():
        assert block["avg_auc"] == pytest.approx(metrics["branches"][branch]["avg_auc"], abs=1e-6)
    assert first["fusion_weights"] == metrics["fusion_weights"]
    assert first["split"] == "test" and first["n_cases"] == metrics["n"]
    kinds = [(c["modality"], c["kind"]) for c in first["conditions"][1:]]
    assert kinds == [(m, k) for m in ("clinic", "derm") for k in (MISSING_MEAN, MISSING_SHUFFLED)]
    assert set(as_is["branches"]) == {"derm", "clin", "fusion"}
    written = json.loads((trained_run / ROBUSTNESS_FILE).read_text())
    assert written["conditions"] == first["conditions"]
    assert (trained_run / ROBUSTNESS_PLOT).stat().st_size > 0

    second = _probe(trained_run, "kinds=[missing_shuffled]", f"out={tmp_path / 'b'}")
    shuffled = [c for c in first["conditions"] if c["kind"] in (AS_IS, MISSING_SHUFFLED)]
    assert second["conditions"] == shuffled  # seeded: exactly the same numbers
    # the missing images change the predictions (a bug that ignored them would not)
    assert {c["avg_auc"] for c in first["conditions"]} != {as_is["avg_auc"]}


def test_bad_kinds_and_missing_checkpoint_are_one_line_errors(trained_run: Path, tmp_path: Path):
    with pytest.raises(UserError, match=r"kinds=.*unknown.*'fog'"):
        _probe(trained_run, "kinds=[fog]", f"out={tmp_path}")
    cfg = compose_config([f"ckpt_path={tmp_path / 'none.ckpt'}"], "probe", hydra_config=True)
    with pytest.raises(UserError, match="no such checkpoint"):
        probe_checkpoint(cfg)


@pytest.fixture(scope="module")
def test_split(synthetic_release: Path, tmp_path_factory: pytest.TempPathFactory):
    """The evaluation dataset of the synthetic test split at 32 px."""
    cfg = tiny_config(synthetic_release, tmp_path_factory.mktemp("split"))
    datamodule = build_datamodule(cfg.data, seed=0)
    datamodule.setup()
    return datamodule.datasets["test"]


def test_each_corruption_changes_only_its_image_and_is_seeded(test_split) -> None:
    clean = ConditionDataset(test_split, Condition(NONE, AS_IS), seed=0)
    for name in CORRUPTIONS:
        for severity in (SEVERITIES[0], SEVERITIES[-1]):
            condition = Condition("clinic", name, severity)
            corrupted = ConditionDataset(test_split, condition, seed=0)
            again = ConditionDataset(test_split, condition, seed=0)
            for i in (0, 7):
                clin, derm, labels, _ = corrupted[i]
                clean_clin, clean_derm, clean_labels, _ = clean[i]
                assert not torch.equal(clin, clean_clin), (name, severity)
                assert torch.equal(derm, clean_derm) and torch.equal(labels, clean_labels)
                assert torch.equal(clin, again[i][0]), (name, severity)
    noise = Condition("derm", "gaussian_noise", 3)
    a, b = (ConditionDataset(test_split, noise, seed=s)[0][1] for s in (0, 1))
    assert not torch.equal(a, b)  # the seed draws the noise


def test_missing_images_are_the_mean_image_or_another_cases(test_split) -> None:
    clean = ConditionDataset(test_split, Condition(NONE, AS_IS), seed=0)
    missing = ConditionDataset(test_split, Condition("derm", MISSING_MEAN), seed=0)
    clin, derm, _, _ = missing[3]
    assert torch.equal(clin, clean[3][0]) and not derm.any()  # zeros once normalised
    shuffled = ConditionDataset(test_split, Condition("clinic", MISSING_SHUFFLED), seed=0)
    partner = shuffled.partner
    assert partner is not None and (partner != np.arange(len(test_split))).all()
    assert sorted(partner.tolist()) == list(range(len(test_split)))
    for i in (0, 5):
        clin, derm, _, _ = shuffled[i]
        assert torch.equal(clin, clean[int(partner[i])][0])
        assert torch.equal(derm, clean[i][1])
    assert (derangement(50, 3) == derangement(50, 3)).all()


def test_the_conditions_cover_every_kind_and_severity() -> None:
    conditions = probe_conditions()
    assert conditions[0] == Condition(NONE, AS_IS)
    per_modality = 2 + len(CORRUPTIONS) * len(SEVERITIES)
    assert len(conditions) == 1 + 2 * per_modality
    assert len(set(conditions)) == len(conditions)
    assert probe_conditions(["jpeg"])[1:] == [
        Condition(m, "jpeg", s) for m in ("clinic", "derm") for s in SEVERITIES
    ]


def test_the_report_reads_the_probe_folder_and_leaves_a_stale_one_out(probed_run, tmp_path: Path):
    """The report's drops are as_is minus each missing condition of the robustness.json the
    probe wrote; one from before a rerun (as_is no longer metrics.json's AVG AUC) is left out."""
    trained_run, document = probed_run
    (record,) = find_runs([trained_run])
    values = {(c["modality"], c["kind"]): c["avg_auc"] for c in document["conditions"]}
    drops = run_drops(record)
    assert drops is not None and set(drops) == set(DROPS)
    for column, key in DROPS.items():
        assert drops[column] == pytest.approx((values[("none", AS_IS)] - values[key]) * 100)
    results, _ = group_runs([record])
    (found,) = reliance(results)
    assert found.drops == {record.seed: drops}

    stale = tmp_path / "stale"
    shutil.copytree(trained_run, stale, ignore=shutil.ignore_patterns("*.ckpt"))
    metrics = json.loads((stale / METRICS_FILE).read_text())
    metrics["avg_auc"] -= 0.01
    (stale / METRICS_FILE).write_text(json.dumps(metrics))
    (record,) = find_runs([stale])
    assert run_drops(record) is None


@pytest.mark.slow
def test_probe_true_after_training_writes_every_condition(synthetic_release: Path, tmp_path: Path):
    """`probe=true`: src.train probes the run it has just evaluated, every condition."""
    run_dir = tmp_path / "run"
    metrics = train(tiny_config(synthetic_release, run_dir, ["probe=true"]))
    document = json.loads((run_dir / ROBUSTNESS_FILE).read_text())
    assert len(document["conditions"]) == len(probe_conditions())
    assert document["conditions"][0]["avg_auc"] == pytest.approx(metrics["avg_auc"], abs=1e-6)
    assert document["checkpoint"] == metrics["checkpoint"]
    assert (run_dir / ROBUSTNESS_PLOT).is_file()
