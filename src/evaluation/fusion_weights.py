"""Weighted averaging of the three branch predictions (the paper's Eq. 4) and its weight search.

P_FI = w_D P_D + w_C P_C + w_FU P_FU, with the weights searched on the validation split and then
frozen for the test split.

Search: every weight runs over the grid step, 2 step, ..., 1 (20 values for step 0.05); each
candidate is normalised to sum 1 and scored by the mean of the task accuracies of the weighted
average. Candidates are visited in lexicographic order of their grid indices, branches in the
order derm, clin, fusion (the last varies fastest), and a candidate equal after normalisation to
an earlier one is skipped (e.g. (0.1, 0.1, 0.1) repeats (0.05, 0.05, 0.05)). Ties go to the
first best candidate in that order, so equal weights win any tie they take part in. Scores are
compared as integer counts of correct predictions, so the tie-break is exact; and a candidate's
count is exactly the accuracy of what `fuse` returns for it (same arithmetic, same dtype).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from src.data.tasks import TaskSpec
from src.evaluation.metrics import check_inputs

# Branch names of Eq. 4 in search order: dermoscopy (P_D), clinical (P_C), fusion (P_FU).
BRANCHES: tuple[str, ...] = ("derm", "clin", "fusion")

_CHUNK_ELEMENTS = 1 << 18  # compared values per chunk of candidates (float32: 1 MiB per tensor)


def _ordered(branches: Iterable[str]) -> list[str]:
    names = list(branches)
    unknown = sorted(set(names) - set(BRANCHES))
    if unknown or not names:
        raise ValueError(f"branches must be a non-empty subset of {BRANCHES}, got {names}")
    return [b for b in BRANCHES if b in names]


def grid_steps(step: float) -> int:
    """How many grid values step, 2 step, ... fit in [step, 1] (`model.weight_grid_step` is
    checked when the config is, src.config_checks)."""
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], got {step!r}")
    return math.floor(1 / step + 1e-9)


def candidate_grid(n_branches: int, n_steps: int) -> Tensor:
    """Integer grid indices [C, n_branches] (1..n_steps), lexicographic, normalised duplicates
    removed (a candidate is a duplicate when its indices divided by their gcd repeat an earlier
    candidate's)."""
    axis = torch.arange(1, n_steps + 1)
    grid = torch.cartesian_prod(*[axis] * n_branches).reshape(-1, n_branches)
    divisor = grid[:, 0]
    for j in range(1, n_branches):
        divisor = torch.gcd(divisor, grid[:, j])
    reduced = grid // divisor[:, None]
    _, inverse = torch.unique(reduced, dim=0, return_inverse=True)
    order = torch.arange(grid.shape[0])
    first = torch.full((int(inverse.max()) + 1,), grid.shape[0]).scatter_reduce(
        0, inverse, order, reduce="amin"
    )
    return grid[first.sort().values]


def _weighted_sum(weights: Sequence[Tensor], probs: Sequence[Tensor]) -> Tensor:
    """w_0 P_0 + w_1 P_1 + ..., one elementwise multiply and add at a time, always in this order.

    The search and `fuse` both add up through here with weights of the same dtype, so every
    fused probability the search compares is bit-identical to the one `fuse` returns, and even
    exact ties between classes resolve alike in both.
    """
    total = weights[0] * probs[0]
    for w, p in zip(weights[1:], probs[1:]):
        total = total + w * p
    return total


class _Rivalries:
    """For each case and task, the true class against each of the task's other classes.

    The argmax (first maximum) picks the true class y of a task exactly when no rival j beats
    it, where j beats y if P_j > P_y, or P_j == P_y and j < y. There are sum(k - 1) rivals per
    case (16 for derm7pt). Comparing gathered columns is much faster than an argmax over a few
    classes.
    """

    def __init__(self, labels: Tensor, spec: TaskSpec) -> None:
        true_cols, rival_cols, earlier, task_of = [], [], [], []
        for t, (offset, k) in enumerate(zip(spec.offsets, spec.num_classes)):
            y = labels[:, t : t + 1]
            for r in range(k - 1):  # r-th rival: class r, or r + 1 once past the true class
                rival = r + (r >= y).long()
                true_cols.append(offset + y)
                rival_cols.append(offset + rival)
                earlier.append(rival < y)
                task_of.append(t)
        self.true_cols = torch.cat(true_cols, dim=1)  # [N, R]
        self.rival_cols = torch.cat(rival_cols, dim=1)  # [N, R]
        self.earlier = torch.cat(earlier, dim=1)  # [N, R]
        self.task_of = torch.tensor(task_of)  # [R]
        self.n_tasks = len(spec.tasks)

    def count_correct(self, weights: Tensor, probs: list[Tensor]) -> Tensor:
        """Correct task predictions of each weighted average: weights [C, B], probs B x [N, L]."""
        true_p = [p.gather(1, self.true_cols) for p in probs]
        rival_p = [p.gather(1, self.rival_cols) for p in probs]
        per_task = torch.nn.functional.one_hot(self.task_of, self.n_tasks).to(weights.dtype)
        chunk = max(1, _CHUNK_ELEMENTS // self.true_cols.numel())
        counts = []
        for block in weights.split(chunk):
            columns = [block[:, j, None, None] for j in range(block.shape[1])]  # [c, 1, 1]
            f_true = _weighted_sum(columns, true_p)  # [c, N, R]
            f_rival = _weighted_sum(columns, rival_p)
            beaten = (f_rival > f_true) | ((f_rival == f_true) & self.earlier)
            wrong_tasks = beaten.to(weights.dtype) @ per_task  # [c, N, T]: rivals that win
            counts.append((wrong_tasks == 0).sum(dim=(1, 2)))
        return torch.cat(counts)


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Run torch ops on one intra-op thread, then restore the previous setting.

    The search is hundreds of small ops; with several threads each op waits for all of them,
    which on a busy machine (data loader workers, other jobs) made it 5-10x slower, not faster.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _compute_dtype(branch_probs: dict[str, Tensor]) -> torch.dtype:
    dtype = torch.float32
    for p in branch_probs.values():
        dtype = torch.promote_types(dtype, p.dtype)
    return dtype


def search_fusion_weights(
    branch_probs: dict[str, Tensor], labels: Tensor, spec: TaskSpec, step: float = 0.05
) -> dict[str, float]:
    """Weights (summing to 1) maximising the mean task accuracy of the weighted average.

    `branch_probs` maps "derm" / "clin" / "fusion" to probabilities [N, L]; `labels` is [N, T]
    (the layout of the task spec `spec`).
    A single branch gets weight 1.0 without a search. The accuracy each candidate is scored by
    is exactly that of `fuse(branch_probs, candidate)`.
    """
    names = _ordered(branch_probs)
    n_steps = grid_steps(step)
    for b in names:
        _, labels_cpu = check_inputs(branch_probs[b], labels, spec)
    if len(names) == 1:
        return {names[0]: 1.0}
    steps = candidate_grid(len(names), n_steps).double()
    weights = steps / steps.sum(dim=1, keepdim=True)
    dtype = _compute_dtype(branch_probs)
    # Unclamped, exactly as `fuse` sees them.
    probs = [branch_probs[b].detach().cpu().to(dtype) for b in names]
    with _single_threaded():
        correct = _Rivalries(labels_cpu, spec).count_correct(weights.to(dtype), probs)
    best = int(correct.argmax())  # the first maximum
    return {b: float(w) for b, w in zip(names, weights[best])}


def fuse(branch_probs: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """P_FI = sum of weights[b] * branch_probs[b], in float32 (float64 if an input is)."""
    if set(branch_probs) != set(weights):
        raise ValueError(
            f"fusion weights are for {sorted(weights)}, "
            f"but predictions are for {sorted(branch_probs)}"
        )
    names = _ordered(branch_probs)
    dtype = _compute_dtype(branch_probs)
    probs = [branch_probs[b].to(dtype) for b in names]
    factors = [torch.tensor(weights[b], dtype=dtype, device=p.device) for b, p in zip(names, probs)]
    return _weighted_sum(factors, probs)
