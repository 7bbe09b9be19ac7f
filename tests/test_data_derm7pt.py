"""The release_v0 loader: synthetic and real metadata, quirks, and every bad-input error."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from src.data.cases import class_counts
from src.data.derm7pt import load_release
from src.utils.errors import UserError
from tests.conftest import REAL_META_DIR
from tests.specs import (
    DERM7PT,
    REAL_CLASS_TOTALS,
    REAL_DIAG_SPLIT_COUNTS,
    SPLIT_SIZES,
    SPLITS,
    TASKS,
)


def _totals(cases) -> dict[str, tuple[int, ...]]:
    return {task: tuple(counts.values()) for task, counts in class_counts(cases, DERM7PT).items()}


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _error(root: Path, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        load_release(root, **kwargs)
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


def test_synthetic_release_has_real_splits_and_class_totals(synthetic_release):
    release = load_release(synthetic_release)
    assert {s: len(c) for s, c in release.splits.items()} == SPLIT_SIZES
    assert len(release.cases) == sum(SPLIT_SIZES.values())
    assert _totals(release.cases) == REAL_CLASS_TOTALS
    for split in SPLITS:
        assert _totals(release.splits[split])["DIAG"] == REAL_DIAG_SPLIT_COUNTS[split]
    every_split_case = [c.index for cases in release.splits.values() for c in cases]
    assert sorted(every_split_case) == list(range(len(release.cases)))


def test_synthetic_release_reproduces_the_real_quirks(synthetic_release):
    release = load_release(synthetic_release)
    assert len(release.duplicate_pairs) == 9
    assert all(release.cases[i].clinic == release.cases[i].derm for i in release.duplicate_pairs)
    # one meta.csv folder spelt in another case than on disk, found anyway
    assert len(release.path_fixes) == 1
    written, found = release.path_fixes[0].split(" -> ")
    assert written != found and written.lower() == found.lower()
    assert written.split("/")[0] != found.split("/")[0]
    suffixes = Counter(c.derm.suffix for c in release.cases) + Counter(
        c.clinic.suffix for c in release.cases
    )
    assert suffixes[".jpg"] > 0 and suffixes[".JPG"] > 0
    sizes = {Image.open(c.derm).size for c in release.cases[:40]}
    assert len(sizes) > 5 and any(w != h for w, h in sizes)


def test_split_order_follows_the_index_files(synthetic_release):
    release = load_release(synthetic_release)
    for split in SPLITS:
        rows = [
            int(r["indexes"]) for r in _read_rows(synthetic_release / f"meta/{split}_indexes.csv")
        ]
        assert [c.index for c in release.splits[split]] == rows


def test_labels_follow_the_raw_values(synthetic_release):
    release = load_release(synthetic_release)
    rows = _read_rows(synthetic_release / "meta/meta.csv")
    for case in release.cases[::50]:
        row = rows[case.index]
        assert case.case_num == row["case_num"]
        for t, task in enumerate(TASKS):
            assert task.classes[case.labels[t]] == task.raw_values[row[task.column]]


def test_drop_duplicate_pairs(synthetic_release):
    kept = load_release(synthetic_release)
    dropped = load_release(synthetic_release, drop_duplicate_pairs=True)
    assert dropped.duplicate_pairs == kept.duplicate_pairs
    assert sum(map(len, dropped.splits.values())) == sum(SPLIT_SIZES.values()) - 9
    for split in SPLITS:
        assert all(c.clinic != c.derm for c in dropped.splits[split])
        expected = [c for c in kept.splits[split] if c.index not in set(kept.duplicate_pairs)]
        assert dropped.splits[split] == expected


def _stand_in_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (120, 80, 60)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def real_meta_release(tmp_path: Path) -> Path:
    """The real metadata with a stand-in JPEG at every real path, folders spelt as on disk
    (the majority spelling of each folder in meta.csv)."""
    if not (REAL_META_DIR / "meta.csv").exists():
        pytest.skip("the real derm7pt metadata is not available here")
    root = tmp_path / "release_v0"
    shutil.copytree(REAL_META_DIR, root / "meta")
    rows = _read_rows(root / "meta/meta.csv")
    paths = [r[c] for r in rows for c in ("clinic", "derm")]
    spellings = Counter(p.split("/")[0] for p in paths)
    on_disk = {}
    for folder, _ in spellings.most_common():
        on_disk.setdefault(folder.lower(), folder)
    jpeg = _stand_in_jpeg()
    for p in set(paths):
        folder, name = p.split("/")
        target = root / "images" / on_disk[folder.lower()] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(jpeg)
    return root


def test_real_metadata_gives_the_real_counts(real_meta_release):
    release = load_release(real_meta_release)
    assert {s: len(c) for s, c in release.splits.items()} == SPLIT_SIZES
    assert _totals(release.cases) == REAL_CLASS_TOTALS
    for split in SPLITS:
        assert _totals(release.splits[split])["DIAG"] == REAL_DIAG_SPLIT_COUNTS[split]
    assert len(release.duplicate_pairs) == 9
    assert release.path_fixes == ["FCl/Fcl068.jpg -> FCL/Fcl068.jpg"]


def test_missing_root_says_how_to_get_the_data(tmp_path):
    message = _error(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in message
    assert "derm.cs.sfu.ca" in message and "data=synthetic" in message


def test_missing_image_names_row_and_path(release_copy):
    release = load_release(release_copy)
    case = next(c for c in release.cases[100:] if c.clinic != c.derm)
    case.derm.unlink()
    message = _error(release_copy)
    rel = case.derm.relative_to(release_copy / "images").as_posix()
    assert f"row {case.index}" in message and "derm image" in message and rel in message


def test_unknown_raw_value_names_column_row_and_value(release_copy):
    meta = release_copy / "meta/meta.csv"
    rows = _read_rows(meta)
    rows[17]["streaks"] = "wavy"
    _write_rows(meta, rows)
    message = _error(release_copy)
    assert "'streaks'" in message and "row 17" in message and "'wavy'" in message


def test_duplicate_case_num_names_the_file_both_rows_and_the_value(release_copy):
    meta = release_copy / "meta/meta.csv"
    rows = _read_rows(meta)
    rows[30]["case_num"] = rows[12]["case_num"]
    _write_rows(meta, rows)
    message = _error(release_copy)
    assert str(meta) in message and "rows 12 and 30" in message
    assert f"case_num {rows[12]['case_num']!r}" in message


def test_missing_column_is_named(release_copy):
    meta = release_copy / "meta/meta.csv"
    rows = [{k: v for k, v in r.items() if k != "blue_whitish_veil"} for r in _read_rows(meta)]
    _write_rows(meta, rows)
    assert "blue_whitish_veil" in _error(release_copy)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda rows: rows.append({"indexes": "1011"}), "row 1011 is out of range"),
        (lambda rows: rows.append({"indexes": "-1"}), "row -1 is out of range"),
        (lambda rows: rows.append({"indexes": "x7"}), "'x7' is not a row number"),
        (lambda rows: rows.append(dict(rows[0])), "is listed twice"),
    ],
)
def test_bad_index_file(release_copy, edit, expected):
    path = release_copy / "meta/valid_indexes.csv"
    rows = _read_rows(path)
    edit(rows)
    _write_rows(path, rows)
    message = _error(release_copy)
    assert str(path) in message and expected in message


def test_overlapping_splits(release_copy):
    train_first = _read_rows(release_copy / "meta/train_indexes.csv")[0]["indexes"]
    path = release_copy / "meta/test_indexes.csv"
    rows = _read_rows(path)
    rows.append({"indexes": train_first})
    _write_rows(path, rows)
    message = _error(release_copy)
    assert str(path) in message and f"row {train_first}" in message and "train" in message


@pytest.mark.parametrize("split", SPLITS)
def test_empty_split_is_refused_naming_its_file(release_copy, split):
    """A header-only index file would train 0 epochs (train) or fail an assertion later."""
    path = release_copy / f"meta/{split}_indexes.csv"
    path.write_text("indexes\n")
    message = _error(release_copy)
    assert str(path) in message and "no cases" in message


# ------------------------------------------------------------------ leakage and hostile files
def test_duplicated_row_in_another_split_is_leakage(release_copy):
    """A meta.csv row duplicated at the end and listed in the test index: the test split would
    hold a training case's images. The run stops with both cases named."""
    meta = release_copy / "meta/meta.csv"
    rows = _read_rows(meta)
    train_row = int(_read_rows(release_copy / "meta/train_indexes.csv")[3]["indexes"])
    copy = dict(rows[train_row], case_num="9999")
    _write_rows(meta, [*rows, copy])
    test_index = release_copy / "meta/test_indexes.csv"
    _write_rows(test_index, [*_read_rows(test_index), {"indexes": str(len(rows))}])
    message = _error(release_copy)
    assert f"case {rows[train_row]['case_num']!r} (row {train_row}, train)" in message
    assert f"case '9999' (row {len(rows)}, test)" in message


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_test_image_linked_to_a_training_image_is_leakage(release_copy, link):
    """Another name for the same file (a symbolic or a hard link) is the same image."""
    release = load_release(release_copy)
    train_case, test_case = release.splits["train"][0], release.splits["test"][0]
    train_image = train_case.derm
    real_file = train_image.resolve()
    train_image.unlink()
    shutil.copyfile(real_file, train_image)  # a private file, so the hard link stays private
    test_case.derm.unlink()
    if link == "symlink":
        test_case.derm.symlink_to(train_image)
    else:
        os.link(train_image, test_case.derm)
    message = _error(release_copy)
    assert f"case {train_case.case_num!r} (row {train_case.index}, train)" in message
    assert f"case {test_case.case_num!r} (row {test_case.index}, test)" in message


