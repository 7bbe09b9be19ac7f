"""Experiment configs: every file composes, its sweep expands to the expected jobs, each paper
table's grid builds exactly the paper's models, and every job has its own run directory.

Sweeps are expanded with Hydra's own BasicSweeper.split_arguments, as `python -m src.train -m`
does, and every distinct job is composed with the real config tree.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from src.models.network import architecture
from src.project import CONF_DIR, compose_config
from src.reference import load_paper_results
from src.reporting.matching import paper_architectures
from src.reporting.runs import summary_of

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
ROWS = sorted(p.stem for p in (CONF_DIR / "experiment" / "row").glob("*.yaml"))

# Jobs of `python -m src.train -m experiment=<name>`. A new experiment file needs an entry here.
EXPECTED_JOBS = {
    "demo": 1,
    "table6": 3 * 10,
    "table7": 8 * 10,
    "table9": 6 * 10,
    "table10": 12 * 10,
    "metadata": 5 * 10,  # none, each safe column alone, all safe columns
}
PAPER_TABLE = {"table6": 6, "table7": 7, "table9": 9, "table10": 10}


def compose_job(overrides: Sequence[str]) -> DictConfig:
    """A job's config with its hydra node, as current (for the ${hydra:...} run directories)."""
    return compose_config(overrides, hydra_config=True)


def expand(experiment: str, command_line: Sequence[str] = ()) -> list[list[str]]:
    """The override list of every job, as Hydra's basic sweeper builds them."""
    parser = OverridesParser.create()
    fixed = [o for o in command_line if not parser.parse_override(o).is_sweep_override()]
    cfg = compose_job([f"experiment={experiment}", *fixed])
    grid = cfg.hydra.sweeper.params or {}
    arguments = [f"{key}={value}" for key, value in grid.items()] + list(command_line)
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    return [[f"experiment={experiment}", *job] for batch in batches for job in batch]


@pytest.fixture(scope="module")
def table_jobs() -> dict[str, list[tuple[tuple, str, str]]]:
    """experiment -> (architecture, sweep dir, run subdir) of each seed-0 job of its grid."""
    found: dict[str, list[tuple[tuple, str, str]]] = {}
    for experiment in PAPER_TABLE:
        found[experiment] = []
        for job in expand(experiment, ["seed=0"]):
            cfg = compose_job(job)
            summary = summary_of(cfg)
            assert summary is not None, job
            arch = architecture(summary)
            found[experiment].append((arch, cfg.hydra.sweep.dir, cfg.hydra.sweep.subdir))
    return found


