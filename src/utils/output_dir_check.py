"""Hydra callback: an output folder that cannot be written is one line, before Hydra tries.

Hydra creates `hydra.run.dir` (or `hydra.sweep.dir`) itself, before the app's code runs, and
reports a failure there as a traceback; this checks the folder first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def _check_writable(folder: str, key: str) -> None:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        print(
            f"error: {key}={folder} cannot be created or written ({err.strerror or err}); "
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
