"""src.predict: a real checkpoint, the composed predict config, images as evaluation reads them."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.datamodule import Derm7ptDataModule
from src.evaluation.fusion_weights import fuse
from src.inference.predictor import ImagePair, load_predictor
from src.predict import run
from src.project import PROJECT_ROOT, compose_config
from src.utils.errors import UserError
from tests.specs import ALL_LABELS, TASKS
from tests.train_helpers import RUN_WEIGHTS, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def predict_cfg(*overrides: str):
    return compose_config(overrides, "predict")


def _pairs(release: Path, n: int = 3) -> list[tuple[str, Path, Path]]:
    from src.data.derm7pt import load_release

    cases = load_release(release).splits["test"][:n]
    return [(c.case_num, c.clinic, c.derm) for c in cases]


def _check_document(doc: dict, n: int) -> None:
    assert doc["fusion_weights"] == pytest.approx(RUN_WEIGHTS)
    assert doc["tta_views"] == ["identity", "hflip"]
    assert len(doc["predictions"]) == n
    for pred in doc["predictions"]:
        assert list(pred["tasks"]) == [t.name for t in TASKS]
        for task in TASKS:
            result = pred["tasks"][task.name]
            probs = result["probabilities"]
            assert list(probs) == list(task.classes)
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
            assert result["predicted"] == max(probs, key=probs.get)


def test_single_pair_json(tiny_ckpt: Path, synthetic_release: Path, capsys) -> None:
    _, clinic, derm = _pairs(synthetic_release, 1)[0]
    cfg = predict_cfg(f"ckpt_path={tiny_ckpt}", f"clinic={clinic}", f"derm={derm}", "json=true")
    doc = run(cfg)
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(doc))
    _check_document(printed, 1)
    assert printed["predictions"][0]["clinic"] == str(clinic)


def test_text_output_names_every_task(tiny_ckpt: Path, synthetic_release: Path, capsys) -> None:
    _, clinic, derm = _pairs(synthetic_release, 1)[0]
    run(predict_cfg(f"ckpt_path={tiny_ckpt}", f"clinic={clinic}", f"derm={derm}"))
    out = capsys.readouterr().out
    assert "identity, hflip" in out
    for task in TASKS:
        assert f"  {task.name:<4} -> " in out


def test_same_preprocessing_tta_and_weights_as_evaluation(
    tiny_ckpt: Path, synthetic_release: Path, tmp_path: Path
) -> None:
    """Inputs equal the evaluation dataset's tensors; P_FI equals the module's TTA prediction
    (predict_step) fused with the run's weights."""
    predictor = load_predictor(tiny_ckpt)
    module = predictor.model.module
    datamodule = Derm7ptDataModule(
        tiny_config(synthetic_release, tmp_path, ["data.cache=none"]).data,
        clin_stats=module.network.norm_stats["clin"],
        derm_stats=module.network.norm_stats["derm"],
    )
    datamodule.setup()
    dataset = datamodule.datasets["test"]

    cases = dataset.cases[:4]
    pairs = [ImagePair(c.case_num, c.clinic, c.derm) for c in cases]
    clinic, derm = predictor.load(pairs)
    items = [dataset[i] for i in range(4)]
    assert torch.equal(clinic, torch.stack([x[0] for x in items]))
    assert torch.equal(derm, torch.stack([x[1] for x in items]))

    labels, meta = torch.stack([x[2] for x in items]), torch.stack([x[3] for x in items])
    branch_probs, _ = module.predict_step((clinic, derm, labels, meta), 0)
    expected = fuse(branch_probs, RUN_WEIGHTS)
    got = predictor.predict(pairs, batch_size=3)  # two batches: 3 + 1
    assert torch.allclose(got, expected, atol=1e-6)
    # P_FI is linear in the branch probabilities: the mean over the two views of each view's P_FI.
    identity = load_predictor(tiny_ckpt, tta_views=["identity"]).predict(pairs)
    hflip = load_predictor(tiny_ckpt, tta_views=["hflip"]).predict(pairs)
    assert not torch.equal(identity, hflip)
    assert torch.allclose(got, (identity + hflip) / 2, atol=1e-6)


