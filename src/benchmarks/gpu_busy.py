"""How busy the GPU is while something runs: NVML through torch, else nvidia-smi."""

from __future__ import annotations

import shutil
import subprocess
import threading
from typing import Any

import torch


class GpuBusySampler:
    """Samples the GPU's utilisation (% of time a kernel ran) in a background thread."""

    def __init__(self, period_s: float = 0.1) -> None:
        self.period_s = period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.source = _utilisation_source()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            value = self.source() if self.source else None
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> GpuBusySampler:
        if self.source is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def _utilisation_source() -> Any:
    """torch.cuda.utilization (NVML) where it works, else nvidia-smi, else None."""
    if not torch.cuda.is_available():
        return None
    try:
        torch.cuda.utilization()
        return lambda: float(torch.cuda.utilization())
    except Exception:  # NVML bindings missing: fall back to the command-line tool
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None

    def query() -> float | None:
        out = subprocess.run(
            [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        try:
            return float(out.stdout.strip().splitlines()[0])
        except (ValueError, IndexError):
            return None

    return query
