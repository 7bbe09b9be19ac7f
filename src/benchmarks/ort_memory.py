"""Peak memory of one ONNX model in ONNX Runtime, in a fresh process (imports numpy and
onnxruntime only, so the baseline is small and the growth is the model's):

    python -m src.benchmarks.ort_memory MODEL.onnx --image-size 224 [--threads 2] [--calls 3]

prints one JSON line: peak RSS after the imports, after creating the session, and after
`calls` batch-1 calls (random inputs), in MiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from src.benchmarks.timing import peak_rss_mib


def measure(path: Path, image_size: int, threads: int | None, calls: int) -> dict[str, float]:
    import numpy as np
    import onnxruntime as ort

    start = peak_rss_mib()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    loaded = peak_rss_mib()
    rng = np.random.default_rng(0)
    feeds = {
        i.name: rng.standard_normal((1, 3, image_size, image_size), dtype=np.float32)
        for i in session.get_inputs()
    }
    for _ in range(calls):
        session.run(None, feeds)
    peak = peak_rss_mib()
    return {
        "peak_rss_after_imports": start,
        "peak_rss": peak,
        "session": loaded - start,
        "inference_b1": peak - loaded,
    }


def measure_in_subprocess(
    path: Path, image_size: int, threads: int | None, calls: int, timeout_s: float = 900
) -> dict[str, Any]:
    """`measure` in a fresh process; {"error": ...} if it fails."""
    cmd = [sys.executable, "-m", "src.benchmarks.ort_memory", str(path)]
    cmd += ["--image-size", str(image_size), "--calls", str(calls)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.benchmarks.ort_memory")
    parser.add_argument("path", type=Path)
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.path, args.image_size, args.threads, args.calls)))


if __name__ == "__main__":
    main()