def test_folder_and_csv_batches_agree(
    tiny_ckpt: Path, synthetic_release: Path, tmp_path: Path, capsys
) -> None:
    pairs = _pairs(synthetic_release, 3)
    folder = tmp_path / "pairs"
    rows = []
    for case, clinic, derm in pairs:
        (folder / case).mkdir(parents=True)
        shutil.copy(clinic, folder / case / "Clinic.jpeg")
        shutil.copy(derm, folder / case / "derm.JPG")
        rows.append({"id": case, "clinic": f"pairs/{case}/Clinic.jpeg", "derm": str(derm)})
    table = tmp_path / "pairs.csv"
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "clinic", "derm"])
        writer.writeheader()
        writer.writerows(rows)

    out_csv = tmp_path / "out" / "preds.csv"
    from_folder = run(predict_cfg(f"ckpt_path={tiny_ckpt}", f"pairs={folder}", f"out={out_csv}"))
    from_csv = run(predict_cfg(f"ckpt_path={tiny_ckpt}", f"pairs={table}", "json=true"))
    _check_document(from_folder, 3)
    assert [p["id"] for p in from_folder["predictions"]] == sorted(c for c, _, _ in pairs)
    by_id = {p["id"]: p["tasks"] for p in from_csv["predictions"]}
    for pred in from_folder["predictions"]:
        assert pred["tasks"] == by_id[pred["id"]]

    with out_csv.open() as fh:
        written = list(csv.DictReader(fh))
    assert [r["id"] for r in written] == [p["id"] for p in from_folder["predictions"]]
    assert set(ALL_LABELS) <= set(written[0])
    first = from_folder["predictions"][0]["tasks"]
    assert written[0]["pred_DIAG"] == first["DIAG"]["predicted"]
    assert float(written[0]["DIAG/MEL"]) == pytest.approx(
        first["DIAG"]["probabilities"]["MEL"], abs=1e-5
    )


def test_explicit_weights_win_and_are_normalised(tiny_ckpt: Path, synthetic_release: Path) -> None:
    _, clinic, derm = _pairs(synthetic_release, 1)[0]
    cfg = predict_cfg(
        f"ckpt_path={tiny_ckpt}",
        f"clinic={clinic}",
        f"derm={derm}",
        "fusion_weights={derm: 2, clin: 1, fusion: 1}",
    )
    assert run(cfg)["fusion_weights"] == pytest.approx({"derm": 0.5, "clin": 0.25, "fusion": 0.25})
    with pytest.raises(UserError, match="fusion_weights: fusion weights must name"):
        run(
            predict_cfg(
                f"ckpt_path={tiny_ckpt}",
                f"clinic={clinic}",
                f"derm={derm}",
                "fusion_weights={derm: 1, clin: 1}",
            )
        )


def test_no_fusion_weights_is_an_error(
    tmp_path: Path, tiny_ckpt: Path, synthetic_release: Path
) -> None:
    lone = tmp_path / "elsewhere" / "checkpoints" / "final.ckpt"
    lone.parent.mkdir(parents=True)
    shutil.copy(tiny_ckpt, lone)
    _, clinic, derm = _pairs(synthetic_release, 1)[0]
    with pytest.raises(UserError, match=r"no fusion weights: .*metrics\.json does not exist"):
        run(predict_cfg(f"ckpt_path={lone}", f"clinic={clinic}", f"derm={derm}"))


def _jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(path)
    return path


def test_bad_inputs_are_one_line_errors_naming_the_file(tiny_ckpt: Path, tmp_path: Path) -> None:
    good = _jpeg(tmp_path / "good.jpg")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(good.read_bytes()[:60])
    cases = {
        "missing": ([f"clinic={tmp_path / 'nope.jpg'}", f"derm={good}"], "nope.jpg"),
        "corrupt": ([f"clinic={good}", f"derm={corrupt}"], "corrupt.jpg"),
        "clinic alone": ([f"clinic={good}"], "derm=<image> is needed"),
        "pair and pairs": ([f"clinic={good}", f"derm={good}", f"pairs={tmp_path}"], "either"),
    }
    for name, (args, expected) in cases.items():
        with pytest.raises(UserError) as info:
            run(predict_cfg(f"ckpt_path={tiny_ckpt}", *args))
        message = str(info.value)
        assert expected in message and "\n" not in message, name


def test_a_bad_out_suffix_is_refused_before_the_model_is_loaded(tmp_path: Path) -> None:
    """out=x.txt is refused at once: the checkpoint (missing here) is never read."""
    image = _jpeg(tmp_path / "a.jpg")
    cfg = predict_cfg(
        f"ckpt_path={tmp_path / 'missing.ckpt'}",
        f"clinic={image}",
        f"derm={image}",
        f"out={tmp_path / 'x.txt'}",
    )
    with pytest.raises(UserError, match=r"out=.*x\.txt: use a \.csv or \.json file name"):
        run(cfg)
    assert not (tmp_path / "x.txt").exists()


