"""Per-language measures and their summaries by group of languages (script, family, vitality).

    language_measures(study)              per order and language: the `MEASURES`, and language facts
    MEASURES                              those measures, with the reading of their sign
    paper_family_group(genus, family)     the paper's family contrast: FAMILY_STRONG, FAMILY_POOR
    SCRIPT_GROUPS                         the two script groups, Latin first
    group_summary(measures, by, value)    a measure per group, with an interval over orders
    group_difference(...)                 one group minus another, over orders
    group_table(measures, by, values)     several measures per group, as text with intervals
    measure_table(measures, by, value)    one of them: strategies x groups
    group_points(measures, by, value)     per-language points for the group figures
    difference_table(...)                 one group minus another for several measures, as text
    indo_european_table(measures)         Indo-European minus the other families
    group_counts_text(measures, by)       how many languages each group has, as a sentence
    extreme_group(values)                 the group with the largest (smallest) value; None on a tie

``measures`` is the frame `language_measures` returns; ``by`` one of its fact columns (``latin``,
``family``, ``genus``, ``vitality``, ``paper_family_group``, ...).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from nbforget import metrics
from nbforget.analysis.paper import PAPER_CLAIMS
from nbforget.analysis.prose import display_name, format_interval
from nbforget.analysis.study import RunRecord, Study
from nbforget.analysis.tables import vitality_bucket
from nbforget.languages import get_language

__all__ = [
    "MEASURES",
    "SCRIPT_GROUPS",
    "FAMILY_STRONG",
    "FAMILY_POOR",
    "language_measures",
    "paper_family_group",
    "group_summary",
    "group_difference",
    "group_table",
    "measure_table",
    "group_points",
    "difference_table",
    "indo_european_table",
    "group_counts_text",
    "extreme_group",
]

MEASURES = {
    "final": "Final score (after the last language)",
    "learned": "Score right after training the language",
    "forgetting": "Forgetting: learned minus final score (positive = forgotten)",
    "shift": "Performance shift caused by training the language (negative = destructive)",
    "mft_mean": "MFT averaged over hops (the language as donor; negative = the average fell)",
    "mbt_mean": "MBT averaged over hops (the language as receiver; negative = the average fell)",
}
"""The per-language measures of `language_measures`, with the reading of their sign."""

SCRIPT_GROUPS = ("Latin", "non-Latin")
"""The values of the ``latin`` column of `language_measures`."""


def _either(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


FAMILY_STRONG = _either(PAPER_CLAIMS["family"]["strong"])
"""``"Romance or Germanic"``: the genera the paper finds strong donors and stable receivers."""
FAMILY_POOR = _either(PAPER_CLAIMS["family"]["poor"])
"""``"Sino-Tibetan, Austro-Asiatic or Afro-Asiatic"``: the distant families it finds poor receivers."""


def paper_family_group(genus: str | None, family: str | None) -> str:
    """The paper's section 5.3 contrast: Romance and Germanic languages (`FAMILY_STRONG`), the
    distant families it names (`FAMILY_POOR`), or ``"other"``."""
    claims = PAPER_CLAIMS["family"]
    if genus in claims["strong"]:
        return FAMILY_STRONG
    if family in claims["poor"]:
        return FAMILY_POOR
    return "other"


def _language_facts(locales: Iterable[str], buckets) -> pd.DataFrame:
    rows = []
    for locale in locales:
        language = get_language(locale)
        rows.append({
            "language": locale, "name": language.name, "script": language.script,
            "latin": SCRIPT_GROUPS[0] if language.latin else SCRIPT_GROUPS[1], "family": language.family,
            "genus": language.genus, "joshi_class": language.joshi_class,
            "vitality": vitality_bucket(locale, buckets),
            "paper_family_group": paper_family_group(language.genus, language.family),
        })
    return pd.DataFrame(rows)


def language_measures(study: Study, strategies: Iterable[str] | None = None, *, max_hop: int = 9) -> pd.DataFrame:
    """Per strategy, order (seeds averaged) and language: the measures of `MEASURES`, plus facts.

    Columns: ``strategy``, ``order``, ``language``, ``position``, the measures (NaN where a formula
    is undefined: forgetting of the last language, shift of the first, every measure but
    ``final`` for joint training), and ``name``, ``script``, ``latin`` ("Latin"/"non-Latin"),
    ``family``, ``genus``, ``joshi_class``, ``vitality``, ``paper_family_group`` (see
    `paper_family_group`).
    """
    names = list(strategies) if strategies is not None else study.strategies
    rows = []
    for strategy in names:
        grouped: dict[str, list[RunRecord]] = {}
        for run in study.of(strategy):
            grouped.setdefault(run.order_spec, []).append(run)
        for label, runs in grouped.items():
            matrix = np.mean([run.matrix for run in runs], axis=0)
            order = runs[0].order
            size = len(order)
            final = matrix[-1]
            values = {key: np.full(size, np.nan) for key in MEASURES}
            values["final"] = final.astype(float)
            if matrix.shape[0] == size and size > 1:
                diagonal = np.diag(matrix)
                values["learned"] = diagonal.astype(float)
                values["forgetting"] = np.append(diagonal[:-1] - final[:-1], np.nan)
                values["shift"] = _array_or_nan(metrics.performance_shift, matrix, size)
                hops = range(min(max_hop, size - 1) + 1)
                values["mft_mean"] = _hop_mean(metrics.mft, matrix, hops, size)
                values["mbt_mean"] = _hop_mean(metrics.mbt, matrix, hops, size)
            for position, language in enumerate(order):
                row = {"strategy": strategy, "order": label, "language": language, "position": position}
                row.update({key: float(values[key][position]) for key in MEASURES})
                rows.append(row)
    frame = pd.DataFrame(rows, columns=["strategy", "order", "language", "position", *MEASURES])
    facts = _language_facts(study.config.languages, study.config.vitality_buckets)
    return frame.merge(facts, on="language", how="left")


def _array_or_nan(function, matrix: np.ndarray, size: int) -> np.ndarray:
    try:
        return np.asarray(function(matrix), dtype=float)
    except ValueError:
        return np.full(size, np.nan)


def _hop_mean(function, matrix: np.ndarray, hops: Iterable[int], size: int) -> np.ndarray:
    stack = []
    for h in hops:
        try:
            stack.append(np.asarray(function(matrix, h), dtype=float))
        except ValueError:
            stack.append(np.full(size, np.nan))
    stacked = np.vstack(stack)
    with np.errstate(all="ignore"):
        counts = np.isfinite(stacked).sum(axis=0)
        sums = np.nansum(stacked, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def group_summary(measures: pd.DataFrame, by: str, value: str, *, strategies: Iterable[str] | None = None,
                  n_resamples: int = 10000) -> pd.DataFrame:
    """A per-language measure averaged within groups, with a bootstrap interval over orders.

    For each strategy, order and group: the mean of `value` over the group's languages where it
    is defined; then mean and 95% interval over orders. Columns: ``strategy``, ``group``,
    ``mean``, ``ci_low``, ``ci_high``, ``n_orders``, ``n_languages``, ``languages``.
    """
    frame = measures if strategies is None else measures[measures["strategy"].isin(list(strategies))]
    frame = frame[np.isfinite(frame[value].to_numpy(dtype=float)) & frame[by].notna()]
    rows = []
    for (strategy, group), part in frame.groupby(["strategy", by], sort=False):
        per_order = part.groupby("order")[value].mean().to_numpy(dtype=float)
        mean, low, high = metrics.bootstrap_ci(per_order, n_resamples=n_resamples)
        languages = sorted(part["language"].unique())
        rows.append({"strategy": strategy, "group": group, "mean": mean, "ci_low": low, "ci_high": high,
                     "n_orders": per_order.size, "n_languages": len(languages),
                     "languages": ", ".join(languages)})
    columns = ["strategy", "group", "mean", "ci_low", "ci_high", "n_orders", "n_languages", "languages"]
    return pd.DataFrame(rows, columns=columns)


def group_difference(measures: pd.DataFrame, by: str, value: str, first: str, second: str, *,
                     strategy: str, n_resamples: int = 10000) -> dict[str, float]:
    """Mean of `value` over group `first` minus over group `second`, per order; then summarized.

    Returns ``{"mean", "ci_low", "ci_high", "n"}`` (n = orders where both groups have a value);
    all NaN with ``n = 0`` when a group is absent.
    """
    part = measures[(measures["strategy"] == strategy) & np.isfinite(measures[value].to_numpy(dtype=float))]
    table = part.groupby(["order", by])[value].mean().unstack(by)
    if first not in table.columns or second not in table.columns:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    differences = (table[first] - table[second]).dropna().to_numpy(dtype=float)
    if differences.size == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    return metrics.summarize(differences, n_resamples=n_resamples)


def group_table(measures: pd.DataFrame, by: str, values: Sequence[str], *,
                strategies: Iterable[str] | None = None, group_order: Sequence[str] | None = None,
                n_resamples: int = 10000) -> pd.DataFrame:
    """`group_summary` of several measures as one table of text: strategies x (measure, group).

    Cells read ``mean [low, high]`` (95% interval over orders; the bare mean with one order) and
    name the language when a group has only one (a single language, not a group).
    """
    frames = []
    for value in values:
        summary = group_summary(measures, by, value, strategies=strategies, n_resamples=n_resamples)
        if summary.empty:
            continue
        signed = value not in ("final", "learned")
        summary["text"] = [
            format_interval(row["mean"], row["ci_low"], row["ci_high"], int(row["n_orders"]), signed=signed)
            + (f"; only {row['languages']}" if row["n_languages"] == 1 else "")
            for _, row in summary.iterrows()
        ]
        summary["measure"] = value
        frames.append(summary)
    if not frames:
        return pd.DataFrame()
    long = pd.concat(frames, ignore_index=True)
    long["strategy"] = [display_name(name) for name in long["strategy"]]
    table = long.pivot_table(index="strategy", columns=["measure", "group"], values="text", aggfunc="first", sort=False)
    groups = list(group_order) if group_order is not None else list(dict.fromkeys(long["group"]))
    columns = [(value, group) for value in values for group in groups if (value, group) in table.columns]
    order = list(dict.fromkeys(long["strategy"]))
    return table.reindex(index=order, columns=pd.MultiIndex.from_tuples(columns, names=["measure", by]))


def measure_table(measures: pd.DataFrame, by: str, value: str, *, strategies: Iterable[str] | None = None,
                  group_order: Sequence[str] | None = None) -> pd.DataFrame:
    """One measure of `group_table`: strategies x groups, as text; empty when it is nowhere defined."""
    table = group_table(measures, by, [value], strategies=strategies, group_order=group_order)
    return table[value] if not table.empty else pd.DataFrame()


def group_points(measures: pd.DataFrame, by: str, value: str, *,
                 strategies: Iterable[str] | None = None) -> pd.DataFrame:
    """One point per strategy and language: the language's `value` averaged over orders.

    Columns ``strategy``, ``group``, ``language``, ``value`` (for `plots.plot_group_comparison`).
    """
    frame = measures if strategies is None else measures[measures["strategy"].isin(list(strategies))]
    frame = frame[np.isfinite(frame[value].to_numpy(dtype=float)) & frame[by].notna()]
    points = frame.groupby(["strategy", by, "language"], sort=False)[value].mean().reset_index()
    return points.rename(columns={by: "group", value: "value"})


def difference_table(measures: pd.DataFrame, by: str, first: str, second: str, values: Mapping[str, str], *,
                     strategies: Iterable[str], label: str | None = None) -> pd.DataFrame:
    """`group_difference` of each measure in `values` (measure -> column label), as text with its
    interval: strategies x measures; empty without strategies."""
    label = label or f"{first} minus {second}"
    names = list(strategies)
    rows = []
    for strategy in names:
        for value, column in values.items():
            difference = group_difference(measures, by, value, first, second, strategy=strategy)
            rows.append({"strategy": display_name(strategy), "measure": column,
                         label: format_interval(difference["mean"], difference["ci_low"], difference["ci_high"],
                                                difference["n"], signed=True)})
    if not rows:
        return pd.DataFrame()
    return (pd.DataFrame(rows).pivot(index="strategy", columns="measure", values=label)
            .reindex([display_name(name) for name in names]))


def indo_european_table(measures: pd.DataFrame, strategies: Iterable[str]) -> pd.DataFrame:
    """Final score and MBT, Indo-European languages minus the other families, per strategy."""
    split = measures.assign(indo_european=["Indo-European" if family == "Indo-European" else "other families"
                                           for family in measures["family"]])
    return difference_table(split, "indo_european", "Indo-European", "other families",
                            {"final": "final score", "mbt_mean": "MBT, mean over h"}, strategies=strategies,
                            label="Indo-European minus others")


def group_counts_text(measures: pd.DataFrame, by: str, *, groups: Sequence[str] | None = None,
                      label: str | None = None) -> str:
    """How many languages each group has, as a sentence, naming the groups a comparison cannot rest
    on: groups without a language, and groups of one language (a difference there is between
    single languages). `groups` fixes which groups are listed, and their order."""
    facts = measures.drop_duplicates("language")
    if facts.empty:
        return "No complete run yet: no languages to show."
    counts = facts[by].value_counts()
    names = list(groups) if groups is not None else list(counts.index)
    text = (f"Languages per {label or by} ({len(names)} group{'s' if len(names) != 1 else ''}): "
            + ", ".join(f"{name} ({int(counts.get(name, 0))})" for name in names) + ".")
    empty = [name for name in names if counts.get(name, 0) == 0]
    single = [name for name in names if counts.get(name, 0) == 1]
    if empty:
        text += f" No language in {', '.join(empty)}: an empty group cannot be compared."
    if single:
        text += (f" One language only in {', '.join(single)}: a difference there is between single "
                 "languages, not groups.")
    return text


def extreme_group(values, *, largest: bool = True, tolerance: float = 1e-9) -> str | None:
    """The group with the largest (or smallest) finite value; None when no group or a tie decides."""
    finite = {key: float(value) for key, value in dict(values).items() if value is not None and math.isfinite(value)}
    if not finite:
        return None
    target = max(finite.values()) if largest else min(finite.values())
    winners = [key for key, value in finite.items() if abs(value - target) <= tolerance]
    return winners[0] if len(winners) == 1 else None
