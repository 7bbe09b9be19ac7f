"""Parse a derm7pt `release_v0` folder (meta.csv, the three index files, images/) into cases,
labelled by a task spec (src/data/specs/derm7pt.yaml for the paper's 8 tasks).

Every problem with the folder is a UserError of one line that names the file, the row and the
value. Image paths are resolved case-insensitively once, here, because the real release names
one folder with the wrong letter case and mixes .jpg/.JPG; the fixes are kept and logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from src.data.cases import (
    SPLITS,
    Case,
    Release,
    case_labels,
    case_metadata,
    check_no_shared_images,
    read_csv,
)
from src.data.tasks import TaskSpec, load_task_spec
from src.utils.errors import UserError

log = logging.getLogger(__name__)

HOW_TO_GET = (
    "derm7pt is available to registered users at https://derm.cs.sfu.ca (download release_v0 "
    "and set data.root to it), or run on the synthetic stand-in with data=synthetic"
)
MISSING_HINT = f"is this a derm7pt release_v0 folder? {HOW_TO_GET}"


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


def _parse_meta(root: Path, images: _ImageIndex, spec: TaskSpec) -> tuple[list[Case], list[str]]:
    meta_path = root / "meta" / "meta.csv"
    header, rows = read_csv(meta_path, MISSING_HINT)
    needed = [
        "case_num",
        "clinic",
        "derm",
        *(t.column for t in spec.tasks),
        *(m.column for m in spec.metadata),
    ]
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
        labels = case_labels(row, spec, where)
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
        meta = case_metadata(row, spec, where)
        cases.append(Case(i, case_num, paths[0], paths[1], labels, meta))
    return cases, sorted(set(fixes))


def _parse_index(path: Path, n_rows: int) -> list[int]:
    header, rows = read_csv(path, MISSING_HINT)
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


def load_release(
    root: str | os.PathLike[str],
    spec: TaskSpec | None = None,
    drop_duplicate_pairs: bool = False,
) -> Release:
    """Read meta.csv, the index files and the image folder of a release_v0-style `root`, with
    the labels of the tasks in `spec` (default: the paper's 8 tasks, specs/derm7pt.yaml)."""
    root = check_release_layout(root)
    spec = spec or load_task_spec("derm7pt")
    cases, fixes = _parse_meta(root, _ImageIndex(root / "images"), spec)
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
    return Release(root, root / "images", cases, splits, duplicates, fixes)
