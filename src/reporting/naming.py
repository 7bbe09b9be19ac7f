"""Human names for configurations: the paper's row names, settings and file-name slugs."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from src.models.names import describe

PAPER_PRECISIONS = ("32-true", "32", "32-mixed")  # fp32 training, as the paper's code


def off_recipe_precision(config: dict[str, Any]) -> str | None:
    """The trainer precision when it is not the paper's fp32 (e.g. "bf16-mixed"), else None."""
    precision = str(config.get("precision", "32-true"))
    return None if precision in PAPER_PRECISIONS else precision


def setting(config: dict[str, Any]) -> str:
    """How a configuration was trained, e.g. "derm7pt 224px 250ep SWA50 pretrained"; a
    precision other than fp32 is named, marked as off the paper's recipe."""
    weights = "pretrained" if config.get("pretrained") else "from scratch"
    swa = f" SWA{config['swa_epochs']}" if config.get("swa_epochs") else ""
    precision = off_recipe_precision(config)
    off = f" {precision} (off recipe)" if precision else ""
    others = config.get(OFF_RECIPE_KEY)
    if others is None:
        off += " (no result identity recorded)"
    elif others:
        off += f"; off recipe: {', '.join(others)}"
    return (
        f"{config.get('data')} {config.get('image_size')}px "
        f"{config.get('max_epochs')}ep{swa} {weights}{off}"
    )


OFF_RECIPE_KEY = "off_recipe"  # in a report's configuration: the settings unlike the paper's
# Settings the configuration's name and `setting` already say, or that never differ by choice.
NAMED_SETTINGS = frozenset(
    {
        "seed",
        "data.name",
        "data.synthetic",
        "data.synthetic_seed",
        "data.image_size",
        "trainer.max_epochs",
        "trainer.precision",
        "model.swa_epochs",
        "backbone.name",
        "backbone.pretrained",
        "fusion.mode",
        "clin_backbone.name",
        "block.type",
        "block.stages",
        "block.qk_reduction",
        "block.gate",
        "data._target_",
        "model.metadata",
        "model.allow_leaky_metadata",
    }
)


def off_recipe(settings: dict[str, Any], recipe: dict[str, Any]) -> list[str]:
    """`key=value` for every result setting that differs from the paper's recipe and that the
    configuration's name does not already say (so an off-recipe run never reads as the recipe).
    A recipe key the run did not record was added to the config after the run, with a default
    that keeps the earlier behaviour (the paired-CSV columns, for one): it is not a difference."""
    return [
        f"{key}={settings[key]}"
        for key in sorted(settings)
        if key not in NAMED_SETTINGS and settings[key] != recipe.get(key)
    ]


SLUG_CHARS = 80  # file names stay well under the 255-byte limit of common file systems


def slug(config: dict[str, Any]) -> str:
    """A file-name-safe name unique to the configuration and its setting; a long one is cut
    and ends with a hash of the whole name."""
    text = f"{describe(config)} {setting(config)}"
    name = re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")
    if len(name) <= SLUG_CHARS:
        return name
    return f"{name[:SLUG_CHARS]}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"
