"""End-to-end training on the real code paths: Hydra config, Trainer, SWA, TTA, weight search."""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from src.runs.files import REQUIRED_METRIC_KEYS, is_complete
from src.train import train
from src.utils.checkpoints import read_checkpoint
from tests.specs import ALL_LABELS, AVG_AUC_LABELS, DERM7PT, MELANOMA_LABELS, TASK_NAMES
from tests.train_helpers import fake_scontrol, tiny_config

WITH_CHECKPOINTS = ("callbacks=default",)
KEEP_EVERY_EPOCH = ("callbacks.model_checkpoint.save_top_k=-1",)


def _check_metric_block(block: dict) -> None:
    assert set(block["auc"]) == set(ALL_LABELS)
    assert set(block["acc"]) == set(TASK_NAMES)
    assert 0.0 <= block["avg_acc"] <= 1.0
    assert 0.0 <= block["avg_auc"] <= 1.0
    mean_auc = sum(block["auc"][lbl] for lbl in AVG_AUC_LABELS) / len(AVG_AUC_LABELS)
    assert block["avg_auc"] == pytest.approx(mean_auc)
    assert block["avg_acc"] == pytest.approx(sum(block["acc"].values()) / len(TASK_NAMES))
    assert set(block["melanoma"]) == set(MELANOMA_LABELS)


