"""Base models side by side (the core paper's Figure 4: XLM-R against E5 across training methods).

    model_axis(study)                 the settings of the sweep axis that varies ``model.name`` (or None)
    model_points(study)               the points of that axis, in its declared order
    model_comparison(study)           one row per (strategy, model): final average, CBT, CFT, runs, chance
    model_table(frame)                the same as a page shows it
    model_comparison_text(study)      which model scores higher per strategy, or how to sweep models
    model_scale_statement(study)      the models and setting of these runs against the paper's
    no_model_sweep_text(study)        what a profile without a model sweep says
    MODEL_KEY, MODEL_SWEEP_EXAMPLE

A profile compares base models by sweeping ``model.name`` on one axis, with the settings that
must change with the model (its learning rates) on the same axis, e.g. ``MODEL_SWEEP_EXAMPLE``.
Each model is read at its own point; another axis of the sweep (a LoRA rank) is read at its first
point, which the table names. Intervals are 95% bootstrap intervals over orders (seeds averaged
first, `nbforget.analysis.summarize_over_orders`).
"""
from __future__ import annotations

import math

import pandas as pd

from nbforget.analysis.paper import PAPER_FIGURE4, PAPER_SETTING
from nbforget.analysis.prose import display_name, format_interval, runs_setting
from nbforget.analysis.study import RunRecord, Study, run_summary
from nbforget.analysis.tables import summarize_over_orders
from nbforget.config import sweep_points, swept_axis

__all__ = [
    "MODEL_KEY",
    "MODEL_SWEEP_EXAMPLE",
    "MODEL_COLUMNS",
    "model_axis",
    "model_points",
    "model_comparison",
    "model_table",
    "model_comparison_text",
    "model_scale_statement",
    "no_model_sweep_text",
]

MODEL_KEY = "model.name"
MODEL_SWEEP_EXAMPLE = "sweep: {model: {model.name: [tiny, e5-small], train.learning_rate: [0.001, 0.0001]}}"
VALUES = ("final_average", "cbt", "cft")
MODEL_COLUMNS = ["strategy", "model", "point", "other_point",
                 *[f"{value}{suffix}" for value in VALUES for suffix in ("", "_low", "_high")],
                 "n_orders", "n_runs", "chance"]
"""Columns of `model_comparison`: ``model`` is the value of ``model.name``; ``point`` the model
axis's settings (``model.name=e5-small, train.learning_rate=0.0001``); ``other_point`` the point
of the sweep's other axes that was read ("" without any)."""

_TIE = 5e-4  # final averages closer than this are "about the same" (they print the same at 3 digits)


def _names(models) -> str:
    """`tiny` and `e5-small`; `a`, `b` and `c`."""
    quoted = [f"`{model}`" for model in models]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _label(point: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in point.items())


def model_axis(study: Study) -> dict[str, list] | None:
    """The settings (dotted key -> values) of the sweep axis of `study`'s profile that varies
    ``model.name``; None when no axis does (or ``--set model.name=...`` pinned it)."""
    return swept_axis(study.config, MODEL_KEY)


def model_points(study: Study) -> list[dict]:
    """The points of the model axis (its settings change in lockstep), in the declared order;
    [] without a model sweep."""
    axis = model_axis(study)
    return [] if axis is None else sweep_points({MODEL_KEY: axis})


def _model_study(study: Study, point: dict) -> tuple[Study, list[RunRecord]]:
    """The study of one model point (the first point of the sweep's other axes) and its runs of
    that model (a run records the model it ran with among its swept values)."""
    part = study.at(point)
    if len(part.points()) > 1:
        part = part.first_point()
    runs = [run for run in part.all_runs if run.swept.get(MODEL_KEY) == point[MODEL_KEY]]
    return part, runs


