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
# # Overview of the strategies
#
# This page puts every strategy with complete runs side by side, in the form of the core paper's
# results {cite:p}`khelli2025`: trainable parameters and average score, overall and by language
# vitality (their Table 1); backward and forward transfer (Table 2); the average score over the
# languages seen as training goes on (Figure 2); how much training each language moved the
# earlier ones (Figure 3); and multi-hop backward and forward transfer per language (Figures 5
# and 6). The paper's numbers stand beside ours, labelled as the paper's, and the sentences that
# compare the two are computed from the numbers on this page. Intervals are 95% bootstrap
# intervals over language orders. The page only reads runs; `nbforget grid` produces them.

# %% tags=["parameters"]
params_file = "params/profiles/quick.yaml"  # the profile whose runs are read
runs_dir = None  # None: the profile's runs_dir (or the NBFORGET_RUNS_DIR environment variable)
overrides = {}  # settings that differ from the profile, as given to the strategy notebooks

# %%
import math

import pandas as pd
from IPython.display import Markdown, display

from nbforget.pages import notebook_config, versions_table
from nbforget import analysis, plots

config = notebook_config(params_file, overrides, runs_dir=runs_dir)
study = analysis.load_study(config)
checks = []  # (question, the paper, here, agreement) rows, gathered section by section
display(Markdown(study.describe()))
display(Markdown(analysis.scale_statement(study)))


def name(strategy):
    return analysis.display_name(strategy)


def agreement(value, expected_sign):
    """'agrees' / 'disagrees' with a sign the paper reports; 'not measurable' for NaN."""
    if value is None or not math.isfinite(value):
        return "not measurable here"
    return "agrees" if value * expected_sign > 0 else "disagrees"


sequential = [s for s in study.strategies if analysis.order_matrices(study, s)[0]]
focus = "vanilla" if "vanilla" in sequential else (sequential[0] if sequential else None)

# %% [markdown]
# ## 1. Trainable parameters and average score
#
# The final average is the mean score over all languages after the last step (for MONO and
# NON-SHARED LoRA, each language with its own model or adapter). Trainable parameters are
# counted as the paper counts them: a strategy that trains a separate model or adapter per
# language counts all of them. The vitality columns average the final scores of the languages in
# each bucket of Joshi classes (low 0-2, mid 3, high 4-5). The paper's columns are its Table 1, F1
# divided by 100; for LoRA strategies the row of the closest rank it reports.

# %%
table = analysis.table1_comparison(study)
table if not table.empty else Markdown("No complete run yet: nothing to tabulate.")

# %% tags=["hide-input"]
ours = analysis.table1(study)
if not ours.empty:
    finals = ours["final_average"].to_dict()
    paper = analysis.paper_final_scores(study)
    agreeing, pairs = analysis.ranking_agreement(finals, paper)
    ranked = sorted(finals, key=lambda s: -finals[s])
    sentences = [
        "Ranked by final average here: " + ", ".join(f"{name(s)} ({finals[s]:.3f})" for s in ranked) + "."
    ]
    if pairs:
        sentences.append(
            f"Of the {pairs} pairs of strategies the paper also ran, {agreeing} are ordered as in its Table 1 "
            f"({'mostly the same ranking' if agreeing > pairs / 2 else 'a different ranking'})."
        )
        checks.append(("ranking of the final averages (Table 1)", "MULTI > MONO > NON-SHARED > VANILLA > SHARED",
                       f"{agreeing} of {pairs} pairs as in the paper", "agrees" if agreeing > pairs / 2 else "disagrees"))
    if "multi" in finals:
        position = 1 + sum(1 for s in finals if finals[s] > finals["multi"])  # ties share a rank
        tied = [name(s) for s in finals if s != "multi" and finals[s] == finals["multi"]]
        sentences.append(f"MULTI is {'the best strategy' if position == 1 else f'number {position}'} here"
                         + (f", tied with {', '.join(tied)}" if tied else "") + " (paper: the best, 0.750).")
        checks.append(("MULTI has the best final average", "yes (0.750)", f"rank {position}",
                       "agrees" if position == 1 else "disagrees"))
    buckets = [b for b in config.vitality_buckets if ours[b].notna().any()]
    absent = [b for b in config.vitality_buckets if b not in buckets]
    if len(buckets) >= 2:
        best = {s: analysis.extreme_group(ours.loc[s, buckets]) for s in ours.index}
        mid_best = sum(1 for s in best if best[s] == "mid")
        sentences.append(
            "Best vitality bucket per strategy here: "
            + ", ".join(f"{name(s)} {best[s] or 'none (a tie)'}" for s in best)
            + f". The paper finds mid vitality best in every method; here mid is best for {mid_best} of {len(best)}"
            + (f" (no language in the {', '.join(absent)} bucket)." if absent else ".")
        )
        if "mid" in buckets:
            checks.append(("mid vitality scores best (Table 1)", "in every method", f"in {mid_best} of {len(best)}",
                           "agrees" if mid_best > len(best) / 2 else "disagrees"))
    display(Markdown(" ".join(sentences)))

