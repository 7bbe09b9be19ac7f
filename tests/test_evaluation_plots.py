import numpy as np
import pytest
import torch
from matplotlib.image import imread
from sklearn.metrics import roc_auc_score

from src.evaluation.plots import mean_roc_curve, save_confusion_matrices, save_roc_curves
from src.evaluation.probabilities import task_softmax
from tests.specs import DERM7PT, NUM_CLASSES, label_column

N = 40


def _case(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.stack([torch.randint(0, k, (N,), generator=gen) for k in NUM_CLASSES], dim=1)
    labels[:, 0][labels[:, 0] == 0] = 1  # DIAG/BCC absent: a class without a curve
    return task_softmax(torch.randn(N, 24, generator=gen), NUM_CLASSES), labels


@pytest.mark.parametrize("save", [save_roc_curves, save_confusion_matrices])
def test_figures_are_written_as_png(tmp_path, save):
    target = tmp_path / "figures" / "plot.png"
    result = save(*_case(0), DERM7PT, target, title="test split")
    assert result == target
    image = imread(target)
    assert image.shape[0] > 300 and image.shape[1] > 600  # 2 x 4 subplots
    assert image[..., :3].std() > 0.05  # something was drawn
    assert [p.name for p in target.parent.iterdir()] == ["plot.png"]  # no temporary left


def _one_label_run(scores: list[float], positive: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """A run in which only DIAG/MEL matters: its scores and whether each case is MEL."""
    n = len(scores)
    probs = torch.full((n, 24), 0.5)
    probs[:, label_column("DIAG/MEL")] = torch.tensor(scores)
    labels = torch.zeros(n, 8, dtype=torch.long)
    labels[:, 0] = torch.where(torch.tensor(positive), 2, 1)
    return probs, labels


def test_mean_roc_of_perfect_and_inverted_runs():
    positive = [True, True, False, False]
    perfect = _one_label_run([0.9, 0.8, 0.2, 0.1], positive)
    inverted = _one_label_run([0.1, 0.2, 0.8, 0.9], positive)
    fpr, mean, std = mean_roc_curve([perfect, inverted], "DIAG/MEL", DERM7PT, grid_size=11)
    np.testing.assert_allclose(fpr, np.linspace(0, 1, 11))
    # perfect: points (0, 0), (0, .5), (0, 1), (.5, 1), (1, 1): TPR 1 from FPR 0 on.
    # inverted: (0, 0), (.5, 0), (1, 0), (1, .5), (1, 1): TPR 0 until the vertical at FPR 1.
    inverted_tpr = np.array([0.0] * 10 + [1.0])
    np.testing.assert_allclose(mean, (1 + inverted_tpr) / 2)
    np.testing.assert_allclose(std, (1 - inverted_tpr) / 2)


def test_mean_roc_of_one_run_integrates_to_its_auc():
    probs, labels = _case(3)
    fpr, mean, std = mean_roc_curve([(probs, labels)], "PN/ATP", DERM7PT, grid_size=2001)
    truth = (labels[:, 1] == 2).numpy()
    expected = roc_auc_score(truth, probs[:, label_column("PN/ATP")].numpy())
    assert np.trapezoid(mean, fpr) == pytest.approx(expected, abs=2e-3)
    assert np.all(np.diff(mean) >= 0)
    assert np.all(std == 0)


def test_mean_roc_skips_runs_without_the_label():
    good = _case(3)
    probs, labels = _case(4)
    labels[:, 0] = 1  # every case NEV: DIAG/NEV has no negatives in this run
    with_skipped = mean_roc_curve([good, (probs, labels)], "DIAG/NEV", DERM7PT)
    for got, expected in zip(with_skipped, mean_roc_curve([good], "DIAG/NEV", DERM7PT)):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="DIAG/BCC"):
        mean_roc_curve([_case(0), _case(1)], "DIAG/BCC", DERM7PT)  # no run has a BCC case


def test_confusion_matrices_count_and_accuracy_per_task():
    from sklearn.metrics import confusion_matrix

    from src.evaluation.plots import confusion_matrices
    from src.evaluation.probabilities import split_tasks

    probs, labels = _case(1)
    found = confusion_matrices(probs, labels, DERM7PT)
    for t, (segment, (matrix, accuracy)) in enumerate(zip(split_tasks(probs, NUM_CLASSES), found)):
        predicted = segment.argmax(dim=1).numpy()
        truth = labels[:, t].numpy()
        expected = confusion_matrix(truth, predicted, labels=range(NUM_CLASSES[t]))
        np.testing.assert_array_equal(matrix, expected)
        assert accuracy == pytest.approx((predicted == truth).mean())