def model_comparison(study: Study) -> pd.DataFrame:
    """One row per (strategy, model point) with runs: the final average, CBT and CFT as means
    over orders (seeds of an order averaged first) with their 95% intervals, the number of orders
    and of runs, and the chance level (columns `MODEL_COLUMNS`). Strategies in the study's order,
    models in the sweep's. Empty (with those columns) when the profile does not sweep
    ``model.name`` or no model point has a complete run."""
    rows = []
    for point in model_points(study):
        part, runs = _model_study(study, point)
        if not runs:
            continue
        frame = pd.DataFrame([run_summary(run) for run in runs])
        summary = summarize_over_orders(frame, list(VALUES))
        counts = frame.groupby("strategy", sort=False).size()
        chance = frame.groupby("strategy", sort=False)["chance"].first()
        other = {key: value for key, value in part.point.items() if key not in point}
        for strategy in summary.index:
            rows.append({"strategy": strategy, "model": point[MODEL_KEY], "point": _label(point),
                         "other_point": _label(other), **summary.loc[strategy].to_dict(),
                         "n_runs": int(counts[strategy]), "chance": float(chance[strategy])})
    if not rows:
        return pd.DataFrame(columns=MODEL_COLUMNS)
    table = pd.DataFrame(rows)[MODEL_COLUMNS]
    strategies = [name for name in study.strategies if name in set(table["strategy"])]
    models = list(dict.fromkeys(table["model"]))
    table["_s"] = table["strategy"].map(strategies.index)
    table["_m"] = table["model"].map(models.index)
    table = table.sort_values(["_s", "_m"], kind="stable").drop(columns=["_s", "_m"]).reset_index(drop=True)
    table["n_orders"] = table["n_orders"].astype(int)
    return table


def model_table(frame: pd.DataFrame) -> pd.DataFrame:
    """`model_comparison` as a page shows it: one row per strategy and model (the strategy's
    display name), the values as ``mean [low, high]`` (the bare mean with one order), the runs
    and orders behind them, the chance level and the model axis's settings."""
    if frame.empty:
        return pd.DataFrame()
    rows = []
    for _, row in frame.iterrows():
        rows.append({
            "strategy": display_name(row["strategy"]), "model": row["model"],
            "final average": format_interval(row["final_average"], row["final_average_low"], row["final_average_high"]),
            "CBT": format_interval(row["cbt"], row["cbt_low"], row["cbt_high"], signed=True),
            "CFT": format_interval(row["cft"], row["cft_low"], row["cft_high"]),
            "runs (orders)": f"{row['n_runs']} ({row['n_orders']})",
            "chance": "n/a" if not math.isfinite(row["chance"]) else f"{row['chance']:.3f}",
            "settings": row["point"] + (f"; {row['other_point']}" if row["other_point"] else ""),
        })
    return pd.DataFrame(rows).set_index(["strategy", "model"])


def no_model_sweep_text(study: Study) -> str:
    """What a page says for a profile without a model sweep."""
    return (f"Profile `{study.config.profile}` does not sweep `model.name`: every run here uses "
            f"`{study.config.model.name}`, so there is no second base model to compare. To compare base "
            f"models, set e.g. `{MODEL_SWEEP_EXAMPLE}` in the profile (one axis, so each model gets its own "
            "learning rate), as `params/profiles/two-models.yaml` does, and run `nbforget grid` on it.")


def _runs_phrase(row) -> str:
    orders = int(row["n_orders"])
    return (f"{row['n_runs']} run(s), {orders} order(s)"
            + ("" if orders > 1 else ", no interval"))


def _strategy_sentence(strategy: str, part: pd.DataFrame) -> str | None:
    part = part[part["final_average"].map(lambda value: math.isfinite(value))]
    if len(part) < 2:
        return None
    ranked = part.sort_values("final_average", ascending=False, kind="stable")
    best, rest = ranked.iloc[0], ranked.iloc[1:]
    others = "; ".join(f"`{row['model']}` {row['final_average']:.3f} ({_runs_phrase(row)})" for _, row in rest.iterrows())
    name = display_name(strategy)
    gap = best["final_average"] - rest.iloc[0]["final_average"]
    if gap < _TIE:
        return (f"- **{name}**: the models score about the same, final average "
                f"`{best['model']}` {best['final_average']:.3f} ({_runs_phrase(best)}); {others}.")
    overlap = ""
    best_low, other_high = best["final_average_low"], rest.iloc[0]["final_average_high"]
    if math.isfinite(best_low) and math.isfinite(other_high) and best_low <= other_high:
        overlap = " Their 95% intervals over orders overlap, so the gap is within what the orders vary by."
    return (f"- **{name}**: `{best['model']}` scores higher, final average {best['final_average']:.3f} "
            f"({_runs_phrase(best)}) against {others}; a gap of {gap:.3f}.{overlap}")


def _ranking(finals: dict[str, float]) -> str:
    """Strategies from the highest final average down: ``MULTI > VANILLA``, ``=`` for a tie."""
    ranked = sorted(finals.items(), key=lambda item: -item[1])
    text = display_name(ranked[0][0])
    for (_, above), (name, value) in zip(ranked, ranked[1:]):
        text += (" = " if above - value < _TIE else " > ") + display_name(name)
    return text


