"""src.export: ONNX of the full fused predictor, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from src.export import run
from src.inference.onnx import export_onnx, onnx_session, random_inputs, run_onnx
from src.inference.predictor import load_predictor
from src.project import compose_config
from src.utils.errors import UserError
from tests.specs import ALL_LABELS
from tests.train_helpers import RUN_WEIGHTS

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")


def export_cfg(*overrides: str):
    return compose_config(overrides, "export")


def _printed_diff(out: str) -> float:
    match = re.search(r"max \|onnxruntime - PyTorch\| = (\S+)", out)
    assert match, out
    return float(match.group(1))


def test_export_matches_pytorch_at_any_batch_size(tiny_ckpt: Path, capsys) -> None:
    result = run(export_cfg(f"ckpt_path={tiny_ckpt}", "format=onnx", "derm_only=false"))
    onnx_path = tiny_ckpt.with_suffix(".onnx")
    assert result["path"] == str(onnx_path) and onnx_path.stat().st_size == result["bytes"]
    assert _printed_diff(capsys.readouterr().out) < 1e-4

    info = json.loads(Path(f"{onnx_path}.json").read_text())
    # The run's TTA views by default, as src.predict and the run's evaluation use them.
    assert info["tta_views"] == ["identity", "hflip"]
    assert info["fusion_weights"] == pytest.approx(RUN_WEIGHTS)
    assert info["output"]["labels"] == list(ALL_LABELS)
    assert info["inputs"]["derm"]["shape"] == ["batch", 3, 32, 32]

    model = load_predictor(tiny_ckpt).model  # src.predict's predictor of the run
    session = onnx_session(onnx_path)
    clinic, derm = random_inputs(32, 5, seed=42)  # a batch size never traced or verified
    got = run_onnx(session, model, clinic, derm)
    with torch.no_grad():
        expected = model(clinic, derm).numpy()
    assert got.shape == (5, len(ALL_LABELS))
    assert np.abs(got - expected).max() < 1e-4
    # Each task segment of P_FI is a distribution.
    np.testing.assert_allclose(got[:, :5].sum(1), 1.0, atol=1e-5)


def test_tta_in_the_graph_includes_rotations(tiny_ckpt: Path, tmp_path: Path, capsys) -> None:
    views = "[rot90cw,rot90ccw]"  # both directions of the custom rot90 export
    out = tmp_path / "tta.onnx"
    tta = ("tta=true", f"tta_views={views}", "derm_only=false")
    run(export_cfg(f"ckpt_path={tiny_ckpt}", f"out={out}", *tta))
    assert _printed_diff(capsys.readouterr().out) < 1e-4
    tta_model = load_predictor(tiny_ckpt, tta_views=views.strip("[]").split(",")).model
    plain_model = load_predictor(tiny_ckpt, tta_views=["identity"]).model
    clinic, derm = random_inputs(32, 2, seed=7)
    got = run_onnx(onnx_session(out), tta_model, clinic, derm)
    with torch.no_grad():
        assert np.abs(got - tta_model(clinic, derm).numpy()).max() < 1e-4
        assert np.abs(got - plain_model(clinic, derm).numpy()).max() > 1e-6


def test_tta_false_exports_one_pass(tiny_ckpt: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "plain.onnx"
    run(export_cfg(f"ckpt_path={tiny_ckpt}", f"out={out}", "tta=false", "derm_only=false"))
    assert json.loads(Path(f"{out}.json").read_text())["tta_views"] == ["identity"]


def test_failed_check_writes_nothing(tiny_ckpt: Path, tmp_path: Path) -> None:
    model = load_predictor(tiny_ckpt, tta_views=["identity"]).model
    out = tmp_path / "never.onnx"
    with pytest.raises(UserError, match="differs from PyTorch"):
        export_onnx(model, 32, out, atol=-1.0)  # no difference can pass
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_a_user_error(tiny_ckpt: Path) -> None:
    with pytest.raises(UserError, match="format=tflite: only onnx"):
        run(export_cfg(f"ckpt_path={tiny_ckpt}", "format=tflite"))


def test_an_unwritable_out_folder_is_one_line_before_the_model_is_loaded(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch
) -> None:
    import src.export

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(src.export, "load_predictor", never)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=rf"^out: cannot write in {blocker / 'sub'} \({blocker} is"):
        run(export_cfg(f"ckpt_path={tiny_ckpt}", f"out={blocker / 'sub' / 'model.onnx'}"))


def test_the_sidecar_recipe_is_what_prediction_does(tiny_ckpt: Path, tmp_path: Path) -> None:
    """The sidecar says how to preprocess (EXIF orientation, resize method, normalisation);
    following its words with Pillow and OpenCV gives src.predict's inputs bit for bit."""
    import cv2
    from PIL import Image

    from src.inference.onnx import sidecar
    from src.inference.predictor import ImagePair

    predictor = load_predictor(tiny_ckpt)
    size = predictor.image_size
    info = sidecar(predictor.model, size, predictor.norm_stats, str(tiny_ckpt))
    recipe = info["inputs"]["derm"]["preprocessing"]
    for words in ("EXIF orientation", "exif_transpose", "INTER_AREA", "INTER_LINEAR", "no crop"):
        assert words in recipe, recipe
    assert f"{size} x {size}" in recipe and "image_size" not in recipe

    rng = np.random.default_rng(0)
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)).save(path, exif=exif)

    with Image.open(path) as img:  # the recipe, step by step
        img.draft("RGB", (size, size))
        rgb = np.asarray(Image.Image.transpose(img, Image.Transpose.ROTATE_270).convert("RGB"))
    assert rgb.shape[:2] == (200 // 2, 120 // 2)  # upright; the DCT scale keeps sides >= size
    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    mean, std = (np.asarray(info["inputs"]["derm"][k], dtype=np.float32) for k in ("mean", "std"))
    expected = (resized.astype(np.float32) / 255 - mean) / std

    _, derm = predictor.load([ImagePair("a", path, path)])
    np.testing.assert_allclose(derm[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)
