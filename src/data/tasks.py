"""The task spec of a dataset: its classification tasks, their classes, how raw CSV values map to
classes, and which labels the headline tables use.

A spec is data, not code: `src/data/specs/<name>.yaml` (or any YAML file of that form) is read
into a frozen `TaskSpec` that the datamodule owns and hands down to the network (the class count
of each task), the loss, the metrics, the fusion-weight search, the predictor, the ONNX export
and the report. Nothing about any one dataset is a process-wide constant.

The YAML form (every key but `tasks` has a default):

    name: derm7pt
    tasks:                       # in output order; classes in column order
      - name: DIAG               # the short name the tables print
        column: diagnosis        # the CSV column holding the raw value
        classes:                 # class -> the raw values that map to it
          BCC: [basal cell carcinoma]
          NEV: [clark nevus, ...]
    avg_auc_exclude: [ABS]       # AVG AUC: every label except these classes (or avg_auc_labels:)
    melanoma_labels: [DIAG/MEL, PN/ATP]  # rows of the precision/sensitivity tables
    metadata:                    # patient metadata columns a model may take (model.metadata)
      - column: sex
        values: [female, male]   # one-hot in this order; an empty cell is "unknown" (all zeros)
      - column: management
        values: [excision, clinical follow up]
        leaky: true              # decided from the diagnosis: refused unless allowed
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

from src.utils.errors import UserError

SPECS_DIR = Path(__file__).parent / "specs"


@dataclass(frozen=True)
class Task:
    """One classification task: its classes and the raw values that map to each."""

    name: str  # short name used in tables and output columns, e.g. "DIAG"
    column: str  # CSV column holding the raw value
    classes: tuple[str, ...]  # class names in output-column order
    raw_values: Mapping[str, str]  # raw CSV string -> class name

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_index(self, raw_value: str) -> int:
        """Index of the class a raw CSV value maps to; KeyError if unknown."""
        return self.classes.index(self.raw_values[raw_value])


@dataclass(frozen=True)
class MetaColumn:
    """A patient metadata column: its categories, and whether it leaks the labels (a value
    decided from the diagnosis, such as the management)."""

    column: str
    values: tuple[str, ...]
    leaky: bool = False

    def index(self, raw: str) -> int:
        """Category index of a raw CSV value; -1 for an empty cell; ValueError if unknown."""
        return -1 if raw == "" else self.values.index(raw)


@dataclass(frozen=True)
class TaskSpec:
    """The tasks of one dataset and the label groups its tables use."""

    name: str
    tasks: tuple[Task, ...]
    avg_auc_labels: tuple[str, ...]  # the labels AVG AUC averages over (Table 2)
    melanoma_labels: tuple[str, ...]  # melanoma-related labels: precision, sensitivity (Table 4)
    metadata: tuple[MetaColumn, ...] = ()  # patient metadata columns a model may take

    @cached_property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    @cached_property
    def num_classes(self) -> tuple[int, ...]:
        return tuple(t.num_classes for t in self.tasks)

    @property
    def num_outputs(self) -> int:
        """Width of the concatenated output layout (one column per label)."""
        return sum(self.num_classes)

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """First output column of each task's segment."""
        return (0, *accumulate(self.num_classes))[:-1]

    @cached_property
    def all_labels(self) -> tuple[str, ...]:
        """Every label as "TASK/CLASS", in task then class order (the output columns)."""
        return tuple(f"{t.name}/{c}" for t in self.tasks for c in t.classes)

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"unknown task {name!r}; expected one of {', '.join(self.task_names)}")

    def meta_column(self, column: str) -> MetaColumn:
        for meta in self.metadata:
            if meta.column == column:
                return meta
        known = ", ".join(m.column for m in self.metadata) or "none"
        raise KeyError(f"{column!r} is not a metadata column of {self.name!r} ({known})")

    def label_index(self, label: str) -> tuple[int, int]:
        """(task index, class index) of a "TASK/CLASS" label."""
        task_name, _, cls = label.partition("/")
        for i, task in enumerate(self.tasks):
            if task.name == task_name and cls in task.classes:
                return i, task.classes.index(cls)
        raise KeyError(f"unknown label {label!r} in task spec {self.name!r}")

    def label_column(self, label: str) -> int:
        """Output column of a "TASK/CLASS" label (its index in `all_labels`)."""
        task, cls = self.label_index(label)
        return self.offsets[task] + cls

    def to_dict(self) -> dict[str, Any]:
        """The YAML form, with every label group spelt out: what results and checkpoints store."""
        return {
            "name": self.name,
            "tasks": [
                {
                    "name": t.name,
                    "column": t.column,
                    "classes": {
                        c: [raw for raw, cls in t.raw_values.items() if cls == c] for c in t.classes
                    },
                }
                for t in self.tasks
            ],
            "avg_auc_labels": list(self.avg_auc_labels),
            "melanoma_labels": list(self.melanoma_labels),
            "metadata": [
                {"column": m.column, "values": list(m.values), "leaky": m.leaky}
                for m in self.metadata
            ],
        }

    @property
    def digest(self) -> str:
        """12 hex digits of the spec's content: equal specs, equal digests."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, raw: Any, source: str = "task spec") -> TaskSpec:
        """A validated spec; any problem is one UserError naming `source` and the key."""
        return _parse_spec(raw, source)


def _fail(source: str, where: str, problem: str) -> UserError:
    return UserError(f"{source}: {where} {problem}")


def _names(raw: Any, source: str, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise _fail(source, where, f"must be a list of non-empty strings, got {raw!r}")
    return raw


def _parse_task(raw: Any, source: str, i: int) -> Task:
    where = f"tasks[{i}]"
    if not isinstance(raw, Mapping):
        raise _fail(source, where, "must be a mapping with name, column and classes")
    unknown = sorted(set(raw) - {"name", "column", "classes"})
    if unknown:
        raise _fail(source, f"{where}.{unknown[0]}", "is not a task key (name, column, classes)")
    name, column, classes = raw.get("name"), raw.get("column", raw.get("name")), raw.get("classes")
    if not isinstance(name, str) or not name or "/" in name:
        raise _fail(source, f"{where}.name", f"must be a non-empty name without '/', got {name!r}")
    if not isinstance(column, str) or not column:
        raise _fail(source, f"{where}.column", f"must be a CSV column name, got {column!r}")
    if not isinstance(classes, Mapping) or len(classes) < 2:
        raise _fail(source, f"{where}.classes", "must map at least 2 class names to raw values")
    raw_values: dict[str, str] = {}
    for cls, values in classes.items():
        if not isinstance(cls, str) or not cls or "/" in cls:
            raise _fail(source, f"{where}.classes", f"has a bad class name {cls!r}")
        key = f"{where}.classes.{cls}"
        values = values if isinstance(values, list) else [values]
        if any(isinstance(v, bool) or v is None for v in values):
            raise _fail(source, key, "has a raw value YAML reads as yes/no/null: quote it")
        for value in _names([str(v) for v in values], source, key):  # 0/1 read as numbers
            if value in raw_values:
                raise _fail(
                    source,
                    key,
                    f"repeats raw value {value!r} (already class {raw_values[value]!r})",
                )
            raw_values[value] = cls
    return Task(name, column, tuple(classes), raw_values)


def _check_labels(labels: Sequence[str], spec_labels: set[str], source: str, key: str) -> None:
    for label in labels:
        if label not in spec_labels:
            raise _fail(
                source, key, f"names {label!r}, which is not a TASK/CLASS label of the spec"
            )


def _parse_spec(raw: Any, source: str) -> TaskSpec:
    if not isinstance(raw, Mapping):
        raise UserError(f"{source}: a task spec must be a mapping with a 'tasks' list")
    allowed = {"name", "tasks", "avg_auc_exclude", "avg_auc_labels", "melanoma_labels", "metadata"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _fail(source, unknown[0], f"is not a task spec key ({', '.join(sorted(allowed))})")
    tasks_raw = raw.get("tasks")
    if not isinstance(tasks_raw, list) or not tasks_raw:
        raise _fail(source, "tasks", "must be a non-empty list of tasks")
    tasks = tuple(_parse_task(t, source, i) for i, t in enumerate(tasks_raw))
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise _fail(source, "tasks", f"repeat a task name: {names}")
    labels = [f"{t.name}/{c}" for t in tasks for c in t.classes]
    if "avg_auc_labels" in raw and "avg_auc_exclude" in raw:
        raise _fail(source, "avg_auc_labels", "and avg_auc_exclude exclude each other: keep one")
    if "avg_auc_labels" in raw:
        avg = _names(raw["avg_auc_labels"], source, "avg_auc_labels")
        _check_labels(avg, set(labels), source, "avg_auc_labels")
    else:
        exclude = set(_names(raw.get("avg_auc_exclude", []), source, "avg_auc_exclude"))
        avg = [lbl for lbl in labels if lbl.split("/", 1)[1] not in exclude]
    if not avg:
        raise _fail(source, "avg_auc_labels", "leave no label to average AUC over")
    melanoma = _names(raw.get("melanoma_labels", []), source, "melanoma_labels")
    _check_labels(melanoma, set(labels), source, "melanoma_labels")
    name = str(raw.get("name") or Path(source).stem)
    metadata = _parse_metadata(raw.get("metadata") or [], source, {t.column for t in tasks})
    return TaskSpec(name, tasks, tuple(avg), tuple(melanoma), metadata)


def _parse_metadata(raw: Any, source: str, task_columns: set[str]) -> tuple[MetaColumn, ...]:
    if not isinstance(raw, list):
        raise _fail(source, "metadata", "must be a list of {column, values, leaky}")
    columns: list[MetaColumn] = []
    for i, entry in enumerate(raw):
        where = f"metadata[{i}]"
        if not isinstance(entry, Mapping) or set(entry) - {"column", "values", "leaky"}:
            raise _fail(source, where, "must be a mapping of column, values and leaky")
        column = entry.get("column")
        if not isinstance(column, str) or not column or column in task_columns:
            raise _fail(source, f"{where}.column", f"must name a non-task column, got {column!r}")
        values = _names(entry.get("values"), source, f"{where}.values")
        if len(set(values)) != len(values):
            raise _fail(source, f"{where}.values", "repeat a value")
        if not isinstance(entry.get("leaky", False), bool):
            raise _fail(source, f"{where}.leaky", "must be true or false")
        columns.append(MetaColumn(column, tuple(values), bool(entry.get("leaky", False))))
    if len({m.column for m in columns}) != len(columns):
        raise _fail(source, "metadata", "repeats a column")
    return tuple(columns)


def available_specs() -> list[str]:
    """Names of the specs shipped in src/data/specs/."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))


def load_task_spec(name_or_path: str | Path) -> TaskSpec:
    """The spec shipped under `name_or_path` (e.g. "derm7pt", read once per process) or read
    from a YAML file (read at every call: it may be edited between runs)."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml"):
        return _read_spec(path, str(name_or_path))
    if str(name_or_path) not in available_specs():
        raise UserError(
            f"data.tasks={name_or_path}: no such task spec; give a YAML file or one of "
            f"{', '.join(available_specs())}"
        )
    return _packaged_spec(str(name_or_path))


@cache
def _packaged_spec(name: str) -> TaskSpec:
    return _read_spec(SPECS_DIR / f"{name}.yaml", name)


def _read_spec(path: Path, name_or_path: str) -> TaskSpec:
    if not path.is_file():
        raise UserError(f"data.tasks={name_or_path}: task spec file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: not a readable YAML task spec ({first})") from None
    return TaskSpec.from_dict(raw, str(path))
