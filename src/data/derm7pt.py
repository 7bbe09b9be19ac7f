"""Parse a derm7pt `release_v0` folder (meta.csv, the three index files, images/) into cases.

Every problem with the folder is a UserError of one line that names the file, the row and the
value. Image paths are resolved case-insensitively once, here, because the real release names
one folder with the wrong letter case and mixes .jpg/.JPG; the fixes are kept and logged.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from src.data.schema import SPLITS, TASKS
from src.utils.errors import UserError

log = logging.getLogger(__name__)

HOW_TO_GET = (
    "derm7pt is available to registered users at https://derm.cs.sfu.ca (download release_v0 "
    "and set data.root to it), or run on the synthetic stand-in with data=synthetic"
)


@dataclass(frozen=True)
class Case:
    """One lesion: its meta.csv row, both image paths (resolved on disk) and 8 class indices."""

    index: int  # 0-based data row of meta.csv (what the index files refer to)
    case_num: str
    clinic: Path
    derm: Path
    labels: tuple[int, ...]  # class index per task, in TASKS order


@dataclass
class Release:
    root: Path
    cases: list[Case]  # every meta.csv row, in file order
    splits: dict[str, list[Case]]  # "train", "valid", "test": index-file order
    duplicate_pairs: list[int] = field(default_factory=list)  # indices of clinic == derm cases
    path_fixes: list[str] = field(default_factory=list)  # "as in meta.csv -> as on disk"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a regular file; put the release's CSV file there")
    if not path.is_file():
        raise UserError(f"{path} is missing; is this a derm7pt release_v0 folder? {HOW_TO_GET}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path} is not a readable CSV file: {err}") from None
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror}); check its permissions") from None


class _ImageIndex:
    """Every file under images/, looked up exactly or, failing that, case-insensitively."""

    def __init__(self, images_dir: Path):
        self.dir = images_dir
        self.exact: set[str] = set()
        self.folded: dict[str, str] = {}
        self.not_regular: set[str] = set()  # FIFOs, sockets, devices: never opened
        for rel, entry in _walk_files(images_dir):
            if entry.is_file():  # follows a link to its target
                self.exact.add(rel)
                self.folded.setdefault(rel.lower(), rel)
            else:
                self.not_regular.add(rel.lower())

    def resolve(self, raw: str) -> str | None:
        rel = raw.strip().replace("\\", "/")
        if rel in self.exact:
            return rel
        return self.folded.get(rel.lower())


def _walk_files(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(path relative to `root`, entry) of every non-directory below `root`. Linked folders are
    followed, each real folder once, so a symlink loop cannot make the walk endless."""
    seen: set[tuple[int, int]] = set()
    pending = [("", root)]
    while pending:
        prefix, folder = pending.pop()
        try:
            st = folder.stat()
        except OSError:
            continue  # a dangling link
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            raise UserError(
                f"cannot list {folder} ({err.strerror}); check the permissions of data.root"
            ) from None
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_dir():
                pending.append((f"{rel}/", Path(entry.path)))
            else:
                yield rel, entry


def _field(row: dict[str, str], column: str) -> str:
    return (row.get(column) or "").strip()


def _where(meta_path: Path, i: int, row: dict[str, str]) -> str:
    return f"{meta_path} row {i} (line {i + 2}, case_num {_field(row, 'case_num')!r})"


def _labels(row: dict[str, str], where: str) -> tuple[int, ...]:
    labels = []
    for task in TASKS:
        raw = _field(row, task.column)
        try:
            labels.append(task.class_index(raw))
        except KeyError:
            known = ", ".join(repr(v) for v in task.raw_values)
            raise UserError(
                f"{where}: column {task.column!r} has value {raw!r}, which is not a derm7pt "
                f"value; expected one of {known}"
            ) from None
    return tuple(labels)


def _parse_meta(root: Path, images: _ImageIndex) -> tuple[list[Case], list[str]]:
    meta_path = root / "meta" / "meta.csv"
    header, rows = _read_csv(meta_path)
    needed = ["case_num", "clinic", "derm", *(t.column for t in TASKS)]
    missing = [c for c in needed if c not in header]
    if missing:
        raise UserError(f"{meta_path}: missing column(s) {', '.join(missing)}")
    if not rows:
        raise UserError(f"{meta_path} has a header but no cases; use the release's meta.csv")
    cases, fixes = [], []
    first_row: dict[str, int] = {}  # case_num -> the row it first appeared in
    for i, row in enumerate(rows):
        where = _where(meta_path, i, row)
        case_num = _field(row, "case_num")
        seen = first_row.setdefault(case_num, i)
        if seen != i:
            raise UserError(
                f"{meta_path}: rows {seen} and {i} (lines {seen + 2} and {i + 2}) both have "
                f"case_num {case_num!r}; each case must appear once, remove or renumber one"
            )
        labels = _labels(row, where)
        paths = []
        for column in ("clinic", "derm"):
            raw = _field(row, column)
            found = images.resolve(raw) if raw else None
            if found is None:
                if raw.replace("\\", "/").lower() in images.not_regular:
                    raise UserError(
                        f"{where}: {column} image {raw!r} under {images.dir} is not a regular "
                        "file (a pipe, socket or device); replace it with the image file"
                    )
                raise UserError(f"{where}: {column} image {raw!r} not found under {images.dir}")
            if found != raw:
                fixes.append(f"{raw} -> {found}")
            paths.append(images.dir / found)
        cases.append(Case(i, case_num, paths[0], paths[1], labels))
    return cases, sorted(set(fixes))


