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
from IPython.display import Markdown, display

from nbforget.pages import notebook_config, versions_table
from nbforget import analysis, plots

config = notebook_config(params_file, overrides, runs_dir=runs_dir)
study = analysis.load_study(config).first_point()  # one configuration: the sweep's first point, if any
measures = analysis.language_measures(study)
sequential = analysis.sequential_strategies(study)
BUCKETS = list(config.vitality_buckets)
display(Markdown(study.describe()))
display(Markdown(analysis.scale_statement(study)))

# %% [markdown]
# ## 1. The languages
#
# Languages whose Joshi class is unknown have no vitality and are left out of this page.

# %%
facts = (measures.drop_duplicates("language")
         .set_index("language")[["name", "joshi_class", "vitality", "script", "family"]])
display(Markdown(analysis.group_counts_text(measures, "vitality", groups=BUCKETS, label="vitality bucket")))
facts if not facts.empty else None

# %% [markdown]
# ## 2. Final score by vitality (the paper's Table 1)
#
# Ours: the final score averaged over each bucket's languages, per order, then over orders. The
# paper's: its Table 1 F1 by vitality, divided by 100, for the method (and LoRA rank) each of our
# strategies corresponds to.

# %% tags=["hide-input"]
summary = analysis.group_summary(measures, "vitality", "final")
table = analysis.vitality_comparison(study, measures)
table if not table.empty else Markdown("No complete run yet: nothing to tabulate.")

# %% tags=["hide-input"]
Markdown(analysis.vitality_text(study))

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
Markdown(analysis.vitality_transfer_text(measures, sequential))

# %% [markdown]
# ## 4. Agreement with the paper
#
# The paper's vitality claims: the final-score claims over all strategies, the MBT and MFT claims
# for each strategy that learns languages in sequence. "Not measurable here" means these runs
# cannot answer the question (a bucket without languages, say). With few languages per bucket,
# one language can decide a bucket's mean.

# %%
checks = analysis.claim_checks(study, strategies=sequential, measures=measures)
checks = checks[checks["topic"] == "vitality"]
analysis.claim_table(checks)

# %% tags=["hide-input"]
Markdown(analysis.claims_summary(checks, pattern="vitality pattern"))

# %% [markdown]
# ## Versions

# %%
versions_table(config.runs_path / config.profile)
