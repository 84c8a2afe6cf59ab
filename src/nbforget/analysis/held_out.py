"""Held-out languages: scored before training and after every step, never trained.

A run's held-out languages (``held_out_languages`` of its config) are extra columns of its score
matrix, after the trained ones (`RunRecord.held_out_matrix`, with the base model's scores in
`RunRecord.held_out_base`). The papers' metrics never read them; these functions do, with the
definitions of `nbforget.metrics` (`held_out_erosion`, `held_out_change`).

    held_out_summary(run)        per held-out language: base, best (and the step after which it
                                 came), final, change against the base, erosion of the best
    held_out_scores(run)         the base row, then one row per step; one column per held-out language
    held_out_runs(study)         one row per run with held-out languages: the means over them
    held_out_table(study)        per strategy: final, change and erosion with intervals over orders
    held_out_over_time(study)    the mean held-out score after each step, per run (the frame of
                                 `average_over_time`, so `plots.plot_average_over_time` draws it)
    held_out_text(study)         the overview's sentences about them
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nbforget import metrics
from nbforget.analysis.prose import display_name, format_interval
from nbforget.analysis.study import RunRecord, Study
from nbforget.analysis.tables import summarize_over_orders
from nbforget.strategies import REGISTRY

__all__ = ["HELD_OUT_COLUMNS", "held_out_summary", "held_out_scores", "held_out_runs", "held_out_table",
           "held_out_over_time", "held_out_text"]

HELD_OUT_COLUMNS = {
    "base": "score of the base model (fresh head, before any fine-tuning)",
    "best": "best zero-shot score after any step",
    "best after": "the language trained by the step that gave the best score",
    "final": "score after the last step",
    "change": "final minus base: zero-shot transfer gained by fine-tuning on the trained languages",
    "erosion": "final minus best: never positive; negative = later training lost zero-shot transfer",
}
"""Columns of `held_out_summary`, and how to read each."""


def held_out_summary(run: RunRecord) -> pd.DataFrame:
    """One row per held-out language of `run` (`HELD_OUT_COLUMNS`), computed from its scores;
    an empty frame with those columns for a run without held-out languages."""
    if not run.held_out:
        return pd.DataFrame(columns=list(HELD_OUT_COLUMNS)).rename_axis("language")
    matrix = run.held_out_matrix
    base = run.held_out_base
    change = metrics.held_out_change(matrix, base) if base is not None else np.full(len(run.held_out), np.nan)
    erosion = metrics.held_out_erosion(matrix)
    labels = list(run.row_labels)
    rows = []
    for h, language in enumerate(run.held_out):
        best_step = int(np.argmax(matrix[:, h]))
        rows.append({"language": language, "base": float(base[h]) if base is not None else float("nan"),
                     "best": float(matrix[best_step, h]),
                     "best after": labels[best_step] if best_step < len(labels) else str(best_step),
                     "final": float(matrix[-1, h]), "change": float(change[h]), "erosion": float(erosion[h])})
    return pd.DataFrame(rows).set_index("language")[list(HELD_OUT_COLUMNS)]


def held_out_scores(run: RunRecord) -> pd.DataFrame:
    """The held-out languages' scores over time: the row ``base`` (before any fine-tuning), then
    one row per step labelled with what it trained; one column per held-out language."""
    if not run.held_out:
        return pd.DataFrame()
    base = run.held_out_base if run.held_out_base is not None else np.full(len(run.held_out), np.nan)
    values = np.vstack([base[None, :], run.held_out_matrix])
    return pd.DataFrame(values, index=["base", *run.row_labels], columns=list(run.held_out))


def held_out_runs(study: Study) -> pd.DataFrame:
    """One row per run with held-out languages: strategy, order, seed and the means over its
    held-out languages of the final score, the best, the change against the base and the erosion."""
    rows = []
    for run in study.runs:
        if not run.held_out:
            continue
        summary = held_out_summary(run)
        rows.append({"strategy": run.strategy, "order": run.order_spec, "seed": run.seed,
                     **{name: float(summary[name].mean()) for name in ("base", "best", "final", "change", "erosion")}})
    return pd.DataFrame(rows, columns=["strategy", "order", "seed", "base", "best", "final", "change", "erosion"])


def held_out_table(study: Study) -> pd.DataFrame:
    """Per strategy, over its orders (mean and 95% interval): the final held-out score, its change
    against the base and its erosion from the best; empty when no run holds out a language."""
    per_run = held_out_runs(study)
    if per_run.empty:
        return pd.DataFrame()
    table = summarize_over_orders(per_run, ["final", "change", "erosion"])
    return table.loc[[name for name in study.strategies if name in table.index]]


def held_out_over_time(study: Study) -> pd.DataFrame:
    """The mean over a run's held-out languages of their score after each step, one row per run
    and step, with the columns of `average_over_time` (a joint-training run is one ``joint`` row)."""
    rows = []
    for run in study.runs:
        if not run.held_out:
            continue
        means = run.held_out_matrix.mean(axis=1)
        if run.joint:
            rows.append((run.strategy, run.order_spec, run.seed, len(run.order) - 1, len(run.order),
                         float(means[-1]), True))
            continue
        for step, value in enumerate(means):
            rows.append((run.strategy, run.order_spec, run.seed, step, step + 1, float(value), False))
    return pd.DataFrame(rows, columns=["strategy", "order", "seed", "step", "languages_seen", "value", "joint"])


def _scoring(strategies) -> str:
    """Which model scores a held-out language, for the strategies whose registry entry says it
    differently from the one-model default."""
    default = REGISTRY["vanilla"].held_out_scoring if "vanilla" in REGISTRY else None
    parts = [f"{display_name(name)} scores them {REGISTRY[name].held_out_scoring}" for name in strategies
             if name in REGISTRY and REGISTRY[name].held_out_scoring != default]
    return ("Every other strategy scores them with its model after each step. " if parts else "") + \
        "".join(f"{part}. " for part in parts)


def held_out_text(study: Study) -> str:
    """Markdown: the held-out languages, how each strategy scores them, and which strategy keeps
    the most and the least of its best zero-shot score."""
    held_out = list(study.config.held_out_languages)
    if not held_out:
        return ("This profile holds out no language. `held_out_languages` in a profile lists locales that are "
                "scored before training and after every step and never trained, to measure zero-shot transfer "
                "and its erosion (see the Method page).")
    table = held_out_table(study)
    opening = (f"Held out: {', '.join(held_out)}, scored before training and after every step, never trained; the "
               "papers' metrics in the sections above read the trained languages only. ")
    if table.empty:
        return opening + "No complete run holds them yet."
    opening += _scoring(table.index)
    parts = []
    for strategy, row in table.iterrows():
        parts.append(f"{display_name(strategy)} ends at "
                     f"{format_interval(row['final'], row['final_low'], row['final_high'], int(row['n_orders']), prose=True)}"
                     f" (change against the base {row['change']:+.3f}, erosion of the best {row['erosion']:+.3f})")
    text = opening + "; ".join(parts) + "."
    erosion = table["erosion"].dropna()
    if len(erosion) > 1 and erosion.max() - erosion.min() > 5e-4:
        text += (f" {display_name(erosion.idxmax())} keeps the most of its best zero-shot score "
                 f"({erosion.max():+.3f}), {display_name(erosion.idxmin())} the least ({erosion.min():+.3f}).")
    elif len(erosion) > 1:
        text += f" The erosion is {erosion.mean():+.3f} for every strategy."
    return text
