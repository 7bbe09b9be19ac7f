"""Where a paired-CSV dataset's files are, and the cheap local check of them: importable without
torch, so a missing folder or CSV is reported before anything heavy loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from src.data.cases import SPLITS
from src.utils.errors import UserError

HINT = "give data.csv the CSV of pairs (see conf/data/paired_csv.yaml)"


def csv_path(cfg: Any) -> Path:
    """The CSV of pairs: `data.csv`, or `<data.root>/pairs.csv`."""
    return Path(cfg.csv).expanduser() if cfg.csv else Path(cfg.root).expanduser() / "pairs.csv"


def split_files(cfg: Any) -> dict[str, Path] | None:
    """The index file of each split when `data.split_dir` is given (else None)."""
    if not getattr(cfg, "split_dir", None):
        return None
    folder = Path(cfg.split_dir).expanduser()
    return {split: folder / f"{split}.txt" for split in SPLITS}


def check_paired_csv_root(cfg: Any) -> None:
    """The folder and the CSV exist, unless a synthetic dataset is to be generated there."""
    root = Path(cfg.root).expanduser()
    if cfg.synthetic and not root.exists():
        return
    if not root.is_dir():
        raise UserError(f"data.root={cfg.root}: no such folder; point it at your dataset")
    path = csv_path(cfg)
    if not path.is_file():
        raise UserError(f"{path} is missing; {HINT}")
    for index in (split_files(cfg) or {}).values():
        if not index.is_file():
            raise UserError(
                f"data.split_dir={cfg.split_dir}: no {index.name}; give a folder with "
                f"{', '.join(f'{s}.txt' for s in SPLITS)} (one case id a line), or "
                "data.split_dir=null to use the split column"
            )
