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
# # NON-SHARED LoRA: one adapter and head per language
#
# The base weights stay frozen; each language gets its own LoRA adapter and head, trained from
# scratch on that language only. A language is scored with its own adapter once it has one,
# otherwise zero-shot with the latest adapter. Since an adapter is never trained again, the cells
# below the diagonal keep each language's own score and CBT is zero by construction. What to look
# for is how close the diagonal comes to full fine-tuning with a small fraction of the trainable
# parameters (the core paper: 72.1% F1 at rank 32, against 75.0% for MULTI), and the zero-shot
# cells above the diagonal, which measure how much one language's adapter carries to the next.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # a profile; relative paths are relative to the repository
order = None  # a paper order 1-5, "random:SEED" or a list of locales; None: the profile's first order
seed = None  # None: the profile's first seed
overrides = {}  # settings that differ from the profile, e.g. {"train": {"epochs": 3}}
progress = True  # progress bars while training

# %%
from IPython.display import Markdown, display

from nbforget import pages

STRATEGY = "nonshared_lora"
config = pages.notebook_config(params_file, overrides)

# %% [markdown]
# ## 1. The run

# %%
run = pages.strategy_run(config, STRATEGY, order=order, seed=seed, progress=progress)
display(Markdown(pages.run_text(run)))

# %% [markdown]
# ## 2. Score matrix

# %% mystnb={"figure": {"caption": "Score matrix of NON-SHARED LoRA: rows after training each language, columns the languages evaluated.", "name": "nonshared-lora-score-matrix"}}
pages.score_matrix_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.score_matrix_text(run)))

# %% [markdown]
# ## 3. Average score over the languages seen

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, after each language (NON-SHARED LoRA).", "name": "nonshared-lora-average-over-time"}}
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

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base model after each language (NON-SHARED LoRA).", "name": "nonshared-lora-drift"}}
pages.drift_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.drift_text(run)))

# %% [markdown]
# ## 6. Adapter and head against full fine-tuning
#
# What NON-SHARED LoRA trains: an adapter and a head for each language, all kept, next to what full
# fine-tuning trains on the same order and seed.

# %%
pages.adapter_table(run, references)

# %% tags=["hide-input"]
display(Markdown(pages.adapter_text(run, references)))

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

# %% tags=["held-out"] mystnb={"figure": {"caption": "Score of each held-out language (never trained) before training and after each language (NON-SHARED LoRA).", "name": "nonshared-lora-held-out"}}
pages.held_out_figure(run, references)

# %% tags=["held-out", "hide-input"]
display(Markdown(pages.held_out_text(run, references)))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the run directory it read.

# %%
pages.versions_table(run.run_dir)
