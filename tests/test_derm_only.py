"""Derm-only inference: src.predict with `derm=` alone gives the dermoscopy branch's P_D (the
evaluation's P_D for the same case), says so in every output, and the derm-only ONNX graph
matches PyTorch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.datamodule import Derm7ptDataModule
from src.data.missing import missing_like
from src.export import derm_only_path
from src.export import run as export
from src.inference.onnx import onnx_session, run_onnx
from src.inference.predictor import (
    DERM_ONLY_PREDICTION,
    FUSED_PREDICTION,
    ImagePair,
    load_predictor,
)
from src.predict import run as predict
from src.project import compose_config
from src.runs.evaluate import build_eval_trainer, predict_split
from src.utils.errors import UserError
from tests.conftest import one_step_checkpoint
from tests.specs import ALL_LABELS
from tests.train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cat_ckpt(tmp_path_factory: pytest.TempPathFactory, synthetic_release: Path) -> Path:
    """The tiny AFF network with CAT blocks: its P_D never reads the clinical stream."""
    run_dir = tmp_path_factory.mktemp("cat") / "run"
    return one_step_checkpoint(synthetic_release, run_dir, ("block=cat",))


def _test_datamodule(release: Path, tmp_path: Path, predictor) -> Derm7ptDataModule:
    stats = predictor.model.module.network.norm_stats
    datamodule = Derm7ptDataModule(
        tiny_config(release, tmp_path, ["data.cache=none"]).data,
        clin_stats=stats["clin"],
        derm_stats=stats["derm"],
    )
    datamodule.setup()
    return datamodule


def _document_probs(prediction: dict) -> torch.Tensor:
    """A prediction's probabilities, in the task spec's label order."""
    values = [p for t in prediction["tasks"].values() for p in t["probabilities"].values()]
    return torch.tensor(values)


def test_derm_only_predict_is_the_evaluations_p_d(
    cat_ckpt: Path, synthetic_release: Path, tmp_path: Path, capsys
) -> None:
    predictor = load_predictor(cat_ckpt)
    datamodule = _test_datamodule(synthetic_release, tmp_path, predictor)
    module = predictor.model.module
    trainer = build_eval_trainer(module.cfg, tmp_path)
    evaluated, _ = predict_split(trainer, module, datamodule.split_dataloader("test"))
    cases = datamodule.cases("test")[:3]
    pairs = [ImagePair(c.case_num, None, c.derm) for c in cases]
    got = predictor.predict(pairs, batch_size=2)
    assert torch.allclose(got, evaluated["derm"][:3], atol=1e-6)
    assert not torch.allclose(got, evaluated["fusion"][:3], atol=1e-3)  # P_D, not another head

    capsys.readouterr()
    doc = predict(compose_config([f"ckpt_path={cat_ckpt}", f"derm={cases[0].derm}"], "predict"))
    printed = capsys.readouterr().out
    assert f"prediction: {DERM_ONLY_PREDICTION}" in printed and "clinic none" in printed
    (row,) = doc["predictions"]
    assert row["prediction"] == DERM_ONLY_PREDICTION and row["clinic"] is None
    assert torch.allclose(_document_probs(row), evaluated["derm"][0], atol=1e-6)


def test_with_attention_blocks_the_clinical_input_is_the_missing_image(
    tiny_ckpt: Path, synthetic_release: Path, tmp_path: Path
) -> None:
    """AAB: P_D reads the clinical attention maps; derm-only feeds the missing image there."""
    predictor = load_predictor(tiny_ckpt)
    dataset = _test_datamodule(synthetic_release, tmp_path, predictor).datasets["test"]
    items = [dataset[i] for i in range(3)]
    clinic, derm, labels, meta = (torch.stack([x[k] for x in items]) for k in range(4))
    module = predictor.model.module
    missing, _ = module.predict_step((missing_like(clinic), derm, labels, meta), 0)
    paired, _ = module.predict_step((clinic, derm, labels, meta), 0)
    pairs = [ImagePair(c.case_num, None, c.derm) for c in dataset.cases[:3]]
    got = predictor.predict(pairs)
    assert torch.allclose(got, missing["derm"], atol=1e-6)
    assert not torch.equal(got, paired["derm"])  # the clinical image goes in


def test_a_csv_mixes_pairs_and_derm_only_cases(tiny_ckpt: Path, synthetic_release: Path, tmp_path):
    """An empty clinic cell: that row is derm-only, the others stay P_FI; the CSV says which."""
    predictor = load_predictor(tiny_ckpt)
    cases = _test_datamodule(synthetic_release, tmp_path, predictor).cases("test")[:3]
    listing = tmp_path / "pairs.csv"
    with listing.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "clinic", "derm"])
        for i, case in enumerate(cases):
            writer.writerow([case.case_num, "" if i == 1 else case.clinic, case.derm])
    out = tmp_path / "preds.csv"
    cfg = compose_config([f"ckpt_path={tiny_ckpt}", f"pairs={listing}", f"out={out}"], "predict")
    doc = predict(cfg)
    kinds = [row["prediction"] for row in doc["predictions"]]
    assert kinds == [FUSED_PREDICTION, DERM_ONLY_PREDICTION, FUSED_PREDICTION]
    full = predictor.predict([ImagePair(c.case_num, c.clinic, c.derm) for c in cases])
    alone = predictor.predict([ImagePair(c.case_num, None, c.derm) for c in cases])
    expected = torch.stack([full[0], alone[1], full[2]])
    got = torch.stack([_document_probs(row) for row in doc["predictions"]])
    assert torch.allclose(got, expected, atol=1e-6)
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["prediction"] for r in rows] == kinds and rows[1]["clinic"] == ""


def test_a_clinical_image_alone_is_refused(tiny_ckpt: Path, synthetic_release: Path) -> None:
    image = next((synthetic_release / "images").rglob("*.jpg"))
    with pytest.raises(UserError, match="derm=<image> is needed"):
        predict(compose_config([f"ckpt_path={tiny_ckpt}", f"clinic={image}"], "predict"))


def test_the_derm_only_onnx_graph_matches_pytorch(
    tiny_ckpt: Path, synthetic_release: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "model.onnx"
    export(compose_config([f"ckpt_path={tiny_ckpt}", f"out={out}", "tta=false"], "export"))
    derm_only = derm_only_path(out)
    assert derm_only == tmp_path / "model.derm_only.onnx" and derm_only.is_file()
    printed = capsys.readouterr().out
    assert f"wrote {derm_only} ({DERM_ONLY_PREDICTION};" in printed
    info = json.loads(Path(f"{derm_only}.json").read_text())
    assert list(info["inputs"]) == ["derm"] and info["output"]["name"] == "p_d"
    assert info["output"]["prediction"] == DERM_ONLY_PREDICTION
    assert info["output"]["labels"] == list(ALL_LABELS) and "clinical_input" in info
    assert json.loads(Path(f"{out}.json").read_text())["output"]["name"] == "p_fi"

    predictor = load_predictor(tiny_ckpt, tta_views=["identity"])  # as exported
    case = _test_datamodule(synthetic_release, tmp_path, predictor).cases("test")[0]
    _, derm = predictor.load([ImagePair("a", None, case.derm)])
    got = run_onnx(onnx_session(derm_only), predictor.derm_only, derm)
    expected = predictor.predict([ImagePair("a", None, case.derm)]).numpy()
    assert got.shape == (1, len(ALL_LABELS))
    assert np.abs(got - expected).max() < 1e-4
