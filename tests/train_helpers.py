"""The real training config for tests, shrunk to seconds on a CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from src.project import compose_config

# Smallest setting that still runs every stage: AFF + AAB on MobileNet streams, 2 epochs with
# SWA over the last one, two TTA views, 32 px images, two training batches per epoch.
TINY = (
    "debug=fast",
    "backbone=mobilenet",
    "data.image_size=32",
    "data.batch_size=8",
    "data.eval_batch_size=128",
    "trainer.max_epochs=2",
    "model.swa_epochs=1",
    "model.lr=1e-3",
    "model.tta_views=[identity,hflip]",
    # the selection policies' extra evaluations only where a test asks for them
    "model.selection_policies=false",
)

# The fusion weights the session's tiny checkpoint (conftest `tiny_ckpt`) has in its metrics.json.
RUN_WEIGHTS = {"derm": 0.5, "clin": 0.2, "fusion": 0.3}


def tiny_config(
    release: Path,
    run_dir: Path,
    overrides: Sequence[str] = (),
    config_name: str = "train",
    base: Sequence[str] = TINY,
) -> DictConfig:
    """The composed config with `base` then `overrides`, pointing at `release` and `run_dir`."""
    GlobalHydra.instance().clear()
    all_overrides = [*base, f"data.root={release}", "data.synthetic=false", *overrides]
    cfg = compose_config(all_overrides, config_name, hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir.parent / "logs")
        del cfg["hydra"]
    return cfg


# The environment of a `python -m src.train` subprocess in tests: offline, unbuffered.
SUBPROCESS_ENV = {
    **os.environ,
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "PYTHONUNBUFFERED": "1",
}


def train_command(release: Path, run_dir: Path, *overrides: str) -> list[str]:
    """`python -m src.train` with the TINY settings on `release`, writing into `run_dir`."""
    return [
        sys.executable,
        "-m",
        "src.train",
        *TINY,
        f"data.root={release}",
        "data.synthetic=false",
        "callbacks=default",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]


HANG_GUARD_S = 1800  # a hung child process fails the test instead of the whole suite


def signal_after_first_checkpoint(
    release: Path, run_dir: Path, signum: int, env: dict[str, str], *overrides: str
) -> tuple[int, str]:
    """Start `python -m src.train` (TINY, `overrides`), send it `signum` once its first epoch
    checkpoint exists, and return (its exit code, its output)."""
    import time

    from src.project import PROJECT_ROOT
    from src.runs.files import last_checkpoint

    proc = subprocess.Popen(
        train_command(release, run_dir, *overrides),
        cwd=PROJECT_ROOT,
        env={**SUBPROCESS_ENV, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + HANG_GUARD_S
    while not last_checkpoint(run_dir).exists() and proc.poll() is None:
        assert time.monotonic() < deadline, f"no checkpoint after {HANG_GUARD_S} s"
        time.sleep(0.05)
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=HANG_GUARD_S)
    return proc.returncode, output


def run_ok(command: Sequence[str], timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Run `command` from the project root with SUBPROCESS_ENV (plus `env`); it must succeed
    without a traceback."""
    from src.project import PROJECT_ROOT

    result = subprocess.run(
        list(command),
        cwd=PROJECT_ROOT,
        env={**SUBPROCESS_ENV, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


def fake_scontrol(bin_dir: Path, exit_code: int = 0) -> Path:
    """An `scontrol` executable in `bin_dir` (put it first on PATH) that records its arguments
    in the returned file and exits with `exit_code`, as SLURM's does outside a cluster."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls = bin_dir / "scontrol.calls"
    script = bin_dir / "scontrol"
    script.write_text(
        f'#!/bin/sh\necho "$@" > "{calls}"\n'
        + (
            f'echo "scontrol: error: Invalid job id specified" >&2\nexit {exit_code}\n'
            if exit_code
            else ""
        )
    )
    script.chmod(0o755)
    return calls
