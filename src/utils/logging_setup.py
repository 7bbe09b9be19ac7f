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


# Lines Lightning prints that say nothing about the user's run: an advertisement, a note that
# the project's model summary replaces its own, and warnings
# about Lightning's own use of torch internals.
NOISE_MESSAGES = ("💡 Tip:", "litlogger", "already configured with model summary callbacks")
DEPRECATION_NOISE = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",
    r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
)
# Printed by every Trainer; a run builds one to fit and one to predict: say them once.
ONCE_PREFIXES = ("GPU available:", "TPU available:", "HPU available:")


class QuietLightning(logging.Filter):
    """Drops Lightning's advertisement lines and repeats of its device lines."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(noise in message for noise in NOISE_MESSAGES):
            return False
        if message.startswith(ONCE_PREFIXES):
            if message in self.seen:
                return False
            self.seen.add(message)
        return True


def quiet_library_noise() -> None:
    """Quiet what is not the user's business; every other warning and message stays."""
    import warnings

    for pattern in DEPRECATION_NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, QuietLightning) for f in logger.filters):
        logger.addFilter(QuietLightning())
