"""Progress of long steps with totals: a rich bar on a terminal, plain log lines otherwise.

A SLURM log or a redirected `make demo` is not a terminal: there a live bar shows nothing until
it ends, so `track` logs one line every `interval_s` seconds instead ("synthetic dataset: image
pairs 404/1011 (40%), 12 s"), then one line when the step is done, in both cases.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
PLAIN_INTERVAL_S = 10.0  # seconds between two plain progress lines


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether `stream` (default: stdout, where the console log goes) is an interactive
    terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


class PlainProgress:
    """Counts done items and logs "`what` done/total (pct%), elapsed" at most every
    `interval_s` seconds of `clock`; `finish` logs the final line."""

    def __init__(
        self,
        what: str,
        total: int,
        logger: logging.Logger,
        interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.logger = what, total, logger
        self.interval_s, self.clock = interval_s, clock
        self.done = 0
        self.started = self.last = clock()

    def line(self) -> str:
        percent = 100 * self.done // self.total if self.total else 100
        return f"{self.what} {self.done}/{self.total} ({percent}%)"

    def advance(self, n: int = 1, detail: Callable[[], str] | None = None) -> None:
        """Count `n` more done; log a line when `interval_s` has passed since the last one,
        with `detail()` appended (called only then)."""
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval_s and self.done < self.total:
            extra = f", {detail()}" if detail is not None else ""
            self.logger.info("%s, %.0f s%s", self.line(), now - self.started, extra)
            self.last = now

    def finish(self) -> None:
        self.logger.info("%s, done in %.1f s", self.line(), self.clock() - self.started)


def track(
    items: Iterable[T],
    total: int,
    what: str,
    logger: logging.Logger,
    terminal: bool | None = None,
    interval_s: float = PLAIN_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[T]:
    """Yield `items` (`total` of them) while showing progress: a rich bar when `terminal`
    (default: stdout is a terminal), else plain log lines; a final line either way."""
    plain = PlainProgress(what, total, logger, interval_s, clock)
    if is_terminal() if terminal is None else terminal:
        from rich.progress import MofNCompleteColumn, Progress

        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), transient=True) as bar:
            task = bar.add_task(what, total=total)
            for item in items:
                yield item
                plain.done += 1
                bar.advance(task)
    else:
        for item in items:
            yield item
            plain.advance()
    plain.finish()
