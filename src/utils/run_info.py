"""Provenance recorded with every result: git commit, package versions, machine."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "torch",
    "torchvision",
    "lightning",
    "timm",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "albumentations",
    "wandb",
    "pandas",
    "numpy",
)


def git_commit(repo: Path | None = None) -> str | None:
    """HEAD commit of the project checkout (with '-dirty' if it has local changes), or None."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info() -> dict[str, str]:
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform()}
    info["processor"] = platform.processor() or platform.machine()
    info["torch_threads"] = str(torch.get_num_threads())
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
