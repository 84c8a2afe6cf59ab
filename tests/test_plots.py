"""nbforget.plots: every figure function returns a Figure, draws on a given Axes, and labels its sign."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nbforget import metrics, plots  # noqa: E402

ORDER = ["en-US", "ru-RU", "th-TH"]
MATRIX = np.array([[0.8, 0.3, 0.2], [0.6, 0.85, 0.35], [0.9, 0.65, 0.9]])


def curves() -> pd.DataFrame:
    rows = []
    for order, shift in (("1", 0.0), ("2", 0.05)):
        for step, value in enumerate(metrics.average_seen(MATRIX) - shift):
            rows.append(("vanilla", order, 0, step, step + 1, value, False))
        rows.append(("multi", order, 0, 2, 3, 0.9, True))
    return pd.DataFrame(rows, columns=["strategy", "order", "seed", "step", "languages_seen", "value", "joint"])


def shift_table() -> pd.DataFrame:
    return metrics.per_language_shift([MATRIX, MATRIX[::-1, ::-1]], [ORDER, ORDER[::-1]])


def hops_table() -> pd.DataFrame:
    return metrics.per_language_mbt([MATRIX, MATRIX.T], [ORDER, ORDER[::-1]])


def group_summary() -> pd.DataFrame:
    return pd.DataFrame({"strategy": ["vanilla", "vanilla"], "group": ["Latin", "non-Latin"], "mean": [0.7, 0.5],
                         "ci_low": [0.6, np.nan], "ci_high": [0.8, np.nan]})


def drift() -> pd.DataFrame:
    return pd.DataFrame([{"step": s, "layer": layer, "relative_drift": 0.01 * (s + 1) * (k + 1)}
                         for s in range(3) for k, layer in enumerate(["layer.10", "embeddings", "layer.2"])])


def model_frame() -> pd.DataFrame:
    return pd.DataFrame({"strategy": ["vanilla", "vanilla", "multi", "multi"],
                         "model": ["tiny", "e5-small", "tiny", "e5-small"],
                         "final_average": [0.4, 0.5, 0.6, np.nan], "final_average_low": [0.35, np.nan, 0.55, np.nan],
                         "final_average_high": [0.45, np.nan, 0.65, np.nan], "chance": [1 / 7] * 4})


CASES = {
    "score_matrix": lambda ax: plots.plot_score_matrix(MATRIX, ORDER, chance=1 / 7, ax=ax),
    "average_over_time": lambda ax: plots.plot_average_over_time(curves(), chance=1 / 7, ax=ax),
    "performance_shift": lambda ax: plots.plot_performance_shift(shift_table(), ax=ax),
    "hops_heatmap": lambda ax: plots.plot_hops_heatmap(hops_table(), "MBT", ax=ax),
    "group_comparison": lambda ax: plots.plot_group_comparison(group_summary(), ax=ax, zero_line=True),
    "drift": lambda ax: plots.plot_drift(drift(), trained=ORDER, ax=ax),
    "model_comparison": lambda ax: plots.plot_model_comparison(model_frame(), ax=ax),
    "message": lambda ax: plots.message_figure("no runs", ax=ax),
}


@pytest.mark.parametrize("name", CASES)
def test_returns_a_figure_on_its_own_or_on_the_given_axes(name):
    figure = CASES[name](None)
    assert isinstance(figure, Figure)
    assert not plt.get_fignums(), "figures are closed in pyplot: shown once, as the cell's value"
    outer, ax = plt.subplots()
    assert CASES[name](ax) is outer
    plt.close(outer)


def test_score_matrix_annotates_cells_and_states_chance():
    figure = plots.plot_score_matrix(MATRIX, ORDER, chance=0.143)
    ax = figure.axes[0]
    texts = [text.get_text() for text in ax.texts]
    assert "0.85" in texts and len(texts) == 9
    assert "chance = 0.143" in figure.axes[1].get_ylabel()
    assert [label.get_text() for label in ax.get_yticklabels()] == ORDER
    with pytest.raises(ValueError, match="does not fit"):
        plots.plot_score_matrix(MATRIX, ORDER[:2])


def test_average_over_time_draws_joint_training_as_a_dotted_level_and_chance():
    ax = plots.plot_average_over_time(curves(), chance=0.1).axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "MULTI (joint)" in labels and "VANILLA" in labels and "chance (0.100)" in labels
    multi = next(line for line in ax.get_lines() if line.get_label() == "MULTI (joint)")
    assert multi.get_linestyle() == ":"
    assert ax.collections, "a band over the two orders"


def test_performance_shift_states_the_sign_on_its_axis():
    ax = plots.plot_performance_shift(shift_table()).axes[0]
    assert "negative = training this language" in ax.get_ylabel().replace("\n", " ")
    assert "lowered earlier languages" in ax.get_ylabel().replace("\n", " ")


def test_hops_heatmap_sorts_languages_by_their_mean_over_hops():
    table = hops_table()
    ax = plots.plot_hops_heatmap(table, "MBT").axes[0]
    shown = [label.get_text() for label in ax.get_yticklabels()]
    expected = list(metrics.sort_by_mean_over_hops(table["mean"]).index)
    assert shown == expected and ax.get_title() == "MBT"


def test_drift_orders_layers_embeddings_first():
    ax = plots.plot_drift(drift(), trained=ORDER).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["embeddings", "layer.2", "layer.10"]
    assert [label.get_text() for label in ax.get_xticklabels()] == ORDER
    empty = plots.plot_drift(pd.DataFrame(columns=["step", "layer", "relative_drift"]))
    assert "no drift" in empty.axes[0].texts[0].get_text()


def test_model_comparison_has_a_bar_per_strategy_and_model_and_states_chance():
    ax = plots.plot_model_comparison(model_frame()).axes[0]
    assert len(ax.patches) == 3, "a missing value draws no bar"
    assert [label.get_text() for label in ax.get_xticklabels()] == ["VANILLA", "MULTI"]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[:2] == ["tiny", "e5-small"] and "chance (0.143)" in legend
    assert ax.get_legend().get_title().get_text() == "model"
    empty = plots.plot_model_comparison(model_frame().iloc[0:0])
    assert "no runs of two base models" in empty.axes[0].texts[0].get_text()
