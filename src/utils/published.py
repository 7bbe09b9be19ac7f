"""Published models (`python -m src.publish`): the folder layout, its manifest, and reading a
published seed back as a checkpoint, so `ckpt_path=<folder>` works wherever a .ckpt does.

    <configuration>/README.md            model card (Hugging Face card: YAML front matter)
    <configuration>/manifest.json        sha256 of every other file; the default seed
    <configuration>/tasks.json           the task spec (labels, classes, AVG AUC labels)
    <configuration>/metrics.json         mean +- std over seeds, per-label AUC, per seed
    <configuration>/identity.json        the configuration's result identity (seed-free)
    <configuration>/seed<N>/model.safetensors   the trained weights, nothing else
    <configuration>/seed<N>/config.yaml         the resolved training config
    <configuration>/seed<N>/metrics.json        the run's metrics.json
    <configuration>/seed<N>/fusion_weights.json Eq. 4's weights, chosen on validation
    <configuration>/seed<N>/identity.json       the run's result identity
    <configuration>/seed<N>/model.onnx (+ .json) with onnx=true

`ckpt_path=<configuration>` reads the manifest's default seed; `ckpt_path=<configuration>/seed3`
that seed. The seed's files and the configuration's own are checked against their sha256 in
the manifest before anything is read: a changed, truncated or missing file is refused with one
line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from src.utils.errors import UserError
from src.utils.hashing import sha256_file
from src.utils.io import atomic_write_json

MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
TASKS_FILE = "tasks.json"
FUSION_WEIGHTS_FILE = "fusion_weights.json"
IDENTITY_FILE = "identity.json"
METRICS_FILE = "metrics.json"
ONNX_FILE = "model.onnx"
SEED_PREFIX = "seed"


def write_manifest(folder: Path, default_seed: int, extra: dict[str, Any]) -> Path:
    """manifest.json of `folder`: the sha256 and size of every file under it, and which seed
    `ckpt_path=<folder>` loads."""
    files = {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }
    path = folder / MANIFEST_FILE
    atomic_write_json(path, {"default_seed": default_seed, **extra, "files": files})
    return path


def is_published(path: str | Path) -> bool:
    """True for a published configuration folder or one of its seed folders."""
    path = Path(path)
    return path.is_dir() and (
        (path / MANIFEST_FILE).is_file() or (path.parent / MANIFEST_FILE).is_file()
    )


def _manifest(root: Path, given: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text())
        files = manifest["files"]
        int(manifest["default_seed"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"ckpt_path={given}: {root / MANIFEST_FILE} is unreadable; download the published "
            "folder again"
        ) from None
    if not isinstance(files, dict):
        raise UserError(f"ckpt_path={given}: {root / MANIFEST_FILE} lists no files")
    return manifest


def verify_published(
    root: Path, given: Path | None = None, seed_dir: str | None = None
) -> dict[str, Any]:
    """The manifest of the configuration folder `root`, once every file it lists (or, given
    `seed_dir`, every file of that seed and of the configuration itself) matches its sha256;
    UserError naming the first file that does not."""
    given = given or root
    manifest = _manifest(root, given)
    for name, facts in manifest["files"].items():
        if seed_dir is not None and "/" in name and not name.startswith(f"{seed_dir}/"):
            continue  # another seed's file: not read
        path = root / name
        if not path.is_file():
            raise UserError(f"ckpt_path={given}: {path} is missing; download the folder again")
        if sha256_file(path) != facts.get("sha256"):
            raise UserError(
                f"ckpt_path={given}: {path} does not match its sha256 in {MANIFEST_FILE} "
                "(changed or damaged); refused: download the published folder again"
            )
    return manifest


def seed_folder(path: str | Path) -> tuple[Path, Path, dict[str, Any]]:
    """(configuration folder, seed folder, verified manifest) of a published path."""
    path = Path(path)
    root = path if (path / MANIFEST_FILE).is_file() else path.parent
    if path == root:
        path = root / f"{SEED_PREFIX}{int(_manifest(root, path)['default_seed'])}"
    manifest = verify_published(root, path, seed_dir=path.name)
    if not (path / WEIGHTS_FILE).is_file():
        seeds = sorted(p.name for p in root.glob(f"{SEED_PREFIX}*") if p.is_dir())
        raise UserError(f"ckpt_path={path}: no {WEIGHTS_FILE}; published seeds: {seeds}")
    return root, path, manifest


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_published(path: str | Path) -> dict[str, Any]:
    """A published seed as src.train's checkpoint dict: state_dict (safetensors: tensors only,
    no code), hyper_parameters {cfg, tasks}, identity; plus its fusion weights."""
    import yaml
    from safetensors.torch import load_file

    root, folder, _ = seed_folder(path)
    try:
        state_dict = load_file(folder / WEIGHTS_FILE)
        cfg = yaml.safe_load((folder / CONFIG_FILE).read_text())
        tasks = _json(root / TASKS_FILE)
        identity = _json(folder / IDENTITY_FILE)
        weights = _json(folder / FUSION_WEIGHTS_FILE)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise UserError(f"ckpt_path={path}: unreadable published file ({err})") from None
    return {
        "state_dict": state_dict,
        "hyper_parameters": {"cfg": cfg, "tasks": tasks},
        "identity": identity,
        "fusion_weights": weights,
        "published": str(folder),
    }


def published_fusion_weights(path: str | Path) -> dict[str, float]:
    """The fusion weights a published seed was evaluated with (checked against the manifest)."""
    _, folder, _ = seed_folder(path)
    try:
        return _json(folder / FUSION_WEIGHTS_FILE)
    except (OSError, ValueError) as err:
        raise UserError(f"ckpt_path={path}: unreadable {FUSION_WEIGHTS_FILE} ({err})") from None
