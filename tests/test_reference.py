"""The paper's numbers data file: complete, consistent with itself, buildable configurations."""

from __future__ import annotations

import pytest

from src.models.network import validate_network_config
from src.params import paper_row_config
from src.reference import load_paper_results
from tests.specs import AVG_AUC_LABELS, MELANOMA_LABELS

RESULTS = load_paper_results()
ROUNDING = 0.0501  # printed to one decimal: a mean may differ by half a digit (+ float slack)


def _mean(values) -> float:
    values = list(values)
    return sum(v.mean for v in values) / len(values)


def test_model_rows_cover_tables_5_to_10() -> None:
    per_table = {t: [m for m in RESULTS.models if m.table == t] for t in (5, 6, 7, 9, 10)}
    assert {t: len(rows) for t, rows in per_table.items()} == {5: 1, 6: 3, 7: 8, 9: 6, 10: 12}
    assert [m.params_m for m in per_table[9]] == [58.49, 60.45, 59.09, 32.48, 33.88, 33.06]
    assert all(m.avg_auc is not None and m.avg_acc is not None for m in RESULTS.models)


@pytest.mark.parametrize("row", RESULTS.models, ids=lambda m: m.id)
def test_every_row_is_a_valid_configuration(row) -> None:
    spec = validate_network_config(paper_row_config(row))
    assert spec.mode == row.choices["fusion"]


def test_label_columns_average_to_the_printed_avg_or_say_why() -> None:
    assert [(s.table, s.model) for s in RESULTS.label_auc] == [
        (8, "t7-clin-st"),
        (8, "t7-derm-st"),
        (8, "t7-baseline-st"),
        (8, "t7-ammfm"),
        (2, "t5-ammfm"),
    ]
    for scores in RESULTS.label_auc:
        assert tuple(scores.values) == AVG_AUC_LABELS
        consistent = abs(_mean(scores.values.values()) - scores.avg.mean) <= ROUNDING
        assert consistent or scores.note, (scores.column, _mean(scores.values.values()))
    assert abs(_mean(RESULTS.label_auc[3].values.values()) - 87.6) <= ROUNDING
    assert abs(_mean(RESULTS.label_auc[4].values.values()) - 88.1) <= ROUNDING


def test_best_run_tables_agree_with_each_other() -> None:
    (acc,) = RESULTS.task_acc
    assert abs(_mean(acc.values.values()) - acc.avg.mean) <= ROUNDING
    table2 = RESULTS.label_auc[4].values
    for metric, scores in RESULTS.melanoma.items():
        assert tuple(scores.values) == MELANOMA_LABELS
        assert abs(_mean(scores.values.values()) - scores.avg.mean) <= ROUNDING, metric
    assert RESULTS.melanoma["auc"].values == {k: table2[k] for k in MELANOMA_LABELS}
    assert RESULTS.model("t5-ammfm").avg_auc.mean == RESULTS.label_auc[4].avg.mean
