"""How a run starts and how one that fails before training ends: the local checks (data root
and its layout) come before the network is built or weights are fetched, and a run that fails
before training leaves no run folder and no W&B run behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from src.project import PROJECT_ROOT
from src.train import train
from src.utils.errors import UserError
from tests.train_helpers import HANG_GUARD_S, SUBPROCESS_ENV, tiny_config, train_command


def _run_train(command: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**SUBPROCESS_ENV, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_data_root_fails_before_the_network_is_built(tmp_path: Path, monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the network was built before the data root was checked")

    monkeypatch.setattr("src.models.backbones.create_timm_model", no_network)
    run_dir = tmp_path / "run"
    cfg = tiny_config(tmp_path / "missing", run_dir, ["backbone.pretrained=true"])
    with pytest.raises(UserError, match=r"data root .*missing does not exist"):
        train(cfg)
    assert not run_dir.exists()


def test_release_without_its_index_files_fails_before_the_network_is_built(
    release_copy: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("src.models.backbones.create_timm_model", None)  # any call fails
    (release_copy / "meta" / "test_indexes.csv").unlink()
    with pytest.raises(UserError, match=r"test_indexes\.csv is missing"):
        train(tiny_config(release_copy, tmp_path / "run"))


def test_train_without_data_root_names_it_and_leaves_no_run_folder(tmp_path: Path) -> None:
    """The real entry point: `python -m src.train` with pretrained weights asked for and no hub
    reachable names the missing data root, not the weights, and writes nothing."""
    run_dir = tmp_path / "runs" / "run"
    command = train_command(tmp_path / "missing", run_dir, "backbone.pretrained=true")
    result = _run_train(command)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "data root" in result.stderr and "missing does not exist" in result.stderr
    assert "ImageNet weights" not in result.stderr
    assert not run_dir.exists()


def test_run_failing_after_its_loggers_started_leaves_no_folder(
    synthetic_release: Path, tmp_path: Path
) -> None:
    """Past the local checks, W&B started (offline), then the trainer is refused: the run folder,
    its W&B offline run and wandb_run_id.txt are removed."""
    run_dir = tmp_path / "runs" / "run"
    command = train_command(
        synthetic_release, run_dir, "logger=wandb", "trainer.accelerator=no_such_accelerator"
    )
    result = _run_train(command, WANDB_MODE="offline", WANDB_SILENT="true")
    assert result.returncode != 0
    assert "no_such_accelerator" in result.stderr
    assert not run_dir.exists(), sorted(p.name for p in run_dir.rglob("*"))


def test_run_without_a_checkpoint_callback_writes_final_ckpt_only(
    synthetic_release: Path, tmp_path: Path, one_thread
) -> None:
    """callbacks=none (debug=fast): no Lightning default checkpoint beside final.ckpt."""
    run_dir = tmp_path / "run"
    train(tiny_config(synthetic_release, run_dir, ["model.swa_epochs=0", "trainer.max_epochs=1"]))
    ckpts = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.ckpt"))
    assert ckpts == ["checkpoints/final.ckpt"]


def test_the_local_data_checks_load_no_torch() -> None:
    """The checks src.train runs first import no deep-learning stack (seconds of imports
    before the real mistake, a missing data root, is said)."""
    import subprocess
    import sys

    from src.project import PROJECT_ROOT

    script = (
        "import sys, src.data.formats; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
