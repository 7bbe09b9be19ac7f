"""Send Lightning's log records through the root logger that Hydra configures."""

from __future__ import annotations

import logging


def route_lightning_logs_to_root() -> None:
    """Lightning installs its own console handler when imported before Hydra sets up logging,
    which prints every message twice; drop it so records go to Hydra's console and log file."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
