"""Output folders that cannot be written are one line, before any work.

`check_writable_folder` is for the entry scripts' own outputs (`src.export`'s model,
`src.predict out=`, `src.report --out`); the Hydra callback does the same for `hydra.run.dir`
(or `hydra.sweep.dir`), which Hydra creates itself before the app's code runs and would report
as a traceback.

The check asks the OS (`os.access`) and then writes and removes a temporary file: permission
bits do not stop root, a read-only mount (EROFS) does, and only a real write finds out. A
folder that does not exist yet is not created here: its nearest existing ancestor is checked.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.utils.errors import UserError


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def unwritable_reason(folder: str | os.PathLike[str]) -> str | None:
    """Why a file cannot be written in `folder` (created if missing); None when it can."""
    existing = _nearest_existing(Path(folder).absolute())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return os.strerror(errno.EACCES)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def check_writable_folder(folder: str | os.PathLike[str], key: str) -> None:
    """UserError naming `key` and `folder` unless files can be written there."""
    reason = unwritable_reason(folder)
    if reason is not None:
        raise UserError(
            f"{key}: cannot write in {folder} ({reason}); give a path in a writable folder"
        )


def _check_writable(folder: str, key: str) -> None:
    reason = unwritable_reason(folder)
    if reason is None:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = err.strerror or str(err)
    if reason is not None:
        print(
            f"error: {key}={folder} cannot be created or written ({reason}); "
            f"give a writable {key} (or paths.log_dir)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


class OutputDirCheck(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # The run folder's name reads ${hydra:...}; Hydra sets its config only after this hook
        # (to this same config, so ${now:...} resolves to the same time).
        HydraConfig.instance().set_config(config)
        _check_writable(str(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_writable(str(config.hydra.sweep.dir), "hydra.sweep.dir")
