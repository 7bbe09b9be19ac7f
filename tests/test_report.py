"""src.report: grouping runs by configuration, mean ± std over seeds, incomplete cells, failures,
the paper's tables beside the published numbers, rendering and the command line.

Run folders are written in the real formats: metrics.json with the keys src.train writes (its
"config" built by the real run_config_summary from a composed config), predictions.csv by the
real writer, .hydra/config.yaml as Hydra saves it, error.txt by the real failure recorder.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from src.evaluation.probabilities import task_softmax
from src.project import compose_config
from src.reference import load_paper_results
from src.report import main, write_report
from src.reporting.aggregate import Stat, group_runs
from src.reporting.cells import ReportTable
from src.reporting.matching import PaperMatches
from src.reporting.render import latex, markdown
from src.reporting.runs import find_runs, summary_of
from src.reporting.wandb_runs import metrics_from_summary
from src.runs.artifacts import write_predictions
from src.runs.identity import build_identity, result_settings
from src.runs.loggers import log_summary
from src.runs.status import record_failure
from src.utils.errors import UserError
from tests.specs import (
    ALL_LABELS,
    AVG_AUC_LABELS,
    DERM7PT,
    MELANOMA_LABELS,
    NUM_CLASSES,
    TASK_NAMES,
)

SCALE = (
    "data=synthetic",
    "data.image_size=64",
    "trainer.max_epochs=6",
    "backbone.pretrained=false",
)
AMMFM = ("fusion=aff", "block=aab", "backbone=swin")
BASELINE = ("fusion=sff", "block=cat", "backbone=swin")
CLIN_ST = ("fusion=clin_only", "block=cat", "backbone=swin")


@cache
def _config(overrides: tuple[str, ...]) -> Any:
    return compose_config([*overrides, *SCALE])


def _identity(overrides: tuple[str, ...], seed: int) -> dict[str, Any]:
    cfg = _config(overrides).copy()
    cfg.seed = seed
    weights = {"clin": "random", "derm": "random"}
    return build_identity(result_settings(cfg), "synthetic-data-fp", weights, None)


def _melanoma(avg_auc: float) -> dict[str, float]:
    return {"auc": avg_auc, "precision": 0.3, "sensitivity": avg_auc / 2, "specificity": 0.9}


def _metrics(overrides: tuple[str, ...], seed: int, avg_auc: float) -> dict[str, Any]:
    """A metrics.json whose 17 label AUCs all equal `avg_auc` (ABS labels 0.5); the validation
    AVG AUC orders runs the other way round than the test one (selection must use it)."""
    auc = {label: (avg_auc if label in AVG_AUC_LABELS else 0.5) for label in ALL_LABELS}
    return {
        "valid": {"avg_auc": 1.0 - avg_auc, "avg_acc": 0.5},
        "identity": _identity(overrides, seed),
        "avg_auc": avg_auc,
        "avg_acc": avg_auc - 0.1,
        "auc": auc,
        "acc": dict.fromkeys(TASK_NAMES, avg_auc - 0.1),
        "melanoma": {label: _melanoma(avg_auc) for label in MELANOMA_LABELS},
        "melanoma_avg": _melanoma(avg_auc),
        "branches": {},
        "fusion_weights": {"derm": 0.5, "clin": 0.25, "fusion": 0.25},
        "params": {"trainable": 3_200_000, "paper_accounting": 33_000_000},
        "seed": seed,
        "config": summary_of(_config(overrides)),
    }


def _hydra_config(run_dir: Path, overrides: tuple[str, ...], seed: int) -> None:
    cfg = _config(overrides).copy()
    cfg.seed = seed
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))


def complete_run(run_dir: Path, overrides: tuple[str, ...], seed: int, avg_auc: float) -> Path:
    _hydra_config(run_dir, overrides, seed)
    (run_dir / "metrics.json").write_text(json.dumps(_metrics(overrides, seed, avg_auc)))
    return run_dir


def failed_run(run_dir: Path, overrides: tuple[str, ...], seed: int, message: str) -> Path:
    _hydra_config(run_dir, overrides, seed)
    try:
        raise FileExistsError(message)
    except FileExistsError as err:
        record_failure(run_dir, err)
    return run_dir


def sweep_file(sweep: Path, seeds: str) -> None:
    """The parts of Hydra's multirun.yaml the report reads."""
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      seed: range(10)\n"
        f"  overrides:\n    task:\n    - experiment=table6\n    - seed={seeds}\n"
    )