def test_real_metadata_has_no_image_shared_across_splits(real_meta_release):
    load_release(real_meta_release)  # its 9 clinic == derm pairs stay within one case


def test_header_only_meta_csv_says_it_is_empty(release_copy):
    meta = release_copy / "meta/meta.csv"
    meta.write_text(meta.read_text().splitlines()[0] + "\n")
    assert "has a header but no cases" in _error(release_copy)


def test_fifo_at_an_image_path_is_refused_not_opened(release_copy):
    case = next(c for c in load_release(release_copy).cases[50:] if c.clinic != c.derm)
    case.derm.unlink()
    os.mkfifo(case.derm)
    message = _error(release_copy)
    assert f"row {case.index}" in message and "not a regular file" in message


def test_symlink_loop_in_images_does_not_hang(release_copy):
    (release_copy / "images" / "loop").symlink_to(release_copy / "images")
    (release_copy / "images" / "a" / "b").mkdir(parents=True)
    (release_copy / "images" / "a" / "b" / "up").symlink_to(release_copy / "images" / "a")
    release = load_release(release_copy)
    assert len(release.cases) == sum(SPLIT_SIZES.values())


GOLDEN_MAPPING = Path(__file__).with_name("golden_label_mapping.csv")


def test_raw_values_map_to_the_papers_classes_as_the_golden_table_says() -> None:
    """Every raw meta.csv value of derm7pt and its class, written out from the dataset's
    documentation (tests/golden_label_mapping.csv): a wrong mapping (say "melanoma (in situ)"
    -> MISC) or a missing or extra raw value fails here, with nothing needed outside the repo."""
    with GOLDEN_MAPPING.open(newline="") as f:
        golden = {(r["column"], r["raw_value"]): (r["task"], r["class"]) for r in csv.DictReader(f)}
    ours = {
        (task.column, raw): (task.name, cls)
        for task in TASKS
        for raw, cls in task.raw_values.items()
    }
    assert ours == golden
