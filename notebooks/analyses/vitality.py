# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Language vitality
#
# Vitality here is the resource class of a language in the taxonomy of {cite:t}`joshi2020`, from
# 0 ("left-behinds") to 5 ("winners"), grouped as the core paper groups it: low (0-2), mid (3)
# and high (4-5). The paper finds, against intuition, that mid-vitality languages score best in
# every method (its Table 1), while high-vitality languages such as zh-CN, ja-JP and hi-IN forget
# the most (most negative MBT) and donate less than mid-vitality ones (lower MFT)
# {cite:p}`khelli2025`. This page measures the same on our runs, with 95% bootstrap intervals over
# orders, and states where ours agree; the sentences are computed from the numbers.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # the profile whose runs are read
runs_dir = None  # None: the profile's runs_dir (or the NBFORGET_RUNS_DIR environment variable)
overrides = {}  # settings that differ from the profile, as given to the strategy notebooks

# %%
import math

import pandas as pd
from IPython.display import Markdown, display

from nbforget.pages import notebook_config, versions_table
from nbforget import analysis, plots

config = notebook_config(params_file, overrides, runs_dir=runs_dir)
study = analysis.load_study(config)
measures = analysis.language_measures(study)
sequential = analysis.sequential_strategies(study)
BUCKETS = list(config.vitality_buckets)
checks = []
display(Markdown(study.describe()))
display(Markdown(analysis.scale_statement(study)))

# %% [markdown]
# ## 1. The languages
#
# Languages whose Joshi class is unknown have no vitality and are left out of this page.

# %%
facts = (measures.drop_duplicates("language")
         .set_index("language")[["name", "joshi_class", "vitality", "script", "family"]])
counts = facts["vitality"].value_counts()
display(Markdown(", ".join(f"{bucket}: {counts.get(bucket, 0)}" for bucket in BUCKETS) + " language(s)"
                 + (". Empty buckets cannot be compared." if any(counts.get(b, 0) == 0 for b in BUCKETS) else ".")
                 if not facts.empty else "No complete run yet: no languages to show."))
if not facts.empty:
    display(facts)

# %% [markdown]
# ## 2. Final score by vitality (the paper's Table 1)
#
# Ours: the final score averaged over each bucket's languages, per order, then over orders. The
# paper's: its Table 1 F1 by vitality, divided by 100, for the method (and LoRA rank) each of our
# strategies corresponds to.

# %% tags=["hide-input"]
summary = analysis.group_summary(measures, "vitality", "final")
if summary.empty:
    display(Markdown("No complete run yet: nothing to tabulate."))
else:
    rows = {}
    for strategy in study.strategies:
        part = summary[summary["strategy"] == strategy].set_index("group")
        entry = {}
        for bucket in BUCKETS:
            if bucket in part.index:
                row = part.loc[bucket]
                entry[("ours", bucket)] = analysis.format_interval(row["mean"], row["ci_low"], row["ci_high"],
                                                                   int(row["n_orders"]))
            else:
                entry[("ours", bucket)] = "no language"
        paper = analysis.paper_row(strategy, config.strategy.lora.rank)
        for bucket in ("low", "mid", "high"):
            entry[("paper", bucket)] = f"{getattr(paper, bucket) / 100:.3f}" if paper else "not in the paper"
        rows[analysis.display_name(strategy)] = entry
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    display(table)

# %% tags=["hide-input"]
if not summary.empty:
    filled = [b for b in BUCKETS if (summary["group"] == b).any()]
    if len(filled) >= 2:
        means = (summary.pivot(index="strategy", columns="group", values="mean")
                 .reindex(index=[s for s in study.strategies if s in set(summary["strategy"])], columns=filled))
        best = {s: analysis.extreme_group(means.loc[s]) for s in means.index}
        worst = {s: analysis.extreme_group(means.loc[s], largest=False) for s in means.index}
        sentences = ["Best bucket per strategy here: "
                     + ", ".join(f"{analysis.display_name(s)} {best[s] or 'none (a tie)'}" for s in means.index) + "."]
        if "mid" in filled:
            mid_best = sum(1 for s in best if best[s] == "mid")
            sentences.append(f"The paper finds mid vitality best in every method; here it is best for {mid_best} of "
                             f"{len(best)} strategies.")
            checks.append(("mid vitality has the best final score (Table 1)", "in every method",
                           f"in {mid_best} of {len(best)}", "agrees" if mid_best > len(best) / 2 else "disagrees"))
        if "high" in filled:
            high_worst = sum(1 for s in worst if worst[s] == "high")
            sentences.append(f"It finds high vitality worst; here high is worst for {high_worst} of {len(worst)}.")
            checks.append(("high vitality has the worst final score (Table 1)", "in every method",
                           f"in {high_worst} of {len(worst)}", "agrees" if high_worst > len(worst) / 2 else "disagrees"))
        display(Markdown(" ".join(sentences)))
    else:
        display(Markdown("Only one vitality bucket has languages in this profile: no comparison between buckets."))

