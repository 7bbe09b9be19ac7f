"""Parameter accounting against the paper's printed totals, and the `python -m src.params` CLI."""

from __future__ import annotations

import json

import pytest

from src.models.network import count_parameters, validate_network_config
from src.params import (
    main,
    paper_row_config,
    paper_row_counts,
)
from src.project import compose_config
from src.reference import load_paper_results
from tests.specs import NUM_CLASSES

# The seven rows of docs/reproduction-targets.md and the two BAB rows of Table 9.
SEVEN_ROWS = [
    "t7-derm-st",
    "t7-derm-mn",
    "t10-resnet-derm",
    "t10-convnext-derm",
    "t6-baseline",
    "t6-aff",
    "t7-baseline-mn",
]
BAB_ROWS = ["t9-sff-bab", "t9-aff-bab"]
AAB_ROWS = ["t9-sff-aab", "t9-aff-aab", "t7-ammfm-st-mn"]


def _paper_accounting_m(row_id: str) -> tuple[float, float]:
    row = load_paper_results().model(row_id)
    return paper_row_counts(row)["paper_accounting"] / 1e6, row.params_m


@pytest.mark.parametrize("row_id", SEVEN_ROWS)
def test_paper_accounting_reproduces_the_seven_rows(row_id: str) -> None:
    ours, paper = _paper_accounting_m(row_id)
    assert abs(ours - paper) <= 0.015, (row_id, ours, paper)


@pytest.mark.parametrize("row_id", BAB_ROWS)
def test_paper_accounting_reproduces_table9_bab_rows(row_id: str) -> None:
    ours, paper = _paper_accounting_m(row_id)
    assert abs(ours - paper) <= 0.02, (row_id, ours, paper)


@pytest.mark.parametrize("row_id", AAB_ROWS)
def test_aab_rows_are_over_the_paper_by_the_documented_margin(row_id: str) -> None:
    ours, paper = _paper_accounting_m(row_id)
    assert 0.25 <= ours - paper <= 0.40, (row_id, ours, paper)  # README: q,k at c/8 on 4 stages


def test_block_counts_of_the_ammfm_configuration() -> None:
    counts = paper_row_counts(load_paper_results().model("t6-aff-aab"))
    # clinical MN (16/24/48/576): q, k at c/8; dermoscopy ST (96/192/384/768): v at c; no gate
    qk = sum(2 * (c * (c // 8) + c // 8) for c in (16, 24, 48, 576))
    v = sum(c * c + c for c in (96, 192, 384, 768))
    assert counts["blocks"] == qk + v == 868_694
    assert counts["heads"] == sum(512 * d + 70_552 for d in (576, 768, 576 + 768))
    assert counts["trainable"] == counts["total"] < counts["paper_accounting"]


@pytest.mark.parametrize("row_id", ["t6-baseline", "t7-ammfm-st-mn", "t10-resnet-clin"])
def test_paper_row_config_equals_hydra_composition(row_id: str) -> None:
    row = load_paper_results().model(row_id)
    composed = compose_config([*row.overrides, "data.image_size=224"])
    assert validate_network_config(paper_row_config(row)) == validate_network_config(composed)


def test_compose_without_a_primary_config_uses_the_model_groups() -> None:
    cfg = compose_config(["fusion=sff", "block=bab"], config_name="no_such_primary")
    assert (cfg.fusion.mode, cfg.block.type, cfg.backbone.name) == (
        "sff",
        "bab",
        "swinv2_tiny_window8_256",
    )
    assert cfg.data.image_size == 224 and list(cfg.model.head.hidden) == [512, 128]


def test_count_parameters_of_a_composed_config() -> None:
    counts = count_parameters(
        validate_network_config(compose_config(["fusion=sff", "block=cat", "backbone=mobilenet"])),
        NUM_CLASSES,
    )
    assert counts["backbones"] == 2 * 927_008
    assert counts["unused_imagenet_layers"] == 2 * (2_542_856 - 927_008)


def test_cli_paper_json_lists_every_row(capsys) -> None:
    main(["--paper", "--json"])
    records = json.loads(capsys.readouterr().out)
    rows = load_paper_results().models
    assert [r["row"] for r in records] == [row.row for row in rows]
    for record, row in zip(records, rows):
        assert set(record) == {"row", "params_m", "paper_accounting_m", "paper_m"}
        assert record["paper_m"] == row.params_m
        assert 0 < record["params_m"] < record["paper_accounting_m"]


def test_cli_single_configuration(capsys) -> None:
    main(["fusion=aff", "block=bab", "backbone=swin"])
    out = capsys.readouterr().out
    assert "trainable parameters:" in out and "paper accounting:" in out
    assert "Table 9: AFF MN+ST, BAB: 33.88 M" in out


def test_cli_bad_override_exits_with_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fusion=late"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "fusion" in err
