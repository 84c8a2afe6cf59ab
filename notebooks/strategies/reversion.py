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
# # REVERSION: post-hoc weight reversion toward the base
#
# Sequential full fine-tuning; after each language (or once at the end) every chosen layer is
# moved back toward the pretrained weights, $\theta \leftarrow \theta + \alpha (\theta_0 -
# \theta)$, with $\alpha$ per layer ($\alpha = 1$ restores the base). The head is never reverted.
# Scores are taken after the reversion, so the diagonal shows what reverting costs on the
# language just learned, and the cells below it show whether pulling back toward the base keeps
# earlier languages better than VANILLA. In the drift plot, the distance from the base stays
# bounded instead of growing with every language. The shares are under `strategy.reversion`.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # a profile; relative paths are relative to the repository
order = None  # a paper order 1-5, "random:SEED" or a list of locales; None: the profile's first order
seed = None  # None: the profile's first seed
overrides = {}  # settings that differ from the profile, e.g. {"train": {"epochs": 3}}
progress = True  # progress bars while training

# %%
from IPython.display import Markdown, display

from nbforget import pages

STRATEGY = "reversion"
config = pages.notebook_config(params_file, overrides)

# %% [markdown]
# ## 1. The run

# %%
run = pages.strategy_run(config, STRATEGY, order=order, seed=seed, progress=progress)
display(Markdown(pages.run_text(run)))

# %% [markdown]
# ## 2. Score matrix

# %% mystnb={"figure": {"caption": "Score matrix of REVERSION: rows after training each language, columns the languages evaluated.", "name": "reversion-score-matrix"}}
pages.score_matrix_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.score_matrix_text(run)))

# %% [markdown]
# ## 3. Average score over the languages seen

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, after each language (REVERSION).", "name": "reversion-average-over-time"}}
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

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base model after each language (REVERSION).", "name": "reversion-drift"}}
pages.drift_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.drift_text(run)))

# %% [markdown]
# ## 6. Reversion per layer and its effect on drift
#
# The share $\alpha$ by which each layer was moved back toward the base, its distance from the base
# before and after the last reversion, and VANILLA's on the same order and seed, which never reverts.

# %%
pages.reversion_table(run, references)

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base after the last step: REVERSION (after reverting) beside VANILLA (same order and seed).", "name": "reversion-drift-against-baseline"}}
pages.baseline_drift_figure(run, references)

# %% tags=["hide-input"]
display(Markdown(pages.reversion_text(run, references)))

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

# %% tags=["held-out"] mystnb={"figure": {"caption": "Score of each held-out language (never trained) before training and after each language (REVERSION).", "name": "reversion-held-out"}}
pages.held_out_figure(run, references)

# %% tags=["held-out", "hide-input"]
display(Markdown(pages.held_out_text(run, references)))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the run directory it read.

# %%
pages.versions_table(run.run_dir)
