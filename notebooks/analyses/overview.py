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
# # Overview of the strategies
#
# This page puts every strategy with complete runs side by side, in the form of the core paper's
# results {cite:p}`khelli2025`: trainable parameters and average score, overall and by language
# vitality (their Table 1); backward and forward transfer (Table 2); the average score over the
# languages seen as training goes on (Figure 2); how much training each language moved the
# earlier ones (Figure 3); and multi-hop backward and forward transfer per language (Figures 5
# and 6). The paper's numbers stand beside ours, labelled as the paper's, and the sentences that
# compare the two are computed from the numbers on this page. Intervals are 95% bootstrap
# intervals over language orders. The page only reads runs; `nbforget grid` produces them.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # the profile whose runs are read
runs_dir = None  # None: the profile's runs_dir (or the NBFORGET_RUNS_DIR environment variable)
overrides = {}  # settings that differ from the profile, as given to the strategy notebooks

# %%
from IPython.display import Markdown, display

from nbforget.pages import notebook_config, versions_table
from nbforget import analysis, plots

config = notebook_config(params_file, overrides, runs_dir=runs_dir)
every_point = analysis.load_study(config)  # the runs of every sweep point of the profile
study = every_point.first_point()  # one configuration: the sweep's first point (describe() names it)
focus = analysis.focus_strategy(study)  # VANILLA when it has runs: the strategy of the paper's figures
display(Markdown(study.describe()))
display(Markdown(analysis.scale_statement(study)))

# %% [markdown]
# ## 1. Trainable parameters and average score
#
# The final average is the mean score over all languages after the last step (for MONO and
# NON-SHARED LoRA, each language with its own model or adapter). Trainable parameters are
# counted as the paper counts them: a strategy that trains a separate model or adapter per
# language counts all of them. The vitality columns average the final scores of the languages in
# each bucket of Joshi classes (low 0-2, mid 3, high 4-5). The paper's columns are its Table 1, F1
# divided by 100; for LoRA strategies the row of the closest rank it reports. When the profile
# sweeps settings, a strategy the sweep changes has one row per sweep point, labelled with its
# swept values; the sentence below the table and every later section read the first point only,
# the one named at the top of the page.

# %%
table = analysis.table1_comparison_by_point(every_point)
table if not table.empty else Markdown("No complete run yet: nothing to tabulate.")

# %% tags=["hide-input"]
Markdown(analysis.ranking_text(study))

# %% [markdown]
# ## 2. Backward and forward transfer
#
# CBT is the final score on each earlier language minus its score right after it was learned,
# averaged over languages: negative means forgetting. CFT is the zero-shot score on languages not
# trained yet: higher means more forward transfer. Forgetting is the negative of CBT, the
# convention of continual-learning libraries. Joint training has no sequence and no row here; for
# MONO and NON-SHARED LoRA each language keeps its own model, so their CBT is zero by
# construction.

# %%
table = analysis.table2_comparison(study)
table if not table.empty else Markdown("No complete sequential run yet: no transfer metrics.")

# %% tags=["hide-input"]
Markdown(analysis.transfer_text(study))

# %% [markdown]
# ## 3. Average score over the languages seen
#
# $P_i$, the mean score over the languages trained so far, after each language, averaged over
# orders (the band is the 95% interval over orders when there are several). Joint training
# (MULTI, MULTI LoRA) is a dotted level line of its final average, and chance the dashed grey line. In the
# paper (Figure 2) MULTI stays above 0.73, VANILLA loses 10-15 points over the sequence, SHARED
# LoRA 15-30 points, and NON-SHARED LoRA stays between 0.70 and 0.73.

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, per strategy, after each language learned.", "name": "overview-average-over-time"}}
curves = analysis.average_over_time(study)
(plots.plot_average_over_time(curves, chance=study.chance) if not curves.empty
 else plots.message_figure("no complete run yet"))

# %% tags=["hide-input"]
Markdown(analysis.average_over_time_text(study))

