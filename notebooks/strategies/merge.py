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
# # MERGE: merged per-language (or per-family) experts
#
# Each language (or each language family) gets an expert fine-tuned from the base weights; the
# experts' encoder updates are merged into one model by linear averaging, task arithmetic, TIES or
# DARE, and their heads are averaged. Row $i$ of the score matrix scores every language with the
# merge of the experts trained so far, so the matrix shows what merging gives as experts are added,
# and its last row is the final merged model. What to look for: how far each language falls below
# what its own expert reached (compare with MONO's diagonal), and whether adding experts of other
# languages lowers the earlier ones (the cells below the diagonal, and CBT). Method and density are
# under `strategy.merge`.

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

STRATEGY = "merge"
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
# Row $i$ is the model after training the language named on the left; column $j$ is the
# language evaluated, in training order (the layout of the paper's Figure 7). The outlined
# diagonal is each language right after it was trained, the cells below it the languages
# learned earlier, and the cells above it zero-shot scores on languages not trained yet.

# %% mystnb={"figure": {"caption": "Score matrix of MERGE: rows after training each language, columns the languages evaluated.", "name": "merge-score-matrix"}}
plots.plot_score_matrix(run.matrix, run.order, chance=run.chance, row_labels=run.row_labels)

# %% tags=["hide-input"]
display(Markdown(analysis.describe_matrix(run)))

# %% [markdown]
# ## 3. Average score over the languages seen
#
# $P_i$, the mean of row $i$ over the languages trained so far, against the number of languages
# learned (the paper's Figure 2). When a complete MULTI run of the same order and seed exists,
# its final average is the dotted line: joint training on all languages, which cannot forget.
# VANILLA's curve for the same order and seed is drawn too, when it exists, as the baseline.

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, after each language (MERGE).", "name": "merge-average-over-time"}}
companions = analysis.companion_runs(config, run, ["multi", "vanilla"])
curves = analysis.average_over_time([run, *companions])
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
display(Markdown(analysis.describe_forgetting(summary, NAME, companions)))

# %% [markdown]
# ## 5. How far the weights moved
#
# The relative distance $\lVert \theta - \theta_0 \rVert / \lVert \theta_0 \rVert$ of each layer's
# weights from the base model after each language (adapters included in their layers). A layer
# that stays near zero kept what pretraining taught it.

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base model after each language (MERGE).", "name": "merge-drift"}}
plots.plot_drift(run.drift, trained=run.row_labels)

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the run directory it read.

# %%
versions_table(run_dir)
