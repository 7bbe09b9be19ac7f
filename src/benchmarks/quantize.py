"""int8 models from an exported fp32 ONNX model, with onnxruntime's own quantization.

- "int8-dynamic": weights int8, activations quantized on the fly per call
  (`quantize_dynamic`); needs no data.
- "int8-static": weights int8 per channel and activations uint8 with ranges calibrated on
  training pairs (`quantize_static`, QDQ format, which ONNX Runtime's CPU provider fuses into
  integer kernels).

What each method is told is its `Int8Recipe` (`RECIPES`), recorded beside every int8 result.
The defaults were chosen on the validation split of a trained demo checkpoint, with latency
(experiments/bench/int8-recipe.md). What they keep in float, and why:

- `op_types`: only the ops that hold the arithmetic are quantized (static: Conv, MatMul, Gemm;
  dynamic: MatMul, which covers the heads too: `quantize_dynamic` rewrites each Gemm as a
  MatMul first). The rest stays float, above all the per-task Softmax and the
  fusion-weighted sum that make P_FI: quantizing P_FI itself to 8 bits ties nearby
  probabilities (a few hundred distinct values over the test split), and ties cost AUC.
  Dynamic leaves Conv float too: ONNX Runtime's ConvInteger with per-call activation ranges
  was slower than the float Conv and no more accurate.
- `constant_b_only`: a MatMul is quantized only when its second input is a weight; the
  attention's products of two activations (q kᵀ, A v of the fusion blocks and Swin) stay float,
  so the N x N attention map is never rounded to 256 levels.
- `per_channel`: one weight scale per output channel.
- `calibration_pairs` (static): training pairs the activation ranges are calibrated on
  (`calibrate_method`: MinMax), never the validation or test split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src.utils.io import atomic_path

FP32 = "fp32"
INT8_DYNAMIC = "int8-dynamic"
INT8_STATIC = "int8-static"
PRECISIONS = (FP32, INT8_DYNAMIC, INT8_STATIC)

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Int8Recipe:
    """What onnxruntime's quantizer is told for one int8 method (see the module doc)."""

    op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm")  # quantized; every other op float
    constant_b_only: bool = True  # MatMuls of two activations (attention) stay float
    per_channel: bool = True  # one weight scale per output channel
    reduce_range: bool = False  # 7-bit weights (for CPUs without VNNI)
    calibration_pairs: int = 0  # static: training pairs the activation ranges come from
    calibrate_method: str = "MinMax"  # static: MinMax | Entropy | Percentile

    def record(self) -> dict[str, Any]:
        """The recipe as results.json records it."""
        fields = asdict(self)
        fields["op_types"] = list(self.op_types)
        return fields


RECIPES: dict[str, Int8Recipe] = {
    INT8_DYNAMIC: Int8Recipe(op_types=("MatMul",)),
    INT8_STATIC: Int8Recipe(calibration_pairs=64),
}


def _reader(feeds: Sequence[Feeds], inputs: set[str]) -> object:
    """The calibration feeds, each cut to the graph's `inputs` (a single-modal graph has one)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Pairs(CalibrationDataReader):
        def __init__(self) -> None:
            self._next: Iterator[Feeds] = (
                {k: v for k, v in f.items() if k in inputs} for f in feeds
            )

        def get_next(self) -> Feeds | None:
            return next(self._next, None)

    return Pairs()


@contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization warns through the root logger for every tensor it leaves in
    float (shape tensors and the like): hundreds of lines that say nothing here."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def quantize(
    fp32: Path,
    out: Path,
    method: str,
    calibration: Sequence[Feeds] = (),
    recipe: Int8Recipe | None = None,
) -> Path:
    """Write the `method` ("int8-dynamic" or "int8-static") version of `fp32` to `out`,
    atomically, as `recipe` says (default: `RECIPES[method]`); static quantization calibrates
    on the `calibration` feeds.

    The model is first pre-processed as onnxruntime recommends (`quant_pre_process`: shape
    inference and graph clean-up): the exporter feeds weights shared between TTA views
    through Identity nodes, which the quantizer does not recognise as weights.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in PRECISIONS[1:]:
        raise ValueError(f"unknown quantization {method!r}; expected one of {PRECISIONS[1:]}")
    if method == INT8_STATIC and not calibration:
        raise ValueError("static quantization needs calibration pairs")
    recipe = recipe or RECIPES[method]
    with atomic_path(out) as tmp, _quiet():
        prepared = tmp.with_name(tmp.name + ".pre.onnx")
        try:
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            _quantize(prepared, tmp, method, calibration, recipe)
        finally:
            prepared.unlink(missing_ok=True)
    return out


def activation_matmuls(model: Any) -> list[str]:
    """Names of the MatMul nodes whose second operand is not a weight (attention's q kᵀ and
    A v): `MatMulConstBOnly` keeps them float in dynamic quantization only, QDQ needs them
    excluded by name."""
    weights = {t.name for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] not in weights]


def _quantize(
    fp32: Path, out: Path, method: str, calibration: Sequence[Feeds], recipe: Int8Recipe
) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    model = onnx.load(fp32)
    common: dict[str, Any] = {
        "op_types_to_quantize": list(recipe.op_types),
        "nodes_to_exclude": activation_matmuls(model) if recipe.constant_b_only else [],
        "per_channel": recipe.per_channel,
        "reduce_range": recipe.reduce_range,
        "weight_type": QuantType.QInt8,
        "extra_options": {"MatMulConstBOnly": recipe.constant_b_only},
    }
    if method == INT8_DYNAMIC:
        quantize_dynamic(fp32, out, **common)
        return
    quantize_static(
        fp32,
        out,
        _reader(calibration, {i.name for i in model.graph.input}),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod[recipe.calibrate_method],
        **common,
    )
