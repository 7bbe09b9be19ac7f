"""An exclusive lock on a folder, so two processes never write into it at once.

`fcntl.flock` on `<folder>/.lock`: the kernel drops the lock when its holder exits, however it
exits, so the lock of a killed process is simply taken over. The file names the holder (pid and
host) for the error message of the process that is turned away.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from src.utils.errors import UserError

LOCK_FILE = ".lock"


class FolderInUse(UserError):
    """Another process holds the folder: nothing of this process may be written into it."""


@contextmanager
def folder_lock(
    folder: str | os.PathLike[str], config_key: str = "hydra.run.dir"
) -> Iterator[Path]:
    """Hold `<folder>/.lock` for the block; another holder is a one-line UserError."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
            raise FolderInUse(
                f"{folder} is in use by another run ({holder}); wait for it to finish or give "
                f"this one another {config_key}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
