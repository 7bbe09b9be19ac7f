"""Result identity (src/runs/identity.py): one definition of "the same run", used by reuse,
resume, sweep folder names, the report and the W&B group. A finished run folder is reused only
by an identical experiment; everything else is refused with one line naming what differs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from src.config import SPEED_ONLY_KEYS, job_suffix, on_schema, upgrade_settings
from src.data.datamodule import Derm7ptDataModule, as_data_config
from src.data.fingerprint import data_fingerprint
from src.data.tasks import load_task_spec
from src.project import compose_config
from src.runs.files import IDENTITY_FILE, METRICS_FILE
from src.runs.identity import (
    build_identity,
    check_resumable,
    check_reusable,
    identity_differences,
    result_settings,
    upgrade_identity,
)
from src.train import train
from src.utils.errors import UserError
from tests.train_helpers import tiny_config


def test_speed_only_keys_are_exactly_these() -> None:
    """Each key here may differ between a finished run and a re-run that reuses it: adding one
    is a claim that it cannot change a result, so it is a reviewed change of this list."""
    assert {
        "data.num_workers",
        "data.pin_memory",
        "data.persistent_workers",
        "data.cache",
        "data.cache_dir",
        "data.eval_batch_size",
        "data.device_pipeline",
        "data.max_image_pixels",
        "data.min_image_side",
        "model.channels_last",
        "model.compile",
        "model.selection_policies",
        "model.bootstrap_resamples",
        "trainer.check_val_every_n_epoch",
        "trainer.enable_progress_bar",
        "trainer.enable_model_summary",
        "trainer.log_every_n_steps",
        "trainer.num_sanity_val_steps",
        "trainer.default_root_dir",
        "trainer.benchmark",
    } == SPEED_ONLY_KEYS


def _settings(*overrides: str) -> dict[str, object]:
    return {"settings": result_settings(compose_config(["data=synthetic", *overrides]))}


def test_settings_cover_the_trainer_the_model_and_the_data() -> None:
    base = _settings()
    for override, key in [
        ("trainer=gpu_bf16", "trainer.precision"),
        ("+trainer.max_steps=1", "trainer.max_steps"),
        ("+trainer.gradient_clip_val=0.01", "trainer.gradient_clip_val"),
        ("model.lr=0.5", "model.lr"),
        ("model.optimizer=adamw", "model.optimizer"),
        ("data.augment=false", "data.augment"),
        ("data.batch_size=12", "data.batch_size"),
        ("model.tta_views=[identity]", "model.tta_views"),
        ("model.head.dropout=0.1", "model.head.dropout"),
        ("data.drop_duplicate_pairs=true", "data.drop_duplicate_pairs"),
        ("trainer.devices=2", "trainer.devices"),
    ]:
        differences = identity_differences(_settings(override), base)
        assert any(d.startswith(f"{key}:") for d in differences), (override, differences)
    for speed in ("data.num_workers=0", "data.persistent_workers=false", "logger=csv"):
        assert identity_differences(_settings(speed), base) == [], speed
    # a key added later is left out at the value that reproduces the code before it, so a
    # result recorded before it existed stays the same experiment; any other value is recorded
    assert "data.clin_dropout_p" not in base["settings"]
    assert identity_differences(_settings("data.clin_dropout_p=0.3"), base) == [
        "data.clin_dropout_p: <unset> -> 0.3"
    ]
    # paths and weight files enter through their content, not their names
    assert "data.root" not in base["settings"] and "backbone.weights" not in base["settings"]


def _release_fingerprint(root: Path, memo: Path, tasks: str = "derm7pt") -> str:
    files = Derm7ptDataModule.fingerprint_files(as_data_config({"root": str(root)}))
    return data_fingerprint(files, memo, load_task_spec(tasks).digest)


def test_data_fingerprint_follows_content_not_path(release_copy: Path, tmp_path: Path) -> None:
    first = _release_fingerprint(release_copy, tmp_path / "memo")
    assert _release_fingerprint(release_copy, tmp_path / "memo") == first  # memo: same answer
    copy = tmp_path / "copy"
    shutil.copytree(release_copy, copy)
    assert _release_fingerprint(copy, tmp_path / "memo2") == first  # a copy is the same data
    # the same files read with other tasks are other data
    assert _release_fingerprint(copy, tmp_path / "memo2", "synthetic_lesions") != first
    image = next(p for p in sorted((copy / "images").rglob("*")) if p.is_file())
    image.unlink()
    image.write_bytes(b"not the same image")
    assert _release_fingerprint(copy, tmp_path / "memo2") != first
    index = copy / "meta" / "test_indexes.csv"
    index.write_text(index.read_text() + "\n")
    assert _release_fingerprint(copy, tmp_path / "memo3") != first


@pytest.mark.parametrize(
    "overrides",
    [
        ["seed=0", "model.lr=0.001", "trainer=gpu_bf16"],
        ["model.tta_views=[identity,hflip]", "+trainer.max_steps=1", "data.root=/a b/c=d"],
        ["block.stages=[2,3]", "model.weight_grid_step=0.25"],
    ],
)
def test_sweep_folder_names_can_be_given_back_to_hydra(overrides: list[str]) -> None:
    """The folder of a sweep job is accepted back by `hydra.run.dir=` (no `=`, `,`, brackets,
    quotes or spaces), and jobs with other result-changing overrides get other folders."""
    suffix = job_suffix(overrides)
    folder = f"logs/sweeps/x/aff-aab-swin{suffix}/seed0"
    assert "=" not in folder
    parsed = OverridesParser.create().parse_override(f"hydra.run.dir={folder}")
    assert parsed.value() == folder
    assert job_suffix([*overrides, "data.num_workers=0", "logger=csv"]) == suffix  # speed only
    assert job_suffix([*overrides[:-1]]) != suffix


# ---------------------------------------------------------------- reuse and resume, for real
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, synthetic_release: Path) -> Path:
    """One tiny run trained to completion, with epoch checkpoints for resuming."""
    run_dir = tmp_path_factory.mktemp("identity") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        overrides = ["callbacks=default", "keep_resume_checkpoints=true"]
        train(tiny_config(synthetic_release, run_dir, overrides))
    finally:
        torch.set_num_threads(before)
    return run_dir


def _rerun(release: Path, run_dir: Path, *overrides: str) -> dict:
    cfg = tiny_config(release, run_dir, ["callbacks=default", *overrides])
    return train(cfg)


def _weights_file(tmp_path: Path) -> Path:
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "mobilenet.safetensors"
    save_file(timm.create_model("mobilenetv3_small_100").state_dict(), str(path))
    return path


def test_the_run_records_its_identity(finished_run: Path) -> None:
    metrics = json.loads((finished_run / METRICS_FILE).read_text())
    identity = metrics["identity"]
    assert len(identity["digest"]) == 12 and identity["digest"] != identity["configuration"]
    assert identity["weights"] == {"clin": "random", "derm": "random"}
    assert identity["settings"]["model.lr"] == 1e-3 and identity["settings"]["seed"] == 0
    assert len(identity["data"]) == 16
    assert json.loads((finished_run / IDENTITY_FILE).read_text()) == identity
    ckpt = torch.load(finished_run / "checkpoints" / "final.ckpt", weights_only=True)
    assert ckpt["identity"] == identity


def test_a_finished_folder_is_reused_only_by_the_same_experiment(
    finished_run: Path, synthetic_release: Path, tmp_path: Path
) -> None:
    saved = (finished_run / METRICS_FILE).read_text()
    # speed-only keys: the finished result is returned, nothing is retrained
    for speed in ["data.num_workers=0", "data.persistent_workers=false", "data.cache=none"]:
        assert _rerun(synthetic_release, finished_run, speed) == json.loads(saved), speed
    other_release = tmp_path / "release"
    shutil.copytree(synthetic_release, other_release, ignore=shutil.ignore_patterns(".cache"))
    (other_release / "meta" / "valid_indexes.csv").write_text(
        (other_release / "meta" / "valid_indexes.csv").read_text() + "\n"
    )
    cases = {
        "data fingerprint": [f"data.root={other_release}"],
        "weights.derm": [f"backbone.weights={_weights_file(tmp_path)}"],
        "trainer.deterministic": ["trainer=default"],
        "trainer.max_steps": ["+trainer.max_steps=1"],
        "model.lr": ["model.lr=0.5"],
        "data.augment": ["data.augment=false"],
        "model.tta_views": ["model.tta_views=[identity]"],
        "data.clin_dropout_p": ["data.clin_dropout_p=0.3"],
    }
    for key, overrides in cases.items():
        release = other_release if key == "data fingerprint" else synthetic_release
        cfg = tiny_config(release, finished_run, ["callbacks=default", *overrides])
        with pytest.raises(UserError, match="another experiment") as err:
            train(cfg)
        assert key in str(err.value) and "\n" not in str(err.value), key
    assert (finished_run / METRICS_FILE).read_text() == saved  # nothing was overwritten


def test_resuming_with_other_settings_is_refused_and_writes_nothing(
    finished_run: Path, synthetic_release: Path
) -> None:
    before = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file()}
    cfg = tiny_config(
        synthetic_release, finished_run, ["callbacks=default", "ckpt_path=last", "model.lr=0.5"]
    )
    with pytest.raises(UserError, match=r"model\.lr: 0\.001 -> 0\.5"):
        train(cfg)
    after = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file()}
    assert after == before


def test_a_run_is_not_resumed_with_clinical_dropout(
    finished_run: Path, synthetic_release: Path
) -> None:
    overrides = ["callbacks=default", "ckpt_path=last", "data.clin_dropout_p=0.3"]
    with pytest.raises(UserError, match=r"data\.clin_dropout_p: <unset> -> 0\.3"):
        train(tiny_config(synthetic_release, finished_run, overrides))


# ------------------------------------------------------- results recorded in an earlier layout
# The result settings of the tiny run (`tiny_config`, callbacks=default) as the code recorded
# them while the clinical backbone was `fusion.clin_*` (before it was conf/backbone a second
# time, as clin_backbone): copied from that code's identity.json of this run.
OLD_LAYOUT_TINY: dict[str, object] = {
    "data._target_": "src.data.datamodule.Derm7ptDataModule",
    "data.name": "synthetic",
    "data.case_column": "case_id",
    "data.clinic_column": "clinic",
    "data.derm_column": "derm",
    "data.split_column": "split",
    "data.synthetic": False,
    "data.synthetic_seed": 0,
    "data.image_size": 32,
    "data.batch_size": 8,
    "data.drop_duplicate_pairs": False,
    "data.augment": True,
    "data.augment_p": 0.5,
    "data.photometric": "clin",
    "backbone.name": "mobilenetv3_small_100",
    "backbone.pretrained": False,
    "backbone.pretrained_tag": "lamb_in1k",
    "backbone.drop_path_rate": 0.0,
    "fusion.mode": "aff",
    "fusion.clin_backbone": "mobilenetv3_small_100",
    "fusion.clin_pretrained_tag": "lamb_in1k",
    "fusion.clin_drop_path_rate": 0.0,
    "block.type": "aab",
    "block.stages": [0, 1, 2, 3],
    "block.qk_reduction": 8,
    "block.gate": "none",
    "model.optimizer": "adam",
    "model.lr": 0.001,
    "model.weight_decay": 0.0,
    "model.scheduler": "cosine",
    "model.swa_epochs": 1,
    "model.swa_lr": None,
    "model.swa_anneal_epochs": 10,
    "model.head.hidden": [512, 128],
    "model.head.dropout": 0.3,
    "model.tta_views": ["identity", "hflip"],
    "model.weight_grid_step": 0.05,
    "model.matmul_precision": "high",
    "model.metadata": [],
    "model.allow_leaky_metadata": False,
    "trainer._target_": "lightning.pytorch.Trainer",
    "trainer.max_epochs": 2,
    "trainer.accelerator": "cpu",
    "trainer.devices": 1,
    "trainer.precision": "32-true",
    "trainer.deterministic": True,
    "trainer.use_distributed_sampler": False,
    "trainer.limit_train_batches": 2,
    "trainer.limit_val_batches": 1,
    "seed": 0,
}
# Other experiments of that code: the overrides, and the settings that differed from the above.
OLD_LAYOUT_OTHERS = {
    "sff": (
        ["fusion=sff", "block=cat"],
        {
            "fusion.mode": "sff",
            "fusion.clin_backbone": None,
            "fusion.clin_pretrained_tag": None,
            "block.type": "cat",
            "block.stages": [],
        },
    ),
    "clinical swin": (
        ["+experiment/row=ammfm_clin_st_derm_mn", "block.stages=[]"],
        {
            "fusion.clin_backbone": "swinv2_tiny_window8_256",
            "fusion.clin_pretrained_tag": "ms_in1k",
            "fusion.clin_drop_path_rate": 0.2,
            "block.stages": [],
        },
    ),
}
WEIGHTS = {"clin": "random", "derm": "random"}


@pytest.mark.parametrize("name", ["aff", *OLD_LAYOUT_OTHERS])
def test_an_old_layout_identity_is_the_same_experiment(name: str, tmp_path: Path) -> None:
    overrides, changes = OLD_LAYOUT_OTHERS.get(name, ([], {}))
    old = {**OLD_LAYOUT_TINY, **changes}
    cfg = tiny_config(tmp_path / "release", tmp_path / "run", ["callbacks=default", *overrides])
    today = build_identity(result_settings(cfg), "fingerprint", WEIGHTS, "today")
    stored = build_identity(old, "fingerprint", WEIGHTS, "then")
    assert stored["configuration"] != today["configuration"]  # the layout alone differs
    upgraded = upgrade_identity(stored)
    assert upgraded["settings"] == today["settings"]
    assert (upgraded["digest"], upgraded["configuration"]) == (
        today["digest"],
        today["configuration"],
    )
    check_reusable(today, stored, "run")  # reused and resumed as the same experiment
    check_resumable(today, stored, "last")


def test_an_old_layout_identity_still_differs_from_a_changed_experiment(tmp_path: Path) -> None:
    stored = build_identity(OLD_LAYOUT_TINY, "fingerprint", WEIGHTS, "then")
    overrides = ["callbacks=default", "clin_backbone.pretrained=true"]
    cfg = tiny_config(tmp_path / "release", tmp_path / "run", overrides)
    changed = build_identity(result_settings(cfg), "fingerprint", WEIGHTS, "today")
    with pytest.raises(UserError, match=r"another experiment \(clin_backbone\.pretrained: False"):
        check_reusable(changed, stored, "run")


def _old_layout_config(cfg: dict) -> dict:
    """A stored config of today written in the earlier layout, by hand."""
    old = {key: value for key, value in cfg.items() if key != "clin_backbone"}
    clin = cfg["clin_backbone"]
    old["fusion"] = {
        **cfg["fusion"],
        "clin_backbone": clin["name"],
        "clin_pretrained_tag": clin["pretrained_tag"],
        "clin_weights": clin["weights"],
        "clin_drop_path_rate": clin["drop_path_rate"],
    }
    return old


def test_a_finished_run_of_the_old_layout_is_reused_grouped_and_loaded(
    finished_run: Path, synthetic_release: Path, tmp_path: Path
) -> None:
    from src.models.module import AMMFMModule, stored_tasks
    from src.reporting.runs import load_run

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    today = metrics["identity"]
    assert upgrade_settings(OLD_LAYOUT_TINY) == today["settings"]  # the fixture is this run's
    metrics["identity"] = build_identity(
        OLD_LAYOUT_TINY, today["data"], today["weights"], today["code"]
    )
    for name in (METRICS_FILE, IDENTITY_FILE):
        recorded = metrics if name == METRICS_FILE else metrics["identity"]
        (run_dir / name).write_text(json.dumps(recorded))
    assert _rerun(synthetic_release, run_dir) == metrics  # reused: nothing is retrained
    assert load_run(run_dir).group == today["configuration"]  # in the same report row
    ckpt = torch.load(run_dir / "checkpoints" / "final.ckpt", weights_only=True)
    old_cfg = _old_layout_config(ckpt["hyper_parameters"]["cfg"])
    assert (
        on_schema(old_cfg).clin_backbone == on_schema(ckpt["hyper_parameters"]["cfg"]).clin_backbone
    )
    tasks = stored_tasks(ckpt["hyper_parameters"], "final.ckpt")
    module = AMMFMModule.from_trained(old_cfg, tasks, ckpt["state_dict"], "final.ckpt")
    assert module.network.streams["clin"].name == "mobilenetv3_small_100"


def test_a_clinical_backbone_override_reaches_the_stored_config(tmp_path: Path) -> None:
    """A `group@package` override given with a checkpoint (src.eval) sets the node at its
    package, in a config stored in the earlier layout too."""
    from src.runs.checkpoints import checkpoint_config

    stored = tiny_config(tmp_path / "release", tmp_path / "run", ["callbacks=default"])
    stored = _old_layout_config(OmegaConf.to_container(stored, resolve=True))
    run_cfg = compose_config(["backbone@clin_backbone=resnet"], "eval", hydra_config=True)
    cfg = checkpoint_config(stored, run_cfg)
    assert cfg.clin_backbone.name == "resnet50" and "backbone@clin_backbone" not in cfg
