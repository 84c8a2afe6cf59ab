"""Figures of the book. Each function draws on ``ax`` (or a new figure) and returns the Figure.

    plot_score_matrix(matrix, order, *, chance=None, row_labels=None, held_out=(), held_out_matrix=None,
                      ax=None)                                                   Figure 7 (+ held-out columns)
    plot_average_over_time(curves, *, chance=None, ax=None)                      Figure 2
    plot_performance_shift(table, *, ax=None)                                    Figure 3
    plot_hops_heatmap(table, title, *, ax=None)                                  Figures 5, 6
    plot_group_comparison(summary, *, points=None, value_label=..., ax=None)     script/family/vitality
    plot_held_out(scores, *, chance=None, reference=None, ax=None)              held-out languages over time
    plot_drift(drift, *, trained=None, ax=None)                                  weights vs the base
    plot_model_comparison(frame, *, chance=None, ax=None)                        Figure 4 (base models)
    message_figure(text)                                                         why there is no plot

A new figure is closed in pyplot before it is returned: a notebook shows it once (as the value
of the cell) and figures do not accumulate in memory; the caller displays or saves it
(``fig.savefig(path)``). Figure numbers refer to Khelli et al. (2025).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "plot_score_matrix",
    "plot_average_over_time",
    "plot_performance_shift",
    "plot_hops_heatmap",
    "plot_group_comparison",
    "plot_held_out",
    "plot_drift",
    "plot_model_comparison",
    "message_figure",
    "SHIFT_LABEL",
]

SHIFT_LABEL = "performance shift\n(negative = training this language\nlowered earlier languages)"
CHANCE_STYLE = {"color": "0.45", "linestyle": "--", "linewidth": 1.0}


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=size, layout="constrained")
    plt.close(figure)  # returned, not shown: a notebook displays it once, as the cell's result
    return figure, ax


def _label(strategy: str) -> str:
    """The registry's display name of a strategy (VANILLA, EWC); an unregistered name as it is."""
    # Imported here: the registry imports torch and the tasks (seconds), which a figure without
    # strategy names (a score matrix, drift) never needs.
    from nbforget.strategies import REGISTRY

    cls = REGISTRY.get(strategy)
    return cls.display_name() if cls is not None else strategy


def _legend(ax: Axes, entries: int) -> None:
    """Inside the axes when short; outside on the right when it would cover the data."""
    if not ax.get_legend_handles_labels()[0]:
        return
    if entries <= 4:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def message_figure(text: str, *, ax: Axes | None = None) -> Figure:
    """A small figure that says why there is no plot (e.g. no complete run yet)."""
    figure, ax = _axes(ax, (6.4, 1.2))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()
    return figure


# ---------------------------------------------------------------------------------------------
# score matrix
# ---------------------------------------------------------------------------------------------


