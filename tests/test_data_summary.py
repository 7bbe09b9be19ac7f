"""`python -m src.data.summary`: the JSON shape, the text report, and broken folders."""

from __future__ import annotations

import json
import subprocess
import sys

from src.data.derm7pt import load_release
from src.data.summary import format_summary, summarize
from src.project import PROJECT_ROOT
from tests.specs import DERM7PT, REAL_CLASS_TOTALS, SPLIT_SIZES, TASKS


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "src.data.summary", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )


def test_json_output_shape(synthetic_release):
    result = _run(str(synthetic_release), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert list(out["splits"]) == ["train", "valid", "test"]
    for split, n in SPLIT_SIZES.items():
        entry = out["splits"][split]
        assert entry["n"] == n
        assert list(entry["counts"]) == [t.name for t in TASKS]
        for task in TASKS:
            assert list(entry["counts"][task.name]) == list(task.classes)
            assert sum(entry["counts"][task.name].values()) == n
    for task in TASKS:
        totals = [
            sum(out["splits"][s]["counts"][task.name][c] for s in SPLIT_SIZES) for c in task.classes
        ]
        assert tuple(totals) == REAL_CLASS_TOTALS[task.name]
    assert out["duplicate_pairs"] == 9 and len(out["duplicate_pair_cases"]) == 9
    assert len(out["path_fixes"]) == 1 and " -> " in out["path_fixes"][0]


def test_text_report(synthetic_release):
    summary = summarize(load_release(synthetic_release))
    text = format_summary(summary, DERM7PT)
    assert "cases: train 413, valid 203, test 395 (total 1011)" in text
    assert "DIAG  BCC       19      7     16     42" in text
    assert "clinic == derm pairs: 9" in text
    assert summary["path_fixes"][0] in text


def test_broken_folder_exits_with_one_line(release_copy):
    bad = load_release(release_copy).cases[42].clinic
    bad.unlink()
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = _run(str(release_copy), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert str(bad) in result.stderr
    assert _run(str(release_copy), "--no-verify").returncode == 0

    missing = _run(str(release_copy / "nope"))
    assert missing.returncode == 2 and "data=synthetic" in missing.stderr


def test_identical_bytes_across_splits_are_reported(release_copy):
    release = load_release(release_copy)
    train_case, test_case = release.splits["train"][5], release.splits["test"][7]
    test_case.derm.unlink()
    test_case.derm.write_bytes(train_case.derm.read_bytes())  # same image, another file name
    result = _run(str(release_copy), "--json")
    assert result.returncode == 0, result.stderr
    shared = json.loads(result.stdout)["identical_images_across_splits"]
    assert len(shared) == 1
    assert {(u["split"], u["case_num"]) for u in shared[0]["cases"]} == {
        ("train", train_case.case_num),
        ("test", test_case.case_num),
    }
    text = _run(str(release_copy)).stdout
    assert "WARNING: identical image bytes in cases of different splits" in text


def test_synthetic_release_folder_is_shareable(synthetic_release):
    assert synthetic_release.stat().st_mode & 0o055 == 0o055 & ~_umask()


def _umask() -> int:
    from src.utils.io import current_umask

    return current_umask()
