"""A checkpoint ready to predict: the fused, TTA-averaged model and the evaluation's preprocessing.

Everything matches evaluation: the images are decoded and resized straight to S x S and
normalised with each stream's statistics (the evaluation transform), the run's TTA views are
averaged, and the branches are combined with the run's fusion weights (Eq. 4), read from the
metrics.json of the run directory the checkpoint belongs to (`<run>/checkpoints/x.ckpt` ->
`<run>/metrics.json`) or given explicitly. Without either, loading stops: equal weights would
silently give a different model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from src.config_checks import check_value
from src.evaluation.probabilities import require_finite
from src.runs.files import METRICS_FILE
from src.utils.errors import UserError
from src.utils.published import is_published, published_fusion_weights

if TYPE_CHECKING:
    from src.data.tasks import TaskSpec
    from src.models.module import AMMFMModule


# What a row of predictions is (the paper's symbols, Eq. 4); src.predict prints and writes it.
FUSED_PREDICTION = "P_FI (clinical + dermoscopy images, fused with the run's weights)"
DERM_ONLY_PREDICTION = "P_D (dermoscopy only: no clinical image)"


@dataclass(frozen=True)
class ImagePair:
    """One case to predict: an id and its image files; without a clinical image (None) the
    case gets the dermoscopy branch's P_D (`DermOnlyPredictor`)."""

    id: str
    clinic: Path | None
    derm: Path

    @property
    def prediction(self) -> str:
        return FUSED_PREDICTION if self.clinic is not None else DERM_ONLY_PREDICTION


def module_from_checkpoint(ckpt_path: str | Path) -> AMMFMModule:
    """The AMMFMModule a checkpoint holds, in eval mode, on the CPU.

    Weights-only loading; the network is rebuilt from the configuration stored in the
    checkpoint, without downloading or loading any pretrained weights.
    """
    from src.models.module import IDENTITY_KEY, AMMFMModule, stored_tasks
    from src.utils.checkpoints import read_checkpoint

    ckpt = read_checkpoint(ckpt_path)
    cfg = OmegaConf.create(ckpt["hyper_parameters"]["cfg"])
    cfg.model.compile = False  # inference and export trace the plain modules
    tasks = stored_tasks(ckpt["hyper_parameters"], ckpt_path)
    module = AMMFMModule.from_trained(cfg, tasks, ckpt["state_dict"], ckpt_path).eval()
    module.identity = ckpt.get(IDENTITY_KEY)
    return module


def run_metrics_file(ckpt_path: str | Path) -> Path | None:
    """metrics.json of the checkpoint's run: `<run>/checkpoints/x.ckpt` or `<run>/x.ckpt`."""
    ckpt = Path(ckpt_path).resolve()
    for folder in (ckpt.parent.parent, ckpt.parent):
        if (folder / METRICS_FILE).is_file():
            return folder / METRICS_FILE
    return None


def _checked_weights(weights: Any, branches: Sequence[str], source: str) -> dict[str, float]:
    """Validate fusion weights against the network's branches; normalised to sum 1."""
    if not isinstance(weights, dict) or set(weights) != set(branches):
        got = sorted(weights) if isinstance(weights, dict) else weights
        raise UserError(
            f"{source}: fusion weights must name the network's branches {sorted(branches)}, "
            f"got {got}"
        )
    try:
        values = {b: float(weights[b]) for b in branches}
    except (TypeError, ValueError):
        raise UserError(f"{source}: fusion weights must be numbers, got {weights}") from None
    if any(not math.isfinite(v) or v < 0 for v in values.values()) or sum(values.values()) <= 0:
        raise UserError(f"{source}: fusion weights must be >= 0 with a positive sum, got {values}")
    total = sum(values.values())
    return {b: v / total for b, v in values.items()}


def _records_this_checkpoint(
    metrics: dict[str, Any],
    recorded: str,
    ckpt_path: str | Path,
    run_dir: Path,
    identity: dict[str, Any] | None,
) -> bool:
    """Whether metrics.json (of `run_dir`) was written for `ckpt_path`, whose stored result
    identity is `identity`: the path it records, or, for a run folder copied or moved since
    (from a cluster, say), the same place inside the run (`checkpoints/final.ckpt`) and the same
    result identity in both files. The place matters: every epoch checkpoint of a run carries
    its identity, the fusion weights are final.ckpt's."""
    ckpt = Path(ckpt_path).resolve()
    if Path(recorded).resolve() == ckpt:
        return True
    try:
        inside = ckpt.relative_to(run_dir.resolve()).parts
    except ValueError:
        return False
    if Path(recorded).parts[-len(inside) :] != inside:
        return False
    digest = (metrics.get("identity") or {}).get("digest")
    return bool(digest) and (identity or {}).get("digest") == digest


