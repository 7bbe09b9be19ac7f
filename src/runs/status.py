"""What a run directory says about its job: finished, failed (and why), or neither.

A job of a multirun that raises leaves `error.txt` in its run directory instead of stopping the
sweep. The first line is the one-line error a report shows; the traceback follows for debugging.
A later successful run of the same job removes the file.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from src.runs.files import ERROR_FILE
from src.utils.io import atomic_write_text

PREEMPTED = "Preempted"  # the first word of error.txt of a run that can resume by itself


class Preempted(RuntimeError):
    """The job was sent SIGTERM (SLURM preemption, scancel) or SIGUSR1 (SLURM's time-limit
    warning): a failure, resumable from last.ckpt."""


@contextmanager
def time_limit_warning_stops() -> Iterator[list[int]]:
    """While the block runs, SIGUSR1 (what SLURM's `--signal=USR1@<s>` sends before the time
    limit) stops training as SIGTERM does: at the next batch, the epoch checkpoints kept, the
    run failed and resumable with ckpt_path=last. Yields the list of SIGUSR1s received.

    Unhandled, SIGUSR1 would kill the process without a word; on SLURM, Lightning's own
    handler would save a mid-epoch checkpoint (not resumable exactly: the seeds are
    epoch-keyed) that a requeued job would resume from without the identity check. A handler
    installed first keeps Lightning's out.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers live in the main thread only
        return

    def to_sigterm(signum: int, frame: object) -> None:
        received.append(signum)
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's SIGTERM path stops the fit

    previous = signal.signal(signal.SIGUSR1, to_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGUSR1, previous)


def error_line(err: BaseException) -> str:
    """`Type: first line of the message`, e.g. `UserError: fusion=derm_only has no ...`."""
    message = str(err).strip().splitlines()
    return f"{type(err).__name__}: {message[0]}" if message else type(err).__name__


def record_failure(run_dir: str | Path, err: BaseException) -> str:
    """Write `<run_dir>/error.txt` (one-line error, blank line, traceback); return the line."""
    line = error_line(err)
    details = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    atomic_write_text(Path(run_dir) / ERROR_FILE, f"{line}\n\n{details}")
    return line


def clear_failure(run_dir: str | Path) -> None:
    (Path(run_dir) / ERROR_FILE).unlink(missing_ok=True)


def read_failure(run_dir: str | Path) -> str | None:
    """The recorded one-line error of a failed run, or None when the run has not failed."""
    try:
        text = (Path(run_dir) / ERROR_FILE).read_text(errors="replace")
    except OSError:
        return None
    first = text.strip().splitlines()
    return first[0] if first else "unknown error (empty error.txt)"