def by_name(results: list, fusion: str, block: str) -> Any:
    (found,) = [r for r in results if (r.config["fusion"], r.config["block"]) == (fusion, block)]
    return found


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """AMMFM seeds 0, 1 (80 and 84); baseline seed 0 (70) and seed 1 failed; 2 seeds asked."""
    root = tmp_path / "sweep"
    sweep_file(root, "range(2)")
    complete_run(root / "aff-aab-swin/seed0", AMMFM, 0, 0.80)
    complete_run(root / "aff-aab-swin/seed1", AMMFM, 1, 0.84)
    complete_run(root / "sff-cat-swin/seed0", BASELINE, 0, 0.70)
    failed_run(root / "sff-cat-swin/seed1", BASELINE, 1, "[Errno 17] File exists: 'checkpoints'")
    return root


def test_mean_std_n_per_configuration_and_failed_run_not_averaged(sweep: Path) -> None:
    results, unnamed = group_runs(find_runs([sweep]))
    assert unnamed == []
    ammfm, baseline = by_name(results, "aff", "aab"), by_name(results, "sff", "cat")
    auc = ammfm.stat(lambda m: m["avg_auc"])
    assert (auc.n, auc.mean) == (2, pytest.approx(0.82))
    assert auc.std == pytest.approx(math.sqrt(2 * 0.02**2))  # sample std of 0.80, 0.84
    assert ammfm.complete and ammfm.status() == "complete"
    base = baseline.stat(lambda m: m["avg_auc"])
    assert (base.n, base.mean, base.std) == (1, pytest.approx(0.70), None)
    assert not baseline.complete
    assert baseline.status() == "incomplete: 1 of 2 seeds; failed: seed 1"
    assert baseline.failed[0].error == "FileExistsError: [Errno 17] File exists: 'checkpoints'"


