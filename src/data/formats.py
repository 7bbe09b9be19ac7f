"""The cheap local checks of each dataset format, by `data._target_`, importable without torch:
`src.train` runs them before anything heavy loads or reaches the network. Each datamodule's
`check_local` is the same function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from src.data.derm7pt import check_data_root
from src.data.paired_csv_layout import check_paired_csv_root


def _derm7pt(cfg: Any) -> None:
    check_data_root(cfg.root, bool(cfg.synthetic))


LOCAL_CHECKS: dict[str, Callable[[Any], None]] = {
    "src.data.datamodule.Derm7ptDataModule": _derm7pt,
    "src.data.paired_csv.PairedCSVDataModule": check_paired_csv_root,
}


def check_data_local(data: Any) -> None:
    """The local checks of the format `data._target_` names (a `data` config node). An unknown
    target passes here: building the datamodule then says it in one line."""
    check = LOCAL_CHECKS.get(str(data.get("_target_", "")))
    if check is not None:
        check(data)
