"""int8 models from an exported fp32 ONNX model, with onnxruntime's own quantization.

- "int8-dynamic": weights int8, activations quantized on the fly per call
  (`quantize_dynamic`); needs no data.
- "int8-static": weights int8 per channel and activations uint8 with ranges calibrated
  (min/max) on training pairs (`quantize_static`, QDQ format, which ONNX Runtime's CPU
  provider fuses into integer kernels).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from src.utils.io import atomic_path

FP32 = "fp32"
INT8_DYNAMIC = "int8-dynamic"
INT8_STATIC = "int8-static"
PRECISIONS = (FP32, INT8_DYNAMIC, INT8_STATIC)

Feeds = dict[str, np.ndarray]


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


def quantize(fp32: Path, out: Path, method: str, calibration: Sequence[Feeds] = ()) -> Path:
    """Write the `method` ("int8-dynamic" or "int8-static") version of `fp32` to `out`,
    atomically; static quantization calibrates on the `calibration` feeds.

    The model is first pre-processed as onnxruntime recommends (`quant_pre_process`: shape
    inference and graph clean-up): the exporter feeds weights shared between TTA views
    through Identity nodes, which the quantizer does not recognise as weights.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in PRECISIONS[1:]:
        raise ValueError(f"unknown quantization {method!r}; expected one of {PRECISIONS[1:]}")
    if method == INT8_STATIC and not calibration:
        raise ValueError("static quantization needs calibration pairs")
    with atomic_path(out) as tmp, _quiet():
        prepared = tmp.with_name(tmp.name + ".pre.onnx")
        try:
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            _quantize(prepared, tmp, method, calibration)
        finally:
            prepared.unlink(missing_ok=True)
    return out


def _quantize(fp32: Path, out: Path, method: str, calibration: Sequence[Feeds]) -> None:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if method == INT8_DYNAMIC:
        quantize_dynamic(fp32, out, weight_type=QuantType.QInt8)
    else:
        quantize_static(
            fp32,
            out,
            _reader(calibration, {i.name for i in onnx.load(fp32).graph.input}),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