# %% [markdown]
# ## 4. Which languages are destructive
#
# The performance shift of a language is the change of the average score of the languages
# learned before it, caused by training it; negative means training that language lowered the
# earlier ones. Per language it is averaged over the orders in which the language is not first,
# with a 95% interval over those orders. In the paper (Figure 3, VANILLA) Chinese (zh-CN) is the
# most destructive language and German (de-DE) the best donor.

# %% mystnb={"figure": {"caption": "Performance shift per language trained (the strategy is named in the text below); negative means training it lowered the languages learned before it.", "name": "overview-performance-shift"}}
shift = analysis.performance_shift(study, focus) if focus else None
(plots.plot_performance_shift(shift, title=analysis.display_name(focus)) if shift is not None and shift["mean"].notna().any()
 else plots.message_figure("no sequential run yet"))

# %% tags=["hide-input"]
Markdown(analysis.shift_text(study, focus))

# %% [markdown]
# ## 5. Multi-hop transfer per language
#
# $\mathrm{MBT}_h$ of a language is the change of the average over the languages seen from
# $h + 1$ steps before it was trained to just after; $\mathrm{MFT}_h$ the change from just before it
# was trained to $h$ steps after. The paper reads MBT as how well a language *receives* and keeps
# knowledge, and MFT as how well it *donates* to the languages after it (Figures 5 and 6); in both
# heatmaps blue is positive and red negative, and languages are sorted by their mean over the hop
# distances $h$. In the paper zh-CN, ja-JP and zh-TW have the most negative MBT, and nb-NO, ca-ES,
# pt-PT and el-GR the highest.

# %% mystnb={"figure": {"caption": "Multi-hop backward transfer (MBT) per language and hop distance; blue positive, red negative.", "name": "overview-mbt"}}
hops = analysis.hop_tables(study, focus) if focus else None
(plots.plot_hops_heatmap(hops["mbt"], f"MBT, {analysis.display_name(focus)}") if hops
 else plots.message_figure("no sequential run yet"))

# %% mystnb={"figure": {"caption": "Multi-hop forward transfer (MFT) per language and hop distance; blue positive, red negative.", "name": "overview-mft"}}
(plots.plot_hops_heatmap(hops["mft"], f"MFT, {analysis.display_name(focus)}") if hops
 else plots.message_figure("no sequential run yet"))

# %% tags=["hide-input"]
Markdown(analysis.hop_text(study, focus))

# %% [markdown]
# ## 6. Agreement with the paper
#
# Every claim of the paper these runs can check, in one table: the comparisons made on this page,
# and the script, family and vitality contrasts for the strategy of the figures above (their own
# pages check them for every sequential strategy). "Not measurable here" means the runs at this
# scale cannot answer the question (for example a language the profile does not include).

# %%
checks = analysis.claim_checks(study)
analysis.claim_table(checks)

# %% tags=["hide-input"]
Markdown(analysis.claims_summary(checks, pattern="pattern of results"))

# %% [markdown] tags=["held-out"]
# ## 7. Held-out languages
#
# Languages the profile holds out (`held_out_languages`) are scored before training and after
# every step and never trained: their scores are zero-shot transfer from the trained languages,
# which none of the sections above reads. Per strategy, with 95% intervals over orders and each
# value a mean over the held-out languages: the final score, its *change* against the base model
# (fresh head, before any fine-tuning) and its *erosion*, the final score minus the best one after
# any step (never positive). The curve is their mean score after each language learned. The book
# shows this section only when the profile holds out a language.

# %% tags=["held-out"]
table = analysis.held_out_table(study)
table.round(3) if not table.empty else Markdown("No complete run holds out a language.")

# %% tags=["held-out"] mystnb={"figure": {"caption": "Mean score over the held-out languages (never trained), per strategy, after each language learned.", "name": "overview-held-out"}}
curves = analysis.held_out_over_time(study)
(plots.plot_average_over_time(curves, chance=study.chance, value_label="mean score over the held-out\nlanguages (never trained)")
 if not curves.empty else plots.message_figure("no complete run holds out a language"))

# %% tags=["held-out", "hide-input"]
Markdown(analysis.held_out_text(study))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the folder of runs it read.

# %%
versions_table(config.runs_path / config.profile)
