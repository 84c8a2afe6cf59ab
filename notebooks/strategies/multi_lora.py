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
# # MULTI LoRA: one adapter trained on all languages at once
#
# The base weights stay frozen; one LoRA adapter (and the task head) is trained once on the union
# of every language's training data. It is joint training like MULTI, so it sees no sequence and
# cannot forget, with the few trainable parameters of SHARED LoRA. The core paper reports it as
# MULTI with a LoRA rank (Table 1): 74.19% F1 at rank 32 (5.36M trainable parameters), 73.79% at
# rank 64 and 74.11% at rank 256, close to MULTI's 75.03% with all 278.04M parameters trained and
# far above SHARED LoRA's 60.24-61.26%, the same adapter trained one language after another. Its
# score matrix has a single row and its average score is a level line; what to look for is its
# final average against MULTI's (what the small adapter costs) and against SHARED LoRA's (what
# the sequence costs the same adapter). CBT and CFT need a sequence and are not defined here.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # a profile; relative paths are relative to the repository
order = None  # a paper order 1-5, "random:SEED" or a list of locales; None: the profile's first order
seed = None  # None: the profile's first seed
overrides = {}  # settings that differ from the profile, e.g. {"train": {"epochs": 3}}
progress = True  # progress bars while training

# %%
from IPython.display import Markdown, display

from nbforget import pages

STRATEGY = "multi_lora"
config = pages.notebook_config(params_file, overrides)

# %% [markdown]
# ## 1. The run

# %%
run = pages.strategy_run(config, STRATEGY, order=order, seed=seed, progress=progress)
display(Markdown(pages.run_text(run)))

# %% [markdown]
# ## 2. Score matrix

# %% mystnb={"figure": {"caption": "Score matrix of MULTI LoRA: one row, the model after joint training, evaluated on every language.", "name": "multi-lora-score-matrix"}}
pages.score_matrix_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.score_matrix_text(run)))

# %% [markdown]
# ## 3. Average score over the languages seen

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, a level line for joint training (MULTI LoRA).", "name": "multi-lora-average-over-time"}}
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

# %% mystnb={"figure": {"caption": "Relative distance of each layer's weights from the base model after joint training (MULTI LoRA).", "name": "multi-lora-drift"}}
pages.drift_figure(run)

# %% tags=["hide-input"]
display(Markdown(pages.drift_text(run)))

# %% [markdown]
# ## 6. Adapter and head against full fine-tuning
#
# What MULTI LoRA trains: one adapter and one head, trained once on every language of the order
# together, next to what full fine-tuning trains on the same order and seed.

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

# %% tags=["held-out"] mystnb={"figure": {"caption": "Score of each held-out language (never trained) before training and after each language (MULTI LoRA).", "name": "multi-lora-held-out"}}
pages.held_out_figure(run, references)

# %% tags=["held-out", "hide-input"]
display(Markdown(pages.held_out_text(run, references)))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the run directory it read.

# %%
pages.versions_table(run.run_dir)
