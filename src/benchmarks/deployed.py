"""The deployed path: the exported model in ONNX Runtime, fp32 and int8, side by side.

For each configuration (SFF-CAT ST+ST, AFF-CAT, AFF-AAB) the predictor is exported as
`src.export` writes it, once with the configuration's TTA views and once with one view, and
each export is quantized with onnxruntime (`quantize.py`: dynamic, and static calibrated on
training pairs, each as its `Int8Recipe` says; the recipes are recorded in the settings). All
these sessions, and the eager predictor (one view) as a reference, are built in one process and
timed in alternating rounds (`timing.alternate_rounds`): a drift of the machine's speed hits
every model alike. Peak memory is measured per model in a fresh process (`ort_memory.py`),
where the peak resident memory belongs to that model alone.

Weights are random (cost does not depend on their values); the accuracy cost of int8 is
measured on a trained checkpoint instead (`int8_accuracy.py`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.benchmarks.configs import bench_config, bench_row
from src.benchmarks.inference import build_predictor
from src.benchmarks.ort_memory import measure_in_subprocess as memory_in_subprocess
from src.benchmarks.quantize import FP32, PRECISIONS, RECIPES, Feeds, quantize
from src.benchmarks.timing import alternate_rounds, ratio_of, summarize
from src.inference.onnx import export_onnx, onnx_session, random_inputs, run_onnx
from src.inference.predictor import FusedPredictor

log = logging.getLogger("src.bench")

DEPLOYED_ROWS: tuple[str, ...] = ("t9-sff-cat", "t9-aff-cat", "t9-aff-aab", "t9-aff-aab-s123")
VIEWS = {"tta": None, "one": ("identity",)}  # None: the configuration's own TTA views
EAGER = "eager"  # the reference rows' precision name


@dataclass(frozen=True)
class SessionSettings:
    """How ONNX Runtime runs a model: threads, graph optimisation, execution mode."""

    threads: int | None = None  # intra-op threads; None: one per physical core
    opt_level: str = "all"  # disable | basic | extended | all
    parallel: bool = False  # the two streams' nodes concurrently (ORT_PARALLEL)


@dataclass(frozen=True)
class DeployedSettings:
    image_size: int = 224
    rounds: int = 12
    calls: int = 3  # per round
    warmup: int = 2
    # static calibration of these random-weight models (their cost does not depend on it); the
    # calibrator holds every pair's activations at once, so memory grows with pairs x pixels
    calibration_pairs: int = 8
    memory_calls: int = 3
    session: SessionSettings = SessionSettings()


def int8_recipes() -> dict[str, dict[str, Any]]:
    """{int8 method: its recipe}, as results record what "int8" meant."""
    return {method: recipe.record() for method, recipe in RECIPES.items()}


def session_for(path: Path, settings: SessionSettings, profile_prefix: str | None = None) -> Any:
    return onnx_session(
        path, settings.threads, settings.opt_level, settings.parallel, profile_prefix
    )


def training_feeds(data_cfg: DictConfig, norm_stats: dict, count: int) -> list[Feeds]:
    """The first `count` training pairs (split order), one per feed, preprocessed as for
    evaluation (no augmentation): what static quantization calibrates on."""
    from src.data.datamodule import build_datamodule

    cfg = OmegaConf.merge(data_cfg, {"augment": False, "num_workers": 0})
    datamodule = build_datamodule(cfg, norm_stats)
    datamodule.setup()
    dataset = datamodule.datasets["train"]
    feeds = []
    for index in range(min(count, len(dataset))):
        clinic, derm, *_ = dataset[index]
        feeds.append(dict(zip(FusedPredictor.inputs, (clinic[None].numpy(), derm[None].numpy()))))
    return feeds


def export_all(
    model: FusedPredictor, image_size: int, folder: Path, calibration: Sequence[Feeds]
) -> dict[str, Path]:
    """{precision: .onnx path}: the fp32 export (verified against PyTorch) and its int8
    versions."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {FP32: Path(export_onnx(model, image_size, folder / f"{FP32}.onnx")["path"])}
    for method in PRECISIONS[1:]:
        paths[method] = quantize(paths[FP32], folder / f"{method}.onnx", method, calibration)
    return paths


def _key(row: str, precision: str, views: str) -> str:
    return f"{row}|{precision}|{views}"


def build_models(
    rows: Sequence[str], settings: DeployedSettings, folder: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(callables to time, facts per key): every row x precision x views as an ONNX session,
    plus each row's eager predictor (one view)."""
    size = settings.image_size
    calls: dict[str, Any] = {}
    facts: dict[str, dict[str, Any]] = {}
    clinic, derm = random_inputs(size, 1)
    for row in rows:
        cfg = bench_config(row, size)
        for views, names in VIEWS.items():
            model, _ = build_predictor(row, size, names)
            log.info("deployed: exporting %s (%s views), %d px", row, views, size)
            stats = model.module.norm_stats
            calibration = training_feeds(cfg.data, stats, settings.calibration_pairs)
            paths = export_all(model, size, folder / row / views, calibration)
            for precision, path in paths.items():
                session = session_for(path, settings.session)
                calls[_key(row, precision, views)] = lambda s=session: run_onnx(
                    s, FusedPredictor, clinic, derm
                )
                facts[_key(row, precision, views)] = {
                    "path": path,
                    "file_mib": path.stat().st_size / 2**20,
                    "views": list(model.views),
                }
            if views == "one":
                eager = model
                calls[_key(row, EAGER, views)] = lambda m=eager: _eager_call(m, clinic, derm)
                facts[_key(row, EAGER, views)] = {"views": list(model.views)}
    return calls, facts


def _eager_call(model: FusedPredictor, clinic: torch.Tensor, derm: torch.Tensor) -> Any:
    with torch.inference_mode():
        return model(clinic, derm)


def measure(rows: Sequence[str], settings: DeployedSettings) -> dict[str, Any]:
    """Latency (alternating rounds), file size and peak memory of every deployed variant of
    `rows`, and the latency ratio of each row to the first, per precision and views."""
    with tempfile.TemporaryDirectory(prefix="bench-deployed-") as tmp:
        calls, facts = build_models(rows, settings, Path(tmp))
        log.info("deployed: %d models, %d alternating rounds", len(calls), settings.rounds)
        times = alternate_rounds(calls, settings.rounds, settings.calls, settings.warmup)
        variants = []
        for key, fact in facts.items():
            row, precision, views = key.split("|")
            record = {
                "row": row,
                "label": bench_row(row).description,
                "precision": precision,
                "views": views,
                "tta_views": fact["views"],
                "latency": summarize(times[key]),
            }
            if "path" in fact:
                record["file_mib"] = fact["file_mib"]
                record["memory"] = memory_in_subprocess(
                    fact["path"],
                    settings.image_size,
                    settings.session.threads,
                    settings.memory_calls,
                )
            variants.append(record)
    reference = rows[0]
    ratios = []
    for key in facts:
        row, precision, views = key.split("|")
        if row != reference:
            ratio = ratio_of(times, key, _key(reference, precision, views))
            ratios.append({"row": row, "precision": precision, "views": views, **ratio})
    return {
        "settings": {**asdict(settings), "rows": list(rows), "int8_recipes": int8_recipes()},
        "reference": reference,
        "variants": variants,
        "ratios": ratios,
    }
