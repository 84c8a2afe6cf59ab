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
# # FAMILY EXPERTS: one model per language family
#
# One expert per language family (WALS): the first language of a family is fine-tuned from the
# base weights, and later languages of that family continue its expert. Each language is scored
# with its family's expert; a language whose family has no expert yet is scored zero-shot with the
# latest expert. A language can therefore be forgotten only through later languages of its own
# family. What to look for: which cells below the diagonal drop (only those of languages that share
# a family with a later one), a CBT between MONO's zero and VANILLA's, and the number of experts
# the parameter count implies.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # a profile; relative paths are relative to the repository
order = None  # a paper order 1-5, "random:SEED" or a list of locales; None: the profile's first order
seed = None  # None: the profile's first seed
overrides = {}  # settings that differ from the profile, e.g. {"train": {"epochs": 3}}
progress = True  # progress bars while training

# %%
from IPython.display import Markdown, display

from nbforget import pages

STRATEGY = "family_experts"
config = pages.notebook_config(params_file, overrides)

# %% [markdown]
# ## 1. The run

# %%
run = pages.strategy_run(config, STRATEGY, order=order, seed=seed, progress=progress)
display(Markdown(pages.run_text(run)))

# %% [markdown]
# ## 2. Score matrix

# %% mystnb={"figure": {"caption": "Score matrix of FAMILY EXPERTS: rows after training each language, columns the languages evaluated.", "name": "family-experts-score-matrix"}}
pages.score_matrix_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.score_matrix_text(run)))

# %% [markdown]
# ## 3. Average score over the languages seen

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, after each language (FAMILY EXPERTS).", "name": "family-experts-average-over-time"}}
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

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base model after each language (FAMILY EXPERTS).", "name": "family-experts-drift"}}
pages.drift_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.drift_text(run)))

# %% [markdown]
# ## 6. The experts and the languages they serve
#
# One expert per language family: the languages each was trained on and serves, and the mean score
# of those languages right after training (*just trained*) and after the last step (*final*).

# %%
pages.experts_table(run, references)

# %% tags=["hide-input"]
display(Markdown(pages.experts_text(run, references)))

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

# %% tags=["held-out"] mystnb={"figure": {"caption": "Score of each held-out language (never trained) before training and after each language (FAMILY EXPERTS).", "name": "family-experts-held-out"}}
pages.held_out_figure(run, references)

# %% tags=["held-out", "hide-input"]
display(Markdown(pages.held_out_text(run, references)))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the run directory it read.

# %%
pages.versions_table(run.run_dir)
