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
# # L2-SP: soft regularization toward the pretrained weights
#
# Sequential full fine-tuning with the penalty $w \sum_\ell f_\ell \lVert \theta_\ell -
# \theta_{0,\ell} \rVert^2$ on every language, so the encoder drifts from the pretrained weights
# only as far as the task pays for. The head is fresh and free unless a layer weight says
# otherwise. What to look for: a drift plot well below VANILLA's, and whether the smaller drift buys
# a CBT closer to zero without lowering the diagonal (the score right after learning each
# language). The strength is `strategy.regularization.l2_weight` in the parameters.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # a profile; relative paths are relative to the repository
order = None  # a paper order 1-5, "random:SEED" or a list of locales; None: the profile's first order
seed = None  # None: the profile's first seed
overrides = {}  # settings that differ from the profile, e.g. {"train": {"epochs": 3}}
progress = True  # progress bars while training

# %%
from IPython.display import Markdown, display

from nbforget import pages

STRATEGY = "l2sp"
config = pages.notebook_config(params_file, overrides)

# %% [markdown]
# ## 1. The run

# %%
run = pages.strategy_run(config, STRATEGY, order=order, seed=seed, progress=progress)
display(Markdown(pages.run_text(run)))

# %% [markdown]
# ## 2. Score matrix

# %% mystnb={"figure": {"caption": "Score matrix of L2-SP: rows after training each language, columns the languages evaluated.", "name": "l2sp-score-matrix"}}
pages.score_matrix_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.score_matrix_text(run)))

# %% [markdown]
# ## 3. Average score over the languages seen

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, after each language (L2-SP).", "name": "l2sp-average-over-time"}}
references = pages.reference_runs(config, run)
pages.average_over_time_figure(run, references)

# %% tags=["hide-input"]
display(Markdown(pages.average_over_time_text(run, references)))

# %% [markdown]
# ## 4. Metrics

# %%
pages.metrics_table(run)

# %% tags=["hide-input"]
display(Markdown(pages.metrics_text(run, references)))

# %% [markdown]
# ## 5. How far the weights moved

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base model after each language (L2-SP).", "name": "l2sp-drift"}}
pages.drift_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.drift_text(run)))

# %% [markdown]
# ## 6. Penalty per layer and the drift it allowed
#
# Each layer's factor in the penalty, and its distance from the base after the last step beside
# VANILLA's on the same order and seed: how far the penalty held the encoder back.

# %%
pages.penalty_table(run, references)

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base after the last step: L2-SP beside VANILLA (same order and seed).", "name": "l2sp-drift-against-baseline"}}
pages.baseline_drift_figure(run, references)

# %% tags=["hide-input"]
display(Markdown(pages.penalty_text(run, references)))

# %% [markdown] tags=["held-out"]
# ## 7. Held-out languages
#
# Languages the profile holds out (`held_out_languages`): scored before training and after every
# step, never trained, so each of their cells is zero-shot transfer from the languages trained so
# far. *Change* is the final score minus the base model's, *erosion* the final score minus the best
# one after any step (never positive). The book shows this section only when the profile holds out
# a language.

# %% tags=["held-out"]
pages.held_out_table(run, references)

# %% tags=["held-out"] mystnb={"figure": {"caption": "Score of each held-out language (never trained) before training and after each language (L2-SP).", "name": "l2sp-held-out"}}
pages.held_out_figure(run, references)

# %% tags=["held-out", "hide-input"]
display(Markdown(pages.held_out_text(run, references)))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the run directory it read.

# %%
pages.versions_table(run.run_dir)