def test_report_tables_show_paper_numbers_differences_and_failures(
    sweep: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    write_report([str(sweep)], find_runs([sweep]), out, plots=False)
    table6 = pd.read_csv(out / "table6.csv").set_index("paper_row")
    assert table6.loc["t6-aff-aab", "n"] == 2
    assert table6.loc["t6-aff-aab", "avg_auc_mean"] == pytest.approx(82.0)
    assert table6.loc["t6-aff-aab", "avg_auc_std"] == pytest.approx(2.83)
    assert table6.loc["t6-aff-aab", "paper_avg_auc_mean"] == 87.6
    assert table6.loc["t6-aff-aab", "avg_auc_diff"] == pytest.approx(82.0 - 87.6)
    assert table6.loc["t6-baseline", "n"] == 1
    assert table6.loc["t6-baseline", "avg_auc_mean"] == pytest.approx(70.0)
    assert table6.loc["t6-baseline", "status"].startswith("incomplete: 1 of 2 seeds")
    assert table6.loc["t6-aff", "status"] == "not run"
    failures = pd.read_csv(out / "failures.csv")
    assert failures[["seed", "status"]].values.tolist() == [[1, "failed"]]
    assert failures.loc[0, "error"].startswith("FileExistsError: [Errno 17]")
    report = (out / "report.md").read_text()
    assert "82.0 ± 2.8 (n=2)" in report
    assert "70.0 (n=1) *" in report  # the incomplete cell is marked, not silently averaged
    assert "‡" in report  # demo-scale runs are flagged as not at the paper's recipe
    assert "**Not the paper's data.** Runs here used `synthetic` instead of `derm7pt`" in report
    for name in ("table2", "table7", "table8", "table9", "table10", "configurations"):
        assert {p.suffix for p in out.glob(f"{name}.*")} == {".md", ".csv", ".tex"}
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_expected_seeds_come_from_the_sweep_or_the_command_line(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    sweep_file(root, "range(3)")
    complete_run(root / "a/seed0", AMMFM, 0, 0.8)
    complete_run(root / "a/seed1", AMMFM, 1, 0.8)
    (result,), _ = group_runs(find_runs([root]))
    assert result.missing_seeds == [2]
    assert result.status() == "incomplete: 2 of 3 seeds; not run: seed 2"
    (result,), _ = group_runs(find_runs([root]), seeds=[0, 1])
    assert result.complete


def test_without_a_sweep_file_cells_expect_the_best_covered_count(tmp_path: Path) -> None:
    complete_run(tmp_path / "a0", AMMFM, 0, 0.8)
    complete_run(tmp_path / "a1", AMMFM, 1, 0.8)
    complete_run(tmp_path / "b0", BASELINE, 0, 0.7)
    results, _ = group_runs(find_runs([tmp_path]))
    assert by_name(results, "aff", "aab").complete
    assert by_name(results, "sff", "cat").status() == "incomplete: 1 of 2 seeds"


def test_unfinished_duplicate_and_unreadable_runs_are_listed_not_averaged(tmp_path: Path) -> None:
    complete_run(tmp_path / "t6/a/seed0", AMMFM, 0, 0.80)
    complete_run(tmp_path / "t9/a/seed0", AMMFM, 0, 0.60)  # the same seed in another sweep
    _hydra_config(tmp_path / "t6/a/seed1", AMMFM, 1)  # started, never finished
    (tmp_path / "t6/broken").mkdir()
    (tmp_path / "t6/broken/error.txt").write_text("RuntimeError: CUDA out of memory\n\ntrace")
    records = find_runs([tmp_path])
    results, unnamed = group_runs(records)
    (result,) = results
    assert result.stat(lambda m: m["avg_auc"]) == Stat(0.80, None, 1)
    assert [Path(r.source).parts[-3:] for r in result.duplicates] == [("t9", "a", "seed0")]
    assert [r.seed for r in result.unfinished] == [1]
    assert [r.error for r in unnamed] == ["RuntimeError: CUDA out of memory"]
    out = tmp_path / "report"
    write_report([str(tmp_path)], records, out, plots=False)
    failures = pd.read_csv(out / "failures.csv")
    assert sorted(failures["status"]) == ["duplicate (ignored)", "failed", "unfinished"]
    unfinished = failures[failures["status"] == "unfinished"].iloc[0]
    assert "killed, timed out or still running" in unfinished["error"]


def test_per_label_tables_8_and_2(tmp_path: Path) -> None:
    complete_run(tmp_path / "m0", AMMFM, 0, 0.80)
    complete_run(tmp_path / "m1", AMMFM, 1, 0.90)
    complete_run(tmp_path / "c0", CLIN_ST, 0, 0.70)
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False)
    paper = load_paper_results()
    table8 = pd.read_csv(out / "table8.csv")
    ammfm = table8[table8["paper_column"] == "AMMFM (Clin MN, Derm ST)"].set_index("label")
    assert list(ammfm.index) == [*AVG_AUC_LABELS, "AVG"]
    assert ammfm.loc["DIAG/SK", "auc_mean"] == pytest.approx(85.0)
    assert ammfm.loc["DIAG/SK", "n"] == 2
    paper_sk = next(s for s in paper.label_auc if s.model == "t7-ammfm").values["DIAG/SK"]
    assert ammfm.loc["DIAG/SK", "paper_auc_mean"] == paper_sk.mean
    clin = table8[table8["paper_column"] == "Clin (ST)"].set_index("label")
    assert clin.loc["VS/IR", "auc_mean"] == pytest.approx(70.0)
    assert table8[table8["paper_column"] == "Derm (ST)"]["n"].eq(0).all()  # not run
    table2 = pd.read_csv(out / "table2.csv").set_index("label")
    # the run with the highest VALIDATION AVG AUC (seed 0 here), not the highest test one
    assert table2.loc["AVG", "best_seed"] == 0
    assert table2.loc["AVG", "best"] == pytest.approx(80.0)
    assert table2.loc["AVG", "best_diff"] == pytest.approx(80.0 - 88.1)
    # Tables 3 and 4: the same best run's per-task accuracy and melanoma-label scores
    table3 = pd.read_csv(out / "table3.csv").set_index("label")
    assert table3.loc["DIAG", "best"] == pytest.approx(70.0)
    assert table3.loc["DIAG", "paper_best"] == 75.2 and table3.loc["AVG", "mean"] == 75.0
    table4 = pd.read_csv(out / "table4_sensitivity.csv").set_index("label")
    assert table4.loc["DIAG/MEL", "best"] == pytest.approx(40.0)
    assert table4.loc["DIAG/MEL", "paper_best"] == 71.4
    assert table2.loc["PN/TYP", "mean"] == pytest.approx(85.0)


def test_markdown_and_latex_escape_their_special_characters() -> None:
    frame = pd.DataFrame({"Label": ["DIAG_BCC | 50%"], "AVG AUC": ["87.2 ± 0.4"], "Δ": ["+0.1"]})
    table = ReportTable("t", "A & B", frame, frame, ["note with #"])
    md = markdown(frame)
    assert md.splitlines()[2] == r"| DIAG_BCC \| 50% | 87.2 ± 0.4 | +0.1 |"
    tex = latex(table)
    assert r"DIAG\_BCC | 50\% & 87.2 $\pm$ 0.4 & +0.1 \\" in tex
    assert r"\caption{A \& B}" in tex and r"$\Delta$" in tex and r"note with \#" in tex


def test_cli_writes_the_report_and_rejects_a_missing_folder(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main([str(sweep), "--no-plots"])
    assert "4 runs (3 complete, 1 failed, 0 unfinished)" in capsys.readouterr().out
    assert (sweep / "report" / "report.md").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(UserError, match="no runs found"):
        write_report(["empty"], [], tmp_path / "out")


def test_wandb_is_skipped_clearly_when_offline(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    main([str(sweep), "--wandb", "me/ammfm", "--no-plots", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert "W&B skipped, offline here (WANDB_MODE=offline)" in err


def test_wandb_summary_gives_back_the_metrics_a_run_logged(tmp_path: Path) -> None:
    """What log_summary gives a real logger (CSV: the same flat test/... scalars a W&B summary
    holds) reads back as the run's metrics."""
    from lightning.pytorch.loggers import CSVLogger

    metrics = _metrics(AMMFM, 3, 0.81)
    metrics["auc"]["VS/IR"] = 0.42
    logger = CSVLogger(tmp_path, name="csv", version=0)
    log_summary([logger], metrics, {}, step=0)
    logger.save()
    logged = pd.read_csv(Path(logger.log_dir) / "metrics.csv").iloc[0].dropna().to_dict()
    back = metrics_from_summary(logged)
    assert back is not None
    assert back["avg_auc"] == 0.81
    assert back["seed"] is None  # the seed is in the run's config, not among its test metrics
    assert back["auc"] == metrics["auc"] and back["acc"] == metrics["acc"]
    assert back["params"]["paper_accounting"] == 33_000_000
    assert metrics_from_summary({"train/loss": 1.0}) is None


def _csv_log(run_dir: Path, val_auc: list[float]) -> None:
    """A CSV logger's metrics.csv: a training row and a validation row per epoch."""
    rows = []
    for epoch, value in enumerate(val_auc):
        rows.append({"epoch": epoch, "step": 10 * epoch + 9, "train/loss": 1.0 / (epoch + 1)})
        rows.append({"epoch": epoch, "step": 10 * epoch + 9, "val/avg_auc": value})
    (run_dir / "csv").mkdir()
    pd.DataFrame.from_records(rows).to_csv(run_dir / "csv" / "metrics.csv", index=False)


def test_figures_per_configuration(tmp_path: Path) -> None:
    from src.reporting.figures import learning_curves, write_figures

    gen = torch.Generator().manual_seed(0)
    n = 40
    for seed in (0, 1):
        run_dir = complete_run(tmp_path / f"m{seed}", AMMFM, seed, 0.8 + 0.02 * seed)
        labels = torch.stack([torch.randint(0, k, (n,), generator=gen) for k in NUM_CLASSES], 1)
        probs = task_softmax(torch.randn(n, 24, generator=gen), NUM_CLASSES)
        write_predictions(run_dir, [f"c{i}" for i in range(n)], {"final": probs}, labels, DERM7PT)
        _csv_log(run_dir, [0.5 + 0.1 * seed, 0.6 + 0.1 * seed, 0.7])
    complete_run(tmp_path / "b0", BASELINE, 0, 0.7)  # no predictions.csv: no ROC figure
    results, _ = group_runs(find_runs([tmp_path]))
    out = tmp_path / "report"
    written = write_figures(results, load_paper_results(), out)
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert names == [
        "avg_auc_vs_params.png",
        "learning_curves.png",
        "roc/AFF_MN+ST_AAB_synthetic_64px_6ep_SWA50_from_scratch.png",
        "roc_overlay.png",
        *(f"strip_table{t}.png" for t in (10, 6, 7, 9)),
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    (curves,) = learning_curves(results).values()  # the baseline has no CSV log
    mean = pd.concat(curves, axis=1).mean(axis=1)
    assert mean.tolist() == pytest.approx([55.0, 65.0, 70.0])
    keep = Path("/tmp/report_figs")
    if keep.is_dir():  # a look at the figures, when asked for
        for p in written:
            (keep / p.name).write_bytes(p.read_bytes())


def test_a_folder_with_both_results_and_an_error_counts_as_failed(tmp_path: Path) -> None:
    """Two jobs that wrote one folder: one finished, one failed. Neither is averaged."""
    run = complete_run(tmp_path / "sweep/aff-aab-swin/seed0", AMMFM, 0, 0.80)
    failed_run(run, AMMFM, 0, "[Errno 17] File exists: 'checkpoints'")
    (record,) = find_runs([tmp_path / "sweep"])
    assert record.status == "failed"
    assert record.error is not None and "holds both metrics.json and error.txt" in record.error
    results, _ = group_runs([record])
    assert results[0].n == 0


def test_non_numeric_metrics_are_not_averaged(tmp_path: Path) -> None:
    run = complete_run(tmp_path / "sweep/aff-aab-swin/seed0", AMMFM, 0, 0.80)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["avg_auc"] = "0.8O"
    (run / "metrics.json").write_text(json.dumps(metrics))
    (record,) = find_runs([tmp_path / "sweep"])
    assert record.status == "failed" and "non-numeric avg_auc" in (record.error or "")


@pytest.mark.parametrize(
    ("key", "value"),
    [("avg_auc", "Infinity"), ("avg_acc", "NaN"), ("auc", "1e308"), ("acc", "-0.5")],
)
def test_non_finite_or_out_of_range_metrics_fail_the_run_in_the_report(
    tmp_path: Path, key: str, value: str
) -> None:
    """A headline metric outside [0, 1] (JSON Infinity, NaN, 1e308) is a damaged file: the run
    is failed with its reason, the report is still written (1e308 once crashed it)."""
    sweep = tmp_path / "sweep"
    complete_run(sweep / "aff-aab-swin/seed1", AMMFM, 1, 0.84)
    run = complete_run(sweep / "aff-aab-swin/seed0", AMMFM, 0, 0.80)
    metrics = json.loads((run / "metrics.json").read_text())
    group = metrics[key]
    bad_key = f"{key}.{next(iter(group))}" if isinstance(group, dict) else key
    if isinstance(group, dict):
        group[next(iter(group))] = "VALUE"
    else:
        metrics[key] = "VALUE"
    (run / "metrics.json").write_text(json.dumps(metrics).replace('"VALUE"', value))
    out = tmp_path / "report"
    main([str(sweep), "--out", str(out), "--no-plots"])
    failures = pd.read_csv(out / "failures.csv")
    assert failures[["seed", "status"]].values.tolist() == [[0, "failed"]]
    error = failures.loc[0, "error"]
    assert f"{bad_key} = " in error and "[0, 1]" in error, error
    table6 = pd.read_csv(out / "table6.csv").set_index("paper_row")
    assert table6.loc["t6-aff-aab", "avg_auc_mean"] == pytest.approx(84.0)


def test_comparisons_are_paired_by_seed_with_a_t_interval_and_p_value(tmp_path: Path) -> None:
    """2 configurations x 3 seeds: AMMFM vs the baseline (Tables 6 and 7), AVG AUC and ACC."""
    from scipy import stats

    ammfm = {0: 0.80, 1: 0.84, 2: 0.83}
    baseline = {0: 0.79, 1: 0.80, 2: 0.815}
    for seed in range(3):
        complete_run(tmp_path / f"a{seed}", AMMFM, seed, ammfm[seed])
        complete_run(tmp_path / f"b{seed}", BASELINE, seed, baseline[seed])
    complete_run(tmp_path / "b9", BASELINE, 9, 0.5)  # no AMMFM seed 9: not paired
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False)
    frame = pd.read_csv(out / "comparisons.csv")
    assert list(frame.columns) == [
        "a", "b", "metric", "mean_diff", "ci_low", "ci_high", "p_value", "n_pairs"
    ]  # fmt: skip
    assert frame[["a", "b", "metric"]].values.tolist() == [
        ["AFF MN+ST AAB", "SFF ST+ST CAT", "avg_auc"],
        ["AFF MN+ST AAB", "SFF ST+ST CAT", "avg_acc"],
    ]
    # avg_acc = avg_auc - 0.1 in the fabricated runs: the same paired differences
    diffs = [100 * (ammfm[s] - baseline[s]) for s in range(3)]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    p = stats.ttest_rel([100 * ammfm[s] for s in range(3)], [100 * baseline[s] for s in range(3)])
    for _, row in frame.iterrows():
        assert row["n_pairs"] == 3
        assert row["mean_diff"] == pytest.approx(mean)
        assert row["ci_low"] == pytest.approx(mean - half)
        assert row["ci_high"] == pytest.approx(mean + half)
        assert row["p_value"] == pytest.approx(p.pvalue)
    report = (out / "report.md").read_text()
    assert "paired t-test" in report
    assert "AMMFM vs baseline" in report and "**not supported**, the 95% CI includes 0" in report


def test_comparisons_with_one_pair_have_no_interval_and_say_so(tmp_path: Path) -> None:
    complete_run(tmp_path / "a0", AMMFM, 0, 0.80)
    complete_run(tmp_path / "b0", BASELINE, 0, 0.70)
    complete_run(tmp_path / "b1", BASELINE, 1, 0.70)
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False)
    row = pd.read_csv(out / "comparisons.csv").iloc[0]
    assert row["n_pairs"] == 1 and row["mean_diff"] == pytest.approx(10.0)
    assert math.isnan(row["ci_low"]) and math.isnan(row["p_value"])
    assert "not testable, 1 paired seed(s)" in (out / "report.md").read_text()


def test_a_supported_claim_is_said_so() -> None:
    from scipy import stats

    from src.reporting.comparisons import paired_test

    diffs = [1.0, 1.2, 0.9, 1.1]
    mean, low, high, p = paired_test(diffs)
    assert low > 0 and low < mean < high and mean == pytest.approx(1.05)
    assert p == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue)


def _job_overrides(run_dir: Path, overrides: tuple[str, ...], seed: int) -> None:
    """The job's own overrides, as Hydra saves them in a sweep's job folder."""
    items = ["experiment=table9", *overrides, f"seed={seed}"]
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in items))


def test_seeds_are_expected_of_the_configurations_a_sweep_asked_them_of(tmp_path: Path) -> None:
    """A table's sweep folder, first run with seed=range(2), then re-run for CAT rows only with
    seed=range(3): AAB was never asked for seed 2, CAT was."""
    root = tmp_path / "sweep"
    root.mkdir()
    (root / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      block: cat,bab,aab\n      seed: range(10)\n"
        "  overrides:\n    task:\n    - experiment=table9\n    - block=cat\n    - seed=range(3)\n"
    )
    for seed in (0, 1):
        _job_overrides(complete_run(root / f"aab/seed{seed}", AMMFM, seed, 0.8), AMMFM, seed)
    for seed in (0, 2):  # seed 1 of the re-run never started
        _job_overrides(complete_run(root / f"cat/seed{seed}", BASELINE, seed, 0.7), BASELINE, seed)
    results, _ = group_runs(find_runs([root]))
    aab, cat = by_name(results, "aff", "aab"), by_name(results, "sff", "cat")
    assert aab.expected_seeds == (0, 1) and aab.status() == "complete"
    assert cat.expected_seeds == (0, 1, 2)
    assert cat.status() == "incomplete: 2 of 3 seeds; not run: seed 1"


def test_latex_model_table_is_ready_for_a_paper(sweep: Path, tmp_path: Path) -> None:
    """Table 9 as LaTeX: caption, label, booktabs, numbers right-aligned, the best of each
    metric column in bold, scaled to the page, at most 10 columns."""
    out = tmp_path / "report"
    write_report([str(sweep)], find_runs([sweep]), out, plots=False)
    tex = (out / "table9.tex").read_text()
    paper = [m for m in load_paper_results().models if m.table == 9]
    best_paper_auc = max(m.avg_auc.mean for m in paper if m.avg_auc)
    assert r"\label{tab:table9}" in tex and r"\caption{The paper's Table 9 and ours" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\resizebox{\linewidth}{!}{%" in tex
    (spec,) = [line for line in tex.splitlines() if line.startswith(r"\begin{tabular}")]
    assert spec == r"\begin{tabular}{lrrrrrrrrr}"  # the model name, then numbers
    rows = [line for line in tex.splitlines() if line.startswith("AFF MN+ST, AAB")]
    # ours 82.0 ± 2.8 (seeds 80 and 84) is the best of our AUC column; the paper's is no rival
    assert r"\textbf{82.0 $\pm$ 2.8}" in rows[0]
    assert rf"{best_paper_auc:.1f} $\pm$" in tex
    assert rf"\textbf{{{best_paper_auc:.1f} $\pm$" not in tex
    assert tex.count(r"\textbf{") == 2  # one per bold column of ours: AUC, ACC
    assert "$-$5.6" in rows[0]  # Δ with a minus sign
    assert r"$\ddagger$" in rows[0]  # not at the paper's recipe


def test_latex_bolds_our_best_only_when_two_or_more_rows_compare() -> None:
    from src.reporting.cells import ReportTable
    from src.reporting.render import latex

    def table(aucs: list[str]) -> str:
        display = pd.DataFrame({"Model": list("ab")[: len(aucs)], "AUC": aucs})
        display["paper AUC"] = "88.1 ± 0.2"
        return latex(ReportTable("t", "t", display, display, bold_max=("AUC",)))

    assert r"\textbf" not in table(["80.0 ± 1.0"])  # one row: nothing to be best among
    two = table(["80.0 ± 1.0", "82.0 ± 1.0"])
    assert r"\textbf{82.0 $\pm$ 1.0}" in two and two.count(r"\textbf") == 1


def test_a_run_off_the_recipe_gets_its_own_row_and_says_how(tmp_path: Path) -> None:
    """Two runs of the same architecture and seed, one with another learning rate: two rows,
    and the off-recipe one's label names lr (never the recipe's label); neither is dropped."""
    complete_run(tmp_path / "a" / "seed0", AMMFM, 0, 0.80)
    complete_run(tmp_path / "b" / "seed0", (*AMMFM, "model.lr=0.001"), 0, 0.60)
    results, unnamed = group_runs(find_runs([tmp_path]))
    assert not unnamed and len(results) == 2 and all(r.n == 1 and not r.duplicates for r in results)
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False)
    overview = pd.read_csv(out / "runs.csv").set_index("run")
    lr_run = overview.loc[str(tmp_path / "b" / "seed0"), "setting"]
    assert "model.lr=0.001" in lr_run
    assert "model.lr" not in overview.loc[str(tmp_path / "a" / "seed0"), "setting"]


def test_metadata_effects_are_paired_by_seed_and_leaky_columns_flagged(tmp_path: Path) -> None:
    """Each metadata choice against the same configuration without: the paired mean difference
    over seeds; a leaky column is named as such; neither joins a paper row."""
    with_sex = (*AMMFM, "model.metadata=[sex]")
    leaky = (*AMMFM, "model.metadata=[management]", "model.allow_leaky_metadata=true")
    for seed in range(3):
        complete_run(tmp_path / "none" / f"seed{seed}", AMMFM, seed, 0.70 + 0.01 * seed)
        gain = (0.02, 0.03, 0.01)[seed]
        complete_run(tmp_path / "sex" / f"seed{seed}", with_sex, seed, 0.70 + 0.01 * seed + gain)
        complete_run(tmp_path / "mgmt" / f"seed{seed}", leaky, seed, 0.78 + 0.01 * seed + gain)
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False)
    effects = pd.read_csv(out / "metadata_effects.csv", keep_default_na=False)
    auc = effects[effects.metric == "avg_auc"].set_index("metadata")
    assert auc.loc["sex", "mean_diff"] == pytest.approx(2.0) and auc.loc["sex", "n_pairs"] == 3
    assert auc.loc["management", "mean_diff"] == pytest.approx(10.0)
    assert auc.loc["management", "leaky"] == "management" and auc.loc["sex", "leaky"] == ""
    report = (out / "report.md").read_text()
    assert "## Patient metadata, paired by seed" in report and "(**LEAKY**: management)" in report
    results, _ = group_runs(find_runs([tmp_path]))
    matches = PaperMatches(results, load_paper_results())
    assert [len(matches.rows_of(r)) > 0 for r in results].count(True) == 1  # images only