def _ranking_sentence(frame: pd.DataFrame) -> str:
    """Whether the strategies with a final average under every model rank the same way under
    each (every pair in the same order, ties within `_TIE` counted as ties); "" with fewer than
    two such strategies or models."""
    finals = frame[frame["final_average"].map(math.isfinite)]
    per_model = {model: dict(zip(part["strategy"], part["final_average"]))
                 for model, part in finals.groupby("model", sort=False)}
    shared = [name for name in dict.fromkeys(finals["strategy"]) if all(name in values for values in per_model.values())]
    if len(per_model) < 2 or len(shared) < 2:
        return ""

    def sign(values: dict, a: str, b: str) -> int:
        difference = values[a] - values[b]
        return 0 if abs(difference) < _TIE else (1 if difference > 0 else -1)

    pairs = [(a, b) for i, a in enumerate(shared) for b in shared[i + 1:]]
    same = all(len({sign(values, a, b) for values in per_model.values()}) == 1 for a, b in pairs)
    rankings = "; ".join(f"`{model}`: {_ranking({name: values[name] for name in shared})}"
                         for model, values in per_model.items())
    if same:
        return (f"\n\nThe strategies rank the same way under every model ({rankings}), as the paper finds the "
                "general pattern of results consistent across models.")
    return (f"\n\nThe strategies rank differently under the models ({rankings}), unlike the paper, which finds "
            "the general pattern of results consistent across models.")


def model_comparison_text(study: Study, frame: pd.DataFrame | None = None) -> str:
    """Markdown: per strategy, the model with the higher final average (and by how much); then
    whether the strategies rank the same under every model and whether the sequential ones forget
    under each (the two parts of the paper's reading of Figure 4 these runs can check), and why its
    XLM-R-against-E5 direction is not checked here. Without a model sweep: `no_model_sweep_text`;
    without runs, says so."""
    if model_axis(study) is None:
        return no_model_sweep_text(study)
    frame = model_comparison(study) if frame is None else frame
    models = [point[MODEL_KEY] for point in model_points(study)]
    if frame.empty:
        return (f"No complete run of any model point yet (the profile sweeps `model.name` over "
                f"{_names(models)}): run `nbforget grid` on it.")
    lines, single = [], []
    for strategy, part in frame.groupby("strategy", sort=False):
        sentence = _strategy_sentence(strategy, part)
        if sentence is None:
            single.append(f"{display_name(strategy)} (`{'`, `'.join(part['model'])}` only)")
        else:
            lines.append(sentence)
    text = ("Which base model ends higher, per strategy (final average, mean over orders):\n\n" + "\n".join(lines)
            if lines else "No strategy has complete runs of two models yet: nothing to compare.")
    if single:
        text += "\n\nWith runs of one model only, not compared: " + ", ".join(single) + "."
    # the paper: the pattern across methods is the same for both models, and forgetting shows in both
    text += _ranking_sentence(frame)
    compared = frame[~frame["strategy"].isin([name for name, part in frame.groupby("strategy") if len(part) < 2])]
    sequential = compared[compared["cbt"].map(math.isfinite)]
    if not sequential.empty:
        parts = [f"{display_name(row['strategy'])} on `{row['model']}` {row['cbt']:+.3f}"
                 for _, row in sequential.iterrows()]
        forgets = bool((sequential["cbt"] < 0).all())
        text += ("\n\nCBT (negative = forgetting): " + "; ".join(parts) + ". "
                 + ("Forgetting shows under every model, as the paper finds for both of its models."
                    if forgets else "Not every model forgets here; the paper finds forgetting evident under both."))
    text += (f"\n\nThe paper's models are {PAPER_FIGURE4['models'][0]} and {PAPER_FIGURE4['models'][1]}; these runs "
             f"compare {_names(models)}, so its direction between its two models "
             f"({PAPER_FIGURE4['direction']}) is not checked here.")
    return text


def model_scale_statement(study: Study) -> str:
    """A paragraph of Markdown: the models, data and languages of these runs against the paper's
    setting (the analysis pages' scale statement, for a page that reads every model)."""
    models = [point[MODEL_KEY] for point in model_points(study)] or [study.config.model.name]
    return (
        f"**Scale.** {runs_setting(study, _names(models) + ' model' + ('s' if len(models) > 1 else ''))} "
        f"The paper's setting: {PAPER_SETTING}; its "
        f"Figure 4 sets {PAPER_FIGURE4['models'][1]} beside {PAPER_FIGURE4['models'][0]}. Levels of scores are "
        "therefore not comparable between the two; what can be compared is the direction of each effect "
        "(which model ends higher for a strategy, whether both forget) and whether the strategies rank the "
        "same under each model. With one order there is no interval."
    )
