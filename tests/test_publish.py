"""src.publish on two trained seeds: the Hub layout, the round trip through ckpt_path=<folder>
in src.predict / src.export / src.eval's loader, and the refusal of a changed file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from src.inference.predictor import ImagePair, load_predictor
from src.publish import run as publish
from src.train import train
from src.utils.checkpoints import read_checkpoint
from src.utils.errors import UserError
from src.utils.published import MANIFEST_FILE, WEIGHTS_FILE
from tests.specs import ALL_LABELS, AVG_AUC_LABELS, TASK_NAMES
from tests.train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sweep(synthetic_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds of the tiny configuration, as a sweep folder holds them."""
    root = tmp_path_factory.mktemp("sweep")
    for seed in (0, 1):
        overrides = [f"seed={seed}", "trainer.max_epochs=1", "model.swa_epochs=0"]
        train(tiny_config(synthetic_release, root / f"seed{seed}", overrides))
    return root


@pytest.fixture(scope="module")
def published(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    (folder,) = publish([str(sweep), f"out={tmp_path_factory.mktemp('published')}"])
    return folder


def _pairs(release: Path, count: int = 4) -> list[ImagePair]:
    images = sorted((release / "images").rglob("*.jpg"))[: 2 * count]
    return [ImagePair(str(i), images[2 * i], images[2 * i + 1]) for i in range(count)]


def test_layout_card_and_manifest(published: Path, sweep: Path) -> None:
    files = {p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file()}
    per_seed = {"model.safetensors", "config.yaml", "metrics.json", "fusion_weights.json"}
    for seed in (0, 1):
        assert {f"seed{seed}/{name}" for name in (*per_seed, "identity.json")} <= files
    assert {"README.md", "manifest.json", "tasks.json", "metrics.json", "identity.json"} <= files
    manifest = json.loads((published / MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == files - {MANIFEST_FILE}
    # weights only: exactly the checkpoint's tensors, nothing else
    original = read_checkpoint(sweep / "seed0" / "checkpoints" / "final.ckpt")["state_dict"]
    weights = load_file(published / "seed0" / WEIGHTS_FILE)
    assert weights.keys() == original.keys()
    assert all(torch.equal(weights[k], original[k]) for k in original)
    config = yaml.safe_load((published / "seed1" / "config.yaml").read_text())
    assert config["seed"] == 1 and config["data"]["image_size"] == 32
    # mean +- std over the seeds, from the runs' own metrics
    runs = [json.loads((sweep / f"seed{s}" / "metrics.json").read_text()) for s in (0, 1)]
    summary = json.loads((published / "metrics.json").read_text())
    aucs = [100 * m["avg_auc"] for m in runs]
    assert summary["avg_auc"]["mean"] == pytest.approx(sum(aucs) / 2)
    assert summary["avg_auc"]["std"] == pytest.approx(abs(aucs[0] - aucs[1]) / 2**0.5)
    assert set(summary["auc"]) == set(ALL_LABELS)
    valid = [m["valid"]["avg_auc"] for m in runs]
    assert manifest["default_seed"] == summary["default_seed"] == valid.index(max(valid))
    card = (published / "README.md").read_text()
    assert card.startswith("---\n") and "license: mit" in card.split("---")[1]
    assert "not a medical device" in card and f"{summary['avg_auc']['mean']:.1f} ±" in card
    assert all(f"| {label} |" in card for label in ALL_LABELS)
    assert ", ".join(TASK_NAMES) in card  # the task spec's tasks, not a fixed list
    assert len([ln for ln in card.splitlines() if ln.endswith("| yes |")]) == len(AVG_AUC_LABELS)


def test_published_seed_predicts_what_the_checkpoint_predicts(
    published: Path, sweep: Path, synthetic_release: Path
) -> None:
    pairs = _pairs(synthetic_release)
    original = load_predictor(sweep / "seed0" / "checkpoints" / "final.ckpt")
    again = load_predictor(published / "seed0")
    assert again.weights == original.weights and again.views == original.views
    assert torch.equal(again.predict(pairs), original.predict(pairs))
    # the folder itself: its default seed
    default = json.loads((published / MANIFEST_FILE).read_text())["default_seed"]
    chosen = load_predictor(sweep / f"seed{default}" / "checkpoints" / "final.ckpt")
    assert torch.equal(load_predictor(published).predict(pairs), chosen.predict(pairs))


def test_a_changed_file_is_refused_in_one_line(published: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(published, copy)
    weights = copy / "seed0" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"model.safetensors does not match its sha256") as err:
        load_predictor(copy / "seed0")
    assert "\n" not in str(err.value)
    read_checkpoint(copy / "seed1")  # another seed's files are not read, nor checked
    (copy / "seed1" / "fusion_weights.json").unlink()
    with pytest.raises(UserError, match="is missing"):
        read_checkpoint(copy / "seed1")


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="usage"):
        publish([str(tmp_path)])
    with pytest.raises(UserError, match="unknown option 'outt'"):
        publish([str(tmp_path), "outt=x"])
    with pytest.raises(UserError, match="no complete run"):
        publish([str(tmp_path), f"out={tmp_path / 'out'}"])
