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
# # MULTI: joint training on all languages
#
# One model trained once on the union of every language's training data. It sees no sequence,
# so it cannot forget: it is the reference the sequential strategies are measured against. Its
# score matrix has a single row, the model after training on everything, and on the curve of the
# average score it is a level line rather than a course over time. What to look for is its final
# average: the gap between it and a sequential strategy is what learning one language at a time
# costs. CBT and CFT need a sequence and are not defined here.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # a profile; relative paths are relative to the repository
order = None  # a paper order 1-5, "random:SEED" or a list of locales; None: the profile's first order
seed = None  # None: the profile's first seed
overrides = {}  # settings that differ from the profile, e.g. {"train": {"epochs": 3}}
progress = True  # progress bars while training

# %%
from IPython.display import Markdown, display

from nbforget.pages import notebook_config, record_summary, versions_table
from nbforget import analysis, plots
from nbforget.engine import run_strategy

STRATEGY = "multi"
NAME = analysis.display_name(STRATEGY)
config = notebook_config(params_file, overrides)

# %% [markdown]
# ## 1. The run
#
# `run_strategy` trains the strategy through every language of the order and records, after
# each language, the score of every language of the order. A complete run is read from its run
# directory instead of trained again, and an interrupted one resumes from its last language.

# %%
run_dir = run_strategy(config, STRATEGY, order=order, seed=seed, progress=progress)
run = analysis.load_run(run_dir)
display(Markdown(analysis.describe_run(run)))

# %% [markdown]
# ## 2. Score matrix
#
# Sequential strategies fill one row per language trained (the layout of the paper's Figure 7).
# Joint training has a single step, so its matrix is one row: the model after training on all
# languages at once, evaluated on each language (columns in the order's sequence).

# %% mystnb={"figure": {"caption": "Score matrix of MULTI: one row, the model after joint training, evaluated on every language.", "name": "multi-score-matrix"}}
plots.plot_score_matrix(run.matrix, run.order, chance=run.chance, row_labels=run.row_labels)

# %% tags=["hide-input"]
display(Markdown(analysis.describe_matrix(run)))

# %% [markdown]
# ## 3. Average score over the languages seen
#
# The sequential strategies draw $P_i$, the mean score over the languages trained so far, after
# each language (the paper's Figure 2). Joint training has no course over time: it is the dotted
# level line of its final average, the reference the other pages and the overview compare with.

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, a level line for joint training (MULTI).", "name": "multi-average-over-time"}}
curves = analysis.average_over_time([run])
plots.plot_average_over_time(curves, chance=run.chance)

# %% [markdown]
# ## 4. Metrics
#
# Computed from the score matrix above; the Method page gives every formula with its sign.

# %%
summary = analysis.run_summary(run)
record_summary(run_dir, summary)
analysis.summary_table(summary)

# %% tags=["hide-input"]
display(Markdown(analysis.describe_forgetting(summary, NAME)))

# %% [markdown]
# ## 5. How far the weights moved
#
# The relative distance $\lVert \theta - \theta_0 \rVert / \lVert \theta_0 \rVert$ of each layer's
# weights from the base model after each language (adapters included in their layers). A layer
# that stays near zero kept what pretraining taught it.

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base model after joint training (MULTI).", "name": "multi-drift"}}
plots.plot_drift(run.drift, trained=run.row_labels)

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the run directory it read.

# %%
versions_table(run_dir)
