"""The paper configurations the benchmarks measure, and their composed configs."""

from __future__ import annotations

from collections.abc import Sequence

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


def paper_row(row_id: str) -> PaperModel:
    try:
        return load_paper_results().model(row_id)
    except KeyError:
        known = ", ".join(INFERENCE_ROWS)
        raise UserError(f"unknown configuration {row_id!r}; benchmarked rows: {known}") from None


def bench_config(
    row_id: str, image_size: int, extra: Sequence[str] = (), trainer: str = "cpu"
) -> DictConfig:
    """The project's composed config for a paper row at `image_size`, random weights.

    Composed outside a Hydra run, so the two values that name the Hydra run (the output
    directory and the tags) are set here; nothing is written there.
    """
    from src.project import compose_config

    row = paper_row(row_id)
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
