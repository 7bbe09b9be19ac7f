"""Out-of-range settings fail in one line naming the key, before any data loads or file is
written: from the command line and from a config stored in a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.config_checks import check_config_values
from src.train import train
from src.utils.errors import UserError
from tests.train_helpers import tiny_config

BAD = [
    ("data.batch_size=0", "data.batch_size=0 must be an integer in 1..4096"),
    ("data.eval_batch_size=-8", "data.eval_batch_size=-8 must be an integer in 1..4096"),
    ("data.num_workers=-1", "data.num_workers=-1 must be an integer in 0..256"),
    ("data.image_size=8192", "data.image_size=8192 must be an integer in 32..1024"),
    ("data.image_size=48", "data.image_size=48 must be a multiple of 32"),
    ("data.augment_p=1.5", "data.augment_p=1.5 must be a finite number in [0, 1]"),
    ("data.photometric=sepia", "data.photometric=sepia must be one of clin, derm, both, none"),
    ("data.clin_dropout_p=1.0", "data.clin_dropout_p=1.0 must be a finite number in [0, 1)"),
    ("data.clin_dropout_p=-0.1", "data.clin_dropout_p=-0.1 must be a finite number in [0, 1)"),
    ("model.lr=nan", "model.lr=nan must be a finite number in (0, 10]"),
    ("model.lr=0", "model.lr=0.0 must be a finite number in (0, 10]"),
    ("model.swa_lr=-1e-4", "model.swa_lr=-0.0001 must be a finite number in (0, 10]"),
    ("model.weight_grid_step=1.5", "model.weight_grid_step=1.5 must be a finite number in (0, 1]"),
    ("model.weight_grid_step=0", "model.weight_grid_step=0.0 must be a finite number in (0, 1]"),
    ("model.tta_views=[identity,upside]", "model.tta_views=['identity', 'upside'] must be"),
    ("model.tta_views=[]", "model.tta_views=[] must be a non-empty list"),
    ("model.tta_views=[hflip,hflip]", "model.tta_views=['hflip', 'hflip'] must be"),
    ("model.optimizer=sgd", "model.optimizer=sgd must be one of adam, adamw"),
    ("model.scheduler=step", "model.scheduler=step must be one of cosine, none"),
    ("model.matmul_precision=low", "model.matmul_precision=low must be one of highest, high"),
    ("model.head.dropout=1.0", "model.head.dropout=1.0 must be a finite number in [0, 1)"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 must be an integer >= 1"),
    ("model.swa_epochs=3", "model.swa_epochs=3 is more than trainer.max_epochs=2"),
    ("seed=-1", "seed=-1 must be an integer >= 0"),
]


@pytest.mark.parametrize(("override", "expected"), BAD)
def test_bad_value_fails_before_anything_is_written(
    synthetic_release: Path, tmp_path: Path, override: str, expected: str
) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny_config(synthetic_release, run_dir, [override])
    with pytest.raises(UserError) as err:
        train(cfg)
    assert str(err.value).startswith(expected), str(err.value)
    assert "\n" not in str(err.value)
    assert not run_dir.exists()


def test_the_paper_recipe_and_the_demo_pass(synthetic_release: Path, tmp_path: Path) -> None:
    check_config_values(tiny_config(synthetic_release, tmp_path, base=()))
    check_config_values(tiny_config(synthetic_release, tmp_path, base=("experiment=demo",)))


def test_a_stored_config_is_checked_and_named(synthetic_release: Path, tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    stored = OmegaConf.to_container(tiny_config(synthetic_release, tmp_path), resolve=True)
    stored["data"]["image_size"] = 8192
    with pytest.raises(UserError, match=r"^ckpt_path=x.ckpt: stored config: data.image_size=8192"):
        check_config_values(stored, source="ckpt_path=x.ckpt")


def test_every_optimizer_choice_has_a_class() -> None:
    from src.config import OPTIMIZERS
    from src.models.module import OPTIMIZER_CLASSES

    assert set(OPTIMIZER_CLASSES) == set(OPTIMIZERS)


def test_a_flag_is_checked_by_the_rule_of_its_key() -> None:
    from src.config_checks import check_value

    check_value("--image-size", 64, rule="data.image_size")
    with pytest.raises(UserError, match=r"^--image-size=50 must be a multiple of 32$"):
        check_value("--image-size", 50, rule="data.image_size")
