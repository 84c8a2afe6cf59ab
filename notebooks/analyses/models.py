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
# # Base models compared
#
# The core paper trains its strategies on XLM-R base and compares key methods with a second
# base model, E5 {cite:p}`khelli2025`. Its Figure 4 sets the two side by side across training
# methods, and the paper reads it as follows: "Despite variations in methodology, the general
# pattern of results remains consistent across models. Overall, XLM-R performs better than E5,
# except in VANILLA method where E5 tends to outperform XLM-R<sub>BASE</sub>, though performance
# degradation due to forgetting is still evident." The figure's values are not given in the text,
# so no number of the paper appears here.
#
# This page does the same for the base models a profile sweeps (`model.name`, with the settings
# that change with the model, such as its learning rates, on the same sweep axis): per strategy
# and model, the final average, CBT and CFT as means over language orders with their 95%
# bootstrap intervals, then which model ends higher for each strategy, whether the strategies
# rank the same under every model, and whether the sequential ones forget under each. Every
# sentence is computed from the table. A profile that does not sweep `model.name` has nothing to
# compare, and the page says how to set one up. The page only reads runs; `nbforget grid`
# produces them.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # the profile whose runs are read
runs_dir = None  # None: the profile's runs_dir (or the NBFORGET_RUNS_DIR environment variable)
overrides = {}  # settings that differ from the profile, as given to the strategy notebooks

# %%
from IPython.display import Markdown, display

from nbforget.pages import notebook_config, versions_table
from nbforget import analysis, plots

config = notebook_config(params_file, overrides, runs_dir=runs_dir)
every_point = analysis.load_study(config)  # the runs of every sweep point: each model is one
comparison = analysis.model_comparison(every_point)  # one row per strategy and model
display(Markdown(every_point.describe()))
display(Markdown(analysis.model_scale_statement(every_point)))

# %% [markdown] tags=["model-sweep"]
# ## 1. Final average, CBT and CFT per model
#
# One row per strategy and base model: the final average (mean score over all languages after
# the last step), CBT (final minus just-learned score on earlier languages; negative means
# forgetting) and CFT (zero-shot score on languages not trained yet), each the mean over orders
# with its 95% interval over orders (the bare mean with one order), the runs and orders behind
# it, the chance level, and the settings of the model's sweep point. Joint training has no CBT
# or CFT.

# %% tags=["model-sweep"]
table = analysis.model_table(comparison)
table if not table.empty else Markdown(analysis.model_comparison_text(every_point, comparison))

# %% [markdown] tags=["model-sweep"]
# ## 2. Final average by strategy and model
#
# One group of bars per strategy, one bar per base model, with the 95% interval over orders when
# there are several; the dashed grey line is chance.

# %% tags=["model-sweep"] mystnb={"figure": {"caption": "Final average per strategy, one bar per base model; the dashed line is chance.", "name": "models-final-average"}}
(plots.plot_model_comparison(comparison) if not comparison.empty
 else plots.message_figure("no runs of two base models yet"))

# %% [markdown]
# ## Which model scores higher

# %% tags=["hide-input"]
Markdown(analysis.model_comparison_text(every_point, comparison))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the folder of runs it read.

# %%
versions_table(config.runs_path / config.profile)