# %% [markdown]
# ## 2. Backward and forward transfer
#
# CBT is the final score on each earlier language minus its score right after it was learned,
# averaged over languages: negative means forgetting. CFT is the zero-shot score on languages not
# trained yet: higher means more forward transfer. Forgetting is the negative of CBT, the
# convention of continual-learning libraries. Joint training has no sequence and no row here; for
# MONO and NON-SHARED LoRA each language keeps its own model, so their CBT is zero by
# construction.

# %%
table = analysis.table2_comparison(study)
table if not table.empty else Markdown("No complete sequential run yet: no transfer metrics.")

# %% tags=["hide-input"]
transfer = analysis.table2(study)
if not transfer.empty:
    sentences = []
    if "vanilla" in transfer.index:
        cbt = transfer.loc["vanilla", "cbt"]
        cft = transfer.loc["vanilla", "cft"]
        sentences.append(
            f"VANILLA's CBT here is {cbt:+.3f} (paper: -0.08): forgetting {'is' if cbt < 0 else 'is not'} "
            f"visible at this scale. Its CFT is {cft:.3f} (paper: 0.55)."
        )
        checks.append(("VANILLA forgets (CBT < 0, Table 2)", "-0.08", f"{cbt:+.3f}", agreement(cbt, -1)))
        if "shared_lora" in transfer.index:
            shared = transfer.loc["shared_lora", "cbt"]
            difference = shared - cbt
            sentences.append(
                f"SHARED LoRA's CBT is {shared:+.3f}, {abs(difference):.3f} "
                f"{'below' if difference < 0 else 'above'} VANILLA's; the paper finds it below (-0.13 against -0.08), "
                f"so ours {agreement(difference, -1)}."
            )
            checks.append(("SHARED LoRA forgets more than VANILLA", "-0.13 vs -0.08",
                           f"{shared:+.3f} vs {cbt:+.3f}", agreement(difference, -1)))
            shared_cft = transfer.loc["shared_lora", "cft"]
            sentences.append(
                f"Its CFT is {shared_cft:.3f} against VANILLA's {cft:.3f} (paper: 0.52 against 0.55, lower)."
            )
        others = [s for s in transfer.index if s not in analysis.PAPER_NAMES]
        if others:
            better = [s for s in others if transfer.loc[s, "cbt"] > cbt]
            sentences.append(
                f"Of the {len(others)} strategies beyond the paper's, "
                + (f"{len(better)} keep a CBT above VANILLA's ({', '.join(name(s) for s in better)}): less "
                   "forgetting than plain sequential fine-tuning." if better else
                   "none keeps a CBT above VANILLA's: none forgets less than plain sequential fine-tuning here.")
            )
    display(Markdown(" ".join(sentences) if sentences else "VANILLA has no complete run: no comparison with the paper's Table 2."))

