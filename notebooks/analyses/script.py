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
# # Latin and non-Latin scripts
#
# The core paper finds that languages written in the Latin script transfer best, while languages
# in other scripts are weak donors and vulnerable receivers: lower multi-hop forward transfer
# (MFT) and more negative multi-hop backward transfer (MBT) {cite:p}`khelli2025`, a result they
# tie to a subword vocabulary shaped by Latin-script text. This page groups our languages by
# script and compares, for every strategy that learns languages in sequence, how much the two
# groups forget, how destructive they are, and how they donate and receive. Each measure is
# averaged over the languages of a group within each order, then over orders, with a 95%
# bootstrap interval over orders. The sentences that compare with the paper are computed from the
# numbers on this page.

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
focus = analysis.focus_strategy(study)  # VANILLA when it has runs: the strategy of the paper's heatmaps
GROUPS = list(analysis.SCRIPT_GROUPS)
display(Markdown(study.describe()))
display(Markdown(analysis.scale_statement(study)))

# %% [markdown]
# ## 1. The languages

# %%
facts = (measures.drop_duplicates("language")
         .set_index("language")[["name", "script", "latin", "family", "vitality"]]
         .rename(columns={"latin": "script group"}))
display(Markdown(analysis.group_counts_text(measures, "latin", groups=GROUPS, label="script group")))
facts if not facts.empty else None

# %% [markdown]
# ## 2. Forgetting and transfer by script
#
# Per strategy and script group: the final score, forgetting (score right after learning minus
# final score; positive = forgotten), the performance shift caused by training the group's
# languages (negative = destructive), and MFT and MBT averaged over hop distances (the language
# as donor and as receiver; negative = the average over the languages seen fell).

# %%
VALUES = ["final", "forgetting", "shift", "mft_mean", "mbt_mean"]
if not sequential:
    display(Markdown("No sequential run yet: nothing to compare."))
for value in VALUES if sequential else []:
    table = analysis.measure_table(measures, "latin", value, strategies=sequential, group_order=GROUPS)
    display(Markdown(f"**{analysis.MEASURES[value]}**" + ("" if not table.empty else ": not defined for these runs.")))
    if not table.empty:
        display(table)

# %% [markdown]
# ## 3. Receivers and donors
#
# Each large dot is a group's mean with its 95% interval over orders, one colour per strategy;
# the small dots are single languages (their mean over orders).

# %% mystnb={"figure": {"caption": "MBT averaged over hop distances, by script group: how well languages keep what they learned as later languages are trained.", "name": "script-mbt"}}
summary = analysis.group_summary(measures, "latin", "mbt_mean", strategies=sequential)
(plots.plot_group_comparison(summary, points=analysis.group_points(measures, "latin", "mbt_mean", strategies=sequential),
                             value_label="MBT, mean over h\n(negative = the average fell)", group_label="script",
                             group_order=GROUPS, zero_line=True)
 if not summary.empty else plots.message_figure("no sequential run yet"))

# %% mystnb={"figure": {"caption": "MFT averaged over hop distances, by script group: how training a language moves the average over the languages seen.", "name": "script-mft"}}
summary = analysis.group_summary(measures, "latin", "mft_mean", strategies=sequential)
(plots.plot_group_comparison(summary, points=analysis.group_points(measures, "latin", "mft_mean", strategies=sequential),
                             value_label="MFT, mean over h\n(negative = the average fell)", group_label="script",
                             group_order=GROUPS, zero_line=True)
 if not summary.empty else plots.message_figure("no sequential run yet"))

# %% [markdown]
# ## 4. Final score by script, every strategy
#
# Joint training and one model per language included: a gap that is there without any sequence
# comes from the languages themselves (data, tokenization), not from forgetting.

# %% mystnb={"figure": {"caption": "Final score by script group for every strategy with complete runs; the dashed line is chance.", "name": "script-final"}}
summary = analysis.group_summary(measures, "latin", "final")
(plots.plot_group_comparison(summary, points=analysis.group_points(measures, "latin", "final"),
                             value_label="final score", group_label="script", group_order=GROUPS,
                             chance=study.chance)
 if not summary.empty else plots.message_figure("no complete run yet"))

# %% [markdown]
# ## 5. Against the paper
#
# The paper's claim, as differences "non-Latin minus Latin": negative MFT and MBT differences
# (non-Latin languages donate less and keep less) and a positive forgetting difference.

# %% tags=["hide-input"]
checks = analysis.contrast_table(measures, analysis.SCRIPT_CONTRAST, sequential)
checks if not checks.empty else Markdown("No sequential run yet: the paper's claim cannot be checked.")

# %% tags=["hide-input"]
Markdown(analysis.contrast_text(measures, analysis.SCRIPT_CONTRAST, sequential, focus=focus))

# %% [markdown]
# ## Versions

# %%
versions_table(config.runs_path / config.profile)
