"""Structured config schema for conf/train.yaml and conf/eval.yaml.

The dataclasses are registered in Hydra's ConfigStore and listed first in the defaults of the
primary configs, so a misspelt key or a value of the wrong type in the typed groups (data,
backbone, fusion, block, model, paths) fails at compose time with Hydra's own message.
Trainer, callbacks and logger stay free-form: they are `_target_` nodes for `instantiate`.

The allowed values of the string choices are the `Literal`s below; OmegaConf cannot check a
`Literal` field, so the fields are typed `str` and the code that reads them checks against these
lists (the one definition of each).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

TTA_VIEW_NAMES = ["identity", "vflip", "hflip", "vhflip", "rot90cw", "rot90ccw"]

FusionMode = Literal["sff", "aff", "derm_only", "clin_only"]
BlockType = Literal["cat", "bab", "aab"]
BlockGate = Literal["none", "zero"]  # none: Eq. 1 as written (D + v M); zero: D + g v M, g from 0
CacheMode = Literal["disk", "memory", "none"]
Photometric = Literal["clin", "derm", "both", "none"]  # the images brightness/contrast augments
Optimizer = Literal["adam", "adamw"]
Scheduler = Literal["cosine", "none"]
MatmulPrecision = Literal["highest", "high", "medium"]

FUSION_MODES: tuple[str, ...] = get_args(FusionMode)
BLOCK_TYPES: tuple[str, ...] = get_args(BlockType)
BLOCK_GATES: tuple[str, ...] = get_args(BlockGate)
CACHE_MODES: tuple[str, ...] = get_args(CacheMode)
PHOTOMETRIC: tuple[str, ...] = get_args(Photometric)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
MATMUL_PRECISIONS: tuple[str, ...] = get_args(MatmulPrecision)

# Image size limits, read from each file's header before it is decoded. The real derm7pt images
# are 500-800 px on the long side; Pillow refuses only above ~179 MP (a 13000 x 13000 image,
# 169 MP, would still be decoded, in gigabytes).
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: above any dermatoscope or phone photo of a lesion
MIN_IMAGE_SIDE = 32  # a thumbnail or a 1 x 1 placeholder would be silently upscaled


@dataclass
class DataConfig:
    """Which dataset (format, folder, task spec) and how batches are made."""

    # the PairDataModule subclass that reads this dataset format
    _target_: str = "src.data.datamodule.Derm7ptDataModule"
    name: str = "derm7pt"
    root: str = MISSING  # the dataset folder (derm7pt: release_v0 with meta/ and images/)
    tasks: str = "derm7pt"  # the task spec: a name under src/data/specs/ or a YAML file
    # PairedCSVDataModule only: the CSV of pairs (image paths relative to `root`) and its columns
    csv: str | None = None
    case_column: str = "case_id"
    clinic_column: str = "clinic"
    derm_column: str = "derm"
    split_column: str = "split"  # values train, valid, test
    # or index files instead of the split column: a folder with train.txt, valid.txt and
    # test.txt, one case id a line (a first line equal to case_column is a header)
    split_dir: str | None = None
    synthetic: bool = False  # create a synthetic stand-in at `root` on first use
    synthetic_seed: int = 0
    image_size: int = 224
    batch_size: int = 24
    eval_batch_size: int = 48
    num_workers: int = 4
    pin_memory: bool = False
    persistent_workers: bool = True  # loader workers live for the whole run (training too)
    device_pipeline: bool = False  # train/valid images on the device, augmented there
    drop_duplicate_pairs: bool = False
    augment: bool = True
    augment_p: float = 0.5  # probability a training pair is augmented at all (public pipelines)
    photometric: str = "clin"  # Photometric; clin as the public pipelines
    # probability a training case's clinical image is replaced by the missing image
    # (src.data.missing); valid and test always keep theirs. 0: the paper's training
    clin_dropout_p: float = 0.0
    cache: str = "disk"  # CacheMode: decoded, resized images keyed by image size
    cache_dir: str | None = None  # default: <root>/.cache
    max_image_pixels: int = MAX_IMAGE_PIXELS  # an image with more pixels is refused, not decoded
    min_image_side: int = MIN_IMAGE_SIDE  # an image with a shorter side is refused


@dataclass
class BackboneConfig:
    """One stream's backbone: conf/backbone/*.yaml fills `backbone` (the dermoscopy stream, and
    every stream of sff) and, under fusion=aff, `clin_backbone` (the clinical stream)."""

    name: str = "swinv2_tiny_window8_256"
    pretrained: bool = True
    # the timm pretrained tag loaded from the hub (e.g. ms_in1k), pinned per conf/backbone file so
    # a timm upgrade cannot change which weights a run starts from; null: timm's default tag
    pretrained_tag: str | None = None
    weights: str | None = None  # local .safetensors/.pth file; wins over the hub
    drop_path_rate: float = 0.0  # stochastic depth; each conf/backbone/*.yaml sets its own


@dataclass
class FusionConfig:
    """Fusion framework: which streams exist (conf/fusion/aff.yaml also fills clin_backbone)."""

    mode: str = "aff"  # FusionMode


@dataclass
class BlockConfig:
    """Fusion block placed between stages of the two streams."""

    type: str = "aab"  # BlockType
    stages: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    qk_reduction: int = 8  # q/k channels = channels // qk_reduction
    gate: str = "none"  # BlockGate: none = Eq. 1 as written; zero = learnable scalar gate from 0


@dataclass
class HeadConfig:
    hidden: list[int] = field(default_factory=lambda: [512, 128])
    dropout: float = 0.3


@dataclass
class ModelConfig:
    """Optimisation, schedule, loss and evaluation recipe (paper section 4.1)."""

    optimizer: str = "adam"  # Optimizer
    lr: float = 3e-5
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # Scheduler
    swa_epochs: int = 50  # SWA over the last N epochs; 0 disables SWA
    # None: the cosine schedule continues while averaging (the authors' code); a number: anneal
    # to this constant LR over swa_anneal_epochs, then keep it (Izmailov et al.)
    swa_lr: float | None = None
    swa_anneal_epochs: int = 10
    head: HeadConfig = field(default_factory=HeadConfig)
    tta_views: list[str] = field(default_factory=lambda: list(TTA_VIEW_NAMES))
    weight_grid_step: float = 0.05  # fusion weight search grid over [step, 1]
    # seeded bootstrap resamples of the test cases for the 95% intervals of AVG AUC and AVG ACC
    # in metrics.json (src/evaluation/bootstrap.py); 0: no intervals
    bootstrap_resamples: int = 1000
    # also evaluate the last epoch's and the best validation epoch's weights beside the SWA
    # average, each with its own fusion weights (metrics.json "selection"; src.models.selection)
    selection_policies: bool = True
    # MatmulPrecision of float32 matmuls: highest (full fp32), high (TF32 where the GPU has it),
    # medium (bf16)
    matmul_precision: str = "high"
    channels_last: bool = False
    compile: bool = False
    # patient metadata columns of the task spec fed to the fusion head (one-hot); leaky columns
    # (decided from the diagnosis, e.g. derm7pt's management) only with allow_leaky_metadata
    metadata: list[str] = field(default_factory=list)
    allow_leaky_metadata: bool = False


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    data_dir: str = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class ExplainConfig:
    """Explanation panels a run makes of itself (src/runs/explain.py); never change results."""

    wandb_cases: int = 4  # test cases whose panels W&B gets when the W&B logger is on; 0: none


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    # the clinical stream's own backbone (fusion=aff); null: it uses `backbone` as well
    clin_backbone: BackboneConfig | None = None
    fusion: FusionConfig = field(default_factory=FusionConfig)
    block: BlockConfig = field(default_factory=BlockConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    trainer: Any = None
    callbacks: Any = None
    logger: Any = None
    task_name: str = "train"
    seed: int = 0
    tags: list[str] = field(default_factory=list)
    ckpt_path: str | None = None  # a checkpoint to resume from, or "last"
    train: bool = True
    test: bool = True
    skip_complete: bool = True  # in sweeps: skip a run whose metrics.json is already complete
    # keep the epoch checkpoints and last.ckpt once the run is complete (default: only
    # checkpoints/final.ckpt stays; an unfinished run always keeps them to resume)
    keep_resume_checkpoints: bool = False
    # rerunning the command of a run stopped by SIGTERM/SIGUSR1 (error.txt: "Preempted: ...")
    # resumes it from its last finished epoch, as ckpt_path=last does; false starts over
    resume_preempted: bool = True
    # SIGUSR1 (SLURM's time-limit warning) inside a SLURM job requeues the job with
    # `scontrol requeue`, so that it comes back and resumes (resume_preempted)
    slurm_requeue: bool = True
    # after the evaluation, run the robustness probe (src.probe) into the run folder
    probe: bool = False


# The earlier layout of the clinical backbone: keys of the fusion node, each with the key of
# today's clin_backbone node it became and the value the earlier schema gave it when unset.
# The clinical stream's `pretrained` was backbone.pretrained.
_FUSION_CLIN_KEYS: dict[str, tuple[str, object]] = {
    "clin_backbone": ("name", "mobilenetv3_small_100"),
    "clin_pretrained_tag": ("pretrained_tag", None),
    "clin_weights": ("weights", None),
    "clin_drop_path_rate": ("drop_path_rate", 0.0),
}


def _clin_node(fusion: Mapping[str, Any], backbone: Mapping[str, Any]) -> dict[str, Any] | None:
    """The clin_backbone node of a config written with `fusion.clin_*` keys (`fusion`: those
    it has): null where the clinical stream was the `backbone` one (no clinical backbone and no
    clinical weights), else the clinical stream's own backbone as it was built."""
    old = {new: fusion.get(key, unset) for key, (new, unset) in _FUSION_CLIN_KEYS.items()}
    if old["name"] is None and old["weights"] is None:
        return None
    if old["name"] is None:  # its own weights file for the backbone's network and tag
        old["name"], old["pretrained_tag"] = backbone.get("name"), backbone.get("pretrained_tag")
    return {
        "name": old["name"],
        "pretrained": backbone.get("pretrained"),
        "pretrained_tag": old["pretrained_tag"],
        "weights": old["weights"],
        "drop_path_rate": old["drop_path_rate"],
    }


