"""The paper configurations the benchmarks measure, and their composed configs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omegaconf import DictConfig, open_dict

from src.reference import PaperModel, load_paper_results
from src.utils.errors import UserError

# Paper rows (src/reference/paper_results.yaml ids), reference first.
INFERENCE_ROWS: tuple[str, ...] = (
    "t9-sff-cat",  # SFF ST+ST, CAT: the baseline every ratio is relative to
    "t9-sff-bab",
    "t9-sff-aab",
    "t9-aff-cat",
    "t9-aff-bab",
    "t9-aff-aab",  # AMMFM
    "t7-baseline-mn",
    "t7-derm-st",
    "t7-derm-mn",
)
REFERENCE_ROW = "t9-sff-cat"
AMMFM_ROW = "t9-aff-aab"
ONNX_ROWS: tuple[str, ...] = ("t9-aff-aab", "t9-sff-cat")

# Settings every benchmark config shares: no downloads, the synthetic data, CPU trainer, quiet.
BASE_OVERRIDES: tuple[str, ...] = (
    "backbone.pretrained=false",
    "data=synthetic",
    "logger=none",
    "callbacks=none",
)


@dataclass(frozen=True)
class OptionRow:
    """A paper row built with an option that changes the model, timed beside the paper's rows.

    It is not the paper's model: it has no published parameter count or accuracy, and its
    accuracy is measured on its own (experiments/bench/deployed/README.md)."""

    id: str
    base: str  # the paper row it modifies
    options: tuple[str, ...]  # Hydra overrides applied after the base row's
    description: str
    params_m: None = None
    avg_auc: None = None

    @property
    def overrides(self) -> tuple[str, ...]:
        return (*paper_row(self.base).overrides, *self.options)


# The AAB without its stride-4 block (N = 3136 positions, the largest part of its ONNX time).
OPTION_ROWS: dict[str, OptionRow] = {
    row.id: row
    for row in (
        OptionRow(
            "t9-aff-aab-s123",
            AMMFM_ROW,
            ("block.stages=[1,2,3]",),
            "AFF MN+ST, AAB at stages 1-3 only (option)",
        ),
    )
}


def paper_row(row_id: str) -> PaperModel:
    try:
        return load_paper_results().model(row_id)
    except KeyError:
        known = ", ".join([*INFERENCE_ROWS, *OPTION_ROWS])
        raise UserError(f"unknown configuration {row_id!r}; benchmarked rows: {known}") from None


def bench_row(row_id: str) -> PaperModel | OptionRow:
    """A paper row, or one of OPTION_ROWS."""
    return OPTION_ROWS.get(row_id) or paper_row(row_id)


def bench_config(
    row_id: str, image_size: int, extra: Sequence[str] = (), trainer: str = "cpu"
) -> DictConfig:
    """The project's composed config for a paper row at `image_size`, random weights.

    Composed outside a Hydra run, so the two values that name the Hydra run (the output
    directory and the tags) are set here; nothing is written there.
    """
    from src.project import compose_config

    row = bench_row(row_id)
    overrides = [
        *row.overrides,
        *BASE_OVERRIDES,
        f"trainer={trainer}",
        f"data.image_size={image_size}",
        *extra,
    ]
    cfg = compose_config(overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = "${paths.log_dir}/bench"
        cfg.tags = ["bench"]
    return cfg