# %% [markdown]
# ## 3. Average score over the languages seen
#
# $P_i$, the mean score over the languages trained so far, after each language, averaged over
# orders (the band is the 95% interval over orders when there are several). Joint training
# (MULTI) is the dotted level line of its final average, and chance the dashed grey line. In the
# paper (Figure 2) MULTI stays above 0.73, VANILLA loses 10-15 points over the sequence, SHARED
# LoRA 15-30 points, and NON-SHARED LoRA stays between 0.70 and 0.73.

# %% mystnb={"figure": {"caption": "Average score over the languages seen so far, per strategy, after each language learned.", "name": "overview-average-over-time"}}
curves = analysis.average_over_time(study)
(plots.plot_average_over_time(curves, chance=study.chance) if not curves.empty
 else plots.message_figure("no complete run yet"))

# %% tags=["hide-input"]
if not curves.empty:
    ends = (curves[~curves["joint"]].sort_values("step")
            .groupby(["strategy", "order"], sort=False)["value"].agg(["first", "last"]))
    drops = (ends["first"] - ends["last"]).groupby("strategy", sort=False).mean()
    sentences = []
    for strategy, drop in drops.items():
        change = "stays level" if abs(drop) < 5e-4 else f"{'loses' if drop > 0 else 'gains'} {abs(drop):.3f}"
        sentences.append(f"{name(strategy)} {change}")
    text = ("From the first language to the last, the average over the languages seen: "
            + "; ".join(sentences) + ".") if sentences else ""
    if "vanilla" in drops:
        low, high = analysis.PAPER_FIGURE2["vanilla_drop"]
        drop = drops["vanilla"]
        if drop > 0:
            text += (f" VANILLA's drop of {drop:.3f} is {'within' if low <= drop <= high else 'outside'} the "
                     f"paper's {low:.2f} to {high:.2f}.")
        else:
            text += f" VANILLA does not lose here; the paper's VANILLA loses {low:.2f} to {high:.2f}."
        checks.append(("VANILLA's average falls over the sequence (Figure 2)", f"change {-low:+.2f} to {-high:+.2f}",
                       f"change {-drop:+.3f}", agreement(drop, +1)))
    joint = curves[curves["joint"]]
    if not joint.empty:
        level = joint["value"].mean()
        finals = curves[~curves["joint"]].sort_values("step").groupby("strategy")["value"].last()
        below = [s for s in finals.index if finals[s] < level]
        text += (f" MULTI's level is {level:.3f}; {len(below)} of {len(finals)} sequential strategies end below it.")
    display(Markdown(text))

# %% [markdown]
# ## 4. Which languages are destructive
#
# The performance shift of a language is the change of the average score of the languages
# learned before it, caused by training it; negative means training that language lowered the
# earlier ones. Per language it is averaged over the orders in which the language is not first,
# with a 95% interval over those orders. In the paper (Figure 3, VANILLA) Chinese (zh-CN) is the
# most destructive language and German (de-DE) the best donor.

# %% mystnb={"figure": {"caption": "Performance shift per language trained (the strategy is named in the text below); negative means training it lowered the languages learned before it.", "name": "overview-performance-shift"}}
shift = analysis.performance_shift(study, focus) if focus else None
(plots.plot_performance_shift(shift, title=name(focus)) if shift is not None and shift["mean"].notna().any()
 else plots.message_figure("no sequential run yet"))

# %% tags=["hide-input"]
if shift is not None and shift["mean"].notna().any():
    defined = shift.dropna(subset=["mean"]).sort_values("mean")
    worst = analysis.extreme_group(defined["mean"], largest=False)  # None: a tie decides
    best = analysis.extreme_group(defined["mean"])

    def shift_text(language):
        row = defined.loc[language]
        return analysis.format_interval(row["mean"], row["ci_low"], row["ci_high"], int(row["n"]),
                                        signed=True, prose=True)

    text = (f"For {name(focus)}, the most destructive language here is "
            + (f"{worst} ({shift_text(worst)})" if worst else "not one language (a tie)")
            + " and the best donor "
            + (f"{best} ({shift_text(best)})." if best else "not one language (a tie)."))
    for language, role, position in (("zh-CN", "most destructive", 0), ("de-DE", "best donor", -1)):
        if language in defined.index:
            rank = list(defined.index).index(language) + 1
            here = worst if position == 0 else best
            text += (f" The paper's {role}, {language}, ranks {rank} of {len(defined)} from the most destructive "
                     f"here ({'the same' if here == language else 'not the same'} conclusion).")
            checks.append((f"{language} is the {role} (Figure 3)", "yes", f"rank {rank} of {len(defined)}",
                           "agrees" if here == language else "disagrees"))
        else:
            text += f" The paper's {role}, {language}, is not among these languages."
    display(Markdown(text))

