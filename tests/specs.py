"""The derm7pt task spec the tests check against, with its label groups under short names, and
the facts of the real release (src/data/derm7pt_facts.py)."""

from src.data.cases import SPLITS
from src.data.derm7pt_facts import (
    META_COLUMNS,
    REAL_CLASS_TOTALS,
    REAL_DIAG_SPLIT_COUNTS,
    SPLIT_SIZES,
)
from src.data.tasks import load_task_spec

DERM7PT = load_task_spec("derm7pt")
TASKS = DERM7PT.tasks
TASK_NAMES = DERM7PT.task_names
NUM_CLASSES = DERM7PT.num_classes
NUM_OUTPUTS = DERM7PT.num_outputs
TASK_OFFSETS = DERM7PT.offsets
ALL_LABELS = DERM7PT.all_labels
AVG_AUC_LABELS = DERM7PT.avg_auc_labels
MELANOMA_LABELS = DERM7PT.melanoma_labels
label_index = DERM7PT.label_index
label_column = DERM7PT.label_column

__all__ = [
    "ALL_LABELS",
    "AVG_AUC_LABELS",
    "DERM7PT",
    "MELANOMA_LABELS",
    "META_COLUMNS",
    "NUM_CLASSES",
    "NUM_OUTPUTS",
    "REAL_CLASS_TOTALS",
    "REAL_DIAG_SPLIT_COUNTS",
    "SPLITS",
    "SPLIT_SIZES",
    "TASKS",
    "TASK_NAMES",
    "TASK_OFFSETS",
    "label_column",
    "label_index",
]