def test_every_experiment_file_has_an_expected_job_count() -> None:
    missing = sorted(set(EXPERIMENTS) - set(EXPECTED_JOBS))
    assert not missing, f"add the expected number of jobs of {missing} to EXPECTED_JOBS"
    assert sorted(EXPECTED_JOBS) == EXPERIMENTS  # and no entry for a deleted file


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_its_sweep_has_the_expected_jobs(experiment: str) -> None:
    jobs = expand(experiment)
    if experiment not in PAPER_TABLE:  # the tables' jobs are composed in the test below
        # Each configuration once: its jobs differ only in the seed, which any integer passes.
        configurations = {tuple(o for o in job if not o.startswith("seed=")): job for job in jobs}
        for job in configurations.values():
            compose_job(job)
    assert len(jobs) == EXPECTED_JOBS[experiment]
    if experiment in PAPER_TABLE:
        seeds = sorted(int(o.split("=")[1]) for job in jobs for o in job if o[:5] == "seed=")
        assert seeds == sorted(list(range(10)) * (EXPECTED_JOBS[experiment] // 10))


@pytest.mark.parametrize("experiment", sorted(PAPER_TABLE))
def test_table_grid_builds_exactly_the_paper_rows_each_in_its_own_directory(
    experiment: str, table_jobs: dict[str, list[tuple[tuple, str, str]]]
) -> None:
    rows = paper_architectures()
    table = PAPER_TABLE[experiment]
    wanted = {rows[m.id] for m in load_paper_results().models if m.table == table}
    jobs = table_jobs[experiment]
    assert {arch for arch, _, _ in jobs} == wanted
    assert all(sweep_dir.endswith(f"/sweeps/{experiment}") for _, sweep_dir, _ in jobs)
    subdirs = [subdir for _, _, subdir in jobs]
    assert all(subdir.endswith("/seed0") for subdir in subdirs)
    assert len(set(subdirs)) == len(wanted)  # no two configurations share a run directory


def test_command_line_overrides_win_over_the_grid() -> None:
    jobs = expand("table6", ["seed=range(2)", "trainer=gpu"])
    assert len(jobs) == 3 * 2
    assert all("trainer=gpu" in job for job in jobs)
    assert (
        sorted(j for job in jobs for j in job if j.startswith("seed="))
        == ["seed=0"] * 3 + ["seed=1"] * 3
    )


def test_every_row_config_is_used_by_a_table() -> None:
    used = set()
    for experiment in PAPER_TABLE:
        grid = compose_job([f"experiment={experiment}"]).hydra.sweeper.params
        used |= set(str(grid.get("+experiment/row", "")).split(","))
    assert sorted(used - {""}) == ROWS


def test_row_with_clinical_swin_is_named_apart_from_the_mobilenet_one() -> None:
    swapped = compose_job(["+experiment/row=ammfm_clin_st_derm_mn", "seed=1"])
    plain = compose_job(["+experiment/row=ammfm", "backbone=mobilenet", "seed=1"])
    assert swapped.clin_backbone.name == "swinv2_tiny_window8_256"
    assert swapped.hydra.sweep.subdir == "aff-aab-mobilenet-clin_swin/seed1"
    assert plain.hydra.sweep.subdir == "aff-aab-mobilenet/seed1"


def test_launcher_presets_compose() -> None:
    slurm = compose_job(["experiment=table9", "hydra/launcher=slurm"]).hydra.launcher
    joblib = compose_job(["hydra/launcher=joblib", "hydra.launcher.n_jobs=4"]).hydra.launcher
    local = compose_job(["hydra/launcher=submitit_local"]).hydra.launcher
    assert slurm._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (slurm.gpus_per_node, slurm.tasks_per_node, slurm.nodes) == (1, 1, 1)
    assert slurm.timeout_min > 0 and slurm.array_parallelism > 0 and slurm.mem_gb > 0
    assert slurm.submitit_folder.endswith(".submitit/%j")
    assert list(slurm.setup) == ["export NO_ALBUMENTATIONS_UPDATE=1"]
    assert joblib._target_.endswith("JoblibLauncher") and joblib.n_jobs == 4
    assert local._target_.endswith("submitit_launcher.LocalLauncher")


def test_table7_rows_pin_their_backbones_against_a_backbone_override(
    table_jobs: dict[str, list[tuple[tuple, str, str]]],
) -> None:
    jobs = [compose_job(job) for job in expand("table7", ["seed=0", "backbone=resnet"])]
    overridden = [(architecture(summary_of(cfg)), cfg.hydra.sweep.subdir) for cfg in jobs]
    plain = [(arch, subdir) for arch, _, subdir in table_jobs["table7"]]
    assert sorted(overridden) == sorted(plain)  # same models, same run folders
    assert all(cfg.backbone.name != "resnet50" for cfg in jobs)


def test_jobs_differing_in_an_unnamed_setting_get_their_own_folders() -> None:
    jobs = expand("demo", ["model.lr=1e-3,1e-4", "data.batch_size=8", "seed=0,1"])
    subdirs = [compose_job(job).hydra.sweep.subdir for job in jobs]
    seed_only = compose_job(["experiment=demo", "seed=3"]).hydra.sweep.subdir
    assert len(jobs) == 4 and len(set(subdirs)) == 4
    assert "aff-aab-swin_data.batch_size-8_model.lr-0.001/seed1" in subdirs
    assert seed_only == "aff-aab-swin/seed3"  # named settings add nothing
    speed_only = ["experiment=demo", "seed=3", "data.persistent_workers=false"]
    speed_only.append("trainer.check_val_every_n_epoch=10")  # neither changes the results
    assert compose_job(speed_only).hydra.sweep.subdir == "aff-aab-swin/seed3"


def test_help_says_how_to_see_a_tables_grid() -> None:
    """Hydra's --help cannot hide the experiment/row group; its footer says what it is and how to
    print a table's grid, and that command's node holds the grid."""
    cfg = compose_job(["experiment=table9"])
    footer = cfg.hydra.help.footer
    assert "experiment/row" in footer
    assert "python -m src.train experiment=table9 --cfg hydra -p hydra.sweeper.params" in footer
    assert dict(cfg.hydra.sweeper.params) == {
        "fusion": "sff,aff",
        "block": "cat,bab,aab",
        "seed": "range(10)",
    }