def plot_score_matrix(matrix, order: Sequence[str], *, chance: float | None = None,
                      row_labels: Sequence[str] | None = None, title: str | None = None,
                      annotate: bool | None = None, held_out: Sequence[str] = (), held_out_matrix=None,
                      ax: Axes | None = None) -> Figure:
    """Heatmap of the score matrix, as the paper's Figure 7.

    Rows are "after training" step ``i`` (labelled with the language trained, or `row_labels`),
    columns the evaluated languages in training order, so the diagonal is each language right
    after it was trained, below it the languages already learned and above it the zero-shot
    scores. Held-out languages (`held_out`, their scores `held_out_matrix`: one column each, the
    same rows; scored at every step, never trained) come after the trained ones, behind a dark
    separating line, their names marked "(held out)". Cells are annotated when the matrix is
    small enough to read (``annotate=None``: up to 20 columns). `chance` is written in the colour
    bar label.
    """
    import seaborn as sns

    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(order):
        raise ValueError(f"matrix of shape {values.shape} does not fit an order of {len(order)} languages")
    held_out = list(held_out)
    if held_out:
        extra = np.asarray(held_out_matrix, dtype=float) if held_out_matrix is not None else None
        if extra is None or extra.ndim != 2 or extra.shape != (values.shape[0], len(held_out)):
            shape = None if extra is None else extra.shape
            raise ValueError(f"held_out_matrix of shape {shape} does not fit {values.shape[0]} rows and "
                             f"{len(held_out)} held-out languages")
        values = np.hstack([values, extra])
    rows = list(row_labels) if row_labels is not None else list(order[: values.shape[0]])
    if len(rows) != values.shape[0]:
        raise ValueError(f"{len(rows)} row labels for a matrix with {values.shape[0]} rows")
    columns = len(order) + len(held_out)
    annotate = columns <= 20 if annotate is None else annotate
    width = max(4.0, 0.55 * columns + 2.5)
    height = max(2.0, 0.45 * values.shape[0] + 1.6)
    figure, ax = _axes(ax, (width, height))
    names = list(order) + [f"{language} (held out)" for language in held_out]
    frame = pd.DataFrame(values, index=rows, columns=names)
    colour_label = "test score" if chance is None else f"test score (chance = {chance:.3f})"
    sns.heatmap(frame, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis", annot=annotate, fmt=".2f",
                annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white",
                cbar_kws={"label": colour_label}, mask=~np.isfinite(values))
    if values.shape[0] == len(order):
        for i in range(values.shape[0]):  # the just-learned cells
            ax.add_patch(_cell_outline(i, i))
    if held_out:
        ax.axvline(len(order), color="black", linewidth=2.5)
        for label in ax.get_xticklabels()[len(order):]:
            label.set_fontstyle("italic")
    ax.set_xlabel("evaluated language (in training order" + ("; held out last)" if held_out else ")"))
    ax.set_ylabel("after training")
    ax.tick_params(axis="x", labelrotation=90)
    ax.tick_params(axis="y", labelrotation=0)
    if title:
        ax.set_title(title)
    return figure


def _cell_outline(row: int, column: int):
    from matplotlib.patches import Rectangle

    return Rectangle((column, row), 1, 1, fill=False, edgecolor="white", linewidth=2.0)


# ---------------------------------------------------------------------------------------------
# average over time
# ---------------------------------------------------------------------------------------------


def _curves_frame(curves) -> pd.DataFrame:
    if isinstance(curves, pd.DataFrame):
        frame = curves.copy()
    elif isinstance(curves, Mapping):
        parts = []
        for strategy, part in curves.items():
            part = part.copy()
            part["strategy"] = strategy
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    else:
        raise TypeError("curves must be a DataFrame (analysis.average_over_time) or a mapping strategy -> frame")
    if frame.empty:
        return frame
    if "languages_seen" not in frame:
        frame["languages_seen"] = frame["step"] + 1
    if "joint" not in frame:
        frame["joint"] = False
    if "order" not in frame:
        frame["order"] = "1"
    return frame