@pytest.fixture(scope="module")
def trained_run(synthetic_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "aff-aab"
    overrides = [*WITH_CHECKPOINTS, *KEEP_EVERY_EPOCH, "keep_resume_checkpoints=true"]
    train(tiny_config(synthetic_release, run_dir, [*overrides, "model.selection_policies=true"]))
    return run_dir


def test_run_writes_complete_results(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert is_complete(trained_run)
    assert all(key in metrics for key in REQUIRED_METRIC_KEYS)
    _check_metric_block(metrics)
    assert set(metrics["branches"]) == {"clin", "derm", "fusion"}
    for branch in metrics["branches"].values():
        _check_metric_block(branch)
    weights = metrics["fusion_weights"]
    assert set(weights) == {"clin", "derm", "fusion"}
    assert math.fsum(weights.values()) == pytest.approx(1.0)
    # A point of the documented grid: weights proportional to integers 1..20 (step 0.05).
    grid = itertools.product(range(1, 21), repeat=3)
    assert any(
        all(abs(weights[b] - k / sum(ks)) < 1e-9 for b, k in zip(("derm", "clin", "fusion"), ks))
        for ks in grid
    ), weights
    assert metrics["seed"] == 0
    assert metrics["n"] == 395
    assert metrics["config"]["fusion"] == "aff" and metrics["config"]["block"] == "aab"
    # Every tensor of the final weights except BatchNorm statistics is a trained parameter.
    state = read_checkpoint(trained_run / "checkpoints" / "final.ckpt")["state_dict"]
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    counted = sum(v.numel() for k, v in state.items() if k.rsplit(".", 1)[-1] not in statistics)
    assert metrics["params"]["trainable"] == counted
    assert metrics["params"]["paper_accounting"] > metrics["params"]["trainable"]
    assert metrics["epochs_trained"] == 2  # = trainer.max_epochs: no extra SWA epoch

    predictions = pd.read_csv(trained_run / "predictions.csv")
    assert len(predictions) == 395
    for branch in ("final", "clin", "derm", "fusion"):
        probs = predictions[[f"{branch}:DIAG/{c}" for c in ("BCC", "NEV", "MEL", "MISC", "SK")]]
        assert probs.sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-4)
    for name in ("roc_curves.png", "confusion_matrices.png", "config.yaml"):
        assert (trained_run / name).stat().st_size > 0
    assert (trained_run / "checkpoints" / "final.ckpt").is_file()
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()


def test_eval_reproduces_the_run_from_its_checkpoint(trained_run: Path, synthetic_release: Path):
    from src.eval import evaluate_checkpoint

    eval_dir = trained_run.parent / "eval"
    cfg = tiny_config(
        synthetic_release,
        eval_dir,
        [f"ckpt_path={trained_run / 'checkpoints' / 'final.ckpt'}"],
        config_name="eval",
        base=("debug=fast",),
    )
    metrics = evaluate_checkpoint(cfg)
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["fusion_weights"] == pytest.approx(trained["fusion_weights"])
    assert metrics["avg_auc"] == pytest.approx(trained["avg_auc"], abs=1e-6)
    assert metrics["auc"] == pytest.approx(trained["auc"], abs=1e-6)
    assert json.loads((eval_dir / "metrics.json").read_text())["avg_acc"] == trained["avg_acc"]


def _preempted_after_first_epoch(trained_run: Path, name: str) -> Path:
    """A run folder as SIGTERM leaves it after the first epoch: epoch000.ckpt and error.txt."""
    import shutil

    from src.runs.status import Preempted, record_failure

    run_dir = trained_run.parent / name
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(trained_run / "checkpoints" / "epoch000.ckpt", run_dir / "checkpoints")
    record_failure(run_dir, Preempted("SIGTERM received in epoch 1; rerun the same command"))
    return run_dir


def test_rerunning_a_preempted_run_resumes_it(trained_run: Path, synthetic_release: Path):
    """A requeued SLURM job runs the same command: it continues the preempted run from its
    last finished epoch (no ckpt_path=last needed) and ends with the uninterrupted weights."""
    import torch

    from src.runs.files import ERROR_FILE

    run_dir = _preempted_after_first_epoch(trained_run, "preempted")
    train(tiny_config(synthetic_release, run_dir, [*WITH_CHECKPOINTS, "test=false", "logger=csv"]))
    logged = pd.read_csv(run_dir / "csv" / "metrics.csv")
    assert set(logged.dropna(subset=["val/avg_acc"])["epoch"]) == {1}  # resumed, not restarted
    final = read_checkpoint(trained_run / "checkpoints" / "final.ckpt")["state_dict"]
    again = read_checkpoint(run_dir / "checkpoints" / "final.ckpt")["state_dict"]
    assert all(torch.equal(final[k], again[k]) for k in final)
    assert not (run_dir / ERROR_FILE).exists()  # no longer a failure


def test_a_preempted_run_is_not_resumed_as_another_experiment(
    trained_run: Path, synthetic_release: Path
):
    from src.utils.errors import UserError

    run_dir = _preempted_after_first_epoch(trained_run, "preempted-other")
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    cfg = tiny_config(synthetic_release, run_dir, [*WITH_CHECKPOINTS, "model.lr=0.5"])
    with pytest.raises(UserError, match=r"preempted run in .* another experiment \(model.lr"):
        train(cfg)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before


def test_resume_after_first_epoch_reaches_the_uninterrupted_weights(
    trained_run: Path, synthetic_release: Path
):
    import shutil

    import torch

    resumed_dir = trained_run.parent / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    # As if the run had died right after its first epoch: only epoch000.ckpt is there.
    shutil.copy(trained_run / "checkpoints" / "epoch000.ckpt", resumed_dir / "checkpoints")
    overrides = [*WITH_CHECKPOINTS, "ckpt_path=last", "test=false", "logger=csv"]
    train(tiny_config(synthetic_release, resumed_dir, overrides))
    logged = pd.read_csv(resumed_dir / "csv" / "metrics.csv")
    assert set(logged.dropna(subset=["val/avg_acc"])["epoch"]) == {1}  # resumed, not restarted
    final = read_checkpoint(trained_run / "checkpoints" / "final.ckpt")["state_dict"]
    again = read_checkpoint(resumed_dir / "checkpoints" / "final.ckpt")["state_dict"]
    first_epoch = read_checkpoint(trained_run / "checkpoints" / "epoch000.ckpt")["state_dict"]
    assert final.keys() == again.keys()
    assert all(torch.equal(final[k], again[k]) for k in final)
    assert not all(torch.equal(final[k], first_epoch[k]) for k in final)  # it did train on
    # Without test metrics the run is not complete: its resume checkpoints stay.
    assert (resumed_dir / "checkpoints" / "last.ckpt").is_file()


def test_a_complete_run_keeps_only_final_ckpt_holding_weights_config_and_identity(
    synthetic_release: Path, tmp_path: Path
):
    """Retention: once metrics.json is written, the epoch checkpoints and last.ckpt go; the
    kept final.ckpt holds what eval, predict and export read, and no training state."""
    run_dir = tmp_path / "run"
    train(tiny_config(synthetic_release, run_dir, WITH_CHECKPOINTS))
    assert is_complete(run_dir)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["final.ckpt"]
    stored = read_checkpoint(run_dir / "checkpoints" / "final.ckpt")
    training_state = {"optimizer_states", "lr_schedulers", "callbacks", "swa_average", "best_valid"}
    assert not training_state & stored.keys()
    assert stored["identity"] == json.loads((run_dir / "identity.json").read_text())
    assert stored["hyper_parameters"]["cfg"]["seed"] == 0


def test_selection_policies_beside_swa(trained_run: Path) -> None:
    """metrics.json "selection": the headline is SWA's; the best validation epoch's weights are
    that epoch's checkpointed training weights; each policy has its own fusion weights."""
    import torch

    from src.models.selection import BEST_VALID_KEY

    metrics = json.loads((trained_run / "metrics.json").read_text())
    selection = metrics["selection"]
    assert list(selection) == ["swa", "last", "best_valid"]
    swa = selection["swa"]
    for key in ("avg_auc", "avg_acc", "auc", "acc", "fusion_weights", "valid"):
        assert swa[key] == metrics[key], key
    assert swa["averaged_epochs"] == [1, 1] and selection["last"]["epoch"] == 1
    for record in selection.values():
        _check_metric_block(record)
        assert math.fsum(record["fusion_weights"].values()) == pytest.approx(1.0)
        assert set(record["branches"]) == {"clin", "derm", "fusion"}
    best = selection["best_valid"]
    assert best["metric"] == "val/avg_auc" and best["epoch"] in (0, 1)
    # Each epoch checkpoint carries the best-so-far snapshot (resume selects the same).
    stored = read_checkpoint(trained_run / "checkpoints" / "epoch001.ckpt")[BEST_VALID_KEY]
    assert (stored["epoch"], stored["score"]) == (best["epoch"], best["valid_score"])
    chosen = read_checkpoint(trained_run / "checkpoints" / f"epoch{best['epoch']:03d}.ckpt")
    assert all(torch.equal(stored["state_dict"][k], v) for k, v in chosen["state_dict"].items())
    if best["epoch"] == 1:  # the last epoch's weights: evaluated once, shared
        assert best["same_weights_as"] == "last" and best["avg_auc"] == selection["last"]["avg_auc"]
    else:
        assert best["eval_s"] >= 0 and "same_weights_as" not in best


def test_selection_after_resuming_is_the_uninterrupted_runs(
    trained_run: Path, synthetic_release: Path
):
    import shutil

    resumed_dir = trained_run.parent / "resumed_selection"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(trained_run / "checkpoints" / "epoch000.ckpt", resumed_dir / "checkpoints")
    overrides = [*WITH_CHECKPOINTS, "ckpt_path=last", "model.selection_policies=true"]
    resumed = train(tiny_config(synthetic_release, resumed_dir, overrides))["selection"]
    uninterrupted = json.loads((trained_run / "metrics.json").read_text())["selection"]
    for policy in ("swa", "last", "best_valid"):
        for key in ("epoch", "valid_score", "avg_auc", "avg_acc", "fusion_weights"):
            assert resumed[policy].get(key) == uninterrupted[policy].get(key), (policy, key)


def test_resuming_without_the_best_valid_record_selects_no_best_valid_epoch() -> None:
    """A checkpoint written with the policies off has not recorded the validation epochs
    before it: the best-validation policy is left out rather than chosen among later ones."""
    from src.models.selection import BestValidSnapshot
    from src.runs.selection import policy_snapshots

    callback = BestValidSnapshot()
    callback.on_load_checkpoint(None, None, {"epoch": 3, "state_dict": {}})  # type: ignore[arg-type]
    assert callback.chosen is None and policy_snapshots(None, callback) == {}


def test_resume_with_another_epoch_count_is_refused(trained_run: Path, synthetic_release: Path):
    """More epochs would move the SWA window: the checkpoint is another experiment."""
    import shutil

    from src.utils.errors import UserError

    resumed_dir = trained_run.parent / "longer"
    shutil.copytree(trained_run / "checkpoints", resumed_dir / "checkpoints")
    overrides = [*WITH_CHECKPOINTS, "ckpt_path=last", "trainer.max_epochs=3"]
    with pytest.raises(UserError, match=r"another experiment \(trainer\.max_epochs: 2 -> 3\)"):
        train(tiny_config(synthetic_release, resumed_dir, overrides))


def test_same_seed_same_weights_other_seed_differs(synthetic_release: Path, tmp_path: Path):
    import torch

    quick = ("model.swa_epochs=0", "trainer.max_epochs=1", "test=false")

    def final_weights(name: str, seed: int) -> dict:
        train(tiny_config(synthetic_release, tmp_path / name, [*quick, f"seed={seed}"]))
        return read_checkpoint(tmp_path / name / "checkpoints" / "final.ckpt")["state_dict"]

    first, again, other = final_weights("a", 0), final_weights("b", 0), final_weights("c", 1)
    assert all(torch.equal(first[k], again[k]) for k in first)  # seed=0 is honoured, not skipped
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_validating_less_often_leaves_the_trained_weights_unchanged(
    synthetic_release: Path, tmp_path: Path
):
    """Validation only reports (no monitor, no early stop, the RNG is re-seeded every epoch),
    so trainer.check_val_every_n_epoch is a pure speed setting."""
    import torch

    quick = ("trainer.max_epochs=2", "test=false")

    def final_weights(name: str, every: int) -> dict:
        overrides = [*quick, f"trainer.check_val_every_n_epoch={every}"]
        train(tiny_config(synthetic_release, tmp_path / name, overrides))
        return read_checkpoint(tmp_path / name / "checkpoints" / "final.ckpt")["state_dict"]

    every_epoch, once = final_weights("every", 1), final_weights("once", 2)
    assert all(torch.equal(every_epoch[k], once[k]) for k in every_epoch)


def test_device_pipeline_trains_reproducibly_with_swa(synthetic_release: Path, tmp_path: Path):
    """data.device_pipeline=true through the real app (the SWA BatchNorm refresh reads key
    batches through the datamodule's hooks): same seed, same averaged weights and metrics."""
    import torch

    # one epoch, averaged over itself: the BatchNorm refresh still reads the training batches;
    # the final weights are compared (the evaluation of equal weights is tested elsewhere)
    on_device = ("data.device_pipeline=true", "data.augment_p=1.0", "trainer.max_epochs=1")
    for name in "ab":
        train(tiny_config(synthetic_release, tmp_path / name, [*on_device, "test=false"]))
    a, b = (read_checkpoint(tmp_path / n / "checkpoints" / "final.ckpt") for n in "ab")
    assert a["epoch"] == b["epoch"] == 1
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_a_training_loader_made_after_the_epoch_reseed_replays_the_same_epochs(
    synthetic_release: Path, tmp_path: Path
):
    """The training data's seed is the run's seed, not whatever the global generator holds
    when Lightning asks for the loader: with trainer.reload_dataloaders_every_n_epochs=1 the
    loader of epoch 1 is made after the module re-seeded the global generator for epoch 0,
    and must still deal out and augment epoch 1 as the loader made at the start does."""
    import torch

    quick = ("model.swa_epochs=0", "test=false", "data.augment_p=1.0")

    def final_weights(name: str, *overrides: str) -> dict:
        train(tiny_config(synthetic_release, tmp_path / name, [*quick, *overrides]))
        return read_checkpoint(tmp_path / name / "checkpoints" / "final.ckpt")["state_dict"]

    once = final_weights("once")
    reloaded = final_weights("reloaded", "+trainer.reload_dataloaders_every_n_epochs=1")
    assert all(torch.equal(once[k], reloaded[k]) for k in once)


def test_complete_run_is_skipped_not_retrained(trained_run: Path, synthetic_release: Path):
    before = (trained_run / "metrics.json").stat().st_mtime_ns
    metrics = train(tiny_config(synthetic_release, trained_run, WITH_CHECKPOINTS))
    assert (trained_run / "metrics.json").stat().st_mtime_ns == before
    assert metrics["seed"] == 0


@pytest.mark.slow
def test_demo_learns_on_synthetic_data(synthetic_release: Path, tmp_path: Path) -> None:
    cfg = tiny_config(synthetic_release, tmp_path / "demo", base=("experiment=demo",))
    metrics = train(cfg)
    assert metrics["avg_auc"] > 0.6, metrics["avg_auc"]


def test_a_hostile_stored_config_is_refused_before_it_is_built(
    trained_run: Path, synthetic_release: Path, tmp_path: Path
):
    import torch

    from src.eval import evaluate_checkpoint
    from src.models.module import AMMFMModule
    from src.utils.errors import UserError

    ckpt = torch.load(trained_run / "checkpoints" / "final.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["cfg"]["data"]["image_size"] = 8192  # would allocate ~GBs
    hostile = tmp_path / "hostile.ckpt"
    torch.save(ckpt, hostile)
    with pytest.raises(UserError, match=r"stored config: data.image_size=8192 must be"):
        AMMFMModule.from_trained(
            ckpt["hyper_parameters"]["cfg"], DERM7PT, ckpt["state_dict"], hostile
        )
    eval_dir = tmp_path / "eval"
    cfg = tiny_config(
        synthetic_release, eval_dir, [f"ckpt_path={hostile}"], config_name="eval", base=()
    )
    with pytest.raises(UserError, match=rf"^ckpt_path={hostile}: stored config: data.image_size"):
        evaluate_checkpoint(cfg)
    assert not eval_dir.exists()


@pytest.mark.slow
def test_sigterm_fails_the_run_with_error_txt_and_it_resumes(
    synthetic_release: Path, tmp_path: Path
) -> None:
    """SLURM preemption: SIGTERM once the first epoch's checkpoint exists; the run exits
    non-zero with error.txt, and the same command (a requeued job) then resumes it to the end."""
    import signal

    from src.runs.files import ERROR_FILE
    from tests.train_helpers import (
        HANG_GUARD_S,
        run_ok,
        signal_after_first_checkpoint,
        train_command,
    )

    run_dir = tmp_path / "run"
    epochs = ("trainer.max_epochs=8",)
    code, output = signal_after_first_checkpoint(
        synthetic_release, run_dir, signal.SIGTERM, {}, *epochs
    )
    assert code != 0, output
    error = (run_dir / ERROR_FILE).read_text()
    assert error.startswith("Preempted: SIGTERM received in epoch"), error
    assert "rerun the same command" in error.splitlines()[0]
    # What a requeued SLURM job does: the same command again, which resumes the run.
    resumed_run = run_ok(train_command(synthetic_release, run_dir, *epochs), timeout=HANG_GUARD_S)
    assert "was preempted: resuming from" in resumed_run.stdout + resumed_run.stderr
    assert is_complete(run_dir) and not (run_dir / ERROR_FILE).exists()

    # The preempted and resumed run ends exactly where an uninterrupted one does.
    import torch

    reference = tmp_path / "uninterrupted"
    run_ok(train_command(synthetic_release, reference, *epochs), timeout=HANG_GUARD_S)
    resumed, whole = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference))
    for key in ("avg_auc", "avg_acc", "auc", "acc", "fusion_weights", "valid"):
        assert resumed[key] == whole[key], key
    a, b = (
        read_checkpoint(d / "checkpoints" / "final.ckpt")["state_dict"]
        for d in (run_dir, reference)
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("on_slurm", [False, True])
def test_sigusr1_the_time_limit_warning_stops_the_run_like_sigterm(
    synthetic_release: Path, tmp_path: Path, on_slurm: bool
) -> None:
    """SLURM's `--signal=USR1@<s>` before the time limit: the run stops with error.txt and a
    non-zero exit, the epoch checkpoints kept, instead of dying without a word (no handler) or,
    on SLURM, Lightning saving a mid-epoch hpc_ckpt that a requeued job would resume from."""
    import signal

    from src.runs.files import ERROR_FILE, last_checkpoint
    from tests.train_helpers import signal_after_first_checkpoint

    scontrol_calls = fake_scontrol(tmp_path / "bin")
    slurm = {
        "SLURM_NTASKS": "1",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "train",
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    run_dir = tmp_path / "run"
    code, output = signal_after_first_checkpoint(
        synthetic_release,
        run_dir,
        signal.SIGUSR1,
        slurm if on_slurm else {},
        "trainer.max_epochs=8",
    )
    assert code > 0, output[-3000:]  # a failure, not death by the signal (-10)
    error = (run_dir / ERROR_FILE).read_text().splitlines()[0]
    assert error.startswith("Preempted: SIGUSR1 (the time-limit warning) received in epoch")
    if on_slurm:  # the job asked SLURM to requeue it, and says so
        assert scontrol_calls.read_text().split() == ["requeue", "4242"]
        assert "SLURM job 4242 requeued" in error
    else:
        assert not scontrol_calls.exists() and "rerun the same command" in error
    assert last_checkpoint(run_dir).is_file() and not list(run_dir.glob("hpc_ckpt*"))
