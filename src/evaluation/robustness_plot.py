"""The robustness probe's figure: AVG AUC against corruption severity, one panel per modality
(one line per corruption), with the unchanged model and the missing-image conditions as
horizontal reference lines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from src.utils.io import atomic_path

MODALITY_TITLES = {"clinic": "clinical image changed", "derm": "dermoscopy image changed"}
REFERENCE_STYLES = {
    "as_is": {"color": "black", "linestyle": "-", "label": "as is"},
    "missing_mean": {"color": "tab:red", "linestyle": "--", "label": "missing (mean image)"},
    "missing_shuffled": {
        "color": "tab:purple",
        "linestyle": ":",
        "label": "missing (another case's image)",
    },
}


def save_robustness_figure(
    conditions: Sequence[dict[str, Any]],
    corruptions: Sequence[str],
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """Draw `conditions` (robustness.json's list) and save the PNG atomically at `path`."""
    modalities = [m for m in MODALITY_TITLES if any(c["modality"] == m for c in conditions)]
    fig = Figure(figsize=(6.0 * len(modalities), 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(modalities), sharey=True, squeeze=False)[0]
    colours = colormaps["tab10"]
    as_is = next(c["avg_auc"] for c in conditions if c["kind"] == "as_is")
    for ax, modality in zip(axes, modalities):
        mine = [c for c in conditions if c["modality"] == modality]
        for k, name in enumerate(corruptions):
            points = sorted((c["severity"], c["avg_auc"]) for c in mine if c["kind"] == name)
            points = [(s, v) for s, v in points if v is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", color=colours(k), label=name.replace("_", " "))
        references = [("as_is", as_is)]
        references += [(c["kind"], c["avg_auc"]) for c in mine if c["kind"] in REFERENCE_STYLES]
        for kind, value in references:
            if value is not None:
                style = REFERENCE_STYLES[kind]
                ax.axhline(value, color=style["color"], linestyle=style["linestyle"], lw=1.2)
                ax.plot([], [], **style)  # legend entry
        ax.axhline(0.5, color="grey", lw=0.8, alpha=0.5)
        ax.set_title(MODALITY_TITLES[modality])
        ax.set_xlabel("severity")
        ax.set_xticks(range(1, 6))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test AVG AUC (P_FI, frozen fusion weights)")
    handles, labels = axes[0].get_legend_handles_labels()  # the same entries in every panel
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=9)
    fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return Path(path)
