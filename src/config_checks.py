"""Value checks on a composed (or stored) config, run before any data loads.

The structured schema (src/config.py) checks keys and types at composition; this checks ranges
and choices, so `data.batch_size=0` or `model.lr=nan` fails in one line naming the key instead
of after the image cache was built or after training. A config read back from a checkpoint goes
through the same checks: a stored `data.image_size=8192` is refused, not allocated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.config import (
    CACHE_MODES,
    MATMUL_PRECISIONS,
    OPTIMIZERS,
    PHOTOMETRIC,
    SCHEDULERS,
    TTA_VIEW_NAMES,
)
from src.utils.errors import UserError

MAX_IMAGE_SIZE = 1024  # 4.7x the paper's 224; larger inputs need code review, not a typo


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int_in(low: int, high: int | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and value >= low and (high is None or value <= high):
            return None
        return f"must be an integer in {low}..{high}" if high else f"must be an integer >= {low}"

    return check


def _real(low: float, high: float, low_open: bool, high_open: bool) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        number = _number(value)
        above = number is not None and (number > low if low_open else number >= low)
        below = number is not None and (number < high if high_open else number <= high)
        if above and below:
            return None
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        return f"must be a finite number in {bounds}"

    return check


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda value: None if value in options else f"must be one of {', '.join(options)}"


def _multiple_of_32(value: Any) -> str | None:
    problem = _int_in(32, MAX_IMAGE_SIZE)(value)
    return problem or (None if value % 32 == 0 else "must be a multiple of 32")


def _tta_views(value: Any) -> str | None:
    views = list(value) if isinstance(value, (list, tuple)) else None
    if not views or any(v not in TTA_VIEW_NAMES for v in views) or len(set(views)) < len(views):
        return f"must be a non-empty list of distinct views from {', '.join(TTA_VIEW_NAMES)}"
    return None


# key -> check returning the problem, or None; a missing key (an older stored config) is skipped
CHECKS: dict[str, Callable[[Any], str | None]] = {
    "seed": _int_in(0),
    "data.image_size": _multiple_of_32,
    "data.batch_size": _int_in(1, 4096),
    "data.eval_batch_size": _int_in(1, 4096),
    "data.num_workers": _int_in(0, 256),
    "data.augment_p": _real(0.0, 1.0, False, False),
    "data.photometric": _one_of(PHOTOMETRIC),
    "data.clin_dropout_p": _real(0.0, 1.0, False, True),
    "data.cache": _one_of(CACHE_MODES),
    "data.max_image_pixels": _int_in(1),
    "data.min_image_side": _int_in(1),
    "model.optimizer": _one_of(OPTIMIZERS),
    "model.scheduler": _one_of(SCHEDULERS),
    "model.lr": _real(0.0, 10.0, True, False),
    "model.weight_decay": _real(0.0, 10.0, False, False),
    "model.swa_epochs": _int_in(0),
    "model.swa_lr": _real(0.0, 10.0, True, False),  # null (None) keeps the cosine schedule
    "model.swa_anneal_epochs": _int_in(0),
    "model.head.dropout": _real(0.0, 1.0, False, True),
    "model.tta_views": _tta_views,
    "model.weight_grid_step": _real(0.0, 1.0, True, False),
    "model.bootstrap_resamples": _int_in(0, 1_000_000),
    "model.matmul_precision": _one_of(MATMUL_PRECISIONS),
    "trainer.max_epochs": _int_in(1),
}


def check_value(key: str, value: Any, rule: str | None = None) -> None:
    """Raise a one-line UserError naming `key` if `value` breaks the rule of config key `rule`
    (default: `key` itself); for a value that reaches a run by another name (a command-line
    flag, src.predict's `tta_views`)."""
    problem = CHECKS[rule or key](value)
    if problem:
        raise UserError(f"{key}={value} {problem}")


def check_config_values(cfg: DictConfig | dict[str, Any], source: str = "") -> None:
    """Raise a one-line UserError naming the first out-of-range key (and `source`, e.g. the
    checkpoint the config came from)."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    prefix = f"{source}: stored config: " if source else ""
    for key, check in CHECKS.items():
        value = OmegaConf.select(node, key, default=None, throw_on_missing=False)
        if value is None:
            continue
        if isinstance(value, DictConfig) or OmegaConf.is_list(value):
            value = OmegaConf.to_container(value)
        problem = check(value)
        if problem:
            raise UserError(f"{prefix}{key}={value} {problem}")
    swa, epochs = node.model.get("swa_epochs"), OmegaConf.select(node, "trainer.max_epochs")
    if isinstance(swa, int) and isinstance(epochs, int) and swa > epochs:
        raise UserError(
            f"{prefix}model.swa_epochs={swa} is more than trainer.max_epochs={epochs}; "
            "lower model.swa_epochs or raise trainer.max_epochs"
        )
