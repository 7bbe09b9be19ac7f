"""Find the runs under sweep or run directories and read what each one left behind.

A run directory is any folder with a metrics.json, an error.txt (see `src.runs.status`) or a Hydra
job folder (`.hydra/config.yaml`). Its status is "complete" (metrics.json with every required
key), "failed" (error.txt) or "unfinished" (neither: killed, still running, or a damaged
metrics.json). Failed and unfinished runs still name their configuration and seed, read from
the config the job saved, so a report can say which cell they are missing from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from src.config import on_schema
from src.data.tasks import TaskSpec, load_task_spec
from src.reporting.naming import OFF_RECIPE_KEY, off_recipe
from src.runs.files import (
    CONFIG_FILE,
    ERROR_FILE,
    HYDRA_CONFIG,
    IDENTITY_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    SWEEP_FILE,
    is_complete,
    oversized_metrics,
)
from src.runs.identity import upgrade_identity
from src.runs.status import read_failure
from src.utils.errors import UserError

log = logging.getLogger(__name__)

COMPLETE, FAILED, UNFINISHED = "complete", "failed", "unfinished"


@dataclass
class RunRecord:
    """One run: where it is, how it ended, and what it measured."""

    source: str  # run directory, or "wandb:<entity/project/id>"
    status: str
    seed: int | None
    config: dict[str, Any] | None  # metrics.json "config" without "choices"; None if unknown
    metrics: dict[str, Any] | None = None
    error: str | None = None
    asked_seeds: tuple[int, ...] | None = None  # the seeds its sweep asked of its job, if known
    group: str | None = None  # its result identity's configuration digest, when recorded

    @property
    def predictions(self) -> Path | None:
        path = Path(self.source) / PREDICTIONS_FILE
        return path if self.status == COMPLETE and path.is_file() else None

    @property
    def tasks(self) -> TaskSpec:
        """The task spec its metrics are over (metrics.json "tasks"; results that record none
        were all derm7pt's)."""
        return metrics_tasks(self.metrics or {}, self.source)


def metrics_tasks(metrics: dict[str, Any], source: str) -> TaskSpec:
    """The task spec a metrics.json records; derm7pt's for results written before specs were."""
    raw = metrics.get("tasks")
    return load_task_spec("derm7pt") if raw is None else TaskSpec.from_dict(raw, source)


def identity(summary: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's config summary that defines its configuration (not how it was named)."""
    return {k: v for k, v in summary.items() if k != "choices"}


def _load_cfg(run_dir: Path) -> DictConfig | None:
    for name in (CONFIG_FILE, HYDRA_CONFIG):
        path = run_dir / name
        if path.is_file():
            try:
                cfg = OmegaConf.load(path)
            except Exception as err:  # a damaged file: the run is still listed, unnamed
                log.warning("cannot read %s: %s", path, err)
                continue
            if isinstance(cfg, DictConfig):
                return cfg
    return None


def summary_of(cfg: DictConfig) -> dict[str, Any] | None:
    """The configuration summary metrics.json would hold for `cfg`; None if it cannot be built."""
    from src.runs.summary import run_config_summary

    try:
        return identity(run_config_summary(on_schema(cfg)))
    except Exception as err:  # an invalid or partial config: the run stays listed, unnamed
        log.warning("cannot name the configuration of a run: %s", err)
        return None


def _seed_of(cfg: DictConfig | None) -> int | None:
    try:
        return None if cfg is None else int(cfg.seed)
    except Exception:
        return None


def non_numeric_metrics(metrics: dict[str, Any]) -> list[str]:
    """What is wrong with the headline metrics (AVG AUC/ACC, per-label AUC, per-task ACC): a
    value that is neither a number nor null, or a number that is not a finite score in [0, 1]
    (JSON Infinity, NaN, 1e308). Such a file was damaged or hand-edited and is not averaged."""
    bad: list[str] = []

    def check(key: str, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            bad.append(f"non-numeric {key}")
        elif not 0.0 <= value <= 1.0:  # also false for NaN
            bad.append(f"{key} = {value!r} (a score must be in [0, 1])")

    for key in ("avg_auc", "avg_acc"):
        check(key, metrics.get(key))
    for group in ("auc", "acc"):
        values = metrics.get(group)
        if not isinstance(values, dict):
            bad.append(f"non-numeric {group}")
            continue
        for k, v in values.items():
            check(f"{group}.{k}", v)
    if not isinstance(metrics.get("seed"), int):
        bad.append("non-numeric seed")
    return bad


def load_run(run_dir: Path, name: str | None = None) -> RunRecord:
    """Read one run directory (see the module docstring for the statuses), named by its result
    identity (metrics.json's, else the identity.json a run writes when it starts).

    `name` is how the report shows it (default: the path as given).
    """
    record = _load_run(run_dir, name)
    recorded = upgrade_identity((record.metrics or {}).get("identity") or _saved_identity(run_dir))
    if record.config is not None:
        settings = recorded.get("settings") if isinstance(recorded, dict) else None
        record.config = {
            **record.config,
            OFF_RECIPE_KEY: None
            if settings is None
            else off_recipe(settings, recipe_for(settings)),
        }
        record.group = recorded.get("configuration") if settings is not None else None
    return record


def _saved_identity(run_dir: Path) -> dict[str, Any] | None:
    try:
        identity = json.loads((run_dir / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return identity if isinstance(identity, dict) else None


@lru_cache(maxsize=1)
def _backbone_options() -> dict[str, str]:
    """timm name -> conf/backbone option that builds it."""
    from src.project import CONF_DIR

    return {
        str(OmegaConf.load(path).name): path.stem
        for path in sorted((CONF_DIR / "backbone").glob("*.yaml"))
    }


@lru_cache(maxsize=64)
def _recipe(
    fusion: str, block: str, backbone: str | None, pretrained: bool
) -> tuple[tuple[str, Any], ...]:
    from src.project import compose_config
    from src.runs.identity import result_settings

    groups = [f"fusion={fusion}", f"block={block}"]
    groups += [f"backbone={backbone}"] if backbone else []
    groups += [f"backbone.pretrained={str(pretrained).lower()}"]
    return tuple(sorted(result_settings(compose_config(groups)).items(), key=lambda kv: kv[0]))


CLIN_BACKBONE = "clin_backbone"  # the clinical stream's own backbone node (fusion=aff)


def recipe_for(settings: dict[str, Any]) -> dict[str, Any]:
    """The result settings of the paper's recipe for the same architecture (its fusion, block
    and backbone groups, as the project's default training config composes them) and the same
    `backbone.pretrained`, which the recipe's clinical stream follows. A clinical backbone
    other than the recipe's brings its own stream settings: they are taken as given."""
    option = _backbone_options().get(str(settings.get("backbone.name")))
    pretrained = bool(settings.get("backbone.pretrained"))
    recipe = dict(
        _recipe(
            str(settings.get("fusion.mode")), str(settings.get("block.type")), option, pretrained
        )
    )
    name = f"{CLIN_BACKBONE}.name"
    if settings.get(name) != recipe.get(name):
        recipe = {k: v for k, v in recipe.items() if k.split(".")[0] != CLIN_BACKBONE}
        recipe.update({k: v for k, v in settings.items() if k.split(".")[0] == CLIN_BACKBONE})
    return recipe


def _load_run(run_dir: Path, name: str | None = None) -> RunRecord:
    name = str(run_dir) if name is None else name
    cfg = _load_cfg(run_dir)
    oversized = oversized_metrics(run_dir)
    if oversized is not None:
        summary = None if cfg is None else summary_of(cfg)
        return RunRecord(name, FAILED, _seed_of(cfg), summary, error=oversized)
    if is_complete(run_dir) and (run_dir / ERROR_FILE).exists():
        # Two jobs wrote one folder (one finished, one failed): neither result can be trusted.
        return RunRecord(
            name,
            FAILED,
            _seed_of(cfg),
            None if cfg is None else summary_of(cfg),
            error=f"holds both {METRICS_FILE} and {ERROR_FILE} ({read_failure(run_dir)}); "
            "rerun this job into its own folder",
        )
    if is_complete(run_dir):
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        bad = non_numeric_metrics(metrics)
        if bad:
            return RunRecord(
                name,
                FAILED,
                _seed_of(cfg),
                None if cfg is None else summary_of(cfg),
                error=f"{METRICS_FILE} has {'; '.join(bad)}; rerun it",
            )
        return RunRecord(
            name,
            COMPLETE,
            int(metrics["seed"]),
            identity(metrics["config"]),
            metrics=metrics,
        )
    error = read_failure(run_dir)
    if error is None and (run_dir / METRICS_FILE).exists():
        error = f"{METRICS_FILE} is incomplete or unreadable"
    return RunRecord(
        name,
        FAILED if (run_dir / ERROR_FILE).exists() else UNFINISHED,
        _seed_of(cfg),
        None if cfg is None else summary_of(cfg),
        error=error,
    )


def _run_dirs(root: Path) -> list[Path]:
    """Folders under `root` (itself included) holding a metrics.json, error.txt or .hydra."""
    found = {p.parent for name in (METRICS_FILE, ERROR_FILE) for p in root.rglob(name)}
    found |= {p.parent.parent for p in root.rglob(str(HYDRA_CONFIG))}
    if any((root / name).exists() for name in (METRICS_FILE, ERROR_FILE, HYDRA_CONFIG)):
        found.add(root)
    return sorted(found)


JOB_OVERRIDES = Path(".hydra") / "overrides.yaml"  # the overrides of one job of a sweep


def _values(override: str) -> tuple[str, frozenset[str]] | None:
    """(key, the values it asks for) of one Hydra override, or None if it cannot be parsed."""
    try:
        parsed = OverridesParser.create().parse_override(override)
        values = parsed.sweep_iterator() if parsed.is_sweep_override() else [parsed.value()]
        return parsed.key_or_group.lstrip("+~"), frozenset(str(v) for v in values)
    except Exception:
        return None


@dataclass(frozen=True)
class SweepRequest:
    """What a sweep's command line asked for: its seeds and its other overrides."""

    seeds: tuple[int, ...] | None
    others: dict[str, frozenset[str]]  # override key -> the values asked, seed excluded

    def covers(self, job: dict[str, frozenset[str]] | None) -> bool:
        """Whether a job (its own overrides) is one this command asked for; True if unknown.

        A table's sweep folder is reused: a re-run restricted to some rows (e.g. `block=cat`)
        rewrites multirun.yaml, and asks its seeds of those rows only.
        """
        if job is None:
            return True
        return all(job[k] <= values for k, values in self.others.items() if k in job)


def sweep_request(sweep_file: Path) -> SweepRequest | None:
    """The seeds a sweep asked for (its `seed=` command-line override, else its grid's `seed`)
    and its other command-line overrides."""
    try:
        sweep = OmegaConf.load(sweep_file)
        task = [str(o) for o in sweep.hydra.overrides.task]
        grid = sweep.hydra.sweeper.get("params") or {}
    except Exception as err:
        log.warning("cannot read the sweep definition %s: %s", sweep_file, err)
        return None
    parsed = [v for v in map(_values, task) if v is not None]
    others = {k: v for k, v in parsed if k != "seed"}
    asked = [v for k, v in parsed if k == "seed"]
    if not asked and "seed" in grid:
        from_grid = _values(f"seed={grid['seed']}")
        asked = [from_grid[1]] if from_grid else []
    seeds = tuple(sorted(int(s) for s in asked[-1])) if asked else None
    return SweepRequest(seeds, others)


def job_overrides(run_dir: Path) -> dict[str, frozenset[str]] | None:
    """A sweep job's own overrides (Hydra's .hydra/overrides.yaml), None if unknown."""
    path = run_dir / JOB_OVERRIDES
    if not path.is_file():
        return None
    try:
        items = [str(o) for o in OmegaConf.load(path)]
    except Exception:
        return None
    return dict(v for v in map(_values, items) if v is not None)


def _sweep_file_of(run_dir: Path, root: Path) -> Path | None:
    for folder in (run_dir, *run_dir.parents):
        if (folder / SWEEP_FILE).is_file():
            return folder / SWEEP_FILE
        if folder == root:
            break
    return None


def find_runs(paths: Sequence[str | Path]) -> list[RunRecord]:
    """Every run under the given sweep or run directories, in path order, each listed once."""
    records: list[RunRecord] = []
    seen: set[Path] = set()
    for given in paths:
        root = Path(given).resolve()
        if not root.is_dir():
            raise UserError(f"{given}: no such directory; give sweep or run directories")
        dirs = [d for d in _run_dirs(root) if d not in seen]
        if not dirs:
            log.warning("%s holds no run (no %s, %s or .hydra)", given, METRICS_FILE, ERROR_FILE)
        sweeps: dict[Path, SweepRequest | None] = {}
        for run_dir in dirs:
            seen.add(run_dir)
            record = load_run(run_dir, str(Path(given) / run_dir.relative_to(root)))
            sweep_file = _sweep_file_of(run_dir, root)
            if sweep_file is not None:
                if sweep_file not in sweeps:
                    sweeps[sweep_file] = sweep_request(sweep_file)
                request = sweeps[sweep_file]
                if request is None:
                    pass
                elif request.covers(job_overrides(run_dir)):
                    record.asked_seeds = request.seeds
                elif record.seed is not None:
                    # left from an earlier command in a reused sweep folder: it was asked for
                    # its own seed, and the last command asked nothing of its configuration
                    record.asked_seeds = (record.seed,)
            records.append(record)
    return records


def count_by_status(records: Iterable[RunRecord]) -> dict[str, int]:
    counts = {COMPLETE: 0, FAILED: 0, UNFINISHED: 0}
    for record in records:
        counts[record.status] += 1
    return counts
