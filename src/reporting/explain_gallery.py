"""The report's gallery `explain/`: the panels and explain.json (src.explain) of the first test
cases of every configuration, from its first seed's final checkpoint.

    explain/<configuration>/<case>.png, explain.json
    explain/index.md   per configuration: the mean mass_in_lesion vs lesion_area_share of each
                       Grad-CAM map, and links to the panels
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.inference.explain import explain_checkpoint
from src.reporting.aggregate import ConfigResult
from src.reporting.naming import describe, setting, slug
from src.utils.errors import UserError
from src.utils.io import atomic_write_text

log = logging.getLogger(__name__)
GALLERY = "explain"


def first_seed_checkpoint(result: ConfigResult) -> Path | None:
    """The final checkpoint of the configuration's complete run with the lowest seed, if it is
    on disk (its metrics.json records it)."""
    runs = sorted(result.runs, key=lambda r: (r.seed is None, r.seed or 0, r.source))
    for run in runs[:1]:
        recorded = (run.metrics or {}).get("checkpoint")
        if isinstance(recorded, str) and Path(recorded).is_file():
            return Path(recorded)
    return None


def _section(name: str, result: ConfigResult, document: dict[str, Any] | None, why: str) -> str:
    title = f"### {describe(result.config)} | {setting(result.config)}\n\n"
    if document is None:
        return f"{title}No panels: {why}.\n"
    rows = [
        "| map | mean mass in lesion | mean lesion area share | hit rate | cases |",
        "|---|---|---|---|---|",
    ]
    for map_name, entry in document["summary"].items():
        if map_name.startswith("gradcam/"):
            rows.append(
                f"| {map_name} | {entry['mean_mass_in_lesion']:.3f} | "
                f"{entry['mean_lesion_area_share']:.3f} | {entry['hit_rate']:.2f} | "
                f"{entry['cases']} |"
            )
    links = " ".join(f"[{c['id']}]({name}/{c['panel']})" for c in document["cases"])
    table = "\n".join(rows) + "\n\n" if len(rows) > 2 else ""
    source = f"Task {document['task']}, checkpoint {document['checkpoint']}."
    return f"{title}{source}\n\n{table}Panels: {links}\n"


def write_gallery(results: Sequence[ConfigResult], out_dir: Path, cases: int) -> Path:
    """Write `out_dir/explain/` (replacing an earlier one) and return its index.md."""
    gallery = out_dir / GALLERY
    if gallery.exists():
        shutil.rmtree(gallery)
    gallery.mkdir(parents=True)
    used: set[str] = set()
    sections = []
    for result in results:
        name = slug(result.config)
        while name in used:
            name += "_"
        used.add(name)
        ckpt = first_seed_checkpoint(result)
        document, why = None, "no complete run with its final checkpoint on disk"
        if ckpt is not None:
            try:
                document = explain_checkpoint(ckpt, gallery / name, split="test", n=cases)
            except UserError as err:
                why = str(err)
                log.warning("explain gallery: %s skipped (%s)", name, err)
        sections.append(_section(name, result, document, why))
    index = gallery / "index.md"
    header = (
        "# Where the models look\n\nThe first test cases of each configuration, explained by "
        "`python -m src.explain` with its first seed's final checkpoint.\n\n"
    )
    atomic_write_text(index, header + "\n".join(sections))
    return index
