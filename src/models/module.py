"""LightningModule: the paper's loss (Eq. 2-3), optimiser and schedule, TTA prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import move_data_to_device
from lightning_utilities.core.apply_func import apply_to_collection
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.config import on_schema
from src.config_checks import check_config_values
from src.data.sampling import mix_seed, unshard
from src.data.tasks import TaskSpec, load_task_spec
from src.evaluation.metrics import compute_metrics
from src.evaluation.probabilities import split_tasks, task_softmax
from src.evaluation.tta import tta_probabilities
from src.models.lr_schedule import lr_factor_schedule
from src.models.metadata import select_metadata
from src.models.network import NetworkSpec, build_network, validate_network_config
from src.utils.distributed import broadcast_batchnorm_statistics
from src.utils.errors import UserError

IDENTITY_KEY = "identity"  # the result identity in a checkpoint of src.train
TASKS_KEY = "tasks"  # the task spec, in the checkpoint's hyperparameters
# model.optimizer (src.config.OPTIMIZERS) -> its class
OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def stored_tasks(hparams: dict[str, Any], source: object) -> TaskSpec:
    """The task spec a checkpoint's hyperparameters hold; checkpoints written before the spec
    was stored were all trained on derm7pt's 8 tasks."""
    raw = hparams.get(TASKS_KEY)
    if raw is None:
        return load_task_spec("derm7pt")
    return TaskSpec.from_dict(raw, f"ckpt_path={source} (its task spec)")


class NonFiniteLossError(UserError):
    """Raised at the first NaN/inf loss; names where it happened (printed as one line)."""


def branch_loss(
    logits: Tensor, labels: Tensor, num_classes: Sequence[int]
) -> tuple[Tensor, list[Tensor]]:
    """Sum over the tasks of the cross-entropy (mean over the batch) of one branch (Eq. 3)."""
    per_task = [
        F.cross_entropy(task_logits, labels[:, t])
        for t, task_logits in enumerate(split_tasks(logits, num_classes))
    ]
    return torch.stack(per_task).sum(), per_task


class RefinementMeter:
    """Running mean over samples of each block stage's per-stream relative feature change."""

    def __init__(self) -> None:
        self.sums: dict[tuple[int, str], float] = {}
        self.counts: dict[tuple[int, str], int] = {}

    def update(self, refinement: dict[int, dict[str, Tensor]]) -> None:
        for stage, streams in refinement.items():
            for stream, change in streams.items():
                key = (stage, stream)
                self.sums[key] = self.sums.get(key, 0.0) + float(change.sum())
                self.counts[key] = self.counts.get(key, 0) + change.numel()

    def means(self) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        for (stage, stream), total in sorted(self.sums.items()):
            out.setdefault(stage, {})[stream] = total / self.counts[(stage, stream)]
        return out

    def flat(self, prefix: str) -> dict[str, float]:
        """{"<prefix>/stage<s>": derm change, "<prefix>/stage<s>_clin": clinical change}."""
        return {
            f"{prefix}/stage{stage}" + ("" if stream == "derm" else f"_{stream}"): value
            for stage, streams in self.means().items()
            for stream, value in streams.items()
        }


# A batch: clinical and dermoscopy images, class index per task, category per metadata column.
Batch = tuple[Tensor, Tensor, Tensor, Tensor]
# One validation batch: per-branch probabilities, labels, per-stage per-stream refinement.
ValidationBatch = tuple[dict[str, Tensor], Tensor, dict[int, dict[str, Tensor]]]


def _concat(batches: list[ValidationBatch]) -> ValidationBatch:
    probs = {b: torch.cat([p[b] for p, _, _ in batches]) for b in batches[0][0]}
    labels = torch.cat([lbl for _, lbl, _ in batches])
    refinement = {
        stage: {s: torch.cat([r[stage][s] for _, _, r in batches]) for s in streams}
        for stage, streams in batches[0][2].items()
    }
    return probs, labels, refinement


