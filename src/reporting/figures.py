"""Report figures: AVG AUC against parameters, per-label mean ROC curves per configuration and
of all configurations overlaid, per-seed points beside mean ± std per paper table, and
validation AVG AUC learning curves from the runs' CSV logs.

Drawn on matplotlib `Figure` objects (Agg canvas, no pyplot state) and saved atomically.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from src.data.tasks import TaskSpec
from src.evaluation.plots import mean_roc_curve
from src.reference import PaperModel, PaperResults
from src.reporting.aggregate import ConfigResult
from src.reporting.cells import PCT, avg_auc, params_m
from src.reporting.matching import PaperMatches, paper_summaries
from src.reporting.naming import describe, setting, slug
from src.utils.errors import UserError
from src.utils.io import atomic_path

ROC_COLUMNS = 6  # 17 labels -> 3 x 6 panels
MODEL_TABLES = (6, 7, 9, 10)
CSV_LOG = Path("csv") / "metrics.csv"  # the CSV logger's file in a run folder
VAL_AUC = "val/avg_auc"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return path


# Offsets (points) tried in turn for a point's label, the first that overlaps no other label:
# beside the point, then further up or down and out (with a leader line).
LABEL_OFFSETS = [(6, 4), (6, -12), (-6, 4), (-6, -12)] + [
    (side, dy)
    for dy in (14, -22, 24, -32, 34, -42, 44, -52, 54, -62, 64, -72)
    for side in (6, -6, 40, -40)
]


def _place_labels(fig: Figure, ax: object, labels: list[tuple[float, float, str, dict]]) -> None:
    """Annotate points so that labels do not overlap: each takes the first candidate offset
    whose box overlaps no label placed before it (else the last candidate tried)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    fig.draw_without_rendering()
    fig.set_layout_engine("none")  # keep the axes where the boxes below are measured
    inside = ax.get_window_extent(renderer)  # type: ignore[attr-defined]
    to_pixels = ax.transData.transform  # type: ignore[attr-defined]
    placed = [Bbox.from_bounds(*(to_pixels((x, y)) - 4), 8, 8) for x, y, _, _ in labels]

    def annotate(x: float, y: float, text: str, style: dict, dx: float, dy: float):
        note = ax.annotate(  # type: ignore[attr-defined]
            text,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="left" if dx > 0 else "right",
            arrowprops={"arrowstyle": "-", "color": "lightgrey", "lw": 0.6}
            if abs(dy) > 12 or abs(dx) > 6
            else None,
            **style,
        )
        note.set_in_layout(False)  # the axes keep the size the boxes were measured at
        note.update_positions(renderer)  # the text's own box: an annotation's would include
        return note, Text.get_window_extent(note, renderer).expanded(1.02, 1.1)  # its line

    for x, y, text, style in labels:
        least: tuple[int, float, float] | None = None  # (overlaps, dx, dy) of the best miss
        for dx, dy in LABEL_OFFSETS:
            note, box = annotate(x, y, text, style, dx, dy)
            if inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1):
                overlaps = sum(box.overlaps(other) for other in placed)
                if not overlaps:
                    break
                least = min(least or (overlaps + 1, dx, dy), (overlaps, dx, dy))
            note.remove()
        else:  # every place overlaps: the one inside the axes overlapping fewest labels
            dx, dy = (6, 4) if least is None else least[1:]
            note, box = annotate(x, y, text, style, dx, dy)
        placed.append(box)


def auc_vs_params(results: Sequence[ConfigResult], paper: PaperResults, path: Path) -> Path:
    """AVG AUC (mean ± std over seeds) against parameters, counted the paper's way.

    The paper's own rows are drawn as open markers for comparison; the x axis uses the paper's
    accounting (whole backbones) for both, so the two sets of points are comparable.
    """
    fig = _figure(12, 8)
    ax = fig.add_subplot()
    labels: list[tuple[float, float, str, dict]] = []
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
        labels += [(x, y, name, {"fontsize": 9}) for x, y, name in zip(xs, ys, names)]
    published: dict[tuple[float, float], PaperModel] = {}
    tables: dict[tuple[float, float], list[int]] = {}
    for row in paper.models:
        if row.params_m is not None and row.avg_auc is not None:
            published.setdefault((row.params_m, row.avg_auc.mean), row)
            tables.setdefault((row.params_m, row.avg_auc.mean), []).append(row.table)
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
        text = {
            p: describe(names[r.id]) if r.id in names else r.description
            for p, r in published.items()
        }
        repeated = {t for t in text.values() if list(text.values()).count(t) > 1}
        for point, name in text.items():  # a model the paper reports twice: which table is which
            if name in repeated:
                text[point] = f"{name} (T{','.join(map(str, sorted(set(tables[point]))))})"
        labels += [(x, y, text[(x, y)], {"fontsize": 8, "color": "dimgrey"}) for x, y in published]
    ax.set(
        xlabel="parameters (M, paper accounting: whole backbones)",
        ylabel="test AVG AUC (%)",
        title="AVG AUC against model size",
    )
    ax.grid(alpha=0.3)
    ax.margins(x=0.08, y=0.08)
    handles, names = ax.get_legend_handles_labels()
    names = [textwrap.fill(n, 110, subsequent_indent="    ") for n in names]
    fig.legend(handles, names, loc="outside lower center", fontsize="medium")
    _place_labels(fig, ax, labels)
    ax.xaxis.label.set_size(12)
    ax.yaxis.label.set_size(12)
    return _save(fig, path)


