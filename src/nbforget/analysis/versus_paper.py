"""Our runs beside the paper: its tables side by side, its claims checked, the sentences that say so.

    table1_comparison(study)              our Table 1 beside the paper's, as text (one sweep point)
    table1_comparison_by_point(study)     the same with a row per sweep point for the swept strategies
    table2_comparison(study)              our CBT, CFT and forgetting beside the paper's Table 2
    paper_final_scores(study)             the paper's F1 of each of our strategies it ran
    ranking_agreement(ours, paper)        pairs of strategies ranked the same way in both
    scale_statement(study)                our setting against the paper's, and what can be compared

Claims (``PAPER_CLAIMS`` and the paper's tables and figures, as directions that can be checked):

    claim_checks(study)                   one row per checkable claim: the paper, ours, agrees
    claim_table(checks)                   the same as a page shows it; claims_summary(checks)
    agreement_label(agrees)               "agrees", "disagrees", "not measurable here"
    SCRIPT_CONTRAST, FAMILY_CONTRAST      the paper's group contrasts: groups and expected signs
    contrast_table(measures, contrast, strategies), contrast_text(...)

Sentences of the analysis pages, computed from the same numbers as the checks:

    ranking_text(study)                   final averages ranked, against Table 1 (and vitality)
    transfer_text(study)                  CBT and CFT of VANILLA and SHARED LoRA against Table 2
    average_over_time_text(study)         the drop over the sequence against Figure 2
    shift_text(study, strategy)           the most destructive language against Figure 3
    hop_text(study, strategy)             weakest and strongest receivers and donors (Figures 5, 6)
    vitality_comparison(study, measures)  final score by vitality beside Table 1's columns
    vitality_text(study)                  the best and worst vitality bucket per strategy
    vitality_transfer_text(measures, strategies)   the bucket with the lowest MBT per strategy

VANILLA and MULTI are the registry's baseline and reference (`baseline_strategy`,
`reference_strategy`); the paper's methods are found through their ``paper_name``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import pandas as pd

from nbforget.languages import VITALITY_BUCKETS

from nbforget.analysis.groups import (FAMILY_POOR, FAMILY_STRONG, extreme_group, group_difference,
                                      group_summary, language_measures)
from nbforget.analysis.paper import (PAPER_CLAIMS, PAPER_FIGURE2, PAPER_FIGURE3, PAPER_NAMES, PAPER_SETTING,
                                     PAPER_TABLE2, PaperRow, paper_method_strategy, paper_row)
from nbforget.analysis.prose import display_name, format_interval, runs_setting
from nbforget.analysis.study import Study, baseline_strategy, reference_strategy
from nbforget.analysis.tables import (average_over_time, focus_strategy, hop_tables, performance_shift,
                                      table1, table2)

__all__ = [
    "table1_comparison",
    "table1_comparison_by_point",
    "table2_comparison",
    "ranking_agreement",
    "paper_final_scores",
    "scale_statement",
    "Contrast",
    "SCRIPT_CONTRAST",
    "FAMILY_CONTRAST",
    "MEASURE_LABELS",
    "agreement_label",
    "claim_checks",
    "claim_table",
    "claims_summary",
    "contrast_table",
    "contrast_text",
    "ranking_text",
    "transfer_text",
    "average_over_time_text",
    "shift_text",
    "hop_text",
    "vitality_comparison",
    "vitality_text",
    "vitality_transfer_text",
]

SHARED_LORA = "SHARED LoRA"  # the paper's method that Table 2 compares with VANILLA


def _lora_rank(study: Study) -> int:
    return int(study.config.strategy.lora.rank)


def _paper_label(row: PaperRow | None) -> str:
    if row is None:
        return "not in the paper"
    return row.method + (f" (r = {row.rank})" if row.rank is not None else "")


def _paper_transfer(study: Study, strategy: str) -> tuple[float, float] | None:
    """The paper's (CBT, CFT) of `strategy` from Table 2, for the study's LoRA rank; None if absent."""
    row = paper_row(strategy, _lora_rank(study))
    return PAPER_TABLE2.get((row.method, row.rank)) if row else None


# ---------------------------------------------------------------------------------------------
# side by side with the paper
# ---------------------------------------------------------------------------------------------


def table1_comparison(study: Study) -> pd.DataFrame:
    """Our Table 1 beside the paper's, as text: one row per strategy with complete runs.

    Ours: trainable parameters as the paper counts them, final average with its interval over
    orders, and the final average by vitality bucket. The paper's: parameters (millions) and F1
    as a fraction (its percent / 100) overall and by vitality, from the row `paper_row` picks.
    """
    ours = table1(study)
    if ours.empty:
        return pd.DataFrame()
    buckets = list(study.config.vitality_buckets)
    rows = {}
    for strategy, row in ours.iterrows():
        paper = paper_row(strategy, _lora_rank(study))
        entry = {
            ("ours", "orders"): str(int(row["n_orders"])),
            ("ours", "trainable parameters"): f"{int(row['params_distinct']):,}",
            ("ours", "final average"): format_interval(row["final_average"], row["final_average_low"],
                                                       row["final_average_high"], int(row["n_orders"])),
        }
        for bucket in buckets:
            entry[("ours", bucket)] = format_interval(row[bucket]) if math.isfinite(row[bucket]) else "no language"
        entry[("paper", "method")] = _paper_label(paper)
        entry[("paper", "params (M)")] = f"{paper.params_m:,.2f}" if paper else ""
        entry[("paper", "F1")] = f"{paper.f1 / 100:.3f}" if paper else ""
        for bucket in VITALITY_BUCKETS:
            entry[("paper", bucket)] = f"{getattr(paper, bucket) / 100:.3f}" if paper else ""
        rows[display_name(strategy)] = entry
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = "strategy"
    return frame


def table1_comparison_by_point(study: Study) -> pd.DataFrame:
    """`table1_comparison` of every sweep point of `study` (`Study.points`), one table: a strategy
    the sweep changes has a row per point, labelled with its swept values ("SHARED LoRA
    (strategy.lora.rank = 32)"), each beside the paper's row for that point's settings; the other
    strategies have one row (their runs are the same at every point). Without a sweep (or with
    one point) it is `table1_comparison` of that point."""
    points = study.points()
    if len(points) == 1:
        return table1_comparison(study.at(points[0]))
    rows: list[tuple[int, int, str, pd.Series]] = []
    shown: set[str] = set()
    order = study.strategies
    columns = None
    for index, point in enumerate(points):
        part = study.at(point)
        table = table1_comparison(part)
        if table.empty:
            continue
        columns = table.columns if columns is None else columns
        names = {display_name(strategy): strategy for strategy in part.strategies}
        for label, row in table.iterrows():
            strategy = names[label]
            swept = part.of(strategy)[0].swept
            if not swept:
                if strategy in shown:
                    continue
                shown.add(strategy)
            else:
                label = f"{label} (" + ", ".join(f"{key} = {value}" for key, value in swept.items()) + ")"
            rows.append((order.index(strategy), index, label, row))
    if not rows:
        return pd.DataFrame()
    rows.sort(key=lambda entry: entry[:2])
    frame = pd.DataFrame([row for *_, row in rows], index=[label for _, _, label, _ in rows], columns=columns)
    frame.index.name = "strategy"
    return frame


def table2_comparison(study: Study) -> pd.DataFrame:
    """Our CBT, CFT and forgetting (intervals over orders) beside the paper's Table 2, as text."""
    ours = table2(study)
    if ours.empty:
        return pd.DataFrame()
    rows = {}
    for strategy, row in ours.iterrows():
        paper = paper_row(strategy, _lora_rank(study))
        reported = _paper_transfer(study, strategy)
        n = int(row["n_orders"])
        rows[display_name(strategy)] = {
            ("ours", "orders"): str(n),
            ("ours", "CBT"): format_interval(row["cbt"], row["cbt_low"], row["cbt_high"], n, signed=True),
            ("ours", "CFT"): format_interval(row["cft"], row["cft_low"], row["cft_high"], n),
            ("ours", "forgetting"): format_interval(row["forgetting"], row["forgetting_low"],
                                                    row["forgetting_high"], n, signed=True),
            ("paper", "method"): _paper_label(paper) if reported else "not in Table 2",
            ("paper", "CBT"): f"{reported[0]:+.2f}" if reported else "",
            ("paper", "CFT"): f"{reported[1]:.2f}" if reported else "",
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = "strategy"
    return frame


def ranking_agreement(ours: dict[str, float], paper: dict[str, float]) -> tuple[int, int]:
    """Pairs of strategies ranked the same way here and in the paper: ``(agreeing, pairs)``.

    Only strategies present (and finite) in both mappings count; ties count as disagreement.
    """
    names = [name for name in ours if name in paper and math.isfinite(ours[name]) and math.isfinite(paper[name])]
    agreeing = pairs = 0
    for index, first in enumerate(names):
        for second in names[index + 1:]:
            pairs += 1
            if (ours[first] - ours[second]) * (paper[first] - paper[second]) > 0:
                agreeing += 1
    return agreeing, pairs


def paper_final_scores(study: Study) -> dict[str, float]:
    """The paper's F1 (as a fraction) of each of our strategies it ran."""
    found = {}
    for strategy in study.strategies:
        row = paper_row(strategy, _lora_rank(study))
        if row is not None:
            found[strategy] = row.f1 / 100
    return found


def scale_statement(study: Study) -> str:
    """A paragraph of Markdown: our setting against the paper's, and what can be compared."""
    config = study.config
    parameters = None
    for run in study.runs:
        if run.strategy in (baseline_strategy(), reference_strategy()):
            parameters = int(run.trainable.get("max_per_step", 0)) or None
            break
    size = f" with {parameters:,} trainable parameters (encoder and head)" if parameters else ""
    return (
        f"**Scale.** {runs_setting(study, f'`{config.model.name}` model{size}')} The paper's setting: {PAPER_SETTING}. "
        "Levels of scores are therefore not comparable between the two; what can be compared is the "
        "direction of each effect (does a strategy forget at all, does one group of languages forget more) "
        "and the ranking of the strategies. With one order there is no interval, and a difference between "
        "single languages is not evidence of a difference between groups."
    )


# ---------------------------------------------------------------------------------------------
# the numbers behind the checks and the sentences
# ---------------------------------------------------------------------------------------------


def agreement_label(agrees: bool | None) -> str:
    """How a page writes the ``agrees`` of a check."""
    return "not measurable here" if agrees is None else "agrees" if agrees else "disagrees"


def _sign_agrees(value: float | None, sign: int) -> bool | None:
    """Whether `value` has the sign the paper reports (zero does not); None when it is undefined."""
    if value is None or not math.isfinite(value):
        return None
    return bool(value * sign > 0)


class _Ranking(NamedTuple):
    finals: dict[str, float]  # our final average per strategy
    agreeing: int  # pairs ordered as in the paper's Table 1
    pairs: int  # pairs of strategies the paper also ran
    position: int | None  # the reference's (MULTI's) rank here; None without its run
    tied: list[str]  # strategies with exactly the reference's final average


def _ranking(study: Study) -> _Ranking | None:
    ours = table1(study)
    if ours.empty:
        return None
    finals = ours["final_average"].to_dict()
    agreeing, pairs = ranking_agreement(finals, paper_final_scores(study))
    reference = reference_strategy()
    position, tied = None, []
    if reference in finals:
        position = 1 + sum(1 for name in finals if finals[name] > finals[reference])  # ties share a rank
        tied = [name for name in finals if name != reference and finals[name] == finals[reference]]
    return _Ranking(finals, agreeing, pairs, position, tied)


def _paper_ranking(study: Study) -> str:
    """The paper's Table 1 order of its methods, best first (LoRA rows of the study's rank)."""
    rows = {name: paper_row(name, _lora_rank(study)) for name in PAPER_NAMES}
    return " > ".join(display_name(name) for name in sorted(rows, key=lambda name: -rows[name].f1))


class _Extremes(NamedTuple):
    best: dict[str, str | None]  # per strategy: the vitality bucket with the best final score
    worst: dict[str, str | None]
    filled: list[str]  # buckets with a language
    absent: list[str]  # buckets without one


def _vitality_extremes(study: Study) -> _Extremes:
    ours = table1(study)
    buckets = list(study.config.vitality_buckets)
    if ours.empty:
        return _Extremes({}, {}, [], buckets)
    filled = [bucket for bucket in buckets if ours[bucket].notna().any()]
    best = {name: extreme_group(ours.loc[name, filled]) for name in ours.index}
    worst = {name: extreme_group(ours.loc[name, filled], largest=False) for name in ours.index}
    return _Extremes(best, worst, filled, [bucket for bucket in buckets if bucket not in filled])


def _drops(curves: pd.DataFrame) -> pd.Series:
    """Per strategy: the average over seen languages after the first step minus after the last,
    averaged over orders (positive = it fell)."""
    ends = (curves[~curves["joint"]].sort_values("step")
            .groupby(["strategy", "order"], sort=False)["value"].agg(["first", "last"]))
    return (ends["first"] - ends["last"]).groupby("strategy", sort=False).mean()


class _Shift(NamedTuple):
    defined: pd.DataFrame  # `performance_shift` rows with a mean, most destructive first
    worst: str | None  # the most destructive language; None on a tie
    best: str | None  # the best donor


def _shift(study: Study, strategy: str | None) -> _Shift | None:
    shift = performance_shift(study, strategy) if strategy else None
    if shift is None or not shift["mean"].notna().any():
        return None
    defined = shift.dropna(subset=["mean"]).sort_values("mean")
    return _Shift(defined, extreme_group(defined["mean"], largest=False), extreme_group(defined["mean"]))


def _hop_means(study: Study, strategy: str | None) -> dict[str, pd.Series] | None:
    """Per language, MBT and MFT averaged over hops, sorted from the lowest."""
    hops = hop_tables(study, strategy) if strategy else None
    if not hops:
        return None
    return {metric: hops[metric]["mean"].mean(axis=1, skipna=True).dropna().sort_values() for metric in ("mbt", "mft")}


def _in_half(means: pd.Series, languages: Sequence[str], *, lower: bool) -> tuple[list[str], list[str]]:
    """Those of `languages` present in `means` (sorted from the lowest), and those in its lower
    (or upper) half; with an odd count the middle language is in both halves."""
    ranked = list(means.index)
    named = [language for language in languages if language in ranked]
    size = len(ranked)
    inside = [language for language in named
              if (ranked.index(language) if lower else size - 1 - ranked.index(language)) < size / 2]
    return named, inside


def _lowest_mbt_bucket(measures: pd.DataFrame, strategy: str) -> tuple[bool, str | None]:
    """(whether buckets can be compared: two with an MBT, one of them the paper's; the bucket with
    the lowest MBT, None on a tie)."""
    summary = group_summary(measures, "vitality", "mbt_mean", strategies=[strategy])
    means = summary.set_index("group")["mean"].dropna()
    comparable = len(means) >= 2 and PAPER_CLAIMS["vitality"]["most_negative_mbt"] in means.index
    return comparable, extreme_group(means, largest=False) if comparable else None


# ---------------------------------------------------------------------------------------------
# group contrasts
# ---------------------------------------------------------------------------------------------


class Contrast(NamedTuple):
    """One of the paper's group contrasts: `first` minus `second` (groups of `by`, a column of
    `language_measures`), with the sign the paper reports for each measure."""

    topic: str
    by: str
    first: str
    second: str
    signs: dict[str, int]
    label: str


MEASURE_LABELS = {"mbt_mean": "MBT", "mft_mean": "MFT", "forgetting": "forgetting"}
"""The measures a contrast checks, as the pages name them."""


def _signs(*, weaker_first: bool) -> dict[str, int]:
    """The weaker group donates less (MFT) and keeps less (MBT), so it forgets more."""
    transfer = -1 if weaker_first else +1
    return {"mbt_mean": transfer, "mft_mean": transfer, "forgetting": -transfer}


SCRIPT_CONTRAST = Contrast(
    "script", "latin", PAPER_CLAIMS["script"]["weaker"], PAPER_CLAIMS["script"]["stronger"],
    _signs(weaker_first=True), f"{PAPER_CLAIMS['script']['weaker']} minus {PAPER_CLAIMS['script']['stronger']}",
)
"""Non-Latin minus Latin languages: negative MBT and MFT differences, a positive forgetting one."""

FAMILY_CONTRAST = Contrast(
    "family", "paper_family_group", FAMILY_STRONG, FAMILY_POOR, _signs(weaker_first=False),
    "/".join(PAPER_CLAIMS["family"]["strong"]) + " minus distant",
)
"""Romance or Germanic languages minus the distant families the paper names: positive MBT and MFT
differences, a negative forgetting one."""


class _Difference(NamedTuple):
    strategy: str
    measure: str
    sign: int
    text: str  # the difference with its interval
    agrees: bool | None


def _contrast_rows(measures: pd.DataFrame, contrast: Contrast, strategy: str) -> list[_Difference]:
    rows = []
    for measure, sign in contrast.signs.items():
        difference = group_difference(measures, contrast.by, measure, contrast.first, contrast.second,
                                      strategy=strategy)
        text = format_interval(difference["mean"], difference["ci_low"], difference["ci_high"], difference["n"],
                               signed=True)
        rows.append(_Difference(strategy, measure, sign, text, _sign_agrees(difference["mean"], sign)))
    return rows


def _direction(sign: int) -> str:
    return "negative" if sign < 0 else "positive"


def contrast_table(measures: pd.DataFrame, contrast: Contrast, strategies: Iterable[str]) -> pd.DataFrame:
    """Per strategy and measure: `contrast`'s difference with its interval, the paper's sign and
    whether ours agrees; indexed by (strategy, measure); empty without strategies."""
    rows = [{"strategy": display_name(row.strategy), "measure": MEASURE_LABELS[row.measure], contrast.label: row.text,
             "the paper": _direction(row.sign), "agreement": agreement_label(row.agrees)}
            for strategy in strategies for row in _contrast_rows(measures, contrast, strategy)]
    return pd.DataFrame(rows).set_index(["strategy", "measure"]) if rows else pd.DataFrame()


def contrast_text(measures: pd.DataFrame, contrast: Contrast, strategies: Iterable[str], *,
                  focus: str | None = None) -> str:
    """Sentences on `contrast_table`: which groups are missing, `focus`'s differences (the
    strategy of the paper's heatmaps), and how many measurable differences have the paper's sign."""
    strategies = list(strategies)
    rows = [row for strategy in strategies for row in _contrast_rows(measures, contrast, strategy)]
    parts = []
    present = set(measures[contrast.by].dropna()) if contrast.by in measures else set()
    missing = [group for group in (contrast.first, contrast.second) if group not in present]
    if missing and not measures.empty:
        parts.append("The profile has no language in " + " and ".join(f"*{group}*" for group in missing)
                     + f", so the paper's {contrast.topic} contrast cannot be measured with these runs.")
    if not rows:
        return " ".join(parts)
    if focus in strategies:
        parts.append(f"For {display_name(focus)}, the setting of the paper's heatmaps, {contrast.label}: "
                     + "; ".join(f"{MEASURE_LABELS[row.measure]} {row.text} ({agreement_label(row.agrees)})"
                                 for row in rows if row.strategy == focus) + ".")
    measurable = [row for row in rows if row.agrees is not None]
    agreeing = sum(1 for row in measurable if row.agrees)
    if measurable:
        visible = agreeing > len(measurable) / 2
        parts.append(f"Over all sequential strategies and measures, {agreeing} of "
                     f"{len(measurable)} measurable differences have the sign the paper reports: its "
                     f"{contrast.topic} contrast {'is visible' if visible else 'is not reproduced'} at this scale. "
                     "A difference whose interval includes zero is not evidence either way.")
    else:
        parts.append("None of the differences is measurable with these languages and runs.")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# the claims, checked
# ---------------------------------------------------------------------------------------------

CHECK_COLUMNS = ["check", "topic", "strategy", "claim", "paper", "ours", "agrees", "sentence"]


def _check(check: str, topic: str, claim: str, paper: str, ours: str, agrees: bool | None,
           strategy: str | None = None) -> dict:
    verdict = "not measurable with these runs" if agrees is None else "agrees" if agrees else "disagrees"
    return {"check": check, "topic": topic, "strategy": strategy, "claim": claim, "paper": paper, "ours": ours,
            "agrees": agrees, "sentence": f"{claim}: the paper says {paper}, these runs give {ours}; {verdict}."}


def _table1_checks(study: Study) -> list[dict]:
    reference, rows = reference_strategy(), []
    ranking = _ranking(study)
    pairs = ranking.pairs if ranking else 0
    rows.append(_check("ranking", "table1", "ranking of the final averages (Table 1)", _paper_ranking(study),
                       f"{ranking.agreeing} of {pairs} pairs as in the paper" if pairs else
                       "no two of the paper's strategies", ranking.agreeing > pairs / 2 if pairs else None))
    position = ranking.position if ranking else None
    rows.append(_check("reference_best", "table1", f"{display_name(reference)} has the best final average (Table 1)",
                       f"yes ({paper_row(reference).f1 / 100:.3f})",
                       f"rank {position}" if position else f"no complete {display_name(reference)} run",
                       position == 1 if position else None, reference))
    extremes = _vitality_extremes(study)
    for check, bucket, chosen, role in (
            ("vitality_best_final", PAPER_CLAIMS["vitality"]["best_final"], extremes.best, "best"),
            ("vitality_worst_final", PAPER_CLAIMS["vitality"]["worst_final"], extremes.worst, "worst")):
        claim = f"{bucket} vitality has the {role} final score (Table 1)"
        if len(extremes.filled) < 2 or bucket not in extremes.filled:
            ours = ("no complete run" if not extremes.best else
                    "fewer than two vitality buckets with languages" if len(extremes.filled) < 2 else
                    f"no language in the {bucket} bucket")
            rows.append(_check(check, "vitality", claim, "in every method", ours, None))
            continue
        count = sum(1 for name in chosen if chosen[name] == bucket)
        rows.append(_check(check, "vitality", claim, "in every method", f"in {count} of {len(chosen)}",
                           count > len(chosen) / 2))
    return rows


def _table2_checks(study: Study) -> list[dict]:
    baseline, shared = baseline_strategy(), paper_method_strategy(SHARED_LORA)
    transfer = table2(study)
    paper_base = _paper_transfer(study, baseline)
    cbt = transfer.loc[baseline, "cbt"] if baseline in transfer.index else float("nan")
    rows = [_check("baseline_forgets", "table2", f"{display_name(baseline)} forgets (CBT < 0, Table 2)",
                   f"{paper_base[0]:+.2f}", f"{cbt:+.3f}" if math.isfinite(cbt) else
                   f"no complete {display_name(baseline)} run", _sign_agrees(cbt, -1), baseline)]
    if shared is not None:
        paper_shared = _paper_transfer(study, shared)
        sign = -1 if paper_shared[0] < paper_base[0] else +1
        shared_cbt = transfer.loc[shared, "cbt"] if shared in transfer.index else float("nan")
        both = math.isfinite(cbt) and math.isfinite(shared_cbt)
        rows.append(_check("shared_lora_forgets_more", "table2",
                           f"{display_name(shared)} forgets {'more' if sign < 0 else 'less'} than "
                           f"{display_name(baseline)} (Table 2)",
                           f"{paper_shared[0]:+.2f} vs {paper_base[0]:+.2f}",
                           f"{shared_cbt:+.3f} vs {cbt:+.3f}" if both else "not both run",
                           _sign_agrees(shared_cbt - cbt, sign) if both else None, shared))
    return rows


def _figure_checks(study: Study, focus: str | None) -> list[dict]:
    baseline = baseline_strategy()
    name = display_name(baseline)
    curves = average_over_time(study)
    drops = _drops(curves) if not curves.empty else pd.Series(dtype=float)
    low, high = PAPER_FIGURE2["vanilla_drop"]
    drop = float(drops[baseline]) if baseline in drops.index else float("nan")
    rows = [_check("baseline_average_falls", "figure2", f"{name}'s average falls over the sequence (Figure 2)",
                   f"change {-low:+.2f} to {-high:+.2f}",
                   f"change {-drop:+.3f}" if math.isfinite(drop) else f"no complete {name} run",
                   _sign_agrees(drop, +1), baseline)]
    shift = _shift(study, focus)
    for check, language, role in (("most_destructive", PAPER_FIGURE3["most_destructive"], "most destructive"),
                                  ("best_donor", PAPER_FIGURE3["best_donor"], "best donor")):
        claim = f"{language} is the {role} (Figure 3)"
        if shift is None:
            rows.append(_check(check, "figure3", claim, "yes", "no sequential run", None, focus))
        elif language not in shift.defined.index:
            rows.append(_check(check, "figure3", claim, "yes", f"{language} is not among these languages", None, focus))
        else:
            here = shift.worst if check == "most_destructive" else shift.best
            rank = list(shift.defined.index).index(language) + 1
            rows.append(_check(check, "figure3", claim, "yes", f"rank {rank} of {len(shift.defined)}",
                               here == language, focus))
    means = _hop_means(study, focus)
    for check, key, lower, extreme in (("forgetting_languages", "forgetting_languages", True, "most negative"),
                                       ("robust_receivers", "robust_receivers", False, "highest")):
        languages = PAPER_CLAIMS[key]
        claim = f"{', '.join(languages)} have the {extreme} MBT (Figure 5)"
        named, inside = _in_half(means["mbt"], languages, lower=lower) if means else ([], [])
        if not named:
            ours = "none of them among these languages" if means else "no sequential run"
            rows.append(_check(check, "figure5", claim, "yes", ours, None, focus))
            continue
        rows.append(_check(check, "figure5", claim, "yes",
                           f"{len(inside)} of {len(named)} in the {'lower' if lower else 'upper'} half",
                           len(inside) > len(named) / 2, focus))
    return rows


def _group_checks(measures: pd.DataFrame, strategies: Sequence[str]) -> list[dict]:
    rows = []
    for contrast in (SCRIPT_CONTRAST, FAMILY_CONTRAST):
        present = set(measures[contrast.by].dropna()) if not measures.empty else set()
        missing = [group for group in (contrast.first, contrast.second) if group not in present]
        for measure, sign in contrast.signs.items():
            if not strategies:
                rows.append(_check(f"{contrast.topic}_{MEASURE_LABELS[measure].lower()}", contrast.topic,
                                   f"{MEASURE_LABELS[measure]}, {contrast.label} (section 5, {contrast.topic})",
                                   _direction(sign), "no sequential run", None))
        for strategy in strategies:
            for row in _contrast_rows(measures, contrast, strategy):
                ours = f"no language in {' or '.join(missing)}" if missing else row.text
                rows.append(_check(f"{contrast.topic}_{MEASURE_LABELS[row.measure].lower()}", contrast.topic,
                                   f"{MEASURE_LABELS[row.measure]}, {contrast.label} (section 5, {contrast.topic}; "
                                   f"{display_name(strategy)})", _direction(row.sign), ours, row.agrees, strategy))
    claims = PAPER_CLAIMS["vitality"]
    lowest_bucket = claims["most_negative_mbt"]
    weaker, stronger = claims["weaker_donor_than"]
    for strategy in strategies or [None]:
        suffix = f" ({display_name(strategy)})" if strategy else ""
        comparable, lowest = _lowest_mbt_bucket(measures, strategy) if strategy else (False, None)
        rows.append(_check("vitality_mbt", "vitality", f"{lowest_bucket} vitality has the most negative MBT{suffix}",
                           "yes", f"lowest: {lowest or 'a tie'}" if comparable else
                           (f"the {lowest_bucket} bucket, or a second one, has no MBT" if strategy
                            else "no sequential run"), lowest == lowest_bucket if comparable else None, strategy))
        difference = (group_difference(measures, "vitality", "mft_mean", weaker, stronger, strategy=strategy)
                      if strategy else {"mean": float("nan")})
        ours = (format_interval(difference["mean"], difference["ci_low"], difference["ci_high"], difference["n"],
                                signed=True) if math.isfinite(difference["mean"]) else
                f"no MFT in the {weaker} or {stronger} bucket" if strategy else "no sequential run")
        rows.append(_check("vitality_mft", "vitality",
                           f"{weaker} vitality donates less than {stronger}, MFT {weaker} minus {stronger}{suffix}",
                           "negative", ours, _sign_agrees(difference["mean"], -1), strategy))
    return rows


def claim_checks(study: Study, *, strategies: Iterable[str] | None = None,
                 measures: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every claim of the paper these runs can check, one row each, checked.

    Columns: ``check`` (an identifier: ``ranking``, ``reference_best``, ``baseline_forgets``,
    ``shared_lora_forgets_more``, ``baseline_average_falls``, ``most_destructive``,
    ``best_donor``, ``forgetting_languages``, ``robust_receivers``, ``script_mbt``, ``script_mft``,
    ``script_forgetting``, ``family_...``, ``vitality_best_final``, ``vitality_worst_final``,
    ``vitality_mbt``, ``vitality_mft``), ``topic`` (``table1``, ``table2``, ``figure2``,
    ``figure3``, ``figure5``, ``script``, ``family``, ``vitality``), ``strategy`` (ours the check
    was made on, None for a claim over all strategies), ``claim``, ``paper`` (what the paper
    says), ``ours`` (our value(s), or why there is none), ``agrees`` (True, False, or None when
    these runs cannot answer), ``sentence``.

    The per-language claims (Figures 3 and 5) are checked on `focus_strategy` (VANILLA); the
    script, family and vitality contrasts on each of `strategies` (default: that strategy alone).
    A claim that cannot be checked still has its row, with ``agrees`` None. Directions are
    compared, not levels: zero counts as disagreeing with a sign, and a count of strategies or
    languages agrees when more than half of it does.
    """
    focus = focus_strategy(study)
    chosen = list(strategies) if strategies is not None else ([focus] if focus else [])
    measures = language_measures(study) if measures is None else measures
    rows = [*_table1_checks(study), *_table2_checks(study), *_figure_checks(study, focus),
            *_group_checks(measures, chosen)]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def claim_table(checks: pd.DataFrame) -> pd.DataFrame:
    """`claim_checks` as a page shows it: question, the paper, here, agreement (as words)."""
    return pd.DataFrame({"question": checks["claim"], "the paper": checks["paper"], "here": checks["ours"],
                         "agreement": [agreement_label(agrees) for agrees in checks["agrees"]]}).set_index("question")


def claims_summary(checks: pd.DataFrame, *, pattern: str = "pattern") -> str:
    """One sentence on `claim_checks`: how many checkable claims agree, and how many cannot be checked."""
    verdicts = [agrees for agrees in checks["agrees"] if agrees is not None]
    unanswered = len(checks) - len(verdicts)
    if not verdicts:
        return "None of these claims can be checked with these runs and languages."
    agreeing = sum(1 for agrees in verdicts if agrees)
    return (f"{agreeing} of {len(verdicts)} checkable claims agree with the paper: its {pattern} "
            f"{'is visible' if agreeing > len(verdicts) / 2 else 'is not reproduced'} at this scale."
            + (f" {unanswered} cannot be checked with these runs." if unanswered else ""))


# ---------------------------------------------------------------------------------------------
# sentences of the overview page
# ---------------------------------------------------------------------------------------------


def ranking_text(study: Study) -> str:
    """Our final averages ranked, the pairs ordered as in Table 1, the reference's rank, and the
    best vitality bucket per strategy against the paper's; empty without runs."""
    ranking = _ranking(study)
    if ranking is None:
        return ""
    finals, reference = ranking.finals, reference_strategy()
    ranked = sorted(finals, key=lambda name: -finals[name])
    sentences = ["Ranked by final average here: "
                 + ", ".join(f"{display_name(name)} ({finals[name]:.3f})" for name in ranked) + "."]
    if ranking.pairs:
        sentences.append(
            f"Of the {ranking.pairs} pairs of strategies the paper also ran, {ranking.agreeing} are ordered as in "
            f"its Table 1 ("
            + ("mostly the same ranking" if ranking.agreeing > ranking.pairs / 2 else "a different ranking") + ")."
        )
    if ranking.position is not None:
        sentences.append(f"{display_name(reference)} is "
                         + ("the best strategy" if ranking.position == 1 else f"number {ranking.position}") + " here"
                         + (f", tied with {', '.join(display_name(name) for name in ranking.tied)}"
                            if ranking.tied else "")
                         + f" (paper: the best, {paper_row(reference).f1 / 100:.3f}).")
    extremes = _vitality_extremes(study)
    if len(extremes.filled) >= 2:
        bucket = PAPER_CLAIMS["vitality"]["best_final"]
        count = sum(1 for name in extremes.best if extremes.best[name] == bucket)
        sentences.append(
            "Best vitality bucket per strategy here: "
            + ", ".join(f"{display_name(name)} {extremes.best[name] or 'none (a tie)'}" for name in extremes.best)
            + f". The paper finds {bucket} vitality best in every method; here {bucket} is best for {count} of "
            f"{len(extremes.best)}"
            + (f" (no language in the {', '.join(extremes.absent)} bucket)." if extremes.absent else ".")
        )
    return " ".join(sentences)


def transfer_text(study: Study) -> str:
    """VANILLA's CBT and CFT against Table 2, SHARED LoRA's against VANILLA's, and how many
    strategies beyond the paper's forget less than VANILLA; empty without a sequential run."""
    transfer = table2(study)
    if transfer.empty:
        return ""
    baseline, shared = baseline_strategy(), paper_method_strategy(SHARED_LORA)
    name = display_name(baseline)
    if baseline not in transfer.index:
        return f"{name} has no complete run: no comparison with the paper's Table 2."
    cbt, cft = transfer.loc[baseline, "cbt"], transfer.loc[baseline, "cft"]
    paper_cbt, paper_cft = _paper_transfer(study, baseline)
    sentences = [f"{name}'s CBT here is {cbt:+.3f} (paper: {paper_cbt:+.2f}): forgetting "
                 f"{'is' if cbt < 0 else 'is not'} visible at this scale. "
                 f"Its CFT is {cft:.3f} (paper: {paper_cft:.2f})."]
    if shared is not None and shared in transfer.index:
        shared_cbt, shared_cft = transfer.loc[shared, "cbt"], transfer.loc[shared, "cft"]
        paper_shared_cbt, paper_shared_cft = _paper_transfer(study, shared)
        difference = shared_cbt - cbt
        sign = -1 if paper_shared_cbt < paper_cbt else +1
        sentences.append(
            f"{display_name(shared)}'s CBT is {shared_cbt:+.3f}, {abs(difference):.3f} "
            f"{'below' if difference < 0 else 'above'} {name}'s; the paper finds it {'below' if sign < 0 else 'above'} "
            f"({paper_shared_cbt:+.2f} against {paper_cbt:+.2f}), "
            f"so ours {agreement_label(_sign_agrees(difference, sign))}."
        )
        sentences.append(f"Its CFT is {shared_cft:.3f} against {name}'s {cft:.3f} (paper: {paper_shared_cft:.2f} "
                         f"against {paper_cft:.2f}, {'lower' if paper_shared_cft < paper_cft else 'higher'}).")
    others = [strategy for strategy in transfer.index if strategy not in PAPER_NAMES]
    if others:
        better = [strategy for strategy in others if transfer.loc[strategy, "cbt"] > cbt]
        sentences.append(
            f"Of the {len(others)} strategies beyond the paper's, "
            + (f"{len(better)} keep a CBT above {name}'s ({', '.join(display_name(s) for s in better)}): less "
               "forgetting than plain sequential fine-tuning." if better else
               f"none keeps a CBT above {name}'s: none forgets less than plain sequential fine-tuning here.")
        )
    return " ".join(sentences)


def average_over_time_text(study: Study) -> str:
    """How much each strategy's average over the languages seen falls from the first language to
    the last, VANILLA's drop against Figure 2, and how many strategies end below MULTI's level."""
    curves = average_over_time(study)
    if curves.empty:
        return ""
    baseline, name = baseline_strategy(), display_name(baseline_strategy())
    drops = _drops(curves)
    changes = [f"{display_name(strategy)} "
               + ("stays level" if abs(drop) < 5e-4 else f"{'loses' if drop > 0 else 'gains'} {abs(drop):.3f}")
               for strategy, drop in drops.items()]
    text = ("From the first language to the last, the average over the languages seen: "
            + "; ".join(changes) + ".") if changes else ""
    if baseline in drops.index:
        low, high = PAPER_FIGURE2["vanilla_drop"]
        drop = drops[baseline]
        if drop > 0:
            text += (f" {name}'s drop of {drop:.3f} is {'within' if low <= drop <= high else 'outside'} the "
                     f"paper's {low:.2f} to {high:.2f}.")
        else:
            text += f" {name} does not lose here; the paper's {name} loses {low:.2f} to {high:.2f}."
    joint = curves[curves["joint"]]
    if not joint.empty:
        level = joint["value"].mean()
        finals = curves[~curves["joint"]].sort_values("step").groupby("strategy")["value"].last()
        below = [strategy for strategy in finals.index if finals[strategy] < level]
        text += (f" {display_name(reference_strategy())}'s level is {level:.3f}; {len(below)} of {len(finals)} "
                 "sequential strategies end below it.")
    return text


def shift_text(study: Study, strategy: str | None) -> str:
    """`strategy`'s most destructive language and best donor, and where the paper's (Figure 3)
    rank here; empty without a performance shift."""
    shift = _shift(study, strategy)
    if shift is None:
        return ""

    def phrase(language: str) -> str:
        row = shift.defined.loc[language]
        return format_interval(row["mean"], row["ci_low"], row["ci_high"], int(row["n"]), signed=True, prose=True)

    text = (f"For {display_name(strategy)}, the most destructive language here is "
            + (f"{shift.worst} ({phrase(shift.worst)})" if shift.worst else "not one language (a tie)")
            + " and the best donor "
            + (f"{shift.best} ({phrase(shift.best)})." if shift.best else "not one language (a tie)."))
    for language, role, here in ((PAPER_FIGURE3["most_destructive"], "most destructive", shift.worst),
                                 (PAPER_FIGURE3["best_donor"], "best donor", shift.best)):
        if language in shift.defined.index:
            rank = list(shift.defined.index).index(language) + 1
            text += (f" The paper's {role}, {language}, ranks {rank} of {len(shift.defined)} from the most "
                     f"destructive here ({'the same' if here == language else 'not the same'} conclusion).")
        else:
            text += f" The paper's {role}, {language}, is not among these languages."
    return text


def hop_text(study: Study, strategy: str | None) -> str:
    """`strategy`'s weakest and strongest receiver (MBT) and donor (MFT), and where the paper's
    most forgetting languages and most robust receivers (Figure 5) fall here; empty without hops."""
    means = _hop_means(study, strategy)
    if means is None:
        return ""
    sentences = []
    for metric, role in (("mbt", "receiver"), ("mft", "donor")):
        values = means[metric]
        if values.empty:
            continue
        weakest, strongest = extreme_group(values, largest=False), extreme_group(values)
        sentences.append(f"By mean {metric.upper()} over h, the weakest {role} here is "
                         + (f"{weakest} ({values[weakest]:+.3f})" if weakest else "not one language (a tie)")
                         + " and the strongest "
                         + (f"{strongest} ({values[strongest]:+.3f})." if strongest else "not one language (a tie)."))
        if metric != "mbt":
            continue
        for key, kind, lower in (("forgetting_languages", "most forgetting languages", True),
                                 ("robust_receivers", "most robust receivers", False)):
            named, inside = _in_half(values, PAPER_CLAIMS[key], lower=lower)
            if named:
                sentences.append(f"Of the paper's {kind} present here ({', '.join(named)}), {len(inside)} fall in "
                                 f"the {'lower' if lower else 'upper'} half by MBT.")
    return " ".join(sentences)


# ---------------------------------------------------------------------------------------------
# the vitality page
# ---------------------------------------------------------------------------------------------


def vitality_comparison(study: Study, measures: pd.DataFrame) -> pd.DataFrame:
    """Final score by vitality bucket (mean over orders, with its interval) beside the paper's
    Table 1 columns for the method each strategy is compared with; empty without runs."""
    summary = group_summary(measures, "vitality", "final")
    if summary.empty:
        return pd.DataFrame()
    rows = {}
    for strategy in study.strategies:
        part = summary[summary["strategy"] == strategy].set_index("group")
        entry = {}
        for bucket in study.config.vitality_buckets:
            if bucket in part.index:
                row = part.loc[bucket]
                entry[("ours", bucket)] = format_interval(row["mean"], row["ci_low"], row["ci_high"],
                                                          int(row["n_orders"]))
            else:
                entry[("ours", bucket)] = "no language"
        paper = paper_row(strategy, _lora_rank(study))
        for bucket in VITALITY_BUCKETS:
            entry[("paper", bucket)] = f"{getattr(paper, bucket) / 100:.3f}" if paper else "not in the paper"
        rows[display_name(strategy)] = entry
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def vitality_text(study: Study) -> str:
    """The best bucket per strategy, and for how many strategies the paper's best (mid) and worst
    (high) buckets are best and worst here; empty without runs."""
    extremes = _vitality_extremes(study)
    if not extremes.best:
        return ""
    if len(extremes.filled) < 2:
        return "Only one vitality bucket has languages in this profile: no comparison between buckets."
    best, worst = PAPER_CLAIMS["vitality"]["best_final"], PAPER_CLAIMS["vitality"]["worst_final"]
    sentences = ["Best bucket per strategy here: "
                 + ", ".join(f"{display_name(name)} {extremes.best[name] or 'none (a tie)'}" for name in extremes.best)
                 + "."]
    if best in extremes.filled:
        count = sum(1 for name in extremes.best if extremes.best[name] == best)
        sentences.append(f"The paper finds {best} vitality best in every method; here it is best for {count} of "
                         f"{len(extremes.best)} strategies.")
    if worst in extremes.filled:
        count = sum(1 for name in extremes.worst if extremes.worst[name] == worst)
        sentences.append(f"It finds {worst} vitality worst; here {worst} is worst for {count} of "
                         f"{len(extremes.worst)}.")
    return " ".join(sentences)


def vitality_transfer_text(measures: pd.DataFrame, strategies: Iterable[str]) -> str:
    """Per strategy, the vitality bucket with the lowest MBT (the paper: high)."""
    sentences = []
    for strategy in strategies:
        comparable, lowest = _lowest_mbt_bucket(measures, strategy)
        if comparable:
            sentences.append(f"{display_name(strategy)}: lowest MBT in the {lowest} bucket" if lowest
                             else f"{display_name(strategy)}: no single lowest bucket (a tie)")
    bucket = PAPER_CLAIMS["vitality"]["most_negative_mbt"]
    return ("; ".join(sentences) + "." if sentences else
            f"MBT by vitality cannot be compared here: the {bucket} bucket, or a second bucket, has no "
            "language with a defined MBT.")
