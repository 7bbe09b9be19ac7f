"""Progress of long steps: the plain log lines shown where the console is not a terminal."""

from __future__ import annotations

import io
import logging

import pytest

from src.utils.progress import PlainProgress, is_terminal, track

log = logging.getLogger("tests.progress")


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log.name]


def test_off_a_terminal_a_line_every_interval_with_totals_then_a_final_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    clock = ManualClock()
    items = []
    for item in track(range(10), 10, "pairs", log, terminal=False, interval_s=10, clock=clock):
        items.append(item)
        clock.now += 4  # each item takes 4 s: a line at 12, 24 and 36 s, none at the last item
    assert items == list(range(10))
    assert messages(caplog) == [
        "pairs 3/10 (30%), 12 s",
        "pairs 6/10 (60%), 24 s",
        "pairs 9/10 (90%), 36 s",
        "pairs 10/10 (100%), done in 40.0 s",
    ]


def test_a_quick_step_logs_only_its_final_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    clock = ManualClock()
    for _ in track("abc", 3, "images", log, terminal=False, clock=clock):
        clock.now += 0.1
    assert messages(caplog) == ["images 3/3 (100%), done in 0.3 s"]


def test_detail_is_read_only_when_a_line_is_due(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    calls: list[int] = []

    def detail() -> str:
        calls.append(1)
        return "loss 1.5"

    clock = ManualClock()
    progress = PlainProgress("epoch 1/2: batches", 4, log, interval_s=2, clock=clock)
    for _ in range(4):
        clock.now += 1
        progress.advance(detail=detail)
    assert messages(caplog) == ["epoch 1/2: batches 2/4 (50%), 2 s, loss 1.5"]
    assert len(calls) == 1


def test_a_file_is_not_a_terminal() -> None:
    assert not is_terminal(io.StringIO())
