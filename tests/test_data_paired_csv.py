"""data=paired_csv: any paired dataset as one CSV and a task spec; every problem one line that
names the file, the row, the column and the value."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from src.data.datamodule import as_data_config, build_datamodule
from src.data.paired_csv import load_paired_csv
from src.data.tasks import load_task_spec
from src.project import compose_config
from src.utils.errors import UserError

SPEC = load_task_spec("synthetic_lesions")


def _cfg(root: Path, **overrides: object):
    return as_data_config(
        {
            "_target_": "src.data.paired_csv.PairedCSVDataModule",
            "root": str(root),
            "tasks": str(root / "tasks.yaml"),
            "image_size": 32,
            "num_workers": 0,
            "cache": "none",
            **overrides,
        }
    )


def _copy(pairs: Path, tmp_path: Path) -> Path:
    root = tmp_path / "pairs"
    shutil.copytree(pairs, root, symlinks=False, ignore=shutil.ignore_patterns(".cache"))
    return root


def _rewrite(root: Path, change) -> None:
    path = root / "pairs.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header, rows = list(reader.fieldnames or []), list(reader)
    header, rows = change(header, rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_the_config_composes_and_the_datamodule_batches_by_the_spec(synthetic_pairs) -> None:
    cfg = compose_config(["data=synthetic_lesions", f"data.root={synthetic_pairs}"])
    assert cfg.data._target_ == "src.data.paired_csv.PairedCSVDataModule"
    assert cfg.data.image_size == 224 and cfg.data.batch_size == 24  # derm7pt's batching keys
    datamodule = build_datamodule(_cfg(synthetic_pairs, batch_size=8))
    assert datamodule.tasks == SPEC  # the folder's tasks.yaml is the packaged spec
    datamodule.setup()
    sizes = {s: len(datamodule.cases(s)) for s in ("train", "valid", "test")}
    assert sizes == {"train": 48, "valid": 30, "test": 40}
    clinic, derm, labels, meta = next(iter(datamodule.split_dataloader("test")))
    assert clinic.shape == derm.shape == (40, 3, 32, 32)
    assert meta.shape == (40, 0)  # the spec has no metadata columns
    assert labels.shape == (40, 3) and (labels.max(0).values < torch.tensor(SPEC.num_classes)).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda h, rows: (
                h,
                [{**r, "split": "dev"} if i == 3 else r for i, r in enumerate(rows)],
            ),
            r"pairs.csv row 3 \(line 5, case_id 'L0003'\): column 'split' has value 'dev'",
        ),
        (
            lambda h, rows: (
                h,
                [{**r, "diagnosis": "mole"} if i == 5 else r for i, r in enumerate(rows)],
            ),
            r"row 5 .*column 'diagnosis' has value 'mole', which the task spec does not map",
        ),
        (
            lambda h, rows: (
                h,
                [{**r, "derm": "images/none.jpg"} if i == 7 else r for i, r in enumerate(rows)],
            ),
            r"row 7 .*column 'derm' names 'images/none.jpg', which is not an image file",
        ),
        (
            lambda h, rows: ([c for c in h if c != "blue_white_veil"], rows),
            r"pairs.csv: no column\(s\) blue_white_veil",
        ),
        (
            lambda h, rows: (
                h,
                [{**r, "case_id": "L0001"} if i == 2 else r for i, r in enumerate(rows)],
            ),
            r"rows 1 and 2 \(lines 3 and 4\) both have case_id 'L0001'",
        ),
        (
            lambda h, rows: (
                h,
                [{**r, "split": "train"} if r["split"] == "valid" else r for r in rows],
            ),
            r"lists no valid cases",
        ),
        (
            lambda h, rows: (
                h,
                [
                    {**r, "clinic": rows[0]["derm"]}
                    if r["split"] == "test" and r is rows[-1]
                    else r
                    for r in rows
                ],
            ),
            r"belongs to case 'L0000' \(row 0, train\) and case",
        ),
    ],
)
def test_a_bad_csv_is_one_line_naming_file_row_column_and_value(
    synthetic_pairs, tmp_path, change, message
) -> None:
    root = _copy(synthetic_pairs, tmp_path)
    _rewrite(root, change)
    with pytest.raises(UserError, match=message) as err:
        load_paired_csv(_cfg(root), SPEC)
    assert "\n" not in str(err.value)


def test_a_missing_csv_or_root_fails_the_local_check_first(tmp_path) -> None:
    from src.data.paired_csv import PairedCSVDataModule

    with pytest.raises(UserError, match=r"data.root=.*no such folder"):
        PairedCSVDataModule.check_local(_cfg(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"pairs.csv is missing; give data.csv"):
        PairedCSVDataModule.check_local(_cfg(tmp_path))


def _write_index_files(folder: Path, splits: dict[str, list[str]], header: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (folder / f"{split}.txt").write_text("\n".join((["case_id"] if header else []) + ids))
    return folder


def test_index_files_replace_the_split_column(synthetic_pairs, tmp_path: Path) -> None:
    """data.split_dir: the splits come from train/valid/test.txt, not the CSV's split column;
    a case in no index file is left out; the index files are part of the data fingerprint."""
    from src.data.fingerprint import data_fingerprint

    base = load_paired_csv(_cfg(synthetic_pairs), SPEC)
    ids = {s: [c.case_num for c in base.splits[s]] for s in ("train", "valid", "test")}
    # Other splits than the column says: the first valid case trains, the last train case is out.
    chosen = {
        "train": ids["train"][:-1] + ids["valid"][:1],
        "valid": ids["valid"][1:],
        "test": ids["test"],
    }
    folder = _write_index_files(tmp_path / "splits", chosen, header=True)
    release = load_paired_csv(_cfg(synthetic_pairs, split_dir=str(folder)), SPEC)
    assert {s: [c.case_num for c in release.splits[s]] for s in chosen} == chosen
    assert ids["train"][-1] not in {c.case_num for c in release.cases}

    from src.data.paired_csv import PairedCSVDataModule

    def fingerprint(cfg) -> str:
        return data_fingerprint(
            PairedCSVDataModule.fingerprint_files(cfg), tmp_path / "fp", SPEC.digest
        )

    with_files = _cfg(synthetic_pairs, split_dir=str(folder))
    before = fingerprint(with_files)
    assert before != fingerprint(_cfg(synthetic_pairs))
    _write_index_files(folder, {**chosen, "test": chosen["test"][:-1]}, header=False)
    assert fingerprint(with_files) != before  # another split is another experiment


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        (
            lambda ids: {**ids, "valid": ids["valid"] + ids["train"][:1]},
            r"valid.txt line \d+: case 'L\d+' is already listed at .*train.txt line 1",
        ),
        (
            lambda ids: {**ids, "test": [*ids["test"], "nobody"]},
            r"test.txt: case 'nobody' is not in .*pairs.csv",
        ),
        (lambda ids: {**ids, "valid": []}, r"valid.txt lists no valid cases"),
    ],
)
def test_bad_index_files_are_one_line(synthetic_pairs, tmp_path: Path, splits, message) -> None:
    base = load_paired_csv(_cfg(synthetic_pairs), SPEC)
    ids = {s: [c.case_num for c in base.splits[s]] for s in ("train", "valid", "test")}
    folder = _write_index_files(tmp_path / "splits", splits(ids), header=False)
    with pytest.raises(UserError, match=message):
        load_paired_csv(_cfg(synthetic_pairs, split_dir=str(folder)), SPEC)


def test_a_missing_index_file_fails_before_anything_loads(synthetic_pairs, tmp_path) -> None:
    from omegaconf import OmegaConf

    from src.data.formats import check_data_local

    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("L0000\n")
    cfg = OmegaConf.structured(_cfg(synthetic_pairs, split_dir=str(tmp_path / "splits")))
    with pytest.raises(UserError, match=r"data.split_dir=.*splits: no valid.txt"):
        check_data_local(cfg)
