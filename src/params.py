"""Parameter accounting: honest counts beside the paper's, for any configuration or paper row.

    python -m src.params [overrides...]    e.g. fusion=sff block=bab backbone=swin
    python -m src.params --paper [--json]  every model row of the paper's Tables 5-10

"trainable" counts the parameters the network really has. "paper_accounting" counts the way
the paper's totals do: whole timm backbones, including the ImageNet classifier (and, for
MobileNetV3, the 1024-wide conv_head) that the network never uses, plus heads and blocks.
Networks are built on the meta device without weights, so counting is fast and offline.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from omegaconf import DictConfig

from src.config_checks import check_config_values
from src.data.tasks import load_task_spec
from src.models.network import (
    architecture,
    count_parameters,
    network_summary,
    validate_network_config,
)
from src.project import MODEL_GROUPS_ONLY, compose_config
from src.reference import PaperModel, load_paper_results
from src.utils.errors import exit_on_user_error

PAPER_IMAGE_SIZE = 224


def _millions(n: int) -> float:
    return round(n / 1e6, 4)


def paper_row_config(row: PaperModel) -> DictConfig:
    """The network part of a paper row's config: its overrides composed over the schema and the
    model groups only (`MODEL_GROUPS_ONLY`, so every row uses the paper's heads), at 224 px."""
    overrides = [*row.overrides, f"data.image_size={PAPER_IMAGE_SIZE}"]
    return compose_config(overrides, config_name=MODEL_GROUPS_ONLY)


_ROW_COUNTS: dict[tuple[str, ...], dict[str, int]] = {}


def paper_row_counts(row: PaperModel) -> dict[str, int]:
    """`count_parameters` of a paper row's configuration (memoised: rows share configurations)."""
    if row.overrides not in _ROW_COUNTS:
        cfg = paper_row_config(row)
        _ROW_COUNTS[row.overrides] = count_parameters(
            validate_network_config(cfg), load_task_spec(cfg.data.tasks).num_classes
        )
    return _ROW_COUNTS[row.overrides]


def paper_rows() -> list[dict]:
    """One record per paper model row: our counts at 224 px beside the published number."""
    records = []
    for row in load_paper_results().models:
        counts = paper_row_counts(row)
        records.append(
            {
                "row": row.row,
                "params_m": _millions(counts["trainable"]),
                "paper_accounting_m": _millions(counts["paper_accounting"]),
                "paper_m": row.params_m,
            }
        )
    return records


def matching_rows(cfg: DictConfig) -> list[PaperModel]:
    """Paper rows with the same framework, block (stages, q/k width) and backbones as `cfg`."""
    mine = architecture(network_summary(cfg))
    rows = load_paper_results().models
    return [row for row in rows if architecture(network_summary(paper_row_config(row))) == mine]


def _diff(ours_m: float, paper_m: float | None) -> str:
    return "" if paper_m is None else f"{ours_m - paper_m:+.3f}"


def _print_table(records: list[dict]) -> None:
    width = max(len(r["row"]) for r in records)
    print(f"{'row':<{width}}  {'params M':>9}  {'paper-acct M':>12}  {'paper M':>8}  {'diff M':>7}")
    for r in records:
        paper = "-" if r["paper_m"] is None else f"{r['paper_m']:.2f}"
        print(
            f"{r['row']:<{width}}  {r['params_m']:>9.3f}  {r['paper_accounting_m']:>12.3f}  "
            f"{paper:>8}  {_diff(r['paper_accounting_m'], r['paper_m']):>7}"
        )
    print("diff = paper accounting - paper; paper accounting counts unused ImageNet classifiers.")


def _print_config(cfg: DictConfig) -> None:
    spec = validate_network_config(cfg)
    counts = count_parameters(spec, load_task_spec(cfg.data.tasks).num_classes)
    print(f"configuration: {spec.describe()} ({spec.image_size} px)")
    trainable = counts["trainable"]
    print(f"  trainable parameters: {trainable:>12,}  ({_millions(trainable)} M)")
    for part in ("backbones", "blocks", "heads"):
        print(f"    {part + ':':<18} {counts[part]:>12,}")
    acct = counts["paper_accounting"]
    print(f"  paper accounting:     {acct:>12,}  ({_millions(acct)} M)")
    for row in matching_rows(cfg):
        if row.params_m is not None:
            print(
                f"  {row.row}: {row.params_m:.2f} M, difference "
                f"{_diff(_millions(acct), row.params_m)} M"
            )


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.params", description="Parameter counts beside the paper's."
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. fusion=sff block=bab")
    parser.add_argument("--paper", action="store_true", help="every model row of Tables 5-10")
    parser.add_argument("--json", action="store_true", help="with --paper: print a JSON list")
    args = parser.parse_args(argv)
    if args.json and not args.paper:
        parser.error("--json needs --paper")
    if args.paper and args.overrides:
        parser.error("--paper builds the paper's own configurations and takes no overrides")
    if args.paper:
        records = paper_rows()
        if args.json:
            print(json.dumps(records, indent=2))
        else:
            _print_table(records)
        return
    cfg = compose_config(args.overrides)
    check_config_values(cfg)  # out-of-range values, as src.train refuses them
    _print_config(cfg)


if __name__ == "__main__":
    main()