def load_predictions(
    path: Path, tasks: TaskSpec, branch: str = "final"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs [N, L], labels [N, T]) of one run's predictions.csv, in the layout of `tasks`."""
    frame = pd.read_csv(path)
    prob_cols = [f"{branch}:{label}" for label in tasks.all_labels]
    label_cols = [f"label_{task}" for task in tasks.task_names]
    missing = [c for c in (*prob_cols, *label_cols) if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing columns {missing[:3]}...; is it a predictions.csv?")
    probs = torch.tensor(frame[prob_cols].to_numpy(dtype=np.float64))
    labels = torch.tensor(frame[label_cols].to_numpy(dtype=np.int64))
    return probs, labels


def mean_roc_figure(result: ConfigResult, path: Path) -> Path | None:
    """One panel per AVG AUC label: the mean ROC curve over seeds with a ±1 std band."""
    tasks = result.tasks
    runs = [load_predictions(r.predictions, tasks) for r in result.runs if r.predictions]
    if not runs:
        return None
    labels = tasks.avg_auc_labels
    rows = -(-len(labels) // ROC_COLUMNS)
    fig = _figure(3.0 * ROC_COLUMNS, 3.0 * rows)
    axes = list(np.atleast_1d(fig.subplots(rows, ROC_COLUMNS)).flat)
    for ax, label in zip(axes, labels):
        auc = result.stat(lambda m, lbl=label: m["auc"][lbl]).scaled(PCT)
        try:
            grid, mean, std = mean_roc_curve(runs, label, tasks)
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
    for ax in axes[len(labels) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{describe(result.config)} | {setting(result.config)}\nP_FI (fused prediction, "
        f"weights searched on validation), test split: mean ROC over {len(runs)} run(s), "
        "band ±1 std"
    )
    return _save(fig, path)


def _config_label(result: ConfigResult, several_settings: bool) -> str:
    name = describe(result.config)
    return f"{name}\n{setting(result.config)}" if several_settings else name


def strip_figure(table: int, matches: PaperMatches, path: Path) -> Path | None:
    """One paper table: every configuration's per-seed test AVG AUC (dots), its mean ± std
    (bar) and the paper's mean ± std (open grey square), one row per configuration."""
    rows: list[tuple[str, list[float], float | None, float | None]] = []
    results = matches.in_table(table)
    several = len({setting(r.config) for r in results}) > 1
    for result in results:
        seeds = [100 * r.metrics["avg_auc"] for r in result.runs if r.metrics.get("avg_auc")]
        if not seeds:
            continue
        paper = [m.avg_auc for m in matches.rows_of(result) if m.table == table and m.avg_auc]
        rows.append(
            (
                _config_label(result, several),
                seeds,
                paper[0].mean if paper else None,
                paper[0].std if paper else None,
            )
        )
    if not rows:
        return None
    fig = _figure(9, 1.0 + 0.7 * len(rows))
    ax = fig.add_subplot()
    for y, (_, seeds, paper_mean, paper_std) in enumerate(rows):
        jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(1)
        ax.scatter(seeds, y + jitter, s=18, color="C0", alpha=0.7, zorder=3)
        std = float(np.std(seeds, ddof=1)) if len(seeds) > 1 else 0.0
        ax.errorbar(
            float(np.mean(seeds)), y + 0.3, xerr=std, fmt="D", color="C1", capsize=4, zorder=4
        )
        if paper_mean is not None:
            ax.errorbar(
                paper_mean, y - 0.3, xerr=paper_std or 0.0, fmt="s", mfc="none", color="grey"
            )
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # top to bottom; each row's markers (±0.3) inside
    ax.scatter([], [], s=18, color="C0", label="ours, one seed")
    ax.errorbar([], [], xerr=[], fmt="D", color="C1", label="ours, mean ± std")
    ax.errorbar([], [], xerr=[], fmt="s", mfc="none", color="grey", label="paper, mean ± std")
    ax.set(xlabel="test AVG AUC (%)", title=f"Table {table}: AVG AUC per seed")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(fontsize="small", loc="outside right upper")
    return _save(fig, path)


def roc_overlay_figure(results: Sequence[ConfigResult], path: Path) -> Path | None:
    """One panel per AVG AUC label, grouped by task, with every configuration's mean ROC curve
    over its seeds on shared axes (the configurations with the first one's task spec)."""
    if not results:
        return None
    tasks = results[0].tasks
    results = [r for r in results if r.tasks.digest == tasks.digest]
    curves: list[tuple[str, list[tuple[torch.Tensor, torch.Tensor]]]] = []
    several = len({setting(r.config) for r in results}) > 1
    for result in results:
        runs = [load_predictions(r.predictions, tasks) for r in result.runs if r.predictions]
        if runs:
            curves.append((_config_label(result, several).replace("\n", " | "), runs))
    if not curves:
        return None
    labels = tasks.avg_auc_labels
    rows = -(-len(labels) // ROC_COLUMNS)
    fig = _figure(3.0 * ROC_COLUMNS, 3.0 * rows + 1.0)
    axes = np.atleast_2d(fig.subplots(rows, ROC_COLUMNS, sharex=True, sharey=True, squeeze=False))
    flat = list(axes.flat)
    for ax, label in zip(flat, labels):
        for i, (name, runs) in enumerate(curves):
            try:
                grid, mean, _ = mean_roc_curve(runs, label, tasks)
            except ValueError:
                continue
            ax.plot(grid, mean, color=f"C{i % 10}", label=name)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(label, fontsize=9)
        ax.set(xlim=(0, 1), ylim=(0, 1.01))
    for ax in flat[len(labels) :]:
        ax.set_visible(False)
    for column in range(ROC_COLUMNS):  # the lowest panel shown in each column
        ax = [a for a in axes[:, column] if a.get_visible()][-1]
        ax.set_xlabel("false positive rate")
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("true positive rate")
    handles, names = flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 3))
    data = ", ".join(sorted({str(r.config.get("data")) for r in results}))
    fig.suptitle(
        f"P_FI (fused prediction): mean ROC over seeds per label, test split of {data}, "
        "all configurations"
    )
    return _save(fig, path)


def learning_curves(results: Sequence[ConfigResult]) -> dict[str, list[pd.Series]]:
    """configuration label -> per-run validation AVG AUC by epoch, from each run's CSV log."""
    several = len({setting(r.config) for r in results}) > 1
    found: dict[str, list[pd.Series]] = {}
    for result in results:
        for run in result.runs:
            log_file = Path(run.source) / CSV_LOG
            if not log_file.is_file():
                continue
            frame = pd.read_csv(log_file)
            if VAL_AUC not in frame or "epoch" not in frame:
                continue
            curve = frame.dropna(subset=[VAL_AUC]).groupby("epoch")[VAL_AUC].last()
            if not curve.empty:
                label = _config_label(result, several).replace("\n", " | ")
                found.setdefault(label, []).append(curve * PCT)
    return found


def learning_curve_figure(results: Sequence[ConfigResult], path: Path) -> Path | None:
    """Validation AVG AUC per epoch: each configuration's mean over its runs, band ± 1 std."""
    found = learning_curves(results)
    if not found:
        return None
    fig = _figure(9, 6)
    ax = fig.add_subplot()
    for i, (name, runs) in enumerate(found.items()):
        frame = pd.concat(runs, axis=1)
        mean, std = frame.mean(axis=1), frame.std(axis=1, ddof=1).fillna(0.0)
        ax.plot(mean.index, mean, color=f"C{i % 10}", label=f"{name} (n={len(runs)})")
        ax.fill_between(mean.index, mean - std, mean + std, color=f"C{i % 10}", alpha=0.2)
    ax.set(xlabel="epoch", ylabel="validation AVG AUC (%)", title="Learning curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def write_figures(
    results: Sequence[ConfigResult], paper: PaperResults, out_dir: Path
) -> list[Path]:
    """avg_auc_vs_params.png, strip_table<N>.png per paper table with runs, roc_overlay.png,
    learning_curves.png (when runs have CSV logs) and roc/<configuration>.png per configuration
    with predictions."""
    matches = PaperMatches(results, paper)
    drawn: list[Path | None] = [auc_vs_params(results, paper, out_dir / "avg_auc_vs_params.png")]
    drawn += [strip_figure(t, matches, out_dir / f"strip_table{t}.png") for t in MODEL_TABLES]
    drawn.append(roc_overlay_figure(results, out_dir / "roc_overlay.png"))
    drawn.append(learning_curve_figure(results, out_dir / "learning_curves.png"))
    written = [p for p in drawn if p is not None]
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
