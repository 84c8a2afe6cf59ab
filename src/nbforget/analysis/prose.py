"""Numbers as words: intervals, strategy names, and paragraphs about one run.

    format_interval(mean, low, high, n)   ``0.667 [0.600, 0.700]``, or a phrase for sentences
    display_name(strategy)                VANILLA, SHARED LoRA, EWC, ... (from the registry)
    describe_run(run)                     a paragraph: profile, data, model, order, chance level
    describe_matrix(run)                  the diagonal, below it and above it, against chance
    describe_forgetting(summary, name)    final average and CBT, against VANILLA's run
    runs_setting(study, models)           "These runs use ...": model(s), data, languages, orders, seeds, metric
    DATASETS                              the data sets' names in prose

Sentences that compare our runs with the paper are in `nbforget.analysis.versus_paper`.
"""
from __future__ import annotations

import math

from nbforget.analysis.study import RunRecord, baseline_strategy, run_summary
from nbforget.analysis.tables import matrix_regions
from nbforget.data import TITLES
from nbforget.strategies import REGISTRY

__all__ = [
    "DATASETS",
    "format_interval",
    "display_name",
    "describe_run",
    "describe_matrix",
    "describe_forgetting",
    "runs_setting",
]

DATASETS = TITLES  # the data sets' names in prose, defined once beside their loaders


def runs_setting(study, models: str) -> str:
    """One sentence of the analysis pages' scale statements: `models` (e.g. "`tiny` model"), the
    data set, the languages, how many orders and seeds, and the score every number is."""
    config = study.config
    metric = (study.metric or "the primary score").replace("_", " ")
    return (f"These runs use the {models}, trained on {DATASETS.get(config.dataset, config.dataset)} in "
            f"{len(config.languages)} languages ({', '.join(config.languages)}), "
            f"{len(study.orders) or len(config.orders)} language order(s) and {len(config.seeds)} seed(s); "
            f"every score is {metric}.")


def format_interval(mean: float, low: float = float("nan"), high: float = float("nan"), n: int | None = None,
                    *, digits: int = 3, signed: bool = False, prose: bool = False) -> str:
    """A mean with its 95% interval, for tables or (``prose=True``) for sentences; NaN gives ``n/a``.

    Tables: ``0.667 [0.600, 0.700]``, or the bare mean when there is no interval (a table says
    how many orders it rests on in a column of its own). Sentences: ``0.667, 95% interval 0.600
    to 0.700``, or ``0.667, from 1 order without an interval`` when `n` is given.
    """
    if mean is None or not math.isfinite(mean):
        return "n/a"
    sign = "+" if signed else ""
    text = f"{mean:{sign}.{digits}f}"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        if prose:
            return f"{text}, 95% interval {low:{sign}.{digits}f} to {high:{sign}.{digits}f}"
        return f"{text} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"
    if prose and n is not None:
        return f"{text}, from {n} order{'s' if n != 1 else ''} without an interval"
    return text


def display_name(strategy: str) -> str:
    """The registry's name for a strategy (`Strategy.display_name`: the paper's name, VANILLA, or
    the short name of its title, EWC); an unregistered name as it is."""
    cls = REGISTRY.get(strategy)
    return cls.display_name() if cls is not None else strategy


def describe_run(run: RunRecord) -> str:
    """A paragraph of Markdown: profile, data, model, order, seed, score and chance level."""
    config = run.config or {}
    model = config.get("model", {}).get("name", "?")
    dataset = config.get("dataset", "?")
    train = config.get("train", {})
    caps = []
    if train.get("max_train_examples"):
        caps.append(f"at most {train['max_train_examples']} training examples")
    if train.get("max_eval_examples"):
        caps.append(f"{train['max_eval_examples']} test examples")
    cap_text = f" ({' and '.join(caps)} per language)" if caps else ""
    chance = run.chance
    chance_text = (f"chance level (a uniform guess) is {chance:.3f}" if math.isfinite(chance) and chance > 0
                   else "there is no chance level for this score")
    steps = " → ".join(run.order)
    swept = ("; sweep point " + ", ".join(f"`{key}` = {value}" for key, value in run.swept.items())
             if run.swept else "")
    return (f"Profile `{config.get('profile', '?')}`: {DATASETS.get(dataset, dataset)}{cap_text}, "
            f"model `{model}`. Order `{run.order_spec}`: {steps}; seed {run.seed}{swept}. "
            f"Every cell is the test {run.metric.replace('_', ' ')} of one language; the {chance_text}.")


def describe_matrix(run: RunRecord) -> str:
    """One paragraph on the score matrix: diagonal, below and above it, against chance."""
    if not run.square:
        return (f"One row: the model after training on all languages at once. Its mean score is "
                f"{run.matrix[-1].mean():.3f}; chance: {run.chance:.3f}.")
    regions = matrix_regions(run.matrix)
    verdict = ("Earlier languages score lower than right after they were learned: the model forgot part of them."
               if regions["below"] < regions["diagonal"] else
               "Earlier languages score at least as well as right after they were learned: no forgetting in this run.")
    return (f"Mean score on the diagonal (just learned): {regions['diagonal']:.3f}; below it (learned "
            f"earlier): {regions['below']:.3f}; above it (not trained yet): {regions['above']:.3f}; "
            f"chance: {run.chance:.3f}. {verdict}")


def describe_forgetting(summary: dict, name: str, companions=()) -> str:
    """One paragraph on the final average and CBT, compared with the baseline's (VANILLA's) run of
    the same order and seed when one is among `companions` (and is not the run itself)."""
    cbt, chance, final = summary["cbt"], summary["chance"], summary["final_average"]
    opening = f"{name} ends at a final average of {final:.3f} against a chance level of {chance:.3f}. "
    if cbt != cbt:  # NaN: a single training step
        return opening + "CBT is not defined for this run (a single training step)."
    verdict = ("forgetting is visible: the final model scores lower on earlier languages than right after "
               "learning them" if cbt < 0 else
               "no forgetting on average: the final model scores at least as well on earlier languages as "
               "right after learning them")
    comparison = ""
    baseline = baseline_strategy()
    baseline_name = display_name(baseline)
    cbts = [run_summary(other)["cbt"] for other in companions
            if other.strategy == baseline and baseline_name != name]
    if cbts:
        difference = cbt - cbts[0]
        comparison = (f" {baseline_name}'s CBT on the same order and seed is {cbts[0]:+.3f}, so {name} forgets "
                      + ("about as much." if abs(difference) < 5e-4 else "less." if difference > 0 else "more."))
    return opening + f"Its CBT is {cbt:+.3f}: {verdict}.{comparison}"
