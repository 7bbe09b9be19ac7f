"""What every dataset format is read into: cases (an image pair and one class index per task of
the task spec) grouped into the train, valid and test splits, and the checks every split obeys."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from src.data.tasks import TaskSpec
from src.utils.errors import UserError

SPLITS: tuple[str, ...] = ("train", "valid", "test")


@dataclass(frozen=True)
class Case:
    """One lesion: its CSV row, both image paths (resolved on disk) and a class index per task."""

    index: int  # 0-based data row of the CSV (what index files refer to)
    case_num: str  # the case's identifier (predictions.csv is keyed by it)
    clinic: Path
    derm: Path
    labels: tuple[int, ...]  # class index per task, in the task spec's order
    # category index per metadata column of the task spec (-1: unknown); models pick theirs
    meta: tuple[int, ...] = ()


@dataclass
class Release:
    """A dataset read from disk: every case, the official splits, and what loading fixed."""

    root: Path
    images_dir: Path  # image paths are relative to this folder (the cache keys them so)
    cases: list[Case]  # every CSV row, in file order
    splits: dict[str, list[Case]]  # "train", "valid", "test"
    duplicate_pairs: list[int] = field(default_factory=list)  # indices of clinic == derm cases
    path_fixes: list[str] = field(default_factory=list)  # "as in the CSV -> as on disk"


def read_csv(path: Path, missing_hint: str) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file; a missing or unreadable file is one line (`missing_hint`
    says what the file should be)."""
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a regular file; {missing_hint}")
    if not path.is_file():
        raise UserError(f"{path} is missing; {missing_hint}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path} is not a readable CSV file: {err}") from None
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror}); check its permissions") from None


def check_splits_not_empty(splits: dict[str, list[Case]], where: dict[str, str]) -> None:
    """Every split holds at least one case; `where[split]` names the file that lists it."""
    for split in SPLITS:
        if not splits.get(split):
            raise UserError(
                f"{where[split]} lists no {split} cases; every split needs at least one"
            )


def _file_identity(path: Path) -> tuple[int, int]:
    """(st_dev, st_ino) of the file `path` names, through symbolic links: one value for every
    name of a file (a symbolic or hard link included)."""
    try:
        st = path.stat()
    except OSError as err:
        raise UserError(f"cannot read image {path} ({err.strerror})") from None
    return st.st_dev, st.st_ino


def check_no_shared_images(splits: dict[str, list[Case]], csv_path: Path) -> None:
    """Stop when an image file belongs to cases of two different splits, under any of its names
    (a symbolic or hard link is the same file): the test split would see training images. (An
    image used twice within one case, clinic == derm, is fine.)"""
    owner: dict[tuple[int, int], tuple[str, Case, Path]] = {}
    for split, cases in splits.items():
        for case in cases:
            for path in {case.clinic, case.derm}:
                first = owner.setdefault(_file_identity(path), (split, case, path))
                if first[0] != split:
                    other, name = first[1], ("" if first[2] == path else f" (also {first[2]})")
                    raise UserError(
                        f"{csv_path}: image {path}{name} belongs to case {other.case_num!r} (row "
                        f"{other.index}, {first[0]}) and case {case.case_num!r} (row {case.index}, "
                        f"{split}); a split must not share images with another: fix the splits"
                    )


def class_counts(cases: list[Case], spec: TaskSpec) -> dict[str, dict[str, int]]:
    """{task: {class: count}} over `cases`, every class listed (zero counts included)."""
    counts: dict[str, dict[str, int]] = {}
    for t, task in enumerate(spec.tasks):
        per_class: dict[int, int] = defaultdict(int)
        for case in cases:
            per_class[case.labels[t]] += 1
        counts[task.name] = {c: per_class[k] for k, c in enumerate(task.classes)}
    return counts


def label_error(task_column: str, raw: str, known: list[str], where: str) -> UserError:
    """One line for a raw label value the task spec does not map."""
    shown = ", ".join(repr(v) for v in known[:12]) + (", ..." if len(known) > 12 else "")
    return UserError(
        f"{where}: column {task_column!r} has value {raw!r}, which the task spec does not map; "
        f"expected one of {shown}"
    )


Coder = tuple[str, Callable[[str], int], Iterable[str]]  # CSV column, raw -> code, known raws


def _codes(row: dict[str, str], coders: Iterable[Coder], where: str) -> tuple[int, ...]:
    codes = []
    for column, code, known in coders:
        raw = (row.get(column) or "").strip()
        try:
            codes.append(code(raw))
        except (KeyError, ValueError):
            raise label_error(column, raw, list(known), where) from None
    return tuple(codes)


def case_metadata(row: dict[str, str], spec: TaskSpec, where: str) -> tuple[int, ...]:
    """The category index of each metadata column of `spec` for one CSV row (-1: empty)."""
    return _codes(row, [(m.column, m.index, m.values) for m in spec.metadata], where)


def case_labels(row: dict[str, str], spec: TaskSpec, where: str) -> tuple[int, ...]:
    """The class index of each task of `spec` for one CSV row."""
    return _codes(row, [(t.column, t.class_index, t.raw_values) for t in spec.tasks], where)