def resolve_fusion_weights(
    given: dict[str, Any] | None,
    ckpt_path: str | Path,
    branches: Sequence[str],
    identity: dict[str, Any] | None,
) -> dict[str, float]:
    """The weights of Eq. 4: `given`, else the run's metrics.json (the checkpoint's stored
    result `identity` recognises a moved run), else a UserError.

    A single-branch network needs no weights (its branch is the prediction).
    """
    if given is not None:
        return _checked_weights(given, branches, "fusion_weights")
    if len(branches) == 1:
        return {branches[0]: 1.0}
    if is_published(ckpt_path):
        return _checked_weights(published_fusion_weights(ckpt_path), branches, str(ckpt_path))
    metrics_file = run_metrics_file(ckpt_path)
    if metrics_file is None:
        run_dir = Path(ckpt_path).resolve().parent.parent
        raise UserError(
            f"ckpt_path={ckpt_path}: no fusion weights: {run_dir / METRICS_FILE} does not exist "
            "(evaluate the run with src.eval first), or pass "
            "fusion_weights={derm: <w>, clin: <w>, fusion: <w>}"
        )
    try:
        metrics = json.loads(metrics_file.read_text())
        weights, recorded = metrics["fusion_weights"], metrics.get("checkpoint")
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"{metrics_file}: no readable 'fusion_weights'; pass fusion_weights=... instead"
        ) from None
    if not isinstance(recorded, str) or not _records_this_checkpoint(
        metrics, recorded, ckpt_path, metrics_file.parent, identity
    ):
        raise UserError(
            f"{metrics_file} records checkpoint {recorded!r}, not ckpt_path={ckpt_path}: its "
            "fusion weights belong to another checkpoint; pass fusion_weights=... instead"
        )
    return _checked_weights(weights, branches, str(metrics_file))


class FusedPredictor(nn.Module):
    """(clinic, derm) normalised [B,3,S,S] -> P_FI [B,L]: TTA-averaged, fusion-weighted, columns
    in the order of `tasks.all_labels` (the task spec the module was trained with).

    Exactly the evaluation's arithmetic (tta_probabilities, then fuse); traceable for export.
    """

    inputs: tuple[str, ...] = ("clinic", "derm")  # forward's arguments; the ONNX inputs
    output = "p_fi"  # the ONNX output
    prediction = FUSED_PREDICTION

    def __init__(
        self,
        module: nn.Module,
        tasks: TaskSpec,
        weights: dict[str, float],
        views: Sequence[str],
    ):
        super().__init__()
        self.module = module
        self.tasks = tasks
        self.weights = dict(weights)
        self.views = list(views)

    def branch_probabilities(self, clinic: Tensor, derm: Tensor) -> dict[str, Tensor]:
        from src.evaluation.tta import tta_probabilities

        num_classes = self.tasks.num_classes
        return tta_probabilities(self.module, clinic, derm, self.views, num_classes)

    def forward(self, clinic: Tensor, derm: Tensor) -> Tensor:
        from src.evaluation.fusion_weights import fuse

        return fuse(self.branch_probabilities(clinic, derm), self.weights)


class DermOnlyPredictor(nn.Module):
    """derm normalised [B,3,S,S] -> P_D [B,L]: the dermoscopy branch's TTA-averaged
    probabilities when there is no clinical image; traceable for export.

    The network still has a clinical input: it gets the missing image
    (`src.data.missing.missing_like`, what `data.clin_dropout_p` trains with). With CAT blocks
    P_D never reads the clinical stream, so it is exactly the evaluation's P_D; with AAB or BAB
    blocks the clinical attention maps are those of the missing image.
    """

    inputs: tuple[str, ...] = ("derm",)
    output = "p_d"
    prediction = DERM_ONLY_PREDICTION

    def __init__(self, fused: FusedPredictor, source: object):
        super().__init__()
        if "derm" not in fused.module.branches:
            raise UserError(
                f"ckpt_path={source}: the model has no dermoscopy branch (branches "
                f"{list(fused.module.branches)}), so it cannot predict from a dermoscopy image "
                "alone; give clinic=<image> too"
            )
        self.fused = fused
        self.tasks = fused.tasks
        self.views = fused.views
        self.weights = {"derm": 1.0}  # P_D alone: Eq. 4 with all weight on the derm branch

    def forward(self, derm: Tensor) -> Tensor:
        from src.data.missing import missing_like

        return self.fused.branch_probabilities(missing_like(derm), derm)["derm"]


