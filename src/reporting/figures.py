"""Report figures: AVG AUC against parameters, and per-label mean ROC curves per configuration.

Drawn on matplotlib `Figure` objects (Agg canvas, no pyplot state) and saved atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from src.data.schema import ALL_LABELS, AVG_AUC_LABELS, TASK_NAMES
from src.evaluation.plots import mean_roc_curve
from src.reference import PaperModel, PaperResults
from src.reporting.aggregate import ConfigResult
from src.reporting.cells import PCT, avg_auc, params_m
from src.reporting.matching import paper_summaries
from src.reporting.naming import describe, setting, slug
from src.utils.errors import UserError
from src.utils.io import atomic_path

ROC_COLUMNS = 6  # 17 labels -> 3 x 6 panels


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def auc_vs_params(results: Sequence[ConfigResult], paper: PaperResults, path: Path) -> Path:
    """AVG AUC (mean ± std over seeds) against parameters, counted the paper's way.

    The paper's own rows are drawn as open markers for comparison; the x axis uses the paper's
    accounting (whole backbones) for both, so the two sets of points are comparable.
    """
    fig = _figure(9, 6)
    ax = fig.add_subplot()
    for where in sorted({setting(r.config) for r in results}):
        points = [
            (params_m(r, "paper_accounting"), avg_auc(r), describe(r.config))
            for r in results
            if setting(r.config) == where
        ]
        points = [(x, auc, name) for x, auc, name in points if x is not None and auc.mean]
        if not points:
            continue
        xs, stats, names = zip(*points)
        ys = [s.mean for s in stats]
        ax.errorbar(
            xs, ys, yerr=[s.std or 0.0 for s in stats], fmt="o", capsize=3, label=f"ours: {where}"
        )
        for x, y, name in zip(xs, ys, names):
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    published: dict[tuple[float, float], PaperModel] = {}
    for row in paper.models:
        if row.params_m is not None and row.avg_auc is not None:
            published.setdefault((row.params_m, row.avg_auc.mean), row)
    if published:
        rows = list(published.values())
        ax.errorbar(
            [r.params_m for r in rows],
            [r.avg_auc.mean for r in rows],  # type: ignore[union-attr]
            yerr=[r.avg_auc.std or 0.0 for r in rows],  # type: ignore[union-attr]
            fmt="s",
            mfc="none",
            color="grey",
            capsize=3,
            label="paper (published)",
        )
        names = paper_summaries()
        for (x, y), row in published.items():
            ax.annotate(
                describe(names[row.id]) if row.id in names else row.description,
                (x, y),
                fontsize=6,
                color="grey",
                xytext=(4, -8),
                textcoords="offset points",
            )
    ax.set(
        xlabel="parameters (M, paper accounting: whole backbones)",
        ylabel="test AVG AUC (%)",
        title="AVG AUC against model size",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def load_predictions(path: Path, branch: str = "final") -> tuple[torch.Tensor, torch.Tensor]:
    """(probs [N, 24], labels [N, 8]) of one run's predictions.csv."""
    frame = pd.read_csv(path)
    prob_cols = [f"{branch}:{label}" for label in ALL_LABELS]
    label_cols = [f"label_{task}" for task in TASK_NAMES]
    missing = [c for c in (*prob_cols, *label_cols) if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing columns {missing[:3]}...; is it a predictions.csv?")
    probs = torch.tensor(frame[prob_cols].to_numpy(dtype=np.float64))
    labels = torch.tensor(frame[label_cols].to_numpy(dtype=np.int64))
    return probs, labels


def mean_roc_figure(result: ConfigResult, path: Path) -> Path | None:
    """One panel per AVG AUC label: the mean ROC curve over seeds with a ±1 std band."""
    runs = [load_predictions(r.predictions) for r in result.runs if r.predictions is not None]
    if not runs:
        return None
    rows = -(-len(AVG_AUC_LABELS) // ROC_COLUMNS)
    fig = _figure(3.0 * ROC_COLUMNS, 3.0 * rows)
    axes = list(fig.subplots(rows, ROC_COLUMNS).flat)
    for ax, label in zip(axes, AVG_AUC_LABELS):
        auc = result.stat(lambda m, lbl=label: m["auc"][lbl]).scaled(PCT)
        try:
            grid, mean, std = mean_roc_curve(runs, label)
        except ValueError:  # no run has both classes of this label
            ax.set_title(f"{label}\nno curve")
            continue
        ax.plot(grid, mean)
        ax.fill_between(grid, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), alpha=0.25)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        auc_text = (
            "n/a"
            if auc.mean is None
            else f"{auc.mean:.1f}" + ("" if auc.std is None else f" ± {auc.std:.1f}")
        )
        ax.set_title(f"{label}  AUC {auc_text}", fontsize=9)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
        ax.tick_params(labelsize=7)
    for ax in axes[len(AVG_AUC_LABELS) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{describe(result.config)} | {setting(result.config)} | mean ROC over "
        f"{len(runs)} run(s), band ±1 std"
    )
    return _save(fig, path)


def write_figures(
    results: Sequence[ConfigResult], paper: PaperResults, out_dir: Path
) -> list[Path]:
    """avg_auc_vs_params.png and roc/<configuration>.png for every configuration with runs."""
    written = [auc_vs_params(results, paper, out_dir / "avg_auc_vs_params.png")]
    used: set[str] = set()
    for result in results:
        name = slug(result.config)
        while name in used:
            name += "_"
        used.add(name)
        roc = mean_roc_figure(result, out_dir / "roc" / f"{name}.png")
        if roc is not None:
            written.append(roc)
    return written
