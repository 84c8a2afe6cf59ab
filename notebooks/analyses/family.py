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
# # Language families
#
# The core paper reads its multi-hop heatmaps by language family {cite:p}`khelli2025`: Romance
# languages (es-ES, pt-PT, fr-FR) and Germanic ones (nl-NL, sv-SE, de-DE) are strong donors and
# stable receivers, while languages of distant families (Sino-Tibetan zh-CN, Austro-Asiatic
# km-KH, Afro-Asiatic ar-SA) receive poorly and donate little. The authors add that these
# patterns may come from shared scripts and vocabulary rather than from kinship itself. This
# page groups our languages by family (and genus, from WALS) and puts the paper's contrast to the
# test for every strategy that learns languages in sequence. Intervals are 95% bootstrap
# intervals over orders; the sentences comparing with the paper are computed from the numbers.

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
display(Markdown(study.describe()))
display(Markdown(analysis.scale_statement(study)))

# %% [markdown]
# ## 1. The languages
#
# Family and genus from WALS; the last column is the paper's contrast: Romance or Germanic
# languages, languages of the distant families it names, and the others.

# %%
facts = (measures.drop_duplicates("language")
         .set_index("language")[["name", "family", "genus", "script", "paper_family_group"]]
         .rename(columns={"paper_family_group": "the paper's contrast"}))
display(Markdown(analysis.group_counts_text(measures, "family")))
facts if not facts.empty else None

# %% [markdown]
# ## 2. Forgetting and transfer by family
#
# Per strategy and family: final score, forgetting (positive = forgotten), performance shift
# (negative = training the family's languages lowered earlier ones), and MFT and MBT averaged
# over hop distances (negative = the average over the languages seen fell).

# %%
VALUES = ["final", "forgetting", "shift", "mft_mean", "mbt_mean"]
if not sequential:
    display(Markdown("No sequential run yet: nothing to compare."))
for value in VALUES if sequential else []:
    table = analysis.measure_table(measures, "family", value, strategies=sequential)
    display(Markdown(f"**{analysis.MEASURES[value]}**" + ("" if not table.empty else ": not defined for these runs.")))
    if not table.empty:
        display(table)

# %% mystnb={"figure": {"caption": "MBT averaged over hop distances, by language family: how well languages keep what they learned as later languages are trained.", "name": "family-mbt"}}
summary = analysis.group_summary(measures, "family", "mbt_mean", strategies=sequential)
(plots.plot_group_comparison(summary, points=analysis.group_points(measures, "family", "mbt_mean", strategies=sequential),
                             value_label="MBT, mean over h\n(negative = the average fell)", group_label="family",
                             zero_line=True)
 if not summary.empty else plots.message_figure("no sequential run yet"))

# %% mystnb={"figure": {"caption": "MFT averaged over hop distances, by language family: how training a language moves the average over the languages seen.", "name": "family-mft"}}
summary = analysis.group_summary(measures, "family", "mft_mean", strategies=sequential)
(plots.plot_group_comparison(summary, points=analysis.group_points(measures, "family", "mft_mean", strategies=sequential),
                             value_label="MFT, mean over h\n(negative = the average fell)", group_label="family",
                             zero_line=True)
 if not summary.empty else plots.message_figure("no sequential run yet"))

# %% [markdown]
# ## 3. The paper's contrast
#
# Romance or Germanic languages against languages of the distant families the paper names, as
# differences "Romance or Germanic minus distant": the paper expects positive MBT and MFT
# differences and a negative forgetting difference. Script is not held fixed here: our Romance and
# Germanic languages are written in the Latin script, the distant ones mostly not, so a difference
# may be the script effect of the previous page as much as a family effect.

# %% tags=["hide-input"]
checks = analysis.contrast_table(measures, analysis.FAMILY_CONTRAST, sequential)
checks if not checks.empty else Markdown("No sequential run yet: the paper's claim cannot be checked.")

# %% tags=["hide-input"]
Markdown(analysis.contrast_text(measures, analysis.FAMILY_CONTRAST, sequential, focus=focus))

# %% [markdown]
# ## 4. Indo-European and the rest
#
# A coarser split that every profile with Indo-European and other languages can make: the final
# score and MBT, "Indo-European minus the other families", per strategy.

# %% tags=["hide-input"]
table = analysis.indo_european_table(measures, study.strategies)
table if not table.empty else Markdown("No complete run yet.")

# %% [markdown]
# ## Versions

# %%
versions_table(config.runs_path / config.profile)
