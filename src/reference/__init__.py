"""The paper's published numbers (paper_results.yaml), loaded into typed records."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from src.data.tasks import load_task_spec
from src.utils.errors import UserError

PAPER_RESULTS = Path(__file__).with_name("paper_results.yaml")
PAPER_TASKS = "derm7pt"  # the task spec the paper's tables are over (src/data/specs/)
# A row's override name -> the config group it picks an option of (conf/backbone twice: the
# clinical stream's own backbone of fusion=aff is `backbone@clin_backbone`).
OVERRIDE_KEYS = {
    "fusion": "fusion",
    "block": "block",
    "backbone": "backbone",
    "clin_backbone": "backbone@clin_backbone",
}


@dataclass(frozen=True)
class Stat:
    """A published value: mean +- std over 10 runs, or a single run (std None)."""

    mean: float
    std: float | None = None


@dataclass(frozen=True)
class PaperModel:
    """One model row of Tables 5-10."""

    id: str
    table: int
    description: str
    choices: dict[str, str]  # config group options: fusion, block, backbone (and clin_backbone)
    params_m: float | None
    avg_auc: Stat | None
    avg_acc: Stat | None
    note: str | None = None

    @property
    def row(self) -> str:
        return f"Table {self.table}: {self.description}"

    @property
    def overrides(self) -> tuple[str, ...]:
        """Hydra overrides that build this model, e.g. ("fusion=aff", "block=aab", ...)."""
        return tuple(f"{OVERRIDE_KEYS[k]}={v}" for k, v in self.choices.items())


@dataclass(frozen=True)
class LabelScores:
    """A column of per-label (or per-task) numbers of one model, with the printed average."""

    table: int
    column: str
    model: str  # id of the PaperModel row this column belongs to
    avg: Stat
    values: dict[str, Stat]  # label ("TASK/CLASS") or task name -> value
    note: str | None = None


@dataclass(frozen=True)
class PaperResults:
    models: tuple[PaperModel, ...]
    label_auc: tuple[LabelScores, ...]  # Tables 8 and 2 (17 labels each)
    task_acc: tuple[LabelScores, ...]  # Table 3 (8 tasks)
    melanoma: dict[str, LabelScores]  # Table 4: metric name -> 8 melanoma labels

    def model(self, model_id: str) -> PaperModel:
        for row in self.models:
            if row.id == model_id:
                return row
        raise KeyError(model_id)


def _stat(value: Any, where: str) -> Stat | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return Stat(float(value))
    if isinstance(value, list) and len(value) == 2:
        return Stat(float(value[0]), None if value[1] is None else float(value[1]))
    raise UserError(f"{where}: expected a number or [mean, std], got {value!r}")


def _choices(mapping: dict[str, str], where: str) -> dict[str, str]:
    unknown = set(mapping) - set(OVERRIDE_KEYS)
    missing = {"fusion", "block", "backbone"} - set(mapping)
    if unknown or missing:
        raise UserError(
            f"{where}: overrides need fusion/block/backbone (+ clin_backbone: a conf/backbone "
            "option for the clinical stream of fusion aff)"
        )
    return {k: str(v) for k, v in mapping.items()}


def _scores(entry: dict, key: str, expected: tuple[str, ...], where: str) -> LabelScores:
    values = {name: _stat(v, f"{where} {name}") for name, v in entry[key].items()}
    if tuple(values) != expected:
        raise UserError(f"{where}: expected entries {list(expected)}, got {list(values)}")
    avg = _stat(entry["avg"], f"{where} avg")
    return LabelScores(
        entry["table"], entry.get("column", ""), entry["model"], avg, values, entry.get("note")
    )


@lru_cache(maxsize=4)
def load_paper_results(path: Path = PAPER_RESULTS) -> PaperResults:
    """Parse and check the data file; a malformed entry raises UserError naming it."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    models = []
    for i, m in enumerate(data["models"]):
        where = f"{path}: models[{i}] ({m.get('id')})"
        models.append(
            PaperModel(
                id=m["id"],
                table=int(m["table"]),
                description=m["description"],
                choices=_choices(m["overrides"], where),
                params_m=None if m.get("params_m") is None else float(m["params_m"]),
                avg_auc=_stat(m.get("avg_auc"), f"{where} avg_auc"),
                avg_acc=_stat(m.get("avg_acc"), f"{where} avg_acc"),
                note=m.get("note"),
            )
        )
    ids = {m.id for m in models}
    if len(ids) != len(models):
        raise UserError(f"{path}: model ids are not unique")
    tasks = load_task_spec(PAPER_TASKS)
    label_auc = tuple(
        _scores(e, "labels", tasks.avg_auc_labels, f"{path}: label_auc[{i}]")
        for i, e in enumerate(data["label_auc"])
    )
    task_acc = tuple(
        _scores(e, "tasks", tasks.task_names, f"{path}: task_acc[{i}]")
        for i, e in enumerate(data["task_acc"])
    )
    (mel,) = data["melanoma"]
    melanoma = {
        metric: _scores(
            {**entry, "table": mel["table"], "column": mel["column"], "model": mel["model"]},
            "labels",
            tasks.melanoma_labels,
            f"{path}: melanoma {metric}",
        )
        for metric, entry in mel["metrics"].items()
    }
    for scores in (*label_auc, *task_acc, *melanoma.values()):
        if scores.model not in ids:
            raise UserError(f"{path}: table {scores.table} refers to unknown model {scores.model}")
    return PaperResults(tuple(models), label_auc, task_acc, melanoma)