# %% mystnb={"figure": {"caption": "Final score by vitality bucket for every strategy with complete runs; the dashed line is chance.", "name": "vitality-final"}}
(plots.plot_group_comparison(summary, points=analysis.group_points(measures, "vitality", "final"),
                             value_label="final score", group_label="vitality (Joshi classes)",
                             group_order=[b for b in BUCKETS if (summary["group"] == b).any()], chance=study.chance)
 if not summary.empty else plots.message_figure("no complete run yet"))

# %% [markdown]
# ## 3. Receivers and donors by vitality
#
# MBT and MFT averaged over hop distances, per bucket, for the strategies that learn languages in
# sequence (negative = the average over the languages seen fell). The paper expects the high
# bucket to have the most negative MBT, and a lower MFT than the mid bucket.

# %%
if not sequential:
    display(Markdown("No sequential run yet: nothing to compare."))
for value in ["forgetting", "mbt_mean", "mft_mean"] if sequential else []:
    table = analysis.measure_table(measures, "vitality", value, strategies=sequential, group_order=BUCKETS)
    display(Markdown(f"**{analysis.MEASURES[value]}**" + ("" if not table.empty else ": not defined for these runs.")))
    if not table.empty:
        display(table)

# %% mystnb={"figure": {"caption": "MBT averaged over hop distances, by vitality bucket: how well languages keep what they learned as later languages are trained.", "name": "vitality-mbt"}}
mbt = analysis.group_summary(measures, "vitality", "mbt_mean", strategies=sequential)
(plots.plot_group_comparison(mbt, points=analysis.group_points(measures, "vitality", "mbt_mean", strategies=sequential),
                             value_label="MBT, mean over h\n(negative = the average fell)",
                             group_label="vitality (Joshi classes)",
                             group_order=[b for b in BUCKETS if (mbt["group"] == b).any()], zero_line=True)
 if not mbt.empty else plots.message_figure("no sequential run yet"))

# %% tags=["hide-input"]
mft = analysis.group_summary(measures, "vitality", "mft_mean", strategies=sequential)
sentences = []
for strategy in sequential:
    part = mbt[mbt["strategy"] == strategy].set_index("group")["mean"].dropna()
    if len(part) >= 2 and "high" in part.index:
        lowest = analysis.extreme_group(part, largest=False)
        sentences.append(f"{analysis.display_name(strategy)}: lowest MBT in the {lowest} bucket" if lowest
                         else f"{analysis.display_name(strategy)}: no single lowest bucket (a tie)")
        checks.append((f"high vitality has the most negative MBT ({analysis.display_name(strategy)})", "yes",
                       f"lowest: {lowest or 'a tie'}", "agrees" if lowest == "high" else "disagrees"))
    difference = analysis.group_difference(measures, "vitality", "mft_mean", "high", "mid", strategy=strategy)
    if math.isfinite(difference["mean"]):
        checks.append((f"high vitality donates less than mid, MFT high minus mid ({analysis.display_name(strategy)})",
                       "negative", analysis.format_interval(difference["mean"], difference["ci_low"], difference["ci_high"],
                                                            difference["n"], signed=True),
                       "agrees" if difference["mean"] < 0 else "disagrees"))
display(Markdown("; ".join(sentences) + "." if sentences else
                 "MBT by vitality cannot be compared here: the high bucket, or a second bucket, has no "
                 "language with a defined MBT."))

# %% [markdown]
# ## 4. Agreement with the paper

# %%
(pd.DataFrame(checks, columns=["question", "the paper", "here", "agreement"]).set_index("question")
 if checks else Markdown("No comparison with the paper could be made with these runs and languages."))

# %% tags=["hide-input"]
if checks:
    verdicts = [check[3] for check in checks]
    agreeing = verdicts.count("agrees")
    display(Markdown(f"{agreeing} of {len(verdicts)} comparisons agree with the paper"
                     + (": its vitality pattern is visible at this scale." if agreeing > len(verdicts) / 2 else
                        ": its vitality pattern is not reproduced at this scale.")
                     + " With few languages per bucket, one language can decide a bucket's mean."))

# %% [markdown]
# ## Versions

# %%
versions_table(config.runs_path / config.profile)
