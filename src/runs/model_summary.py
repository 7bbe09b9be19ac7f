"""The model summary at the start of training: layers, parameters and mode, without the FLOPs
column (Lightning counts FLOPs only for a module with an example input, so it shows 0 here;
`src.bench` measures speed)."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_human_readable_count

log = logging.getLogger(__name__)

SHOWN_COLUMNS = ("Name", "Type", "Params", "Mode")


class ParamSummary(ModelSummary):
    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int = 0,
        **summarize_kwargs: Any,
    ) -> None:
        columns = [(name, values) for name, values in summary_data if name in SHOWN_COLUMNS]
        widths = [max([len(name), *(len(str(v)) for v in values)]) for name, values in columns]
        lines = ["  ".join(name.ljust(w) for (name, _), w in zip(columns, widths))]
        for row in zip(*(values for _, values in columns)):
            lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
        frozen = total_parameters - trainable_parameters
        lines.append(
            f"params: {get_human_readable_count(trainable_parameters).strip()} trainable, "
            f"{get_human_readable_count(frozen).strip()} frozen, "
            f"{get_human_readable_count(total_parameters).strip()} total ({model_size:.1f} MB); "
            f"modules in train mode {total_training_modes['train']}, "
            f"in eval mode {total_training_modes['eval']}"
        )
        log.info("model summary\n%s", "\n".join(lines))
