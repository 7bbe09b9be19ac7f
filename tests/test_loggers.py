"""Each logger's real output after a tiny training run: CSV, TensorBoard and an offline W&B run
(read back from its .wandb file, the record log W&B syncs from)."""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import OmegaConf

from src.runs.loggers import instantiate_loggers, summary_scalars
from src.train import train
from src.utils.errors import UserError
from tests.specs import ALL_LABELS, TASK_NAMES
from tests.train_helpers import tiny_config

# The .wandb file: a 7-byte header, then records in 32 KiB blocks, each chunk behind a 7-byte
# header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last).
WANDB_BLOCK = 32 * 1024
WANDB_HEADER = 7


def wandb_records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, chunks = WANDB_HEADER, []
    while pos + WANDB_HEADER <= len(data):
        left = WANDB_BLOCK - pos % WANDB_BLOCK
        if left < WANDB_HEADER:  # block padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + WANDB_HEADER])
        pos += WANDB_HEADER
        if kind == 0 and length == 0:  # zero-filled rest of a block
            pos += left - WANDB_HEADER
            continue
        chunks.append(data[pos : pos + length])
        pos += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """Config updates, final summary, history rows and metric definitions of an offline run."""
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    run: dict[str, Any] = {"config": [], "summary": {}, "history": [], "metrics": {}}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            run["config"] += [_key(u) for u in record.config.update]
        elif kind == "summary":
            updates = record.summary.update
            run["summary"].update({_key(u): json.loads(u.value_json) for u in updates})
        elif kind == "history":
            run["history"].append({_key(i): i.value_json for i in record.history.item})
        elif kind == "metric":
            metric = record.metric
            run["metrics"][metric.name or metric.glob_name] = metric
    run["files"] = path.parent / "files"
    return run


@pytest.fixture(scope="module")
def logged_run(
    synthetic_release: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: None
) -> Path:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (`make install`)")
    run_dir = tmp_path_factory.mktemp("loggers") / "run"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_DIR", str(run_dir.parent))
        env.setenv("WANDB_SILENT", "true")
        one_epoch = ["trainer.max_epochs=1", "model.swa_epochs=0"]
        train(
            tiny_config(synthetic_release, run_dir, ["logger=[csv,tensorboard,wandb]", *one_epoch])
        )
    return run_dir


def _metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())


def test_csv_holds_the_test_metrics(logged_run: Path) -> None:
    frame = pd.read_csv(logged_run / "csv" / "metrics.csv")
    test_rows = frame.dropna(subset=["test/avg_auc"])
    assert len(test_rows) == 1
    assert test_rows["test/avg_auc"].iloc[0] == pytest.approx(_metrics(logged_run)["avg_auc"])
    assert {f"test/auc/{label}" for label in ALL_LABELS} <= set(frame.columns)
    assert "val/avg_auc" in frame.columns  # the per-epoch values are still there
    junk = [c for c in frame.columns if c.startswith(("test/seed", "test/config", "test/machine"))]
    assert junk == []
    hparams = OmegaConf.load(logged_run / "csv" / "hparams.yaml")
    assert "cfg" not in hparams and hparams.seed == 0  # the resolved config, once


def test_tensorboard_writes_event_files(logged_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted((logged_run / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    tags = set()
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"val/avg_auc", "test/avg_auc", "test/auc/DIAG/MEL"} <= tags


def test_wandb_offline_run_holds_config_summary_tables_and_panels(logged_run: Path) -> None:
    run = read_offline_run(logged_run)
    metrics = _metrics(logged_run)
    user_config = [k for k in run["config"] if not k.startswith("_wandb")]
    assert "cfg" not in user_config and len(user_config) == len(set(user_config))
    assert {"seed", "model", "backbone", "fusion", "block", "data"} <= set(user_config)

    summary = run["summary"]
    assert summary["test/avg_auc"] == pytest.approx(metrics["avg_auc"])
    assert summary["test/auc/DIAG/MEL"] == pytest.approx(metrics["auc"]["DIAG/MEL"])
    assert summary["test/acc/DIAG"] == pytest.approx(metrics["acc"]["DIAG"])
    media = ("test/roc/", "test/confusion/", "test/auc_per_label/", "test/predictions/")
    images = ("test/roc_curves/", "test/confusion_matrices/", "test/explain/")
    scalars = {k for k in summary if k.startswith("test/") and not k.startswith(media + images)}
    assert scalars == set(summary_scalars(metrics))  # the test metric numbers, nothing else
    assert all(isinstance(summary[k], (int, float)) for k in scalars)
    junk = ("test/seed", "test/config", "test/packages", "test/machine", "test/blocks")
    assert not [k for k in summary if k.startswith(junk)]
    # The test metrics are the summary, not a history row.
    assert not [row for row in run["history"] if "test/avg_auc" in row]
    assert any("val/avg_auc" in row for row in run["history"])  # per-epoch curves

    best = run["metrics"]["val/avg_auc"]
    assert best.step_metric == "epoch" and best.summary.max
    assert run["metrics"]["val/*"].step_metric == "epoch"

    assert summary["test/auc_per_label/_type"] == "table-file"
    (table,) = run["files"].glob("media/table/test/auc_per_label_*.table.json")
    table_json = json.loads(table.read_text())
    assert table_json["columns"] == ["task", "label", "auc"] and len(table_json["data"]) == 24
    for task in TASK_NAMES:
        assert summary[f"test/roc/{task}_table/_type"] == "table-file"
        assert summary[f"test/confusion/{task}_table/_type"] == "table-file"
    assert any(k.startswith("_wandb") for k in run["config"])  # the custom chart specs
    (predictions,) = run["files"].glob("media/table/test/predictions_*.table.json")
    assert len(json.loads(predictions.read_text())["data"]) == metrics["n"]
    assert list(run["files"].glob("media/images/test/roc_curves_*.png"))
    # the explanation panels of the first test cases (explain.wandb_cases, default 4)
    explained = json.loads((logged_run / "explain" / "explain.json").read_text())
    assert len(explained["cases"]) == 4
    assert len(list(run["files"].glob("media/images/test/explain/*.png"))) == 4


def test_a_logger_that_cannot_start_is_a_user_error_without_a_folder(tmp_path: Path) -> None:
    """A logger whose package is missing (as tensorboard was) fails clearly and writes nothing."""
    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here: no logger with a missing package to try")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = OmegaConf.create(
        {
            "mlflow": {
                "_target_": "lightning.pytorch.loggers.MLFlowLogger",
                "save_dir": str(run_dir / "mlflow"),
                "experiment_name": "ammfm",
            }
        }
    )
    with pytest.raises(UserError, match=r"logger=mlflow cannot start \(ModuleNotFoundError"):
        instantiate_loggers(cfg, run_dir, None)
    assert list(run_dir.iterdir()) == []


def test_a_wandb_run_starts_without_the_anonymous_deprecation_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning hands `anonymous=None` to wandb.init, which wandb warns about on every run."""
    import hydra

    from src.project import compose_config
    from src.runs.loggers import finish_wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = compose_config(["logger=wandb", f"paths.output_dir={tmp_path}"], hydra_config=True)
    logger = hydra.utils.instantiate(cfg.logger.wandb, save_dir=str(tmp_path), id="quiet01")
    try:
        assert logger.experiment.id == "quiet01"  # the run did start
    finally:
        finish_wandb()
    out, err = capfd.readouterr()
    assert "anonymous" not in out + err
