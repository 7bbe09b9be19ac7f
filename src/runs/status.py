"""What a run directory says about its job: finished, failed (and why), or neither.

A job of a multirun that raises leaves `error.txt` in its run directory instead of stopping the
sweep. The first line is the one-line error a report shows; the traceback follows for debugging.
A later successful run of the same job removes the file.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.runs.files import CONFIG_FILE, ERROR_FILE
from src.utils.errors import UserError
from src.utils.io import atomic_write_text


def error_line(err: BaseException) -> str:
    """`Type: first line of the message`, e.g. `UserError: fusion=derm_only has no ...`."""
    message = str(err).strip().splitlines()
    return f"{type(err).__name__}: {message[0]}" if message else type(err).__name__


def record_failure(run_dir: str | Path, err: BaseException) -> str:
    """Write `<run_dir>/error.txt` (one-line error, blank line, traceback); return the line."""
    line = error_line(err)
    details = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    atomic_write_text(Path(run_dir) / ERROR_FILE, f"{line}\n\n{details}")
    return line


def clear_failure(run_dir: str | Path) -> None:
    (Path(run_dir) / ERROR_FILE).unlink(missing_ok=True)


def read_failure(run_dir: str | Path) -> str | None:
    """The recorded one-line error of a failed run, or None when the run has not failed."""
    try:
        text = (Path(run_dir) / ERROR_FILE).read_text(errors="replace")
    except OSError:
        return None
    first = text.strip().splitlines()
    return first[0] if first else "unknown error (empty error.txt)"


# Settings that change a run's results. A finished run is reused by a sweep only when these
# match; the rest (paths, workers, caching, logging, device) may differ between launches.
RESULT_KEYS = (
    "seed",
    "data",
    "backbone",
    "fusion",
    "block",
    "model",
    "trainer.max_epochs",
    "trainer.precision",
    "trainer.limit_train_batches",
    "trainer.accumulate_grad_batches",
)
IGNORED_KEYS = frozenset(
    {
        "data.root",
        "data.num_workers",
        "data.pin_memory",
        "data.persistent_workers",
        "data.cache",
        "data.cache_dir",
        "data.eval_batch_size",
        "backbone.weights",
        "fusion.clin_weights",
        "model.channels_last",
        "model.compile",
    }
)


def _flatten(tree: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, object] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}"))
    return out


def result_settings(config: dict) -> dict[str, object]:
    """The result-determining settings of a resolved run config, flattened to dotted keys."""
    flat = _flatten(config)
    return {
        key: value
        for key, value in flat.items()
        if any(key == k or key.startswith(f"{k}.") for k in RESULT_KEYS) and key not in IGNORED_KEYS
    }


def setting_differences(current: dict, saved: dict) -> list[str]:
    """`key: saved -> current` for every result-determining setting that differs."""
    now, before = result_settings(current), result_settings(saved)
    return [
        f"{key}: {before.get(key, '<unset>')} -> {now.get(key, '<unset>')}"
        for key in sorted(now.keys() | before.keys())
        if now.get(key) != before.get(key)
    ]


def check_same_settings(cfg: DictConfig, run_dir: Path) -> None:
    """A finished run is reused only if it was trained with the same result-determining settings.

    Guards a stable sweep directory against silently mixing results of different settings (for
    example a re-run with another learning rate that would otherwise skip every seed).
    """
    saved_file = Path(run_dir) / CONFIG_FILE
    if not saved_file.is_file():
        return
    saved = OmegaConf.to_container(OmegaConf.load(saved_file), resolve=False)
    current = OmegaConf.to_container(cfg, resolve=True)
    differences = setting_differences(current, saved)  # type: ignore[arg-type]
    if differences:
        raise UserError(
            f"{run_dir} holds a finished run with other settings ({'; '.join(differences)}); "
            "use another hydra.sweep.dir (or hydra.run.dir), or skip_complete=false to overwrite it"
        )
