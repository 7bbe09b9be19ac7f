"""Reading checkpoints safely: weights-only loading and one clear error for damaged files.

Weights-only loading (`torch.load(weights_only=True)`) rebuilds tensors and plain containers
but never runs code pickled into the file, so a checkpoint from an untrusted place cannot
execute anything. Checkpoints written by src.train hold only such values (the resolved config
is stored as plain dicts and lists).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from src.utils.errors import UserError


def _damaged(path: Path, detail: str) -> UserError:
    return UserError(
        f"ckpt_path={path}: not a readable checkpoint ({detail}); it may be truncated by a "
        "crash or copied incompletely: use another checkpoint of the run (checkpoints/)"
    )


def verify_checkpoint(path: str | Path) -> Path:
    """Check that a file exists and is an intact torch zip archive (CRCs), without loading it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ckpt_path={path}: no such file (nor a folder src.publish wrote)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise _damaged(path, str(err) or type(err).__name__) from None
    if bad is not None:
        raise _damaged(path, f"corrupt entry {bad}")
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by src.train, weights-only; or a folder `src.publish` wrote
    (its files checked against their sha256 first: src/utils/published.py)."""
    import torch

    from src.utils.published import is_published, read_published

    if is_published(path):
        ckpt = read_published(path)
        _require_finite_weights(Path(path), ckpt["state_dict"])
        return ckpt
    path = verify_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # torch's message carries ANSI colours
        first = (plain.strip().splitlines() or [type(err).__name__])[0]
        raise UserError(
            f"ckpt_path={path}: refused to load objects beyond tensors and plain containers "
            f"(weights-only loading: {first[:160]}); only load checkpoints written by src.train"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise _damaged(path, (str(err).strip().splitlines() or [""])[0][:160]) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"ckpt_path={path}: has no state_dict; was it written by src.train?")
    if "cfg" not in ckpt.get("hyper_parameters", {}):
        raise UserError(f"ckpt_path={path}: has no stored config; was it written by src.train?")
    _require_finite_weights(path, ckpt["state_dict"])
    return ckpt


def _require_finite_weights(path: Path, state_dict: dict[str, Any]) -> None:
    """Stop at the first floating tensor holding NaN or inf: a diverged run's weights would
    otherwise give NaN probabilities that look like a result."""
    import torch

    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise UserError(
                    f"ckpt_path={path}: tensor {name} holds {bad} non-finite values (NaN/inf); "
                    "the run diverged: use an earlier checkpoint of the run"
                )
