"""Crashes, bad configs and bad files: nothing is lost and every failure explains itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException, MissingConfigException

from src.models.module import NonFiniteLossError
from src.project import PROJECT_ROOT
from src.train import train
from src.utils.checkpoints import read_checkpoint
from src.utils.errors import UserError
from tests.specs import DERM7PT
from tests.train_helpers import SUBPROCESS_ENV, tiny_config, train_command


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


# ----------------------------------------------------------------------------- resume
@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_metrics(synthetic_release: Path, tmp_path: Path):
    schedule = ("trainer.max_epochs=4", "model.swa_epochs=2")
    reference = tmp_path / "uninterrupted"
    subprocess.run(
        train_command(synthetic_release, reference, *schedule),
        env=SUBPROCESS_ENV,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )

    killed = tmp_path / "killed"
    in_swa_phase = killed / "checkpoints" / "epoch002.ckpt"  # written whole (temp + rename)
    proc = subprocess.Popen(
        train_command(synthetic_release, killed, *schedule),
        env=SUBPROCESS_ENV,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 600
    while not in_swa_phase.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert in_swa_phase.exists() and not (killed / "metrics.json").exists(), "no kill mid-run"

    resumed = subprocess.run(
        train_command(synthetic_release, killed, *schedule, "ckpt_path=last"),
        env=SUBPROCESS_ENV,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["epochs_trained"] == a["epochs_trained"]
    assert b["fusion_weights"] == a["fusion_weights"]
    assert b["auc"] == pytest.approx(a["auc"], abs=1e-6)
    assert b["avg_acc"] == pytest.approx(a["avg_acc"], abs=1e-9)
    assert (killed / "wandb_run_id.txt").exists() is False  # no W&B logger in this run


def test_resumed_run_reuses_its_wandb_id(tmp_path: Path, synthetic_release: Path):
    from src.runs.loggers import instantiate_loggers

    cfg = tiny_config(synthetic_release, tmp_path / "run", ["logger=wandb"])
    first = instantiate_loggers(cfg.logger, tmp_path / "run", None)[0]
    again = instantiate_loggers(cfg.logger, tmp_path / "elsewhere", tmp_path / "run")[0]
    stored = (tmp_path / "run" / "wandb_run_id.txt").read_text().strip()
    assert first._wandb_init["id"] == again._wandb_init["id"] == stored
    assert first._wandb_init["resume"] == "allow"
    assert first._wandb_init["group"] == "aff-aab-mobilenet"


# ------------------------------------------------------------------------- bad losses
def test_non_finite_weights_stop_a_resume_before_training_and_keep_the_good_checkpoint(
    synthetic_release: Path, tmp_path: Path
):
    run_dir = tmp_path / "nan"
    one_epoch = ["callbacks=default", "trainer.max_epochs=1", "model.swa_epochs=0", "test=false"]
    train(tiny_config(synthetic_release, run_dir, one_epoch))
    good = run_dir / "checkpoints" / "last.ckpt"
    good_stamp = good.stat().st_mtime_ns

    # Training state gone bad (as after an overflow): one dermoscopy-head weight is NaN.
    poisoned = read_checkpoint(good)
    key = next(k for k in poisoned["state_dict"] if k.startswith("network.heads.derm"))
    poisoned["state_dict"][key].view(-1)[0] = float("nan")
    torch.save(poisoned, tmp_path / "poisoned.ckpt")

    resume = [*one_epoch, f"ckpt_path={tmp_path / 'poisoned.ckpt'}"]
    with pytest.raises(UserError, match="non-finite") as info:
        train(tiny_config(synthetic_release, run_dir, resume))
    message = str(info.value)
    assert key in message and "\n" not in message, message
    assert good.stat().st_mtime_ns == good_stamp  # the last good checkpoint is kept
    assert not (run_dir / "metrics.json").exists()


# ------------------------------------------------------------------------ config errors
def test_unknown_group_option_lists_valid_options(synthetic_release: Path, tmp_path: Path):
    with pytest.raises(UserError) as info:
        tiny_config(synthetic_release, tmp_path, ["backbone=swim"])
    assert isinstance(info.value.__cause__, MissingConfigException)
    assert "swin" in str(info.value) and "mobilenet" in str(info.value)


@pytest.mark.parametrize("override", ["data.rooot=1", "data.batch_size=abc", "block.stages=3"])
def test_wrong_key_or_type_fails_at_compose_time(synthetic_release, tmp_path, override):
    with pytest.raises(UserError) as info:
        tiny_config(synthetic_release, tmp_path, [override])
    assert isinstance(info.value.__cause__, ConfigCompositionException)


def test_incompatible_choices_fail_in_one_line_before_data_loads(
    release_copy: Path, tmp_path: Path
):
    """The release's layout is checked first (cheap, local); the config before any parsing:
    a meta.csv that cannot be parsed is not reached."""
    (release_copy / "meta" / "meta.csv").write_text("not,a,release\n")
    result = subprocess.run(
        train_command(release_copy, tmp_path / "run", "fusion=derm_only", "block=aab"),
        env=SUBPROCESS_ENV,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    line = _one_line_error(result)
    assert "block" in line and "derm_only" in line
    assert "meta.csv" not in line  # the config check ran before the data was read


# ------------------------------------------------------------------------------ files
def test_truncated_checkpoint_gives_one_clear_line(tmp_path: Path):
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}, "hyper_parameters": {"cfg": {}}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(UserError, match="not a readable checkpoint"):
        read_checkpoint(ckpt)
    with pytest.raises(UserError, match="no such file"):
        read_checkpoint(tmp_path / "missing.ckpt")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path: Path):
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"cfg": _Payload()}}, ckpt)
    with pytest.raises(UserError, match="weights-only"):
        read_checkpoint(ckpt)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_resume_from_truncated_checkpoint_fails_before_training(
    synthetic_release: Path, tmp_path: Path
):
    bad = tmp_path / "last.ckpt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = subprocess.run(
        train_command(synthetic_release, tmp_path / "run", f"ckpt_path={bad}"),
        env=SUBPROCESS_ENV,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert "not a readable checkpoint" in _one_line_error(result)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path):
    from src.utils.io import atomic_path, atomic_write_json

    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"avg_auc": 0.5})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"avg_auc": 0.')
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"avg_auc": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


# ------------------------------------------------------------------ one writer per folder
def test_a_second_run_into_a_locked_folder_is_turned_away(synthetic_release, tmp_path):
    from src.utils.folder_lock import folder_lock

    run_dir = tmp_path / "run"
    with folder_lock(run_dir), pytest.raises(UserError) as info:
        train(tiny_config(synthetic_release, run_dir, ["test=false"]))
    message = str(info.value)
    assert message.startswith(f"{run_dir} is in use by another run (pid {os.getpid()} on ")
    assert "\n" not in message and not (run_dir / "config.yaml").exists()


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    from src.utils.folder_lock import LOCK_FILE, folder_lock

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from src.utils.folder_lock import folder_lock;"
            f"cm = folder_lock({str(tmp_path)!r}); cm.__enter__(); print('held', flush=True);"
            "time.sleep(60)",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    busy = rf"in use by another run \(pid {holder.pid} on "
    with pytest.raises(UserError, match=busy), folder_lock(tmp_path):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # left behind by the killed holder
    with folder_lock(tmp_path):  # and taken over
        assert f"pid {os.getpid()} " in (tmp_path / LOCK_FILE).read_text()


# ------------------------------------------------------------------ no room to write
def test_no_room_for_a_checkpoint_is_one_line_and_leaves_nothing_half_written(
    synthetic_release, tmp_path
):
    import resource

    run_dir = tmp_path / "full"

    def small_files() -> None:  # as on a full disk: writes past 4 MB fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000_000, 4_000_000))

    result = subprocess.run(
        train_command(synthetic_release, run_dir, "callbacks=default", "model.swa_epochs=0"),
        env=SUBPROCESS_ENV,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        preexec_fn=small_files,
    )
    line = _one_line_error(result)
    assert line.startswith("error: no room") and "ckpt_path=last" in line
    left = (
        sorted(p.name for p in (run_dir / "checkpoints").glob("*"))
        if (run_dir / "checkpoints").exists()
        else []
    )
    assert left == []  # no partial checkpoint
    assert not (run_dir / "metrics.json").exists()


# ------------------------------------------------------------------ late errors, one line
def test_non_finite_outputs_in_validation_stop_with_their_location(synthetic_release, tmp_path):
    from src.models.module import AMMFMModule

    module = AMMFMModule(tiny_config(synthetic_release, tmp_path), DERM7PT).eval()
    clinic, derm = torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)
    derm[0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"^non-finite outputs in validation at epoch 0"):
        labels, no_metadata = (
            torch.zeros(2, 8, dtype=torch.long),
            torch.zeros(2, 0, dtype=torch.long),
        )
        module.validation_step((clinic, derm, labels, no_metadata), 0)


def test_weights_of_another_network_are_one_line(synthetic_release, tmp_path):
    from src.models.module import AMMFMModule

    other = AMMFMModule(tiny_config(synthetic_release, tmp_path, ["block.qk_reduction=4"]), DERM7PT)
    cfg = tiny_config(synthetic_release, tmp_path)
    with pytest.raises(UserError, match=r"^ckpt_path=x.ckpt: weights do not fit .*size mismatch"):
        AMMFMModule.from_trained(cfg, DERM7PT, other.state_dict(), "x.ckpt")


def test_a_pickled_last_checkpoint_is_refused_in_one_line(synthetic_release, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}, "x": torch.nn.ReLU()}, run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match="refused to load objects beyond tensors") as info:
        train(tiny_config(synthetic_release, run_dir, ["ckpt_path=last"]))
    assert "\x1b" not in str(info.value)  # plain text, no terminal colour codes


def test_an_unreadable_meta_file_is_one_line(release_copy):
    from src.data.derm7pt import load_release

    meta = release_copy / "meta" / "meta.csv"
    meta.unlink()
    meta.mkdir()  # unreadable as a file, whoever runs the test (root included)
    with pytest.raises(UserError, match=rf"^{meta} is not a regular file"):
        load_release(release_copy)


def test_export_to_a_folder_is_one_line(tmp_path):
    from omegaconf import OmegaConf

    from src.export import run

    cfg = OmegaConf.create({"format": "onnx", "out": str(tmp_path), "ckpt_path": "x.ckpt"})
    with pytest.raises(UserError, match=rf"^out={tmp_path} is a folder"):
        run(cfg)


def test_an_unwritable_run_folder_is_one_line(synthetic_release, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        train_command(synthetic_release, blocker / "run"),
        env=SUBPROCESS_ENV,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    line = _one_line_error(result)
    assert line.startswith(f"error: hydra.run.dir={blocker / 'run'} cannot be created or written")


def test_a_read_only_folder_is_found_by_asking_the_os_and_by_a_real_write(tmp_path, monkeypatch):
    """Root passes permission bits, so EACCES and EROFS cannot be produced here for real: the
    two OS answers are stubbed (os.access; the probe file's creation), nothing else."""
    import errno
    import tempfile

    from src.utils import output_dir_check
    from src.utils.output_dir_check import check_writable_folder, unwritable_reason

    assert unwritable_reason(tmp_path / "not" / "yet") is None  # created later, by the writer
    assert not (tmp_path / "not").exists()  # the check itself creates nothing
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert unwritable_reason(blocker / "out") == f"{blocker} is a file, not a folder"

    with monkeypatch.context() as patch:
        patch.setattr(output_dir_check.os, "access", lambda path, mode: False)
        with pytest.raises(UserError, match=r"^out: cannot write in .* \(Permission denied\)"):
            check_writable_folder(tmp_path, "out")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert unwritable_reason(tmp_path) == os.strerror(errno.EROFS)


def test_unwritable_outputs_of_predict_and_report_are_one_line_before_the_work(
    tmp_path, monkeypatch, capsys
):
    import src.predict
    from src.project import compose_config
    from src.report import main as report_main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")

    def never(*args, **kwargs):
        raise AssertionError("the work started before the output folder was checked")

    monkeypatch.setattr(src.predict, "read_pairs", never)
    cfg = compose_config(["ckpt_path=x.ckpt", f"out={blocker / 'p.csv'}"], "predict")
    with pytest.raises(UserError, match=rf"^out: cannot write in {blocker}"):
        src.predict.run(cfg)

    monkeypatch.setattr("src.report.find_runs", never)
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path), "--out", str(blocker / "report")])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: --out: cannot write in {blocker / 'report'}")
    assert "\n" not in line


def test_the_run_folder_check_resolves_the_default_run_folder(tmp_path):
    """The default run folder names its configuration with ${hydra:...}, which Hydra can resolve
    only once its config is set: the check sets it rather than failing with a warning."""
    import warnings

    from hydra.core.hydra_config import HydraConfig

    from src.project import compose_config
    from src.utils.output_dir_check import OutputDirCheck

    cfg = compose_config([f"paths.log_dir={tmp_path}"], hydra_config=True)
    HydraConfig.instance().cfg = None  # as when Hydra calls on_run_start
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OutputDirCheck().on_run_start(cfg)
    (run_dir,) = (tmp_path / "train" / "runs" / "aff-aab-swin").iterdir()
    assert run_dir.name.startswith("seed0_")
