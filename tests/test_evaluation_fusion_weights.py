import itertools
from fractions import Fraction

import pytest
import torch

from src.evaluation.fusion_weights import (
    BRANCHES,
    candidate_grid,
    fuse,
    search_fusion_weights,
)
from src.evaluation.metrics import compute_metrics
from src.evaluation.probabilities import task_predictions, task_softmax
from tests.specs import DERM7PT, NUM_CLASSES, TASK_OFFSETS


def _labels(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, k, (n,), generator=gen) for k in NUM_CLASSES], dim=1)


def _noise(n: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return task_softmax(scale * torch.randn(n, 24, generator=gen), NUM_CLASSES)


def _confidently_wrong(labels: torch.Tensor) -> torch.Tensor:
    """One-hot on the class after the true one: every prediction wrong, with certainty."""
    probs = torch.zeros(labels.shape[0], 24)
    rows = torch.arange(labels.shape[0])
    for t, (offset, k) in enumerate(zip(TASK_OFFSETS, NUM_CLASSES)):
        probs[rows, offset + (labels[:, t] + 1) % k] = 1.0
    return probs


def _weakly_right(labels: torch.Tensor) -> torch.Tensor:
    """Right argmax everywhere, but only by a small margin over the runner-up."""
    probs = torch.zeros(labels.shape[0], 24)
    rows = torch.arange(labels.shape[0])
    for t, (offset, k) in enumerate(zip(TASK_OFFSETS, NUM_CLASSES)):
        probs[rows, offset : offset + k] = 0.4 / (k - 1)
        probs[rows, offset + labels[:, t]] = 0.6
    return probs


@pytest.mark.parametrize("good", BRANCHES)
def test_search_favours_the_only_accurate_branch(good):
    labels = _labels(20, seed=0)
    branch_probs = {b: _confidently_wrong(labels) for b in BRANCHES}
    branch_probs[good] = _weakly_right(labels)
    weights = search_fusion_weights(branch_probs, labels, DERM7PT)
    fused = fuse(branch_probs, weights)
    assert compute_metrics(fused, labels, DERM7PT)["avg_acc"] == 1.0
    # The margin 0.6 vs 0.4/(k-1) only survives when the good branch outweighs the others a lot.
    assert weights[good] > 0.7
    assert weights[good] == max(weights.values())
    assert set(weights) == set(BRANCHES)


def _brute_force(branch_probs, labels, step):
    """Reference: plain loops over the grid scoring `fuse` itself, first best candidate kept,
    candidates equal after normalisation skipped."""
    names = [b for b in BRANCHES if b in branch_probs]
    n_steps = round(1 / step)
    seen, best, best_correct = set(), None, -1
    for ks in itertools.product(range(1, n_steps + 1), repeat=len(names)):
        key = tuple(Fraction(k, sum(ks)) for k in ks)
        if key in seen:
            continue
        seen.add(key)
        weights = {b: float(w) for b, w in zip(names, key)}
        correct = int((task_predictions(fuse(branch_probs, weights), NUM_CLASSES) == labels).sum())
        if correct > best_correct:
            best, best_correct = weights, correct
    return best


def _lattice(n: int, seed: int) -> torch.Tensor:
    """Scores in {0, 0.25, ..., 1}: weighted sums tie exactly, often."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 5, (n, 24), generator=gen) / 4


@pytest.mark.parametrize(
    ("names", "step", "make"),
    [
        (BRANCHES, 0.25, _noise),
        (("derm", "fusion"), 0.1, _noise),
        (BRANCHES, 0.25, _lattice),
        (("clin", "fusion"), 0.05, _lattice),
    ],
)
def test_search_matches_brute_force(names, step, make):
    labels = _labels(40, seed=1)
    branch_probs = {b: make(40, seed=i + 10) for i, b in enumerate(names)}
    weights = search_fusion_weights(branch_probs, labels, DERM7PT, step=step)
    assert weights == _brute_force(branch_probs, labels, step)


def test_weights_are_normalised_on_grid_and_deterministic():
    labels = _labels(60, seed=2)
    branch_probs = {b: _noise(60, seed=i) for i, b in enumerate(BRANCHES)}
    weights = search_fusion_weights(branch_probs, labels, DERM7PT)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert all(w > 0 for w in weights.values())
    grid_points = {
        tuple(round(k / sum(ks), 9) for k in ks) for ks in itertools.product(range(1, 21), repeat=3)
    }
    assert tuple(round(weights[b], 9) for b in BRANCHES) in grid_points
    coarse = search_fusion_weights(branch_probs, labels, DERM7PT, step=0.1)
    reordered = {b: branch_probs[b] for b in reversed(BRANCHES)}
    assert search_fusion_weights(reordered, labels, DERM7PT, step=0.1) == coarse
    assert search_fusion_weights(branch_probs, labels, DERM7PT, step=0.1) == coarse


def test_ties_go_to_equal_weights():
    labels = _labels(30, seed=3)
    same = _noise(30, seed=4)
    weights = search_fusion_weights({b: same for b in BRANCHES}, labels, DERM7PT)
    assert weights == pytest.approx(dict.fromkeys(BRANCHES, 1 / 3))


def test_candidate_grid_order_and_duplicates():
    grid = candidate_grid(3, 12)
    assert grid[0].tolist() == [1, 1, 1]
    assert grid[1].tolist() == [1, 1, 2]
    normalised = {tuple(Fraction(int(k), int(row.sum())) for k in row) for row in grid}
    assert len(normalised) == grid.shape[0]  # no duplicates left
    all_points = {
        tuple(Fraction(k, sum(ks)) for k in ks) for ks in itertools.product(range(1, 13), repeat=3)
    }
    assert normalised == all_points  # and nothing lost
    keys = [tuple(row.tolist()) for row in grid]
    assert keys == sorted(keys)  # lexicographic visiting order kept


def test_search_restores_the_thread_setting():
    labels = _labels(400, seed=5)
    branch_probs = {b: _noise(400, seed=i) for i, b in enumerate(BRANCHES)}
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # not the search's own 1, so a missing restore shows
    try:
        search_fusion_weights(branch_probs, labels, DERM7PT, step=0.05)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_single_branch_gets_weight_one():
    labels = _labels(10, seed=6)
    assert search_fusion_weights({"derm": _noise(10, 1)}, labels, DERM7PT) == {"derm": 1.0}


def test_fuse_is_the_weighted_sum():
    probs = {b: _noise(5, seed=i) for i, b in enumerate(BRANCHES)}
    weights = {"derm": 0.5, "clin": 0.2, "fusion": 0.3}
    expected = 0.5 * probs["derm"] + 0.2 * probs["clin"] + 0.3 * probs["fusion"]
    fused = fuse(probs, weights)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, expected)
    assert fuse({b: p.double() for b, p in probs.items()}, weights).dtype == torch.float64


def test_mismatched_or_unknown_branches_are_rejected():
    probs = {"derm": _noise(5, 0), "clin": _noise(5, 1)}
    with pytest.raises(ValueError, match="fusion weights are for"):
        fuse(probs, {"derm": 1.0})
    with pytest.raises(ValueError, match="subset"):
        search_fusion_weights({"dermoscopy": _noise(5, 0)}, _labels(5, 0), DERM7PT)


@pytest.mark.parametrize("step", [0.0, -0.1, 1.5])
def test_bad_step_is_refused(step):
    """model.weight_grid_step is checked with the config (tests/test_config_checks.py); the
    search itself refuses a step outside (0, 1]."""
    probs = {"derm": _noise(5, 0), "clin": _noise(5, 1)}
    with pytest.raises(ValueError, match=r"step must be in \(0, 1\]"):
        search_fusion_weights(probs, _labels(5, 0), DERM7PT, step=step)
