"""The task spec: the derm7pt spec is the paper's layout, any YAML spec is validated with one
line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from src.data.tasks import TaskSpec, available_specs, load_task_spec
from src.utils.errors import UserError

DERM7PT_CLASSES = {
    "DIAG": ("BCC", "NEV", "MEL", "MISC", "SK"),
    "PN": ("ABS", "TYP", "ATP"),
    "STR": ("ABS", "REG", "IR"),
    "PIG": ("ABS", "REG", "IR"),
    "RS": ("ABS", "PRS"),
    "DaG": ("ABS", "REG", "IR"),
    "BWV": ("ABS", "PRS"),
    "VS": ("ABS", "REG", "IR"),
}


def test_derm7pt_spec_is_the_papers_layout() -> None:
    spec = load_task_spec("derm7pt")
    assert {t.name: t.classes for t in spec.tasks} == DERM7PT_CLASSES
    assert spec.num_outputs == 24 and spec.offsets == (0, 5, 8, 11, 14, 16, 19, 21)
    assert len(spec.avg_auc_labels) == 17 and not any(
        lbl.endswith("/ABS") for lbl in spec.avg_auc_labels
    )
    assert spec.melanoma_labels == (
        "DIAG/MEL", "PN/ATP", "STR/IR", "PIG/IR", "RS/PRS", "DaG/IR", "BWV/PRS", "VS/IR"
    )  # fmt: skip
    assert [spec.label_column(lbl) for lbl in spec.all_labels] == list(range(24))


def test_a_spec_survives_its_stored_form_and_its_digest_follows_content() -> None:
    for name in available_specs():
        spec = load_task_spec(name)
        again = TaskSpec.from_dict(spec.to_dict(), "stored")
        assert again == spec and again.digest == spec.digest
    raw = load_task_spec("derm7pt").to_dict()
    raw["tasks"][0]["classes"]["MEL"].remove("melanoma (in situ)")
    raw["tasks"][0]["classes"]["MISC"].append("melanoma (in situ)")
    assert TaskSpec.from_dict(raw, "moved").digest != load_task_spec("derm7pt").digest


def _write(tmp_path: Path, raw: object) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


GOOD = {
    "name": "mine",
    "tasks": [
        {"name": "DX", "column": "dx", "classes": {"A": ["a"], "B": ["b", "bb"]}},
        {"name": "F", "column": "f", "classes": {"ABS": ["0"], "PRS": ["1"]}},
    ],
    "avg_auc_exclude": ["ABS"],
    "melanoma_labels": ["DX/B"],
}


def test_a_yaml_spec_loads_with_numbers_as_raw_values(tmp_path: Path) -> None:
    raw = {
        **GOOD,
        "tasks": [GOOD["tasks"][0], {**GOOD["tasks"][1], "classes": {"ABS": [0], "PRS": [1]}}],
    }
    spec = load_task_spec(_write(tmp_path, raw))
    assert spec.all_labels == ("DX/A", "DX/B", "F/ABS", "F/PRS")
    assert spec.avg_auc_labels == ("DX/A", "DX/B", "F/PRS")
    assert spec.task("F").class_index("1") == 1 and spec.task("DX").class_index("bb") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"classes_of_dx": {"A": ["a"], "B": ["a"]}},
            r"tasks\[0\]\.classes\.B repeats raw value 'a'",
        ),
        ({"classes_of_dx": {"A": ["a"]}}, r"tasks\[0\]\.classes must map at least 2"),
        ({"classes_of_dx": {"A": ["a"], "B": [True]}}, r"tasks\[0\]\.classes\.B .*quote it"),
        ({"melanoma_labels": ["DX/C"]}, r"melanoma_labels names 'DX/C'"),
        ({"avg_auc_labels": ["F/XX"], "avg_auc_exclude": None}, r"avg_auc_labels names 'F/XX'"),
        ({"typo_key": 1}, r"typo_key is not a task spec key"),
        ({"tasks": []}, r"tasks must be a non-empty list"),
        ({"second_name": "DX"}, r"tasks repeat a task name"),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_file_and_key(
    tmp_path: Path, change: dict, message: str
) -> None:
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    for key, value in change.items():
        if key == "classes_of_dx":
            raw["tasks"][0]["classes"] = value
        elif key == "second_name":
            raw["tasks"][1]["name"] = value
        elif value is None:
            raw.pop(key)
        else:
            raw[key] = value
    path = _write(tmp_path, raw)
    with pytest.raises(UserError, match=message) as err:
        load_task_spec(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_unknown_spec_names_and_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"data.tasks=derm8pt: no such task spec.*derm7pt"):
        load_task_spec("derm8pt")
    with pytest.raises(UserError, match=r"does not exist"):
        load_task_spec(tmp_path / "none.yaml")
    with pytest.raises(UserError, match=r"not a readable YAML task spec"):
        load_task_spec(_write(tmp_path, "tasks: [unclosed"))