def test_bad_batches_name_the_row_or_folder(tiny_ckpt: Path, tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg")
    no_column = tmp_path / "no_column.csv"
    no_column.write_text("clinic,dermoscopy\na.jpg,a.jpg\n")
    missing_file = tmp_path / "missing_file.csv"
    missing_file.write_text("clinic,derm\na.jpg,a.jpg\na.jpg,b.jpg\n")
    folder = tmp_path / "cases"
    _jpeg(folder / "c1" / "clinic.jpg")
    cases = {
        no_column: r"missing column 'derm'",
        missing_file: r"line 3: image .*b\.jpg does not exist",
        folder: r"c1: no 'derm' image",
        tmp_path / "absent.csv": "no such folder or CSV file",
    }
    for source, pattern in cases.items():
        with pytest.raises(UserError, match=pattern):
            run(predict_cfg(f"ckpt_path={tiny_ckpt}", f"pairs={source}"))


@pytest.mark.slow  # a fresh interpreter: mostly import time
def test_command_line_error_exit(tiny_ckpt: Path, tmp_path: Path) -> None:
    """The real entry point: a missing image is one `error:` line and exit status 2."""
    good = _jpeg(tmp_path / "good.jpg")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.predict",
            f"ckpt_path={tiny_ckpt}",
            f"clinic={good}",
            f"derm={tmp_path / 'absent.jpg'}",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: derm: image ")
    assert "absent.jpg" in proc.stderr and proc.stdout == ""


def _damaged_copy(tiny_ckpt: Path, tmp_path: Path, value: float) -> tuple[Path, str]:
    """A copy of the tiny run whose first convolution kernel is filled with `value`."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_ckpt.parent.parent, run_dir)
    path = run_dir / "checkpoints" / tiny_ckpt.name
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    name = next(k for k, t in ckpt["state_dict"].items() if t.is_floating_point() and t.dim() == 4)
    ckpt["state_dict"][name].fill_(value)
    torch.save(ckpt, path)
    metrics = {"fusion_weights": RUN_WEIGHTS, "checkpoint": str(path)}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return path, name


def test_non_finite_weights_are_refused_naming_the_tensor(
    tiny_ckpt: Path, synthetic_release: Path, tmp_path: Path
) -> None:
    path, name = _damaged_copy(tiny_ckpt, tmp_path, float("nan"))
    _, clinic, derm = _pairs(synthetic_release, 1)[0]
    with pytest.raises(UserError, match="non-finite") as info:
        run(predict_cfg(f"ckpt_path={path}", f"clinic={clinic}", f"derm={derm}"))
    assert name in str(info.value) and str(path) in str(info.value)


def test_non_finite_probabilities_are_refused_before_writing(
    tiny_ckpt: Path, synthetic_release: Path, tmp_path: Path
) -> None:
    """Finite but huge weights overflow to inf logits and nan probabilities."""
    path, _ = _damaged_copy(tiny_ckpt, tmp_path, 3e38)
    _, clinic, derm = _pairs(synthetic_release, 1)[0]
    out = tmp_path / "p.json"
    with pytest.raises(UserError, match="non-finite"):
        run(predict_cfg(f"ckpt_path={path}", f"clinic={clinic}", f"derm={derm}", f"out={out}"))
    assert not out.exists()


def test_metrics_of_another_checkpoint_are_not_its_fusion_weights(
    tiny_ckpt: Path, synthetic_release: Path, tmp_path: Path
) -> None:
    """A checkpoint copied into another run's folder must not take that run's weights."""
    other_run = tmp_path / "other"
    shutil.copytree(tiny_ckpt.parent.parent, other_run)
    stray = other_run / "checkpoints" / "copied.ckpt"
    shutil.copy(tiny_ckpt, stray)
    _, clinic, derm = _pairs(synthetic_release, 1)[0]
    with pytest.raises(UserError, match="records checkpoint") as info:
        run(predict_cfg(f"ckpt_path={stray}", f"clinic={clinic}", f"derm={derm}"))
    assert str(other_run / "metrics.json") in str(info.value)


def test_a_moved_run_keeps_its_fusion_weights_but_only_for_its_final_checkpoint(
    tiny_ckpt: Path, tmp_path: Path
) -> None:
    """A run folder copied elsewhere (say, from a cluster) records its old checkpoint path; its
    metrics.json still belongs to checkpoints/final.ckpt when both carry the same identity. An
    epoch checkpoint of that run, or a final.ckpt of another result, does not get its weights."""
    stored = torch.load(tiny_ckpt, weights_only=True)
    stored["identity"] = {"digest": "0123abcd4567"}
    old_run, moved = tmp_path / "cluster" / "run", tmp_path / "laptop" / "run"
    (moved / "checkpoints").mkdir(parents=True)
    for name in ("final.ckpt", "epoch000.ckpt"):
        torch.save(stored, moved / "checkpoints" / name)
    metrics = {
        "fusion_weights": RUN_WEIGHTS,
        "checkpoint": str(old_run / "checkpoints" / "final.ckpt"),
        "identity": stored["identity"],
    }
    (moved / "metrics.json").write_text(json.dumps(metrics))

    final = moved / "checkpoints" / "final.ckpt"
    assert load_predictor(final).model.weights == pytest.approx(RUN_WEIGHTS)
    with pytest.raises(UserError, match="records checkpoint"):
        load_predictor(moved / "checkpoints" / "epoch000.ckpt")
    stored["identity"] = {"digest": "another00000"}
    torch.save(stored, final)
    with pytest.raises(UserError, match="records checkpoint"):
        load_predictor(final)
