"""Any paired clinical/dermoscopy dataset as one CSV plus a task spec (`data=paired_csv`).

The CSV has one row per case: an id column, the clinical and dermoscopy image paths (relative to
`data.root`, or absolute), a split column (train, valid or test) and one column per task of the
task spec (`data.tasks`, a YAML file: src/data/tasks.py describes it), holding the raw values the
spec maps to classes. Column names are config keys (`data.case_column`, `data.clinic_column`,
`data.derm_column`, `data.split_column`). Instead of the split column, `data.split_dir` may name
a folder of index files (train.txt, valid.txt, test.txt: one case id a line); cases in none of
them are left out. Every problem is one line naming the file, the row, the column and the value.
"""

from __future__ import annotations

import logging
from pathlib import Path

from src.config import DataConfig
from src.data.cases import (
    SPLITS,
    Case,
    Release,
    case_labels,
    case_metadata,
    check_no_shared_images,
    check_splits_not_empty,
    read_csv,
)
from src.data.datamodule import PairDataModule
from src.data.paired_csv_layout import HINT, check_paired_csv_root, csv_path, split_files
from src.data.tasks import TaskSpec
from src.utils.errors import UserError

log = logging.getLogger(__name__)


def _image(root: Path, raw: str, where: str, column: str) -> Path:
    if not raw:
        raise UserError(f"{where}: column {column!r} is empty; give the image's path")
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise UserError(
            f"{where}: column {column!r} names {raw!r}, which is not an image file under {root}"
        )
    return path


def read_split_files(files: dict[str, Path], case_column: str) -> dict[str, str]:
    """case id -> split from the index files (one id a line, an optional `case_column`
    header); an id listed twice, in one file or in two, is one line naming both places."""
    split_of: dict[str, str] = {}
    where_listed: dict[str, str] = {}
    for split, index in files.items():
        lines = index.read_text(encoding="utf-8-sig").splitlines()
        for number, line in enumerate(lines, start=1):
            case_id = line.strip()
            if not case_id or (number == 1 and case_id == case_column):
                continue
            here = f"{index} line {number}"
            if case_id in split_of:
                raise UserError(
                    f"{here}: case {case_id!r} is already listed at {where_listed[case_id]}; "
                    "each case belongs to one split, once"
                )
            split_of[case_id], where_listed[case_id] = split, here
    return split_of


def load_paired_csv(cfg: DataConfig, spec: TaskSpec) -> Release:
    """The cases of the CSV of pairs, labelled by the tasks of `spec`, in the CSV's splits (its
    split column, or the index files of `data.split_dir`)."""
    root, path = Path(cfg.root).expanduser(), csv_path(cfg)
    header, rows = read_csv(path, HINT)
    files = split_files(cfg)
    split_of = read_split_files(files, cfg.case_column) if files else None
    split_column = [] if files else [cfg.split_column]
    columns = [cfg.case_column, cfg.clinic_column, cfg.derm_column, *split_column]
    needed = [*columns, *(t.column for t in spec.tasks), *(m.column for m in spec.metadata)]
    missing = [c for c in needed if c not in header]
    if missing:
        raise UserError(
            f"{path}: no column(s) {', '.join(missing)} (it has {', '.join(header)}); rename "
            "them or set data.case_column / clinic_column / derm_column / split_column or the "
            "task spec's columns"
        )
    cases: list[Case] = []
    splits: dict[str, list[Case]] = {s: [] for s in SPLITS}
    first_row: dict[str, int] = {}
    for i, row in enumerate(rows):
        case_id = (row.get(cfg.case_column) or "").strip()
        where = f"{path} row {i} (line {i + 2}, {cfg.case_column} {case_id!r})"
        if not case_id:
            raise UserError(f"{where}: column {cfg.case_column!r} is empty; give each case an id")
        seen = first_row.setdefault(case_id, i)
        if seen != i:
            raise UserError(
                f"{path}: rows {seen} and {i} (lines {seen + 2} and {i + 2}) both have "
                f"{cfg.case_column} {case_id!r}; each case must appear once"
            )
        if split_of is not None:
            split = split_of.pop(case_id, None)
            if split is None:
                continue  # in no index file: not part of this experiment
        else:
            split = (row.get(cfg.split_column) or "").strip()
        if split not in SPLITS:
            raise UserError(
                f"{where}: column {cfg.split_column!r} has value {split!r}; expected one of "
                f"{', '.join(SPLITS)}"
            )
        labels = case_labels(row, spec, where)
        clinic = _image(root, (row.get(cfg.clinic_column) or "").strip(), where, cfg.clinic_column)
        derm = _image(root, (row.get(cfg.derm_column) or "").strip(), where, cfg.derm_column)
        case = Case(i, case_id, clinic, derm, labels, case_metadata(row, spec, where))
        cases.append(case)
        splits[split].append(case)
    if split_of:  # ids the index files list that the CSV does not have
        case_id = sorted(split_of)[0]
        raise UserError(
            f"{files[split_of[case_id]]}: case {case_id!r} is not in {path} "
            f"({len(split_of)} listed id(s) are not); fix the index file or the CSV"
        )
    if not cases:
        raise UserError(f"{path} has a header but no cases")
    if files:
        left_out = len(rows) - len(cases)
        if left_out:
            log.info("%d cases of %s are in no index file of %s", left_out, path, cfg.split_dir)
        where = {split: str(index) for split, index in files.items()}
    else:
        where = dict.fromkeys(SPLITS, f"{path} ({cfg.split_column} column)")
    check_splits_not_empty(splits, where)
    check_no_shared_images(splits, path)
    duplicates = [c.index for c in cases if c.clinic == c.derm]
    if duplicates:
        log.info("%d cases use the dermoscopy image as their clinical image", len(duplicates))
    return Release(root, root, cases, splits, duplicates)


class PairedCSVDataModule(PairDataModule):
    """A CSV of image pairs with a split column and one column per task of the task spec."""

    @classmethod
    def check_local(cls, cfg: DataConfig) -> None:
        check_paired_csv_root(cfg)

    @classmethod
    def generate(cls, root: Path, seed: int) -> None:
        from src.data.synthetic.paired import generate_synthetic_pairs

        generate_synthetic_pairs(root, seed=seed)

    @classmethod
    def fingerprint_files(cls, cfg: DataConfig) -> list[tuple[str, Path]]:
        """The CSV and every image file it names (names relative to data.root)."""
        root, path = Path(cfg.root).expanduser(), csv_path(cfg)
        _, rows = read_csv(path, HINT)
        found = {"<csv>": path}
        for split, index in (split_files(cfg) or {}).items():
            found[f"<{split} index>"] = index
        for row in rows:
            for column in (cfg.clinic_column, cfg.derm_column):
                raw = (row.get(column) or "").strip()
                if raw:
                    image = Path(raw).expanduser()
                    found[raw] = image if image.is_absolute() else root / image
        return sorted((name, p) for name, p in found.items() if p.is_file())

    def load(self) -> Release:
        return load_paired_csv(self.cfg, self.tasks)
