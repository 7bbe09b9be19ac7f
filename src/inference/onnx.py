"""The fused predictor as ONNX, checked against PyTorch with onnxruntime.

The graph (opset 17) takes `clinic` and `derm`, float32 [batch, 3, S, S], each image resized
straight to S x S and normalised with its stream's mean/std (both written to the sidecar by
`sidecar`), and returns `p_fi`, float32 [batch, L]: P_FI of Eq. 4, the fusion-weighted
per-task probabilities, columns in the order of the task spec's labels (the sidecar lists them;
derm7pt: 24). The batch axis is dynamic.

The model is written to a temporary file, run with onnxruntime on random inputs at two batch
sizes, compared with PyTorch, and renamed into place only if the largest absolute difference is
within `atol`.

`src.export` also writes a derm-only graph (`DermOnlyPredictor`): input `derm` alone, output
`p_d`, P_D of the dermoscopy branch with the missing image as the clinical input, for cases
without a clinical photo.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.images import PREPROCESSING
from src.inference.predictor import DermOnlyPredictor, FusedPredictor
from src.utils.errors import UserError
from src.utils.io import atomic_path

OPSET = 17
Exportable = FusedPredictor | DermOnlyPredictor  # `inputs` names forward's arguments
STREAMS = {"clinic": "clin", "derm": "derm"}  # input name -> its normalisation statistics
TRACE_BATCH = 2  # traced at 2, verified at 1 and 3: the dynamic batch axis is exercised
VERIFY_BATCHES = (1, 3)


def _rot90_symbolic(g: Any, x: Any, k: int, dims: Sequence[int]) -> Any:
    """ONNX for aten::rot90 (TTA's rotations), which the TorchScript exporter lacks.

    rot90 by k quarter turns from dims[0] towards dims[1]: k=1 flips dims[1] then swaps the two
    dims, k=2 flips both, k=3 flips dims[0] then swaps.
    """
    from torch.onnx import symbolic_helper

    rank = symbolic_helper._get_tensor_rank(x)
    if rank is None:
        raise RuntimeError("rot90 export needs an input of known rank")
    d0, d1 = (d % rank for d in dims)

    def flip(t: Any, axis: int) -> Any:
        def const(v: int) -> Any:
            return g.op("Constant", value_t=torch.tensor([v], dtype=torch.int64))

        return g.op("Slice", t, const(-1), const(-(2**63)), const(axis), const(-1))

    def swap(t: Any) -> Any:
        perm = list(range(rank))
        perm[d0], perm[d1] = d1, d0
        return g.op("Transpose", t, perm_i=perm)

    k %= 4
    if k == 0:
        return x
    if k == 1:
        return swap(flip(x, d1))
    if k == 2:
        return flip(flip(x, d0), d1)
    return swap(flip(x, d0))


def _register_symbolics() -> None:
    from torch.onnx import register_custom_op_symbolic, symbolic_helper

    symbolic = symbolic_helper.parse_args("v", "i", "is")(_rot90_symbolic)
    register_custom_op_symbolic("aten::rot90", symbolic, OPSET)


def random_inputs(
    image_size: int, batch: int, seed: int = 0, count: int = 2
) -> tuple[torch.Tensor, ...]:
    """`count` normalised-image-like inputs (standard normal), reproducible."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, 3, image_size, image_size)
    return tuple(torch.randn(shape, generator=gen) for _ in range(count))


# ONNX Runtime's graph optimisation levels, by the names the benchmarks use.
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def onnx_session(
    path: str | Path,
    threads: int | None = None,
    opt_level: str = "all",
    parallel: bool = False,
    profile_prefix: str | None = None,
) -> Any:
    """An onnxruntime CPU session; one clear error if onnxruntime is not installed.

    `threads`: intra-op threads (None: onnxruntime's default, one per physical core);
    `parallel`: run independent nodes (the two streams) concurrently, `threads` of them;
    `profile_prefix`: write onnxruntime's per-node profile (`session.end_profiling()`).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(
            "onnxruntime is not installed; install the export extra: pip install -e '.[export]'"
        ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[opt_level])
    if parallel:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        options.inter_op_num_threads = threads or 0
        options.intra_op_num_threads = 1
    elif threads is not None:
        options.intra_op_num_threads = threads
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(
    session: Any, model: Exportable | type[Exportable], *images: torch.Tensor
) -> np.ndarray:
    """The ONNX graph of `model` (a predictor, or its class) on `images`, in the order of
    `model.inputs`; an input the graph does not have (a single-modal network's unused image)
    is left out."""
    wanted = {i.name for i in session.get_inputs()}
    named = zip(model.inputs, images, strict=True)
    return session.run([model.output], {n: t.numpy() for n, t in named if n in wanted})[0]


def max_abs_difference(path: str | Path, model: Exportable, image_size: int) -> float:
    """Largest |ONNX - PyTorch| of the output over random inputs at the VERIFY_BATCHES sizes."""
    session = onnx_session(path)
    worst = 0.0
    model = model.eval()
    for seed, batch in enumerate(VERIFY_BATCHES):
        images = random_inputs(image_size, batch, seed=seed + 1, count=len(model.inputs))
        with torch.no_grad():
            expected = model(*images).float().numpy()
        got = run_onnx(session, model, *images)
        if got.shape != expected.shape:
            raise RuntimeError(f"ONNX output shape {got.shape} != PyTorch {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export_onnx(
    model: Exportable,
    image_size: int,
    out: str | Path,
    atol: float = 1e-4,
    attention: str = "matmul",
) -> dict[str, Any]:
    """Write `model` (on CPU, eval mode) as ONNX to `out` if it matches PyTorch within `atol`.

    `attention`: how the fusion blocks' attention is written (src.models.blocks
    `export_attention`; the same values either way).
    Returns {"path", "bytes", "max_abs_diff", "export_s"}; UserError if the check fails.
    """
    from src.models.blocks import export_attention

    _register_symbolics()
    model = model.cpu().eval()
    out = Path(out)
    example = random_inputs(image_size, TRACE_BATCH, count=len(model.inputs))
    dynamic = {name: {0: "batch"} for name in (*model.inputs, model.output)}
    started = time.perf_counter()
    with atomic_path(out) as tmp:
        with warnings.catch_warnings(), torch.no_grad(), export_attention(attention):
            warnings.simplefilter("ignore")  # tracer notes on timm's shape checks, legacy exporter
            torch.onnx.export(
                model,
                example,
                str(tmp),
                dynamo=False,  # the TorchScript exporter: no onnxscript dependency
                input_names=list(model.inputs),
                output_names=[model.output],
                dynamic_axes=dynamic,
                opset_version=OPSET,
            )
        export_s = time.perf_counter() - started
        diff = max_abs_difference(tmp, model, image_size)
        if not diff <= atol:
            raise UserError(
                f"out={out}: the ONNX model differs from PyTorch by {diff:.3g} > atol={atol}; "
                "not written"
            )
        size = tmp.stat().st_size
    return {"path": str(out), "bytes": size, "max_abs_diff": diff, "export_s": export_s}


def sidecar(model: Exportable, image_size: int, norm_stats: dict, checkpoint: str) -> dict:
    """What a user of the .onnx file needs to know to feed it and read its output."""
    tasks = model.tasks
    info = {
        "format": "onnx",
        "opset": OPSET,
        "checkpoint": checkpoint,
        "inputs": {
            name: {
                "shape": ["batch", 3, image_size, image_size],
                "dtype": "float32",
                "preprocessing": PREPROCESSING.replace("image_size", str(image_size)),
                "mean": list(norm_stats[STREAMS[name]][0]),
                "std": list(norm_stats[STREAMS[name]][1]),
            }
            for name in model.inputs
        },
        "output": {
            "name": model.output,
            "prediction": model.prediction,
            "shape": ["batch", tasks.num_outputs],
            "labels": list(tasks.all_labels),
        },
        "tasks": tasks.to_dict(),
        "fusion_weights": model.weights,
        "tta_views": model.views,
    }
    if "clinic" not in model.inputs:
        from src.data.missing import MISSING_IMAGE

        info["clinical_input"] = f"none: the network's clinical input is {MISSING_IMAGE}"
    return info