def test_settings_that_differ_alone_are_paired_by_seed_against_the_paper_row(
    tmp_path: Path,
) -> None:
    """AMMFM without its stride-4 block against AMMFM: one setting apart, so paired by seed with
    the paper's model as b; a pair apart in two settings, and the metadata pair (its own
    section), are not listed."""
    stages = (*AMMFM, "block.stages=[1,2,3]")
    two_apart = (*AMMFM, "block.stages=[2,3]", "block.qk_reduction=4")
    for seed in range(3):
        complete_run(tmp_path / "paper" / f"seed{seed}", AMMFM, seed, 0.70 + 0.01 * seed)
        drop = (0.01, 0.02, 0.03)[seed]
        complete_run(tmp_path / "s123" / f"seed{seed}", stages, seed, 0.70 + 0.01 * seed - drop)
        complete_run(tmp_path / "two" / f"seed{seed}", two_apart, seed, 0.5)
        complete_run(tmp_path / "sex" / f"seed{seed}", (*AMMFM, "model.metadata=[sex]"), seed, 0.6)
    out = tmp_path / "report"
    write_report([str(tmp_path)], find_runs([tmp_path]), out, plots=False)
    found = pd.read_csv(out / "ablations.csv")
    auc = found[found.metric == "avg_auc"]
    assert len(auc) == 1  # paper vs s123 only (s123 vs two differs in qk_reduction too)
    (row,) = auc.itertuples()
    assert (row.setting, row.a, row.b) == ("block_stages", "[1, 2, 3]", "[0, 1, 2, 3]")
    assert row.mean_diff == pytest.approx(-2.0) and row.n_pairs == 3
    assert "## Settings that differ alone, paired by seed" in (out / "report.md").read_text()