# %% [markdown]
# ## 5. Multi-hop transfer per language
#
# $\mathrm{MBT}_h$ of a language is the change of the average over the languages seen from
# $h + 1$ steps before it was trained to just after; $\mathrm{MFT}_h$ the change from just before it
# was trained to $h$ steps after. The paper reads MBT as how well a language *receives* and keeps
# knowledge, and MFT as how well it *donates* to the languages after it (Figures 5 and 6); in both
# heatmaps blue is positive and red negative, and languages are sorted by their mean over the hop
# distances $h$. In the paper zh-CN, ja-JP and zh-TW have the most negative MBT, and nb-NO, ca-ES,
# pt-PT and el-GR the highest.

# %% mystnb={"figure": {"caption": "Multi-hop backward transfer (MBT) per language and hop distance; blue positive, red negative.", "name": "overview-mbt"}}
hops = analysis.hop_tables(study, focus) if focus else None
(plots.plot_hops_heatmap(hops["mbt"], f"MBT, {name(focus)}") if hops
 else plots.message_figure("no sequential run yet"))

# %% mystnb={"figure": {"caption": "Multi-hop forward transfer (MFT) per language and hop distance; blue positive, red negative.", "name": "overview-mft"}}
(plots.plot_hops_heatmap(hops["mft"], f"MFT, {name(focus)}") if hops
 else plots.message_figure("no sequential run yet"))

# %% tags=["hide-input"]
if hops:
    sentences = []
    for metric, role in (("mbt", "receiver"), ("mft", "donor")):
        means = hops[metric]["mean"].mean(axis=1, skipna=True).dropna().sort_values()
        if means.empty:
            continue
        weakest = analysis.extreme_group(means, largest=False)
        strongest = analysis.extreme_group(means)
        sentences.append(f"By mean {metric.upper()} over h, the weakest {role} here is "
                         + (f"{weakest} ({means[weakest]:+.3f})" if weakest else "not one language (a tie)")
                         + " and the strongest "
                         + (f"{strongest} ({means[strongest]:+.3f})." if strongest else "not one language (a tie)."))
        if metric == "mbt":
            named = [language for language in analysis.PAPER_CLAIMS["forgetting_languages"] if language in means.index]
            if named:
                lower_half = [language for language in named if list(means.index).index(language) < len(means) / 2]
                sentences.append(f"Of the paper's most forgetting languages present here ({', '.join(named)}), "
                                 f"{len(lower_half)} fall in the lower half by MBT.")
                checks.append(("zh-CN, ja-JP, zh-TW have the most negative MBT (Figure 5)", "yes",
                               f"{len(lower_half)} of {len(named)} in the lower half",
                               "agrees" if len(lower_half) > len(named) / 2 else "disagrees"))
    display(Markdown(" ".join(sentences)))

# %% [markdown]
# ## 6. Agreement with the paper
#
# Every comparison made on this page, in one table. "Not measurable here" means the runs at this
# scale cannot answer the question (for example a language the profile does not include).

# %%
(pd.DataFrame(checks, columns=["question", "the paper", "here", "agreement"]).set_index("question")
 if checks else Markdown("No comparison could be made: there are no complete runs of the paper's strategies."))

# %% [markdown]
# ## Versions
#
# The packages that produced this page, and the folder of runs it read.

# %%
versions_table(config.runs_path / config.profile)