def plot_average_over_time(curves, *, chance: float | None = None, ax: Axes | None = None,
                           title: str | None = None, band: bool = True,
                           value_label: str = "average score over seen languages $P_i$") -> Figure:
    """Average score over the languages seen so far against the number learned (Figure 2).

    `curves` is `nbforget.analysis.average_over_time` output (columns strategy, order, step,
    value, joint), or a mapping strategy -> frame with columns order, step, value. Per strategy
    the line is the mean over orders (seeds averaged first) with a 95% bootstrap band over orders
    when there are several; joint training (MULTI) is a dotted horizontal line; chance is a grey
    dashed line. `value_label` names the y axis (another per-step mean, e.g. over held-out
    languages, draws the same way).
    """
    from nbforget.metrics import bootstrap_ci

    frame = _curves_frame(curves)
    figure, ax = _axes(ax, (6.4, 4.0))
    colours = _palette(frame["strategy"].unique() if not frame.empty else [])
    maximum = 1
    for strategy, part in (frame.groupby("strategy", sort=False) if not frame.empty else []):
        colour = colours[strategy]
        if part["joint"].any():
            level = part.groupby("order")["value"].mean().mean()
            ax.axhline(level, color=colour, linestyle=":", linewidth=2.0, label=f"{_label(strategy)} (joint)")
            continue
        per_order = part.groupby(["languages_seen", "order"])["value"].mean().reset_index()
        steps, means, lows, highs = [], [], [], []
        for seen, group in per_order.groupby("languages_seen"):
            mean, low, high = bootstrap_ci(group["value"].to_numpy(), n_resamples=2000)
            steps.append(seen)
            means.append(mean)
            lows.append(low)
            highs.append(high)
        maximum = max(maximum, max(steps))
        ax.plot(steps, means, marker="o", markersize=3.5, color=colour, label=_label(strategy))
        if band and np.isfinite(lows).any():
            ax.fill_between(steps, lows, highs, color=colour, alpha=0.18, linewidth=0)
    if chance is not None:
        ax.axhline(chance, label=f"chance ({chance:.3f})", **CHANCE_STYLE)
    ax.set_xlabel("languages learned")
    ax.set_ylabel(value_label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(range(1, maximum + 1) if maximum <= 20 else np.linspace(1, maximum, 11).round().astype(int))
    ax.grid(alpha=0.3)
    _legend(ax, len(ax.get_legend_handles_labels()[0]))
    if title:
        ax.set_title(title)
    return figure


def _palette(strategies) -> dict[str, tuple]:
    import seaborn as sns

    names = list(strategies)
    colours = sns.color_palette("tab10" if len(names) <= 10 else "tab20", n_colors=max(len(names), 1))
    return dict(zip(names, colours))


# ---------------------------------------------------------------------------------------------
# performance shift
# ---------------------------------------------------------------------------------------------


def plot_performance_shift(table: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None,
                           sort: bool = True) -> Figure:
    """Bar per language of its performance shift, with its 95% interval over orders (Figure 3).

    `table` is `nbforget.metrics.per_language_shift` output (index language; columns mean,
    ci_low, ci_high, n). Languages without a value (trained first in every order) are left out.
    Negative bars (red) are languages whose training lowered the scores of the earlier ones.
    """
    data = table[np.isfinite(table["mean"].to_numpy(dtype=float))]
    if sort:
        data = data.sort_values("mean")
    figure, ax = _axes(ax, (max(4.5, 0.45 * len(data) + 2.5), 4.0))
    positions = np.arange(len(data))
    means = data["mean"].to_numpy(dtype=float)
    colours = np.where(means < 0, "#c0392b", "#2e86c1")
    ax.bar(positions, means, color=colours, width=0.7)
    low = data["ci_low"].to_numpy(dtype=float)
    high = data["ci_high"].to_numpy(dtype=float)
    has_interval = np.isfinite(low) & np.isfinite(high)
    if has_interval.any():
        errors = np.vstack([means - low, high - means])[:, has_interval]
        ax.errorbar(positions[has_interval], means[has_interval], yerr=errors, fmt="none",
                    ecolor="black", elinewidth=1.0, capsize=3)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(positions, list(data.index), rotation=90)
    ax.set_xlabel("language trained")
    ax.set_ylabel(SHIFT_LABEL, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return figure


# ---------------------------------------------------------------------------------------------
# hop heatmaps
# ---------------------------------------------------------------------------------------------


def plot_hops_heatmap(table: pd.DataFrame, title: str, *, ax: Axes | None = None,
                      annotate: bool | None = None, sort: bool = True) -> Figure:
    """Languages x hop distance heatmap of MFT or MBT (Figures 5 and 6).

    `table` is a `nbforget.metrics.per_language_hops` table (its ``mean`` block is drawn) or a
    plain languages x h frame. Rows are sorted by the mean over hops, largest first; blue is
    positive transfer, red negative (the seen-average fell), white zero.
    """
    import seaborn as sns

    from nbforget.metrics import sort_by_mean_over_hops

    data = table["mean"] if isinstance(table.columns, pd.MultiIndex) else table
    if sort:
        data = sort_by_mean_over_hops(data)
    data = data.astype(float)
    finite = data.to_numpy()[np.isfinite(data.to_numpy())]
    limit = float(np.max(np.abs(finite))) if finite.size else 1.0
    limit = limit if limit > 0 else 1.0
    annotate = data.size <= 200 if annotate is None else annotate
    figure, ax = _axes(ax, (max(5.0, 0.6 * data.shape[1] + 3.0), max(3.0, 0.35 * data.shape[0] + 1.6)))
    sns.heatmap(data, ax=ax, cmap="RdBu", vmin=-limit, vmax=limit, annot=annotate, fmt=".2f",
                annot_kws={"fontsize": 7}, linewidths=0.4, linecolor="white", mask=~np.isfinite(data.to_numpy()),
                cbar_kws={"label": "change of the seen-average\n(negative = it fell)"})
    ax.set_xlabel("hop distance h")
    ax.set_ylabel("language (sorted by mean over h)")
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_title(title)
    return figure


# ---------------------------------------------------------------------------------------------
# held-out languages
# ---------------------------------------------------------------------------------------------


def plot_held_out(scores: pd.DataFrame, *, chance: float | None = None, reference: pd.Series | None = None,
                  reference_label: str | None = None, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Zero-shot score of each held-out language before training and after every step.

    `scores` has one row per point in time, in order (its index labels the x axis: ``base``, then
    the language each step trained) and one column per held-out language (never trained). A
    falling line after its peak is the erosion of zero-shot transfer. `reference` (same index) is
    drawn dashed in grey, e.g. the sequential baseline's mean over the held-out languages, named
    `reference_label`. An empty frame gives a figure that says there is no held-out language.
    """
    if scores is None or scores.empty or scores.shape[1] == 0:
        return message_figure("this run holds out no language", ax=ax)
    figure, ax = _axes(ax, (6.4, 3.8))
    positions = np.arange(len(scores))
    colours = _palette(scores.columns)
    for column in scores.columns:
        ax.plot(positions, scores[column].to_numpy(dtype=float), marker="o", markersize=4, color=colours[column],
                label=f"{column} (held out)")
    if reference is not None and len(reference) == len(scores):
        ax.plot(positions, reference.to_numpy(dtype=float), color="0.35", linestyle="--", marker="s", markersize=3,
                label=reference_label or "reference")
    if chance is not None:
        ax.axhline(chance, label=f"chance ({chance:.3f})", **CHANCE_STYLE)
    labels = [str(label) for label in scores.index]
    ax.set_xticks(positions, labels, rotation=90 if max(len(label) for label in labels) > 6 else 0)
    ax.set_xlabel("after training (base: before any fine-tuning)")
    ax.set_ylabel("test score, zero-shot\n(never trained)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    _legend(ax, len(ax.get_legend_handles_labels()[0]))
    if title:
        ax.set_title(title)
    return figure


# ---------------------------------------------------------------------------------------------
# groups of languages
# ---------------------------------------------------------------------------------------------


def plot_group_comparison(summary: pd.DataFrame, *, points: pd.DataFrame | None = None,
                          value_label: str = "score", group_label: str = "group",
                          group_order: Sequence[str] | None = None, zero_line: bool = False,
                          chance: float | None = None, ax: Axes | None = None,
                          title: str | None = None) -> Figure:
    """Group means with their 95% intervals over orders, per strategy, over per-language points.

    `summary` is `nbforget.analysis.group_summary` output (strategy, group, mean, ci_low,
    ci_high). `points` (optional) has columns strategy, group, value (and language): one dot per
    language, its mean over orders, drawn faintly behind the means. Strategies are dodged side by
    side within each group.
    """
    figure, ax = _axes(ax, (6.4, 3.8))
    groups = list(group_order) if group_order is not None else list(dict.fromkeys(summary["group"]))
    strategies = list(dict.fromkeys(summary["strategy"]))
    colours = _palette(strategies)
    width = 0.8 / max(len(strategies), 1)
    rng = np.random.default_rng(0)
    for k, strategy in enumerate(strategies):
        offset = -0.4 + width * (k + 0.5)
        part = summary[summary["strategy"] == strategy].set_index("group").reindex(groups)
        x = np.arange(len(groups)) + offset
        if points is not None and not points.empty:
            mine = points[points["strategy"] == strategy]
            for g, group in enumerate(groups):
                values = mine.loc[mine["group"] == group, "value"].to_numpy(dtype=float)
                jitter = rng.uniform(-width / 4, width / 4, size=values.size)
                ax.scatter(np.full(values.size, g + offset) + jitter, values, s=12, alpha=0.35,
                           color=colours[strategy], linewidths=0)
        means = part["mean"].to_numpy(dtype=float)
        low = part["ci_low"].to_numpy(dtype=float)
        high = part["ci_high"].to_numpy(dtype=float)
        ax.scatter(x, means, s=40, color=colours[strategy], label=_label(strategy), zorder=3,
                   edgecolors="black", linewidths=0.5)
        interval = np.isfinite(low) & np.isfinite(high) & np.isfinite(means)
        if interval.any():
            ax.errorbar(x[interval], means[interval],
                        yerr=np.vstack([means - low, high - means])[:, interval], fmt="none",
                        ecolor=colours[strategy], elinewidth=1.5, capsize=3, zorder=2)
    if zero_line:
        ax.axhline(0.0, color="black", linewidth=0.8)
    if chance is not None:
        ax.axhline(chance, label=f"chance ({chance:.3f})", **CHANCE_STYLE)
    ax.set_xticks(np.arange(len(groups)), groups, rotation=30 if len(groups) > 4 else 0)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_xlabel(group_label)
    ax.set_ylabel(value_label, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _legend(ax, len(ax.get_legend_handles_labels()[0]))
    if title:
        ax.set_title(title)
    return figure


# ---------------------------------------------------------------------------------------------
# base models
# ---------------------------------------------------------------------------------------------


def plot_model_comparison(frame: pd.DataFrame, *, value: str = "final_average",
                          value_label: str = "final average", chance: float | None = None,
                          ax: Axes | None = None, title: str | None = None) -> Figure:
    """Grouped bars: one group per strategy, one bar (hue) per base model, of `value` with its
    95% interval over orders (Figure 4).

    `frame` is `nbforget.analysis.model_comparison` output (columns strategy, model, `value`,
    ``<value>_low``, ``<value>_high``), strategies and models drawn in its order. A missing value
    draws no bar; chance is a grey dashed line (default: the frame's chance column, when it has one).
    An empty frame gives a figure that says so.
    """
    if frame is None or frame.empty:
        return message_figure("no runs of two base models to compare", ax=ax)
    strategies = list(dict.fromkeys(frame["strategy"]))
    models = list(dict.fromkeys(frame["model"]))
    figure, ax = _axes(ax, (max(4.8, 0.55 * len(strategies) * len(models) + 2.5), 3.8))
    colours = _palette(models)
    width = 0.8 / len(models)
    positions = np.arange(len(strategies))
    for k, model in enumerate(models):
        part = frame[frame["model"] == model].set_index("strategy").reindex(strategies)
        means = part[value].to_numpy(dtype=float)
        shown = np.isfinite(means)
        x = positions - 0.4 + width * (k + 0.5)
        ax.bar(x[shown], means[shown], width=width * 0.95, color=colours[model], label=str(model))
        low = part.get(f"{value}_low", pd.Series(np.nan, index=part.index)).to_numpy(dtype=float)
        high = part.get(f"{value}_high", pd.Series(np.nan, index=part.index)).to_numpy(dtype=float)
        interval = shown & np.isfinite(low) & np.isfinite(high)
        if interval.any():
            ax.errorbar(x[interval], means[interval], yerr=np.vstack([means - low, high - means])[:, interval],
                        fmt="none", ecolor="black", elinewidth=1.0, capsize=3)
    if chance is None and "chance" in frame:
        finite = frame["chance"].to_numpy(dtype=float)
        finite = finite[np.isfinite(finite)]
        chance = float(finite[0]) if finite.size else None
    if chance is not None and np.isfinite(chance):
        ax.axhline(chance, label=f"chance ({chance:.3f})", **CHANCE_STYLE)
    ax.set_xticks(positions, [_label(strategy) for strategy in strategies],
                  rotation=30 if len(strategies) > 4 else 0)
    ax.set_xlabel("strategy")
    ax.set_ylabel(value_label, fontsize=9)
    values = frame[value].to_numpy(dtype=float)
    if (values[np.isfinite(values)] >= 0).all():
        ax.set_ylim(0, 1.02)  # scores
    else:
        ax.axhline(0.0, color="black", linewidth=0.8)  # a difference (CBT): the sign matters
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # the models first, then chance
        entries = sorted(zip(handles, labels), key=lambda entry: entry[1] not in models)
        ax.legend(*zip(*entries), fontsize=8, title="model", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0)
    if title:
        ax.set_title(title)
    return figure


# ---------------------------------------------------------------------------------------------
# drift
# ---------------------------------------------------------------------------------------------


def _layer_key(name: str) -> tuple[int, int, str]:
    if name == "embeddings":
        return (0, -1, name)
    match = re.fullmatch(r"layer\.(\d+)", str(name))
    if match:
        return (1, int(match.group(1)), name)
    return (2, 0, str(name))


def plot_drift(drift: pd.DataFrame, *, trained: Sequence[str] | None = None, ax: Axes | None = None,
               title: str | None = None) -> Figure:
    """Relative distance of each layer's weights from the base model after every step.

    `drift` has columns step, layer, relative_drift (a run's ``drift.csv``:
    ``||theta - theta_base|| / ||theta_base||`` per layer). One line per layer, embeddings first;
    the x axis is labelled with the language trained at each step when `trained` is given.
    """
    figure, ax = _axes(ax, (6.4, 3.6))
    if drift is None or drift.empty:
        ax.text(0.5, 0.5, "no drift recorded for this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return figure
    layers = sorted(drift["layer"].unique(), key=_layer_key)
    import seaborn as sns

    colours = dict(zip(layers, sns.color_palette("viridis", n_colors=len(layers))))
    steps = sorted(drift["step"].unique())
    for layer in layers:
        part = drift[drift["layer"] == layer].sort_values("step")
        ax.plot(part["step"], part["relative_drift"], marker="o", markersize=3, color=colours[layer], label=layer)
    labels = list(trained) if trained is not None and len(trained) == len(steps) else [str(s) for s in steps]
    ax.set_xticks(steps, labels, rotation=90 if max(len(label) for label in labels) > 3 else 0)
    ax.set_xlabel("after training")
    ax.set_ylabel("relative distance from the base weights")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(layers) > 6 else 1, loc="best")
    if title:
        ax.set_title(title)
    return figure


# ---------------------------------------------------------------------------------------------
# values per layer (strategy pages: Fisher mass, drift against the baseline)
# ---------------------------------------------------------------------------------------------

__all__ += ["plot_layer_bars"]


def plot_layer_bars(table: pd.DataFrame, *, value_label: str, log: bool = False, ax: Axes | None = None,
                    title: str | None = None) -> Figure:
    """Grouped bars: one group per layer (the rows of `table`, in its order), one bar per column.

    `table` is layers x series (e.g. `nbforget.pages.fisher_mass_table`: layer groups x penalty
    terms; `nbforget.pages.baseline_drift_table`: layers x strategies). Missing values draw no bar.
    `log` puts the values on a log scale (non-positive values then draw no bar either). An empty
    table gives a figure that says so.
    """
    if table is None or table.empty or table.shape[1] == 0:
        return message_figure("nothing recorded per layer for this run", ax=ax)
    series = list(table.columns)
    figure, ax = _axes(ax, (max(4.8, 0.5 * len(table) * max(len(series), 1) + 2.5), 3.6))
    colours = _palette(series)
    width = 0.8 / len(series)
    positions = np.arange(len(table))
    for k, column in enumerate(series):
        values = table[column].to_numpy(dtype=float)
        shown = np.isfinite(values) & ((values > 0) if log else True)
        ax.bar(positions[shown] - 0.4 + width * (k + 0.5), values[shown], width=width * 0.95,
               color=colours[column], label=str(column))
    if log:
        ax.set_yscale("log")
    ax.set_xticks(positions, [str(layer) for layer in table.index],
                  rotation=90 if len(table) > 8 else 0)
    ax.set_xlabel("layer")
    ax.set_ylabel(value_label, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _legend(ax, len(series))
    if title:
        ax.set_title(title)
    return figure
