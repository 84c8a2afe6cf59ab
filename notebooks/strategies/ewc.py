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
# # EWC: elastic weight consolidation
#
# Sequential full fine-tuning with the penalty $\frac{w}{2} \sum_k F_k (\theta_k - \theta^*_k)^2$:
# after each language a diagonal Fisher information $F$ is estimated on its training data and the
# weights $\theta^*$ are kept, so the parameters that mattered for earlier languages are held in
# place and the others stay free. The first language trains without a penalty. What to look for:
# a CBT closer to zero than VANILLA's while the diagonal stays as high, and a drift that grows more
# slowly after the first language. Mode (separate or online) and strength are under
# `strategy.regularization` in the parameters.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # a profile; relative paths are relative to the repository
order = None  # a paper order 1-5, "random:SEED" or a list of locales; None: the profile's first order
seed = None  # None: the profile's first seed
overrides = {}  # settings that differ from the profile, e.g. {"train": {"epochs": 3}}
progress = True  # progress bars while training

# %%
from IPython.display import Markdown, display

from nbforget import pages

STRATEGY = "ewc"
config = pages.notebook_config(params_file, overrides)

# %% [markdown]
# ## 1. The run

# %%
run = pages.strategy_run(config, STRATEGY, order=order, seed=seed, progress=progress)
display(Markdown(pages.run_text(run)))

# %% [markdown]
# ## 2. Score matrix

# %% mystnb={"figure": {"caption": "Score matrix of EWC: rows after training each language, columns the languages evaluated.", "name": "ewc-score-matrix"}}
pages.score_matrix_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.score_matrix_text(run)))

# %% [markdown]
# ## 3. Average score over the languages seen

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, after each language (EWC).", "name": "ewc-average-over-time"}}
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

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base model after each language (EWC).", "name": "ewc-drift"}}
pages.drift_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.drift_text(run)))

# %% [markdown]
# ## 6. Fisher mass per layer
#
# The diagonal Fisher information summed over each layer group's weights: where the penalty holds
# the weights hardest, and how that grew with every language.

# %%
pages.fisher_mass_table(run, references)

# %% mystnb={"figure": {"caption": "Fisher mass per layer group, log scale: the running Fisher after each language (online mode) or one Fisher per language (separate mode) (EWC).", "name": "ewc-fisher-mass"}}
pages.fisher_mass_figure(run, references)

# %% tags=["hide-input"]
display(Markdown(pages.fisher_mass_text(run, references)))

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

# %% tags=["held-out"] mystnb={"figure": {"caption": "Score of each held-out language (never trained) before training and after each language (EWC).", "name": "ewc-held-out"}}
pages.held_out_figure(run, references)

# %% tags=["held-out", "hide-input"]
display(Markdown(pages.held_out_text(run, references)))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the run directory it read.

# %%
pages.versions_table(run.run_dir)