class AMMFMModule(LightningModule):
    """Wraps a FusionNetwork with the paper's training and evaluation recipe.

    `tasks` is the dataset's task spec (the datamodule's): the heads get its class counts, the
    loss and metrics its layout. The resolved config and the spec are stored as plain containers
    in the checkpoint's hyperparameters, so a checkpoint can be rebuilt with weights-only loading
    (no pickled objects) and without the dataset. The whole config stays as `cfg` for
    provenance; the module itself reads only its recipe (`cfg.model`), the seed and the
    `NetworkSpec` drawn from the config.
    """

    def __init__(self, cfg: dict[str, Any] | DictConfig, tasks: TaskSpec) -> None:
        super().__init__()
        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        # Stored in the checkpoint only: the run logs its resolved config once (src.train).
        self.save_hyperparameters({"cfg": cfg, TASKS_KEY: tasks.to_dict()}, logger=False)
        self.cfg = OmegaConf.create(cfg)
        self.tasks = tasks
        self.recipe: DictConfig = self.cfg.model
        self.seed = int(self.cfg.seed)
        self.network_spec: NetworkSpec = validate_network_config(self.cfg)
        recipe = self.recipe
        # process-wide, as torch defines it
        torch.set_float32_matmul_precision(recipe.matmul_precision)
        metadata = select_metadata(
            list(recipe.metadata), bool(recipe.allow_leaky_metadata), tasks, self.network_spec.mode
        )
        self.network = build_network(self.network_spec, tasks.num_classes, metadata=metadata)
        if recipe.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        if recipe.compile:
            self.network.compile()  # in place: parameter names, so checkpoints, stay the same
        self._val_outputs: list[ValidationBatch] = []
        # What the result is (src/runs/identity.py), set by src.train; kept in every checkpoint
        self.identity: dict[str, Any] | None = None

    @classmethod
    def from_trained(
        cls,
        cfg: dict[str, Any] | DictConfig,
        tasks: TaskSpec,
        state_dict: dict[str, Any],
        source: object,
    ) -> AMMFMModule:
        """A module rebuilt from a stored config, task spec and trained weights (no pretrained
        download: the weights come from `state_dict`); `source` names the file in errors."""
        check_config_values(cfg, source=f"ckpt_path={source}")
        cfg = on_schema(cfg)  # keys newer than the checkpoint take the schema's defaults
        for node in (cfg.backbone, cfg.clin_backbone):
            if node is not None:
                node.pretrained = False
                node.weights = None
        module = cls(cfg, tasks)
        try:
            missing, unexpected = module.load_state_dict(state_dict, strict=False)
        except RuntimeError as err:
            detail = next(
                (ln.strip() for ln in str(err).splitlines() if "size mismatch" in ln), "mismatch"
            )
            raise UserError(
                f"ckpt_path={source}: weights do not fit the network of this config ({detail}); "
                "evaluate a checkpoint with the settings it was trained with (drop backbone=, "
                "fusion= or block= overrides)"
            ) from None
        if missing or unexpected:
            raise UserError(
                f"ckpt_path={source}: weights do not fit the stored network "
                f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. "
                f"{(missing or unexpected)[0]})"
            )
        return module

    @property
    def branches(self) -> tuple[str, ...]:
        return tuple(self.network.branches)

    def _layout(self, clinic: Tensor, derm: Tensor) -> tuple[Tensor, Tensor]:
        if self.recipe.channels_last:
            clinic = clinic.contiguous(memory_format=torch.channels_last)
            derm = derm.contiguous(memory_format=torch.channels_last)
        return clinic, derm

    def forward(
        self, clinic: Tensor, derm: Tensor, meta: Tensor | None = None
    ) -> dict[str, Tensor]:
        return self.network(*self._layout(clinic, derm), meta)

    # ------------------------------------------------------------------ training
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.identity is not None:
            checkpoint[IDENTITY_KEY] = self.identity

    def on_train_epoch_start(self) -> None:
        """Dropout and other in-model randomness restart from (seed, epoch) every epoch, so a
        run resumed from an end-of-epoch checkpoint continues exactly like an uninterrupted one."""
        torch.manual_seed(mix_seed(self.seed, self.current_epoch))

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        clinic, derm, labels, meta = batch
        logits = self(clinic, derm, meta)
        total = torch.zeros((), device=labels.device)
        for branch, branch_logits in logits.items():
            loss, per_task = branch_loss(branch_logits.float(), labels, self.tasks.num_classes)
            self._check_finite(loss, per_task, branch)
            self.log(f"train/loss_{branch}", loss, on_step=False, on_epoch=True, sync_dist=True)
            total = total + loss
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        return total

    def _check_finite(self, loss: Tensor, per_task: list[Tensor], branch: str) -> None:
        if torch.isfinite(loss):
            return
        bad = [name for name, v in zip(self.tasks.task_names, per_task) if not torch.isfinite(v)]
        raise NonFiniteLossError(
            f"non-finite loss at epoch {self.current_epoch}, step {self.global_step}: "
            f"branch '{branch}', task(s) {', '.join(bad)}; the last good checkpoint is kept "
            "(lower model.lr or check the inputs)"
        )

    # ---------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        # Under DDP each process's BatchNorm statistics drifted with its own last batches;
        # validate what the checkpoint keeps, rank zero's, on every process.
        broadcast_batchnorm_statistics(self)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        clinic, derm, labels, meta = batch
        inputs = self._layout(clinic, derm)
        logits, refinement = self.network.forward_with_refinement(*inputs, meta)
        for branch, values in logits.items():
            if not torch.isfinite(values).all():
                raise NonFiniteLossError(
                    f"non-finite outputs in validation at epoch {self.current_epoch}, batch "
                    f"{batch_idx}: branch '{branch}'; the last good checkpoint is kept (lower "
                    "model.lr or check the inputs)"
                )
        probs = {b: task_softmax(v.float(), self.tasks.num_classes) for b, v in logits.items()}
        refinement = {k: {s: v.float() for s, v in r.items()} for k, r in refinement.items()}
        self._val_outputs.append((probs, labels, refinement))

    def _whole_split(self) -> ValidationBatch:
        """This epoch's validation outputs over the whole split, in order, on every process:
        under DDP each process saw a padded share (`src.data.sampling.shard_sampler`)."""
        outputs = _concat(self._val_outputs)
        self._val_outputs.clear()
        if self.trainer.world_size > 1:
            length = len(self.trainer.val_dataloaders.dataset)
            outputs = apply_to_collection(self.all_gather(outputs), Tensor, unshard, length)
        return move_data_to_device(outputs, "cpu")

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        probs, labels, refinement = self._whole_split()
        # Every process holds the same whole-split values; sync_dist keeps Lightning's
        # epoch-level reduction explicit (a mean of equal numbers).
        for branch in self.branches:
            metrics = compute_metrics(probs[branch], labels, self.tasks)
            self.log(f"val/avg_acc_{branch}", metrics["avg_acc"], sync_dist=True)
        # Equal-weight average of the branches: a cheap stand-in for P_FI during training.
        mean_probs = torch.stack([probs[b] for b in self.branches]).mean(0)
        metrics = compute_metrics(mean_probs, labels, self.tasks)
        self.log("val/avg_acc", metrics["avg_acc"], prog_bar=True, sync_dist=True)
        if metrics["avg_auc"] is not None:
            self.log("val/avg_auc", metrics["avg_auc"], prog_bar=True, sync_dist=True)
        meter = RefinementMeter()
        meter.update(refinement)
        for key, value in meter.flat("val/refinement").items():
            self.log(key, value, sync_dist=True)
        for stage, gates in self.network.gate_values().items():
            for stream, value in gates.items():
                self.log(f"gate/stage{stage}_{stream}", value, sync_dist=True)

    @torch.no_grad()
    def block_summary(self, dataloader: Any) -> dict[str, Any]:
        """What the fusion blocks do to the features of `dataloader`'s images (no TTA): per
        block stage the mean relative change ||x_refined - x|| / ||x|| of the dermoscopy
        features ("refinement"; the clinical ones under "clin_refinement" for BAB), and the
        gate values when gated."""
        spec = self.network_spec
        meter = RefinementMeter()
        was_training = self.training
        self.eval()
        for clinic, derm, _, meta in dataloader:
            inputs = self._layout(clinic.to(self.device), derm.to(self.device))
            meter.update(self.network.forward_with_refinement(*inputs, meta.to(self.device))[1])
        self.train(was_training)
        means = meter.means()
        summary: dict[str, Any] = {
            "type": spec.block,
            "gate": spec.gate,
            "stages": sorted(int(s) for s in means),
            "refinement": {str(s): v["derm"] for s, v in means.items() if "derm" in v},
        }
        clin = {str(s): v["clin"] for s, v in means.items() if "clin" in v}
        if clin:
            summary["clin_refinement"] = clin
        gates = self.network.gate_values()
        if gates:
            summary["gates"] = {str(s): v for s, v in gates.items()}
        return summary

    # ---------------------------------------------------------------- prediction
    def predict_step(
        self, batch: Batch, batch_idx: int, dataloader_idx: int = 0
    ) -> tuple[dict[str, Tensor], Tensor]:
        """TTA-averaged per-task probabilities of every branch, and the labels (the views turn
        the images; the metadata stays)."""
        clinic, derm, labels, meta = batch
        views = list(self.recipe.tta_views)

        def forward(c: Tensor, d: Tensor) -> dict[str, Tensor]:
            return self(c, d, meta)

        probs = tta_probabilities(forward, clinic, derm, views, self.tasks.num_classes)
        return {b: p.float().cpu() for b, p in probs.items()}, labels.cpu()

    # ----------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        mcfg = self.recipe
        params = [p for p in self.parameters() if p.requires_grad]
        adam = OPTIMIZER_CLASSES[mcfg.optimizer]  # the name is checked with the config
        optimizer = adam(params, lr=mcfg.lr, weight_decay=mcfg.weight_decay)
        if mcfg.scheduler == "none":
            return optimizer
        max_epochs = max(int(self.trainer.max_epochs or 1), 1)
        swa_lr = mcfg.swa_lr
        factor = lr_factor_schedule(
            max_epochs,
            swa_epochs=int(mcfg.swa_epochs),
            swa_lr_ratio=None if swa_lr is None else float(swa_lr) / float(mcfg.lr),
            anneal_epochs=int(mcfg.swa_anneal_epochs),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        schedule = {"scheduler": scheduler, "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}