def test_a_huge_metrics_json_is_one_failure_line_and_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200 MB metrics.json (sparse: no disk used) in a sweep folder: the report lists the run
    as failed with the size and the limit, and reads no byte of the file."""
    import os

    sweep = tmp_path / "sweep"
    complete_run(sweep / "aff-aab-swin/seed1", AMMFM, 1, 0.84)
    run = complete_run(sweep / "aff-aab-swin/seed0", AMMFM, 0, 0.80)
    os.truncate(run / "metrics.json", 200 * 2**20)
    real_read_text = Path.read_text

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        assert self != run / "metrics.json", "the oversized metrics.json was read"
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    out = tmp_path / "report"
    main([str(sweep), "--out", str(out), "--no-plots"])
    failures = pd.read_csv(out / "failures.csv")
    assert failures[["seed", "status"]].values.tolist() == [[0, "failed"]]
    assert failures.loc[0, "error"].startswith("metrics.json is 200 MiB, above the 16 MiB")
    table6 = pd.read_csv(out / "table6.csv").set_index("paper_row")
    assert table6.loc["t6-aff-aab", "avg_auc_mean"] == pytest.approx(84.0)


def test_figure_file_names_stay_short_and_distinct() -> None:
    """A configuration far off the recipe names a figure file within file-system limits; two
    that differ only in the last setting still get two files."""
    from src.reporting.naming import SLUG_CHARS, slug

    base = summary_of(_config(AMMFM))
    long_a = {**base, "off_recipe": [f"model.key{i}={'x' * 20}" for i in range(12)]}
    long_b = {**long_a, "off_recipe": [*long_a["off_recipe"][:-1], "model.key11=y"]}
    assert len(slug(long_a)) <= SLUG_CHARS + 9 and slug(long_a) != slug(long_b)
    assert slug(base) == slug(dict(base))  # deterministic


def test_a_key_added_after_a_run_is_not_an_off_recipe_setting_of_it() -> None:
    from src.reporting.naming import off_recipe

    recipe = {"model.lr": 3e-5, "data.case_column": "case_id"}
    assert off_recipe({"model.lr": 3e-5}, recipe) == []  # recorded before the key existed
    assert off_recipe({"model.lr": 1e-3}, recipe) == ["model.lr=0.001"]
