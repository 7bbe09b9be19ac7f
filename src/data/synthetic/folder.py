"""Write a generated dataset folder all at once: built under a temporary name beside its target
and renamed into place at the end, so an interrupted run never leaves a folder that looks
complete. If another process finishes the same folder first, its copy is kept."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from src.utils.errors import UserError
from src.utils.io import current_umask


def build_folder(
    out_dir: str | os.PathLike[str], write: Callable[[Path], None], marker: str
) -> Path:
    """Call `write(tmp)` on an empty temporary folder, then rename it to `out_dir`; `marker` is
    a file a finished folder has (relative path), to recognise another process's copy."""
    out = Path(out_dir)
    if out.exists():
        raise UserError(f"{out} already exists; delete it or choose another output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; a dataset is meant to be shared
    try:
        write(tmp)
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / marker).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
