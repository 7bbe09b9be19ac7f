import pytest
import torch

from src.evaluation.probabilities import split_tasks, task_predictions, task_softmax
from tests.specs import ALL_LABELS, NUM_CLASSES, TASK_OFFSETS, label_column


def test_split_tasks_follows_num_classes():
    x = torch.arange(24.0).repeat(3, 1)
    segments = split_tasks(x, NUM_CLASSES)
    assert [s.shape[-1] for s in segments] == list(NUM_CLASSES)
    assert [int(s[0, 0]) for s in segments] == list(TASK_OFFSETS)
    assert torch.equal(torch.cat(segments, dim=-1), x)


def test_task_softmax_normalises_each_segment_separately():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 24) * 3
    probs = task_softmax(logits, NUM_CLASSES)
    assert probs.shape == logits.shape
    for seg_p, seg_l in zip(split_tasks(probs, NUM_CLASSES), split_tasks(logits, NUM_CLASSES)):
        torch.testing.assert_close(seg_p.sum(-1), torch.ones(2, 5))
        torch.testing.assert_close(seg_p, torch.softmax(seg_l, dim=-1))


def test_task_predictions_is_argmax_within_each_task():
    probs = torch.zeros(2, 24)
    expected = torch.tensor([[4, 0, 2, 1, 1, 0, 1, 2], [0, 2, 1, 0, 0, 2, 0, 1]])
    for row in range(2):
        for t, cls in enumerate(expected[row]):
            probs[row, TASK_OFFSETS[t] + cls] = 1.0
    preds = task_predictions(probs, NUM_CLASSES)
    assert preds.dtype == torch.long
    assert torch.equal(preds, expected)


def test_label_column_matches_all_labels_order():
    assert [label_column(lbl) for lbl in ALL_LABELS] == list(range(24))
    assert label_column("DIAG/MEL") == 2
    assert label_column("VS/IR") == 23


def test_wrong_width_is_rejected():
    with pytest.raises(ValueError, match="24 columns"):
        task_softmax(torch.zeros(3, 23), NUM_CLASSES)
