"""Data loader throughput: training batches per second from the project's datamodule.

The training loader exactly as `src.train` builds it (augmentation on, the configured number of
workers, the image cache), on the release `cfg.data.root` names. Setting up includes filling
the cache when it is cold; the first batch includes starting the workers; both are reported
apart from the steady rate, which is measured over the following `batches` batches (epochs
are chained when one is shorter).
"""

from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig

from src.data.datamodule import as_data_config, build_datamodule


def measure_loader(data_cfg: DictConfig | Any, batches: int) -> dict[str, Any]:
    """Steady-state pairs/s of the training loader, plus set-up and first-batch times."""
    cfg = as_data_config(data_cfg)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()  # creates the synthetic release on first use: not timed
    started = time.perf_counter()
    datamodule.setup("fit")
    setup_s = time.perf_counter() - started
    loader = datamodule.train_dataloader()
    if len(loader) == 0:
        raise ValueError(f"the training split of {cfg.root} gives no batch of {cfg.batch_size}")
    started = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first_batch_s = time.perf_counter() - started
    pairs = 0
    started = time.perf_counter()
    for _ in range(batches):
        try:
            clinic, *_ = next(iterator)
        except StopIteration:
            iterator = iter(loader)  # persistent workers carry over to the next epoch
            clinic, *_ = next(iterator)
        pairs += clinic.shape[0]
    elapsed = time.perf_counter() - started
    return {
        "root": str(cfg.root),
        "image_size": cfg.image_size,
        "batch_size": cfg.batch_size,
        "num_workers": cfg.num_workers,
        "cache": cfg.cache,
        "augment": cfg.augment,
        "setup_s": setup_s,
        "first_batch_s": first_batch_s,
        "batches": batches,
        "pairs_per_s": pairs / elapsed,
    }
