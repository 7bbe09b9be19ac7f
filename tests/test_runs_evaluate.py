"""The run figures' title: the paper's name of the configuration and the fused prediction."""

from __future__ import annotations

from src.models.network import network_summary
from src.project import compose_config
from src.runs.evaluate import plot_title


def test_run_figures_name_the_configuration_as_the_paper_does_and_say_they_plot_p_fi() -> None:
    cfg = compose_config(["data=synthetic"])
    weights = {"derm": 0.45, "clin": 0.1, "fusion": 0.45}
    title = plot_title(network_summary(cfg), cfg, 395, weights)
    assert title.splitlines() == [
        "AFF MN+ST AAB seed 0 | test split of synthetic (395 cases)",
        "P_FI = 0.45 P_D + 0.10 P_C + 0.45 P_FU (fused prediction, weights searched on validation)",
    ]