def upgrade_config(stored: Mapping[str, Any] | DictConfig) -> DictConfig:
    """A stored training config in today's layout: `fusion.clin_*` keys become the clin_backbone
    node (`_clin_node`). A config already in today's layout comes back unchanged (a copy)."""
    cfg = OmegaConf.create(
        OmegaConf.to_container(stored) if isinstance(stored, DictConfig) else dict(stored)
    )
    fusion = cfg.get("fusion")
    if not isinstance(fusion, DictConfig) or not set(_FUSION_CLIN_KEYS) & set(fusion):
        return cfg
    old = {key: fusion.pop(key) for key in _FUSION_CLIN_KEYS if key in fusion}
    cfg.clin_backbone = _clin_node(old, cfg.get("backbone") or {})
    return cfg


def upgrade_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Result settings (dotted keys, `src.runs.identity.result_settings`) in today's layout,
    by the rule of `upgrade_config`; the content keys stay out, as in `result_settings`."""
    moved = {f"fusion.{key}" for key in _FUSION_CLIN_KEYS}
    if not moved & set(settings):
        return dict(settings)
    old = {key.split(".", 1)[1]: value for key, value in settings.items() if key in moved}
    backbone = {
        key.split(".", 1)[1]: value
        for key, value in settings.items()
        if key.startswith("backbone.")
    }
    upgraded = {key: value for key, value in settings.items() if key not in moved}
    node = _clin_node(old, backbone)
    if node is None:
        upgraded["clin_backbone"] = None
    else:
        for key, value in node.items():
            if f"clin_backbone.{key}" not in CONTENT_KEYS:
                upgraded[f"clin_backbone.{key}"] = value
    return upgraded


def on_schema(stored: Mapping[str, Any] | DictConfig) -> DictConfig:
    """A stored training config (a checkpoint's, a run folder's) in today's layout
    (`upgrade_config`), laid over the schema's defaults: a key the schema gained after it was
    written takes its default from the dataclasses above, the one place defaults are written.
    Keys the schema no longer has are kept, and values stay as stored (the schema typed them
    when the run was composed)."""
    defaults = OmegaConf.create(OmegaConf.to_container(OmegaConf.structured(TrainConfig)))
    return OmegaConf.merge(defaults, upgrade_config(stored))


# Top-level config entries that never change a run's numbers: where it reads and writes, how
# it logs, which checkpoint it resumes from, and what a sweep does with a finished folder.
NON_RESULT_ROOTS = frozenset(
    {
        "paths",
        "logger",
        "explain",
        "callbacks",
        "task_name",
        "tags",
        "ckpt_path",
        "train",
        "test",
        "skip_complete",
        "keep_resume_checkpoints",
        "resume_preempted",
        "slurm_requeue",
        "probe",  # adds robustness.json beside the results, changes none of them
        "hydra",
    }
)
# Keys added after results were first recorded, with the value that reproduces the code before
# them: at that value a key stays out of the identity, so a result written before the key existed
# is still the same experiment (reused, resumed, and in the same report row and W&B group). A key
# added later belongs here when its default is that value; the value never changes.
NEUTRAL_VALUES: dict[str, object] = {"data.clin_dropout_p": 0.0}
# Keys that change only how fast a run goes (tests/test_identity.py lists them), and the paths
# whose content the identity holds instead (the data fingerprint, the weight sources).
SPEED_ONLY_KEYS = frozenset(
    {
        "data.num_workers",
        "data.pin_memory",
        "data.persistent_workers",
        "data.cache",
        "data.cache_dir",
        "data.eval_batch_size",
        "data.device_pipeline",
        # Limits that only refuse: on data they accept, a run's numbers do not depend on them.
        "data.max_image_pixels",
        "data.min_image_side",
        "model.channels_last",
        "model.compile",
        # extra evaluations beside the headline (metrics.json "selection"), which they leave as is
        "model.selection_policies",
        # the bootstrap interval beside the headline (metrics.json "bootstrap"), left as is
        "model.bootstrap_resamples",
        "trainer.check_val_every_n_epoch",
        "trainer.enable_progress_bar",
        "trainer.enable_model_summary",
        "trainer.log_every_n_steps",
        "trainer.num_sanity_val_steps",
        "trainer.default_root_dir",
        "trainer.benchmark",
    }
)
CONTENT_KEYS = frozenset(
    {
        "data.root",
        "data.csv",
        "data.tasks",
        "data.split_dir",
        "backbone.weights",
        "clin_backbone.weights",
    }
)
NAMED_BY_FOLDER = frozenset({"seed", "fusion", "block", "backbone", "experiment", "experiment/row"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_SUFFIX_CHARS = 80


def _names_result(key: str) -> bool:
    """Whether an override of `key` changes results and is not already in the folder name."""
    key = key.lstrip("+~")
    root = key.split(".")[0].split("/")[0]
    return (
        key not in NAMED_BY_FOLDER and root not in NON_RESULT_ROOTS and key not in SPEED_ONLY_KEYS
    )


def job_suffix(overrides: Sequence[str] | None) -> str:
    """ "_<overrides>" for a sweep job's folder name ("" without any): the job's overrides that
    change results and that the folder name does not already say, readable and free of the
    characters Hydra's command line cannot take back (`=`, `,`, brackets, quotes, spaces), so
    `hydra.run.dir=<folder>` and `ckpt_path=<folder>/...` work. When making it readable lost
    characters, or it is long, a short hash of the exact overrides keeps jobs apart."""
    kept = sorted(str(o) for o in overrides or () if _names_result(str(o).split("=", 1)[0]))
    if not kept:
        return ""
    exact = "_".join(kept)
    readable = "_".join(_UNSAFE.sub("-", o.lstrip("+~")).strip("-") for o in kept)
    if len(readable) > MAX_SUFFIX_CHARS or _UNSAFE.search(exact.replace("=", "")):
        digest = hashlib.sha256(exact.encode()).hexdigest()[:6]
        readable = f"{readable[:MAX_SUFFIX_CHARS]}_{digest}"
    return f"_{readable}"


def register_configs() -> None:
    """Register the schema nodes and resolvers; called before Hydra composes a config."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    OmegaConf.register_new_resolver("job_suffix", job_suffix, replace=True)