@dataclass
class Predictor:
    """A checkpoint ready to predict: the fused model and the evaluation preprocessing."""

    model: FusedPredictor
    image_size: int
    norm_stats: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    checkpoint: Path
    device: torch.device

    @property
    def weights(self) -> dict[str, float]:
        return self.model.weights

    @property
    def tasks(self) -> TaskSpec:
        """The task spec the model was trained with: output columns and task segments."""
        return self.model.tasks

    @property
    def views(self) -> list[str]:
        return self.model.views

    @property
    def derm_only(self) -> DermOnlyPredictor:
        """P_D from the dermoscopy image alone (UserError for a model without that branch)."""
        return DermOnlyPredictor(self.model, self.checkpoint)

    def load(self, pairs: Sequence[ImagePair]) -> tuple[Tensor, Tensor]:
        """Decode, resize and normalise a batch of pairs as evaluation does; a pair without a
        clinical image gets the missing image (`missing_like`) in its place."""
        from src.data.cache import ImageCache
        from src.data.missing import missing_like
        from src.data.transforms import eval_transform

        images = ImageCache(self.image_size, mode="none")  # decode + resize, as the cache does
        transform = eval_transform(
            self.image_size, self.norm_stats["clin"], self.norm_stats["derm"]
        )
        tensors = []
        for p in pairs:
            derm = images.get(p.derm)
            clin_t, derm_t = transform(derm if p.clinic is None else images.get(p.clinic), derm)
            tensors.append((missing_like(clin_t) if p.clinic is None else clin_t, derm_t))
        return torch.stack([c for c, _ in tensors]), torch.stack([d for _, d in tensors])

    def _predict_batch(self, pairs: Sequence[ImagePair]) -> Tensor:
        """P_FI of the pairs with a clinical image, P_D of those without, in order."""
        clinic, derm = (t.to(self.device) for t in self.load(pairs))
        fused = torch.tensor([p.clinic is not None for p in pairs], device=self.device)
        out = torch.empty(len(pairs), self.tasks.num_outputs, device=self.device)
        if fused.any():
            out[fused] = self.model(clinic[fused], derm[fused]).float()
        if not fused.all():
            out[~fused] = self.derm_only(derm[~fused]).float()
        return out.cpu()

    @torch.no_grad()
    def predict(self, pairs: Sequence[ImagePair], batch_size: int = 8) -> Tensor:
        """[N, L] (columns in `tasks.all_labels` order) for `pairs`, `batch_size` at a time:
        P_FI of a pair with both images, P_D of one without a clinical image
        (`ImagePair.prediction` says which)."""
        out = [
            self._predict_batch(pairs[start : start + batch_size])
            for start in range(0, len(pairs), batch_size)
        ]
        probs = torch.cat(out) if out else torch.zeros(0, self.tasks.num_outputs)
        require_finite(probs, f"ckpt_path={self.checkpoint}")
        return probs


def load_predictor(
    ckpt_path: str | Path,
    fusion_weights: dict[str, Any] | None = None,
    tta_views: Sequence[str] | None = None,
    device: str = "cpu",
) -> Predictor:
    """Everything prediction needs from a checkpoint (weights, TTA views, fusion weights)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device}: CUDA is not available here; use device=cpu")
    module = module_from_checkpoint(ckpt_path)
    cfg = module.cfg
    if module.network.metadata is not None:
        raise UserError(
            f"ckpt_path={ckpt_path}: the model also reads patient metadata "
            f"(model.metadata={list(cfg.model.metadata)}); src.predict and src.export feed "
            "images only: evaluate it with src.eval"
        )
    if tta_views is not None:
        check_value("tta_views", list(tta_views), rule="model.tta_views")
    views = list(tta_views) if tta_views is not None else list(cfg.model.tta_views)
    weights = resolve_fusion_weights(fusion_weights, ckpt_path, module.branches, module.identity)
    model = FusedPredictor(module, module.tasks, weights, views).to(device).eval()
    return Predictor(
        model=model,
        image_size=int(cfg.data.image_size),
        norm_stats=module.network.norm_stats,
        checkpoint=Path(ckpt_path),
        device=torch.device(device),
    )