def _parse_index(path: Path, n_rows: int) -> list[int]:
    header, rows = _read_csv(path)
    if "indexes" not in header:
        raise UserError(f"{path}: expected a column named 'indexes', found {header}")
    out, seen = [], set()
    for i, row in enumerate(rows):
        line = i + 2
        value = _field(row, "indexes")
        try:
            idx = int(value)
        except ValueError:
            raise UserError(f"{path} line {line}: {value!r} is not a row number") from None
        if not 0 <= idx < n_rows:
            raise UserError(
                f"{path} line {line}: row {idx} is out of range (meta.csv has rows 0..{n_rows - 1})"
            )
        if idx in seen:
            raise UserError(f"{path} line {line}: row {idx} is listed twice")
        seen.add(idx)
        out.append(idx)
    return out


def _parse_splits(root: Path, n_rows: int) -> dict[str, list[int]]:
    splits: dict[str, list[int]] = {}
    owner: dict[int, str] = {}
    for split in SPLITS:
        path = root / "meta" / f"{split}_indexes.csv"
        rows = _parse_index(path, n_rows)
        for idx in rows:
            if idx in owner:
                raise UserError(
                    f"{path}: row {idx} is also in the {owner[idx]} split; splits must not overlap"
                )
            owner[idx] = split
        splits[split] = rows
    return splits


def check_release_layout(root: str | os.PathLike[str]) -> Path:
    """`root` as a Path once it has the release_v0 layout (images/, meta/meta.csv and the three
    index files); cheap: no file is parsed. A missing part is a one-line UserError."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"data root {root} does not exist. {HOW_TO_GET}")
    if not (root / "images").is_dir():
        raise UserError(f"{root / 'images'} is missing; is this a derm7pt release_v0 folder?")
    for name in ["meta.csv", *(f"{split}_indexes.csv" for split in SPLITS)]:
        if not (root / "meta" / name).exists():  # not a file: _read_csv says so
            raise UserError(
                f"{root / 'meta' / name} is missing; is this a derm7pt release_v0 folder? "
                f"{HOW_TO_GET}"
            )
    return root


def check_data_root(root: str | os.PathLike[str], synthetic: bool = False) -> None:
    """The local data checks, before anything is built or fetched: `root` has the release_v0
    layout, unless it is a synthetic release that is not generated yet (`synthetic`)."""
    if not (synthetic and not Path(root).expanduser().exists()):
        check_release_layout(root)


def load_release(root: str | os.PathLike[str], drop_duplicate_pairs: bool = False) -> Release:
    """Read meta.csv, the index files and the image folder of a release_v0-style `root`."""
    root = check_release_layout(root)
    cases, fixes = _parse_meta(root, _ImageIndex(root / "images"))
    split_rows = _parse_splits(root, len(cases))
    duplicates = [c.index for c in cases if c.clinic == c.derm]
    dropped = set(duplicates) if drop_duplicate_pairs else set()
    splits = {s: [cases[i] for i in rows if i not in dropped] for s, rows in split_rows.items()}
    for split, split_cases in splits.items():
        if not split_cases:
            raise UserError(
                f"{root / 'meta' / f'{split}_indexes.csv'} lists no cases"
                f"{' once duplicate pairs are dropped' if split_rows[split] else ''}; every split "
                "needs at least one: use the release's index files"
            )
    check_no_shared_images(splits, root / "meta" / "meta.csv")

    for fix in fixes:
        log.info("resolved image path case-insensitively: %s", fix)
    if duplicates:
        log.info(
            "%d cases use the dermoscopy image as their clinical image (clinic == derm)%s",
            len(duplicates),
            "; dropped (data.drop_duplicate_pairs=true)" if drop_duplicate_pairs else "",
        )
    return Release(root, cases, splits, duplicates, fixes)


def _file_identity(path: Path) -> tuple[int, int]:
    """(st_dev, st_ino) of the file `path` names, through symbolic links: one value for every
    name of a file (a symbolic or hard link included)."""
    try:
        st = path.stat()
    except OSError as err:
        raise UserError(f"cannot read image {path} ({err.strerror})") from None
    return st.st_dev, st.st_ino


def check_no_shared_images(splits: dict[str, list[Case]], meta_path: Path) -> None:
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
                        f"{meta_path}: image {path}{name} belongs to case {other.case_num!r} (row "
                        f"{other.index}, {first[0]}) and case {case.case_num!r} (row {case.index}, "
                        f"{split}); a split must not share images with another: fix the index files"
                    )


def class_counts(cases: list[Case]) -> dict[str, dict[str, int]]:
    """{task: {class: count}} over `cases`, every class listed (zero counts included)."""
    counts: dict[str, dict[str, int]] = {}
    for t, task in enumerate(TASKS):
        per_class: dict[int, int] = defaultdict(int)
        for case in cases:
            per_class[case.labels[t]] += 1
        counts[task.name] = {c: per_class[k] for k, c in enumerate(task.classes)}
    return counts
