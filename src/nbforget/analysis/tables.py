"""The paper's tables and figures computed for a `Study`, as numbers (no text).

``study`` is a `nbforget.analysis.study.Study`; intervals are 95% percentile-bootstrap intervals
over language orders (`nbforget.metrics.bootstrap_ci`); seeds of one order are averaged first.

    run_metrics(study)                    one row per run: final average, CBT, CFT, forgetting, ...
    summarize_over_orders(frame, values)  mean and interval over orders, per strategy
    vitality_scores(study)                per run: the final score of each vitality bucket
    table1(study)                         trainable parameters, final average, by vitality bucket
    table2(study)                         CBT, CFT and forgetting
    average_over_time(study)              P[i] per run and step (the paper's Figure 2)
    order_matrices(study, strategy)       seed-averaged score matrices, one per order
    performance_shift(study, strategy)    per language, over orders (Figure 3)
    hop_tables(study, strategy)           MFT and MBT per language and hop (Figures 5 and 6)
    sequential_strategies(study)          strategies whose score matrices are square
    focus_strategy(study)                 the strategy the paper's figures are drawn for (VANILLA)
    matrix_regions(matrix)                mean of the diagonal, below it and above it
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nbforget import NbforgetError, metrics
from nbforget.analysis.study import RunRecord, Study, baseline_strategy, run_summary
from nbforget.languages import vitality

__all__ = [
    "run_metrics",
    "summarize_over_orders",
    "vitality_bucket",
    "vitality_scores",
    "table1",
    "table2",
    "average_over_time",
    "order_matrices",
    "performance_shift",
    "hop_tables",
    "sequential_strategies",
    "focus_strategy",
    "matrix_regions",
]


def run_metrics(study: Study) -> pd.DataFrame:
    """One row per run of the study, of every sweep point (`Study.all_runs`): `run_summary`, the
    swept values (a column per setting the profile's sweep varies, None where the run's strategy
    does not read it) and the run directory. Group by the swept columns too when summarizing a
    study of several points (`table1` and `table2` read one point and refuse several)."""
    rows = [{**run_summary(run), **study.swept_values(run), "run_dir": str(run.run_dir)}
            for run in study.all_runs]
    columns = ["strategy", "order", "seed", *study.sweep_keys, "final_average", "chance", "cbt", "cft", "forgetting",
               "forgetting_max", "fwt", "params_per_step", "params_total", "params_distinct", "seconds",
               "run_dir"]
    return pd.DataFrame(rows, columns=columns)


def _per_order(frame: pd.DataFrame, values: Sequence[str], by: Sequence[str]) -> pd.DataFrame:
    """Average the seeds of each order: one row per (by..., order)."""
    # dropna=False: a swept setting a strategy does not read is None, and its runs still count
    return frame.groupby(list(by) + ["order"], sort=False, dropna=False)[list(values)].mean().reset_index()


def summarize_over_orders(frame: pd.DataFrame, values: Sequence[str], *,
                          by: Sequence[str] = ("strategy",), n_resamples: int = 10000) -> pd.DataFrame:
    """Mean and 95% bootstrap interval over orders of each column in `values`, per group.

    `frame` has an ``order`` column (and may have ``seed``: seeds of an order are averaged first).
    Returns one row per group with columns ``<value>``, ``<value>_low``, ``<value>_high`` and
    ``n_orders`` (orders where the value is defined). With one order the interval is NaN.
    """
    values = list(values)
    per_order = _per_order(frame, values, by)
    rows = []
    for key, group in per_order.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        counts = []
        for value in values:
            finite = group[value].to_numpy(dtype=float)
            finite = finite[np.isfinite(finite)]
            if finite.size:
                mean, low, high = metrics.bootstrap_ci(finite, n_resamples=n_resamples)
            else:
                mean = low = high = float("nan")
            row.update({value: mean, f"{value}_low": low, f"{value}_high": high})
            counts.append(finite.size)
        row["n_orders"] = max(counts) if counts else 0
        rows.append(row)
    return pd.DataFrame(rows).set_index(list(by)) if rows else pd.DataFrame()


def vitality_bucket(locale: str, buckets) -> str | None:
    """The vitality bucket of `locale` (`nbforget.languages.vitality`); None when its Joshi class
    is unknown or in no bucket."""
    try:
        return vitality(locale, buckets)
    except NbforgetError:
        return None


def vitality_scores(study: Study) -> pd.DataFrame:
    """Per run: the final score averaged over the languages of each vitality bucket."""
    buckets = study.config.vitality_buckets
    rows = []
    for run in study.runs:
        last = run.matrix[-1]
        row = {"strategy": run.strategy, "order": run.order_spec, "seed": run.seed}
        for bucket in buckets:
            members = [j for j, locale in enumerate(run.order) if vitality_bucket(locale, buckets) == bucket]
            row[bucket] = float(np.mean(last[members])) if members else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=["strategy", "order", "seed", *buckets])


def table1(study: Study) -> pd.DataFrame:
    """The paper's Table 1 for our runs, one row per strategy (mean over orders, with intervals).

    Columns: ``params_distinct`` (the paper's way of counting), ``params_per_step``,
    ``final_average`` with ``_low``/``_high``, one column per vitality bucket (with intervals),
    ``n_orders``, ``chance``. One sweep point: a study of several raises (use `Study.at`,
    `Study.first_point`, or `nbforget.analysis.table1_comparison_by_point` for a row per point).
    """
    if not study.runs:
        return pd.DataFrame()
    per_run = run_metrics(study)
    by_vitality = vitality_scores(study)
    buckets = list(study.config.vitality_buckets)
    merged = per_run.merge(by_vitality, on=["strategy", "order", "seed"])
    summary = summarize_over_orders(merged, ["final_average", *buckets])
    parameters = per_run.groupby("strategy", sort=False)[["params_distinct", "params_per_step"]].max()
    table = parameters.join(summary)
    table["chance"] = per_run.groupby("strategy", sort=False)["chance"].first()
    return table.loc[[name for name in study.strategies if name in table.index]]


def table2(study: Study) -> pd.DataFrame:
    """CBT, CFT and (learned-reference) forgetting per strategy with intervals over orders.

    Strategies whose matrices cannot give CBT (joint training) are left out.
    """
    if not study.runs:  # one sweep point: raises when a strategy has runs of several
        return pd.DataFrame()
    per_run = run_metrics(study)
    per_run = per_run[np.isfinite(per_run["cbt"].to_numpy(dtype=float))]
    if per_run.empty:
        return pd.DataFrame()
    table = summarize_over_orders(per_run, ["cbt", "cft", "forgetting"])
    return table.loc[[name for name in study.strategies if name in table.index]]


# ---------------------------------------------------------------------------------------------
# curves and per-language tables
# ---------------------------------------------------------------------------------------------


def average_over_time(study_or_runs) -> pd.DataFrame:
    """The average over seen languages ``P[i]`` of every run, one row per run and step.

    Columns: ``strategy``, ``order``, ``seed``, ``step`` (0-based), ``languages_seen``
    (``step + 1``), ``value`` and ``joint``. A joint-training run (one step over all languages)
    gives one row with ``joint=True`` and its final average as value, drawn as a level line.
    """
    runs = study_or_runs.runs if isinstance(study_or_runs, Study) else list(study_or_runs)
    rows = []
    for run in runs:
        if run.joint:
            rows.append((run.strategy, run.order_spec, run.seed, len(run.order) - 1, len(run.order),
                         run.final_average, True))
            continue
        try:
            seen = metrics.average_seen(run.matrix)
        except ValueError:
            continue
        for step, value in enumerate(seen):
            rows.append((run.strategy, run.order_spec, run.seed, step, step + 1, float(value), False))
    return pd.DataFrame(rows, columns=["strategy", "order", "seed", "step", "languages_seen", "value", "joint"])


def order_matrices(study: Study, strategy: str) -> tuple[list[np.ndarray], list[tuple[str, ...]], list[str]]:
    """Square score matrices of `strategy`, one per order (its seeds averaged); with the orders.

    Returns ``(matrices, orders, order_labels)``; empty lists when the strategy has no square
    matrix (joint training).
    """
    grouped: dict[str, list[RunRecord]] = {}
    for run in study.of(strategy):
        if run.square:
            grouped.setdefault(run.order_spec, []).append(run)
    matrices, orders, labels = [], [], []
    for label, runs in grouped.items():
        matrices.append(np.mean([run.matrix for run in runs], axis=0))
        orders.append(runs[0].order)
        labels.append(label)
    return matrices, orders, labels


def performance_shift(study: Study, strategy: str | None = None, **bootstrap_options) -> pd.DataFrame | None:
    """Per-language performance shift of `strategy` (default: the baseline, VANILLA) over orders
    (the paper's Figure 3).

    Index ``language``; columns ``mean``, ``ci_low``, ``ci_high``, ``n`` (orders). Negative means
    training that language lowered the scores of the languages learned before it. None when the
    strategy has no square score matrix.
    """
    matrices, orders, _ = order_matrices(study, strategy or baseline_strategy())
    if not matrices:
        return None
    try:
        return metrics.per_language_shift(matrices, orders, **bootstrap_options)
    except ValueError:
        return None


def hop_tables(study: Study, strategy: str | None = None, *, max_hop: int = 9,
               **bootstrap_options) -> dict[str, pd.DataFrame] | None:
    """Per-language MFT and MBT of `strategy` (default: the baseline, VANILLA) over hops
    ``0..min(max_hop, T-1)`` (Figures 5, 6).

    Returns ``{"mft": table, "mbt": table}``, each a `nbforget.metrics.per_language_hops` table
    (``table["mean"]`` is languages x h) sorted by the mean over hops, largest first. None when the
    strategy has no square score matrix.
    """
    matrices, orders, _ = order_matrices(study, strategy or baseline_strategy())
    if not matrices:
        return None
    size = min(matrix.shape[0] for matrix in matrices)
    hops = list(range(min(max_hop, size - 1) + 1))
    tables = {}
    for name in ("mft", "mbt"):
        try:
            table = metrics.per_language_hops(matrices, orders, name, hops=hops, **bootstrap_options)
        except ValueError:
            return None
        tables[name] = metrics.sort_by_mean_over_hops(table)
    return tables


def sequential_strategies(study: Study) -> list[str]:
    """Strategies with square score matrices (every language scored after every step)."""
    return [name for name in study.strategies if order_matrices(study, name)[0]]


def focus_strategy(study: Study) -> str | None:
    """The strategy the paper's per-language figures are drawn for: the baseline (VANILLA) when
    it has square score matrices, else the first sequential strategy; None without one."""
    sequential = sequential_strategies(study)
    baseline = baseline_strategy()
    return baseline if baseline in sequential else (sequential[0] if sequential else None)


def matrix_regions(matrix) -> dict[str, float]:
    """Mean score on the diagonal (just learned), below it (learned earlier) and above it (zero-shot).

    NaN where a region is empty or unrecorded.
    """
    values = np.asarray(matrix, dtype=float)
    rows, columns = values.shape
    i, j = np.indices((rows, columns))

    def mean(mask) -> float:
        cells = values[mask & np.isfinite(values)]
        return float(cells.mean()) if cells.size else float("nan")

    return {"diagonal": mean(i == j), "below": mean(j < i), "above": mean(j > i)}
