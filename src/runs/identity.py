"""What a result is: the one definition of "the same run", used by reuse, resume, sweep folder
names, the report's rows and the W&B group.

A result's identity is
- `settings`: every resolved config value that can change its numbers, as dotted keys: the
  whole config except where to read and write, logging, and the speed-only keys below;
- `data`: the fingerprint of the files the run reads and of its task spec
  (`src.data.fingerprint`), not their paths;
- `weights`: where each stream's starting weights come from (a pinned timm tag, or the sha256
  of a local file), not the file's path.
`digest` hashes the three; `configuration` hashes them without the seed (one report row and one
W&B group per configuration). The code version is recorded beside them, not hashed: a new
commit does not disown old results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import Container, DictConfig, OmegaConf

from src.config import (
    CONTENT_KEYS,
    NEUTRAL_VALUES,
    NON_RESULT_ROOTS,
    SPEED_ONLY_KEYS,
    upgrade_settings,
)
from src.runs.files import IDENTITY_FILE
from src.utils.errors import UserError
from src.utils.hashing import value_digest
from src.utils.io import atomic_write_text

SEED_KEY = "seed"
DIGEST_CHARS = 12


def _flatten(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, Mapping) and tree:
        out: dict[str, object] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def _kept(key: str) -> bool:
    return (
        key.split(".")[0] not in NON_RESULT_ROOTS
        and key not in SPEED_ONLY_KEYS
        and key not in CONTENT_KEYS
    )


def result_settings(config: DictConfig) -> dict[str, object]:
    """The result-determining settings of a config, flattened to dotted keys. Only these are
    resolved: paths and logging may name Hydra's run-time values, which do not matter here."""
    settings: dict[str, object] = {}
    for key in _flatten(OmegaConf.to_container(config, resolve=False)):
        if _kept(key):
            value = OmegaConf.select(config, key)
            if isinstance(value, Container):
                value = OmegaConf.to_container(value, resolve=True)
            if key in NEUTRAL_VALUES and value == NEUTRAL_VALUES[key]:
                continue  # as a run recorded before the key existed
            settings[key] = value
    return settings


def build_identity(
    settings: dict[str, object], data: str, weights: dict[str, str], code: str | None
) -> dict[str, Any]:
    """The identity record metrics.json, identity.json and checkpoints carry."""
    hashed = {"settings": settings, "data": data, "weights": weights}
    without_seed = {**hashed, "settings": {k: v for k, v in settings.items() if k != SEED_KEY}}
    return {
        "digest": value_digest(hashed)[:DIGEST_CHARS],
        "configuration": value_digest(without_seed)[:DIGEST_CHARS],
        **hashed,
        "code": code,
    }


def upgrade_identity(saved: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A stored identity with its settings in today's layout (`upgrade_settings`) and its
    digests taken again over them: a result recorded before a layout change, of an experiment
    that did not change, keeps being the same result. Anything else comes back as given."""
    if not saved or not isinstance(saved.get("settings"), Mapping):
        return saved
    settings = upgrade_settings(saved["settings"])
    if settings == saved["settings"]:
        return saved
    weights = saved.get("weights") or {}
    return {**saved, **build_identity(settings, saved.get("data"), weights, saved.get("code"))}


def run_identity(cfg: DictConfig, weights: dict[str, str] | None = None) -> dict[str, Any]:
    """The identity of the run `cfg` describes: reads the data folder's fingerprint and hashes
    local weight files (the data must exist: a synthetic release is generated first).
    `weights`: the weight sources when known already (a checkpoint's, in src.eval)."""
    from src.data.datamodule import as_data_config, datamodule_class
    from src.data.fingerprint import data_fingerprint
    from src.data.tasks import load_task_spec
    from src.models.network import validate_network_config, weight_sources
    from src.utils.run_info import git_commit

    data_cfg = as_data_config(cfg.data)
    source = datamodule_class(data_cfg)
    root = source.ensure_root(data_cfg)
    source.check_local(data_cfg)
    memo = data_cfg.cache_dir or root / ".cache"
    tasks = load_task_spec(data_cfg.tasks)
    fingerprint = data_fingerprint(source.fingerprint_files(data_cfg), memo, tasks.digest)
    if weights is None:
        weights = weight_sources(validate_network_config(cfg))
    return build_identity(result_settings(cfg), fingerprint, weights, git_commit())


def write_identity(run_dir: Path, identity: Mapping[str, Any]) -> None:
    """`<run>/identity.json`: the full settings of the run, beside its readable folder name."""
    atomic_write_text(Path(run_dir) / IDENTITY_FILE, json.dumps(identity, indent=2, default=str))


def _changed(before: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> list[str]:
    return [
        f"{prefix}{key}: {before.get(key, '<unset>')} -> {now.get(key, '<unset>')}"
        for key in sorted(before.keys() | now.keys())
        if before.get(key) != now.get(key)
    ]


def identity_differences(current: Mapping[str, Any], saved: Mapping[str, Any]) -> list[str]:
    """`key: saved -> current` for each part of two identities that differs."""
    diffs = _changed(saved.get("settings") or {}, current.get("settings") or {})
    if current.get("data") != saved.get("data"):
        diffs.append(f"data fingerprint: {saved.get('data')} -> {current.get('data')}")
    return diffs + _changed(saved.get("weights") or {}, current.get("weights") or {}, "weights.")


def _summary(differences: list[str], limit: int = 6) -> str:
    shown = "; ".join(differences[:limit])
    more = len(differences) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


def _require_same(
    current: Mapping[str, Any],
    saved: Mapping[str, Any] | None,
    unrecorded: str,
    other: tuple[str, str],
) -> None:
    """UserError(`unrecorded`) without a saved identity; when the identities differ,
    UserError(`<other[0]> (<the differences>); <other[1]>`)."""
    if not saved or "settings" not in saved:
        raise UserError(unrecorded)
    saved = upgrade_identity(saved)
    differences = identity_differences(current, saved)
    if differences:
        raise UserError(f"{other[0]} ({_summary(differences)}); {other[1]}")


def check_reusable(current: Mapping[str, Any], saved: Mapping[str, Any] | None, where: str) -> None:
    """A finished result stands for this run only if its identity is this run's identity."""
    choices = (
        "use another hydra.run.dir / hydra.sweep.dir, or skip_complete=false to retrain into it"
    )
    _require_same(
        current,
        saved,
        f"{where} holds a finished run that records no result identity (an older version "
        f"wrote it), so it cannot stand for this run; {choices}",
        (f"{where} holds a finished run of another experiment", choices),
    )


def check_resumable(current: Mapping[str, Any], saved: Mapping[str, Any] | None, ckpt: str) -> None:
    """Resuming continues the same experiment only: a checkpoint of other settings, data or
    weights is refused, naming what differs."""
    _require_same(
        current,
        saved,
        f"ckpt_path={ckpt} records no result identity (an older version wrote it): it cannot be "
        "checked to be this experiment; start a new run instead of resuming it",
        (
            f"ckpt_path={ckpt} was trained as another experiment",
            "resume with the checkpoint's own settings, or start a new run",
        ),
    )
