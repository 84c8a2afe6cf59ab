"""What notebook pages call: parameters, provenance, recorded numbers, and the strategy pages.

    RUNS_DIR_ENV                  ``NBFORGET_RUNS_DIR``: where runs are read and written when set
    notebook_config(params_file, overrides, runs_dir=None) -> RunConfig
    versions(packages=...)        installed versions of the stack, python included
    versions_table(run_dir=None)  the same as a one-column DataFrame, with the run directory read
    record_summary(run_dir, summary) -> Path   write ``notebook_summary.json`` into a run directory
    read_summary(run_dir) -> dict

A strategy page (``notebooks/strategies/<name>.py``) is its title, purpose and headings as
Markdown cells, and between them a few calls, each taking the page's `RunRecord` (``run``) and,
where it compares, the runs of the reference strategies (``references``):

    strategy_run(config, strategy, order=, seed=, progress=) -> RunRecord   train or read the run
    run_text(run)                                  what was run, on what, and the chance level
    score_matrix_figure(run), score_matrix_text(run)
    reference_strategies(strategy), reference_runs(config, run)
                                                   the registry's joint reference and sequential
                                                   baseline, and their runs of the same order and seed
    average_over_time_figure(run, references), average_over_time_text(run, references)
    metrics_table(run) (records the numbers), metrics_text(run, references)
    drift_figure(run), drift_text(run)
    strategy_section(strategy) -> PageSection | None
                                                   the section its registry entry's ``page_section``
                                                   names (`SECTIONS`): a table, a text, maybe a figure

Every strategy page also has the section `HELD_OUT_SECTION` (its cells tagged ``held-out``, left
out of the book's page when the profile holds out no language): held_out_table, held_out_figure,
held_out_text: each held-out language's zero-shot score after every step, its change against the
base and its erosion, against the sequential baseline's.

Sections (every function takes ``(run, references=())``; each reads what the strategy recorded
at every step, ``result.json``'s ``strategy_records``, and the run's drift):

    lora            adapter_table, adapter_text: adapter and head size, rank, against full fine-tuning
    freeze          frozen_layers_table, frozen_layers_text: what was frozen at each step, its drift
    regularization  penalty_table, baseline_drift_figure, penalty_text: L2-SP's factor per layer
    ewc             fisher_mass_table, fisher_mass_figure, fisher_mass_text: where EWC holds hardest
    reversion       reversion_table, baseline_drift_figure, reversion_text: alpha per layer, drift
    experts         experts_table, experts_text: the experts, their languages, and the merge

Importing this module also sets what every notebook wants for display: pandas shows table
cells in full, and tqdm's note that progress bars fall back to text is not repeated on every
page.

A notebook's parameters cell holds literals only (papermill injects its own cell right after
it), so everything derived from the parameters goes through `notebook_config`. Paths of params
files are resolved against the repository root, so a notebook runs from the repository root or
from its own folder alike.

Where runs live, by precedence: a ``runs_dir`` given to the notebook (its parameter, or
``overrides["runs_dir"]``), then the environment variable ``NBFORGET_RUNS_DIR``, then the
profile's ``runs_dir``. The variable lets a whole batch of notebooks run with their default
parameters against another folder (the notebook tests do this), without editing them.
"""
from __future__ import annotations

import json
import math
import os
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbforget.config import REPO_ROOT, RunConfig, display_path, load_config

__all__ = [
    "RUNS_DIR_ENV",
    "SUMMARY_FILE",
    "notebook_config",
    "resolve_params_file",
    "versions",
    "versions_table",
    "record_summary",
    "read_summary",
    "strategy_run",
    "run_text",
    "score_matrix_figure",
    "score_matrix_text",
    "reference_strategies",
    "reference_runs",
    "average_over_time_figure",
    "average_over_time_text",
    "metrics_table",
    "metrics_text",
    "drift_figure",
    "drift_text",
    "step_records",
    "final_drift",
    "PageSection",
    "SECTIONS",
    "strategy_section",
    "adapter_table",
    "adapter_text",
    "frozen_layers_table",
    "frozen_layers_text",
    "penalty_table",
    "penalty_text",
    "baseline_drift_table",
    "baseline_drift_figure",
    "fisher_mass_table",
    "fisher_mass_figure",
    "fisher_mass_text",
    "reversion_table",
    "reversion_text",
    "experts_table",
    "experts_text",
    "HELD_OUT_SECTION",
    "held_out_table",
    "held_out_figure",
    "held_out_text",
]

# Progress bars in a kernel without ipywidgets fall back to text; tqdm says so on every import,
# which would print the same warning on every page of the book.
warnings.filterwarnings("ignore", message="IProgress not found")


def _show_tables_in_full() -> None:
    """Table cells in full: a page of the book cannot widen a cell pandas cut at 50 characters."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return
    pd.set_option("display.max_colwidth", None)


_show_tables_in_full()

RUNS_DIR_ENV = "NBFORGET_RUNS_DIR"
SUMMARY_FILE = "notebook_summary.json"
STACK = ("nbforget", "torch", "transformers", "peft", "numpy", "pandas", "matplotlib", "seaborn")


def resolve_params_file(params_file: str | Path) -> Path:
    """`params_file` as an absolute path: as given when it exists, else relative to the repository."""
    path = Path(params_file)
    if path.is_absolute() or path.exists():
        return path.resolve()
    return REPO_ROOT / path


def notebook_config(params_file: str | Path, overrides: dict | None = None, *,
                    runs_dir: str | Path | None = None) -> RunConfig:
    """The run configuration of a notebook: profile, then overrides, then where runs live.

    ``runs_dir`` (or ``overrides["runs_dir"]``) wins over ``NBFORGET_RUNS_DIR``, which wins over
    the profile. Relative paths are relative to the repository root.
    """
    merged = dict(overrides or {})
    if runs_dir is not None:
        merged["runs_dir"] = str(runs_dir)
    elif "runs_dir" not in merged and os.environ.get(RUNS_DIR_ENV):
        merged["runs_dir"] = os.environ[RUNS_DIR_ENV]
    return load_config(resolve_params_file(params_file), merged or None)


def versions(packages: tuple[str, ...] = STACK) -> dict[str, str | None]:
    """Installed versions of `packages`, with python first; None where a package is missing."""
    import importlib.metadata as metadata

    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def versions_table(run_dir: str | Path | None = None, **extra: object):
    """Versions of the stack as a table, plus the run directory the notebook read and `extra`."""
    import pandas as pd

    rows = {name: (value or "not installed") for name, value in versions().items()}
    if run_dir is not None:
        rows["run directory"] = display_path(run_dir)
    rows.update({name: str(value) for name, value in extra.items()})
    return pd.DataFrame({"value": rows}).rename_axis("")


def record_summary(run_dir: str | Path, summary: dict) -> Path:
    """Write the numbers a notebook computed to ``<run_dir>/notebook_summary.json``.

    Tests compare them with the run's own ``result.json``; values must be JSON numbers, strings
    or None (NaN is written as None).
    """

    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if hasattr(value, "item"):  # numpy scalars
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    path = Path(run_dir) / SUMMARY_FILE
    temporary = path.with_name(f".{SUMMARY_FILE}.tmp")
    temporary.write_text(json.dumps(clean(summary), indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_summary(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# strategy pages: the body every page shares
# ---------------------------------------------------------------------------------------------
# Strategy facts come from the registry (`nbforget.strategies.REGISTRY`), numbers from the run.
# The registry imports torch, and analysis and plots import pandas and matplotlib; they are
# imported where used, so the batch modules that import this module for `notebook_config` stay
# light.


def _registry() -> dict:
    from nbforget.strategies import REGISTRY

    return REGISTRY


def _name(strategy: str) -> str:
    """The registry's display name of `strategy` (VANILLA, L2-SP, ...); the name itself if unknown."""
    registry = _registry()
    return registry[strategy].display_name() if strategy in registry else strategy


def _fact(strategy: str, attribute: str, default=None):
    registry = _registry()
    return getattr(registry[strategy], attribute, default) if strategy in registry else default


def _count(value: float) -> str:
    return f"{int(value):,}"


def _languages(names) -> str:
    return ", ".join(names) if names else "none"


def strategy_run(config, strategy: str, *, order=None, seed: int | None = None, progress: bool = True):
    """Train `strategy` over `order` and `seed` (or read its complete run, or resume it) and load it.

    Returns the run as `nbforget.analysis.RunRecord`; its ``run_dir`` is the run directory.
    """
    from nbforget import analysis
    from nbforget.engine import run_strategy

    return analysis.load_run(run_strategy(config, strategy, order=order, seed=seed, progress=progress))


def run_text(run) -> str:
    """Markdown: how the page got its run, then what was run (`analysis.describe_run`)."""
    from nbforget import analysis

    return ("`strategy_run` trains the strategy through the order and scores every language of the order "
            "after each training step. A complete run is read from its run directory instead of being "
            "trained again, and an interrupted one resumes from its last completed step. "
            + analysis.describe_run(run))


def score_matrix_figure(run):
    """The run's score matrix (the paper's Figure 7 layout), as a Figure; held-out languages are
    marked columns after the trained ones."""
    from nbforget import plots

    return plots.plot_score_matrix(run.matrix, run.order, chance=run.chance, row_labels=run.row_labels,
                                   held_out=run.held_out, held_out_matrix=run.held_out_matrix)


def score_matrix_text(run) -> str:
    """Markdown: how to read the score matrix of this kind of run, then its numbers."""
    from nbforget import analysis

    if run.joint:
        guide = ("Sequential strategies fill one row per language trained. Joint training has a single "
                 "step, so this matrix is one row: the model after training on all languages at once, "
                 "evaluated on each language (columns in the order's sequence).")
    else:
        guide = ("Row $i$ is the model after training the language named on the left; column $j$ is the "
                 "language evaluated, in training order (the layout of the paper's Figure 7). The outlined "
                 "diagonal is each language right after it was trained, the cells below it the languages "
                 "learned earlier, and the cells above it zero-shot scores on languages not trained yet.")
    if run.held_out:
        guide += (f" The last {'column' if len(run.held_out) == 1 else f'{len(run.held_out)} columns'}, behind the "
                  f"dark line, {'is the held-out language' if len(run.held_out) == 1 else 'are the held-out languages'} "
                  f"({_languages(run.held_out)}): scored after every step and never trained; the numbers below and "
                  "the metrics read the trained languages only (section *Held-out languages* for the rest).")
    return guide + "\n\n" + analysis.describe_matrix(run)


def reference_strategies(strategy: str | None = None) -> list[str]:
    """The registry's reference strategies other than `strategy`: the joint reference (MULTI) first,
    then the sequential baseline (VANILLA). Strategy pages draw and compare with their runs."""
    registry = _registry()
    joint = [name for name, cls in registry.items() if cls.joint_reference]
    baseline = [name for name, cls in registry.items() if cls.sequential_baseline and name not in joint]
    return [name for name in joint + baseline if name != strategy]


def reference_runs(config, run) -> list:
    """Complete runs of `reference_strategies` with the profile, order and seed of `run`."""
    from nbforget import analysis

    return analysis.companion_runs(config, run, reference_strategies(run.strategy))


def _reference(references, attribute: str):
    """The run among `references` whose strategy has registry fact `attribute` set, or None."""
    return next((other for other in references if _fact(other.strategy, attribute, False)), None)


def average_over_time_figure(run, references=()):
    """$P_i$ of the run after each step, with its reference runs (joint training as a level line)."""
    from nbforget import analysis, plots

    return plots.plot_average_over_time(analysis.average_over_time([run, *references]), chance=run.chance)


def average_over_time_text(run, references=()) -> str:
    """Markdown: what the curve is, and which reference runs are drawn with it (or why not)."""
    if run.joint:
        guide = ("Sequential strategies draw $P_i$, the mean score over the languages trained so far, after "
                 "each language (the paper's Figure 2). Joint training has no course over time: its final "
                 "average is a dotted level line.")
    else:
        guide = ("$P_i$, the mean of row $i$ of the score matrix over the languages trained so far, against "
                 "the number of languages learned (the paper's Figure 2).")
    roles = {"joint_reference": "joint training on all languages, which cannot forget: the dotted level line",
             "sequential_baseline": "sequential full fine-tuning with nothing to protect earlier languages: "
                                    "the baseline for forgetting"}
    drawn, missing = [], []
    for strategy in reference_strategies(run.strategy):
        role = next((text for fact, text in roles.items() if _fact(strategy, fact, False)), "a reference")
        found = any(other.strategy == strategy for other in references)
        (drawn if found else missing).append(f"{_name(strategy)} ({role})" if found else _name(strategy))
    parts = [guide]
    if drawn:
        parts.append("Drawn with the complete run" + ("s" if len(drawn) > 1 else "") + " of the same order and "
                     "seed of " + " and ".join(drawn) + ".")
    if missing:
        parts.append(" and ".join(missing) + (" has" if len(missing) == 1 else " have")
                     + " no complete run of the same order and seed yet (a grid runs the references first), "
                       "so " + ("it is" if len(missing) == 1 else "they are") + " not drawn.")
    return " ".join(parts)


def metrics_table(run, *, record: bool = True):
    """The run's metrics (`analysis.run_summary`) as a table; with `record`, also written to
    ``notebook_summary.json`` in the run directory, where the tests compare them with result.json."""
    from nbforget import analysis

    summary = analysis.run_summary(run)
    if record:
        record_summary(run.run_dir, summary)
    return analysis.summary_table(summary)


def _compare(value: float, other: float) -> str:
    difference = value - other
    if abs(difference) < 5e-4:
        return "level with it"
    return f"{abs(difference):.3f} {'below' if difference < 0 else 'above'} it"


def metrics_text(run, references=()) -> str:
    """Markdown: final average and CBT (`analysis.describe_forgetting`), and the gap to joint training
    (for a sequential run, or a joint run that is not the joint reference, such as MULTI LoRA) and to
    sequential training (for a joint run)."""
    from nbforget import analysis

    summary = analysis.run_summary(run)
    name = _name(run.strategy)
    text = ("The metrics of the table are computed from the score matrix; the Method page gives every formula "
            "with its sign. "
            + analysis.describe_forgetting(summary, name, references))
    joint, baseline = _reference(references, "joint_reference"), _reference(references, "sequential_baseline")
    if joint is not None:  # never the run itself: a strategy is not among its own references
        level = analysis.run_summary(joint)["final_average"]
        text += (f" {_name(joint.strategy)}, joint training on the same languages and seed, ends at {level:.3f}; "
                 f"the final average of {name} is {_compare(summary['final_average'], level)}.")
    if run.joint and baseline is not None:
        final = analysis.run_summary(baseline)["final_average"]
        text += (f" {_name(baseline.strategy)}, sequential training on the same order and seed, ends at "
                 f"{final:.3f}, {_compare(final, summary['final_average'])}")
        costs = final < summary["final_average"] - 5e-4
        lora = _fact(run.strategy, "uses_lora", False)
        if lora != _fact(baseline.strategy, "uses_lora", False):  # MULTI LoRA against VANILLA
            kinds = ("LoRA adapters on the frozen base model", "every weight")
            text += (f"; {name} trains {kinds[not lora]} and {_name(baseline.strategy)} {kinds[lora]}, so a gap "
                     "between the two holds that difference as well as the cost of learning one language at a time.")
        else:
            text += ": that gap is what learning one language at a time costs here." if costs else "."
    return text


def drift_figure(run):
    """Each layer's relative distance from the base weights after each step, as a Figure."""
    from nbforget import plots

    return plots.plot_drift(run.drift, trained=run.row_labels)


def _layer_key(name: str) -> tuple[int, int, str]:
    """Embeddings, then layer.0, layer.1, ... by number, then anything else (the head)."""
    if name == "embeddings":
        return (0, -1, name)
    if name.startswith("layer.") and name[len("layer."):].isdigit():
        return (1, int(name[len("layer."):]), name)
    return (2, 0, name)


def _layers(names) -> list[str]:
    return sorted(dict.fromkeys(str(name) for name in names), key=_layer_key)


def final_drift(run):
    """Each layer's relative distance from the base after the run's last step (a Series, embeddings
    first; empty when the run recorded no drift)."""
    import pandas as pd

    drift = run.drift
    if drift is None or drift.empty:
        return pd.Series(dtype=float, name="relative_drift")
    last = drift[drift["step"] == drift["step"].max()].set_index("layer")["relative_drift"].astype(float)
    return last.reindex(_layers(last.index))


def drift_text(run) -> str:
    """Markdown: what the drift figure shows, what it means for this strategy, and its extremes."""
    parts = [r"The relative distance $\lVert \theta - \theta_0 \rVert / \lVert \theta_0 \rVert$ of each "
             "layer's weights from the base model after each step. A layer that stays near zero kept what "
             "pretraining taught it."]
    if _fact(run.strategy, "uses_lora", False):
        parts.append("The adapters' low-rank updates are folded into the weights of their layers.")
    unit = _fact(run.strategy, "separate_parameters")
    if unit:
        parts.append(f"{_name(run.strategy)} trains a separate copy of its parameters per {unit}: each point "
                     "is the drift of the copy that step trained, not of one model moving through the sequence.")
    last = final_drift(run)
    if last.empty:
        parts.append("This run recorded no drift.")
    else:
        when = "after joint training" if run.joint else f"after the last step ({run.trained[-1]})"
        parts.append(f"{when[0].upper()}{when[1:]}, the layer furthest from the base is {last.idxmax()} "
                     f"({last.max():.4f}) and the closest {last.idxmin()} ({last.min():.4f}); the mean over "
                     f"layers is {last.mean():.4f}.")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# strategy pages: the section particular to each strategy
# ---------------------------------------------------------------------------------------------


def step_records(run) -> list[tuple[str, dict]]:
    """``(step label, what the strategy recorded at that step)`` in training order, from
    ``result.json``'s ``strategy_records`` (an empty dict where a step recorded nothing)."""
    records = run.result.get("strategy_records") or {}
    return [(label, records.get(label) or {}) for label in run.trained]


def _not_recorded(run, what: str) -> str:
    return (f"This run records no {what}: it was made before runs kept what the strategy did at each step "
            "(`strategy_records` in result.json). Delete its run directory and run it again to see this section.")


def _baseline(references):
    return _reference(references, "sequential_baseline")


# LoRA ----------------------------------------------------------------------------------------


def adapter_table(run, references=()):
    """Parameters of one adapter, one head, what a step trains, all copies the run keeps, and full
    fine-tuning (the sequential baseline's trainable parameters per step, when its run is among
    `references`), with each as a percentage of full fine-tuning. Empty when nothing was recorded."""
    import pandas as pd

    records = [record for _, record in step_records(run) if "adapter_parameters" in record]
    if not records:
        return pd.DataFrame(columns=["parameters"])
    last = records[-1]
    adapters = list(dict.fromkeys(record.get("adapter", "shared") for record in records))
    per_step = last["adapter_parameters"] + last["head_parameters"]
    rows = {f"one adapter (rank {last['rank']})": last["adapter_parameters"], "one head": last["head_parameters"],
            "trained at each step (adapter + head)": per_step}
    if len(adapters) > 1:
        rows[f"all {len(adapters)} adapters and heads of the run"] = per_step * len(adapters)
    baseline = _baseline(references)
    full = int(baseline.trainable.get("max_per_step", 0)) if baseline is not None else 0
    if full:
        rows[f"full fine-tuning ({_name(baseline.strategy)}, per step)"] = full
    table = pd.DataFrame({"parameters": pd.Series(rows, dtype="int64")}).rename_axis("")
    if full:
        table["% of full fine-tuning"] = (100.0 * table["parameters"] / full).round(2)
    return table


def adapter_text(run, references=()) -> str:
    """Markdown: rank, alpha and targets; adapter and head size against full fine-tuning; one adapter
    shared by every language, or one per language."""
    records = [(label, record) for label, record in step_records(run) if "adapter_parameters" in record]
    if not records:
        return _not_recorded(run, "adapter sizes")
    last = records[-1][1]
    rank, alpha = last["rank"], last["alpha"]
    per_step = last["adapter_parameters"] + last["head_parameters"]
    text = (f"Rank {rank} and alpha {alpha} (the update $BA$ is scaled by alpha / rank = {alpha / rank:g}) on the "
            f"modules {_languages(last['target_modules'])}. An adapter has {_count(last['adapter_parameters'])} "
            f"parameters and the head {_count(last['head_parameters'])}: {_count(per_step)} trainable parameters "
            "per step")
    baseline = _baseline(references)
    full = int(baseline.trainable.get("max_per_step", 0)) if baseline is not None else 0
    if full:
        text += (f", {100.0 * per_step / full:.1f}% of the {_count(full)} that full fine-tuning trains "
                 f"({_name(baseline.strategy)}, same order and seed).")
    else:
        text += ("; no complete run of the sequential baseline with the same order and seed gives the size of full "
                 "fine-tuning to compare with.")
    adapters = list(dict.fromkeys(record.get("adapter", "shared") for _, record in records))
    if len(adapters) > 1:
        text += (f" Each language has its own adapter and head ({len(adapters)} in all: "
                 f"{_languages(adapters)}), so the run keeps {_count(per_step * len(adapters))} trainable "
                 "parameters, and no adapter is trained again after its language.")
    elif run.joint:
        text += (f" One adapter and head are trained once, on all {len(run.order)} languages at once: "
                 f"{_count(per_step)} parameters hold them all.")
    else:
        text += (f" The same adapter and head are trained at every step: {_count(per_step)} parameters hold all "
                 f"{len(records)} languages.")
    return text


# FREEZE --------------------------------------------------------------------------------------


def _drift_by_step(run):
    """layers x steps (in training order) of relative drift; empty when none was recorded."""
    import pandas as pd

    drift = run.drift
    if drift is None or drift.empty:
        return pd.DataFrame()
    table = drift.pivot_table(index="layer", columns="step", values="relative_drift", aggfunc="first")
    return table.reindex(_layers(table.index)).sort_index(axis=1)


def frozen_layers_table(run, references=()):
    """Per layer: the steps at which it was frozen, then its drift after each step (columns
    ``after <language>``). Empty when the run recorded neither."""
    import pandas as pd

    records = step_records(run)
    frozen = {label: record.get("frozen", []) for label, record in records}
    drift = _drift_by_step(run)
    layers = _layers(list(drift.index) + [group for groups in frozen.values() for group in groups])
    if not layers:
        return pd.DataFrame(columns=["frozen during"])
    table = pd.DataFrame(index=pd.Index(layers, name="layer"))
    table["frozen during"] = [_languages([label for label, groups in frozen.items() if layer in groups])
                              for layer in layers]
    for position, label in enumerate(run.trained):
        step = drift.columns[position] if position < len(drift.columns) else None
        table[f"after {label}"] = drift[step].reindex(layers) if step is not None else float("nan")
    return table


def _movement(run):
    """(layer, step label, frozen, change of drift over that step) for every recorded cell."""
    drift = _drift_by_step(run)
    frozen = dict((label, record.get("frozen", [])) for label, record in step_records(run))
    cells = []
    for layer in drift.index:
        previous = 0.0  # the base model: no distance
        for position, step in enumerate(drift.columns):
            label = run.trained[position] if position < len(run.trained) else str(step)
            value = float(drift.loc[layer, step])
            if math.isfinite(value):
                cells.append((layer, label, layer in frozen.get(label, []), value - previous))
                previous = value
    return cells


def frozen_layers_text(run, references=()) -> str:
    """Markdown: which layers were frozen at each step, and how far frozen and trained layers moved."""
    records = step_records(run)
    if not any("frozen" in record for _, record in records):
        return _not_recorded(run, "frozen layers")
    steps = "; ".join(f"{label}: {_languages(record.get('frozen', []))}" for label, record in records)
    text = f"Frozen at each step — {steps}. The head always trains."
    cells = _movement(run)
    still = [abs(change) for _, _, frozen, change in cells if frozen]
    moving = [abs(change) for _, _, frozen, change in cells if not frozen]
    if still:
        text += (f" While frozen, a layer's drift changed by at most {max(still):.4f} in a step (a frozen layer gets "
                 "no update, so its distance from the base stays where the last step that trained it left it)")
        text += f", against up to {max(moving):.4f} for the layers that trained." if moving else "."
    elif cells:
        text += " No layer was frozen at any step of this run, so it trained as VANILLA does."
    return text


# drift against the sequential baseline (L2-SP, REVERSION) ------------------------------------


def baseline_drift_table(run, references=()):
    """Per layer, the drift after the last step of this run and of the sequential baseline's run of
    the same order and seed (a column per strategy, named by its display name; the baseline's is
    left out when it has no run among `references`)."""
    import pandas as pd

    columns = {_name(run.strategy): final_drift(run)}
    baseline = _baseline(references)
    if baseline is not None:
        columns[_name(baseline.strategy)] = final_drift(baseline)
    table = pd.DataFrame(columns)
    return table.reindex(_layers(table.index)).rename_axis("layer")


def baseline_drift_figure(run, references=()):
    """`baseline_drift_table` as bars per layer."""
    from nbforget import plots

    return plots.plot_layer_bars(baseline_drift_table(run, references),
                                 value_label="relative distance from the base\nafter the last step")


def _against_baseline(run, references) -> str:
    """A sentence: this run's mean final drift over layers against the baseline's."""
    table = baseline_drift_table(run, references)
    name = _name(run.strategy)
    if table.empty:
        return "This run recorded no drift."
    own = float(table[name].mean())
    baseline = _baseline(references)
    if baseline is None or table.shape[1] < 2:
        return (f"After the last step the layers sit at a mean distance of {own:.4f} from the base; no complete "
                "run of the sequential baseline with the same order and seed is there to compare with.")
    other = float(table[_name(baseline.strategy)].mean())
    ratio = f", {100.0 * own / other:.0f}% of it" if other > 0 else ""
    return (f"After the last step the layers sit at a mean distance of {own:.4f} from the base, against "
            f"{other:.4f} for {_name(baseline.strategy)} on the same order and seed{ratio}.")


# L2-SP ---------------------------------------------------------------------------------------


def penalty_table(run, references=()):
    """Per layer: the penalty's factor (0: free), the weight it gives the layer (l2_weight x factor),
    and the drift after the last step beside the sequential baseline's (`baseline_drift_table`)."""
    import pandas as pd

    records = [record for _, record in step_records(run) if "layer_factors" in record]
    drift = baseline_drift_table(run, references)
    if not records:
        return drift
    last = records[-1]
    factors = last["layer_factors"]
    layers = _layers(list(drift.index) + list(factors))
    table = pd.DataFrame(index=pd.Index(layers, name="layer"))
    table["factor"] = [float(factors.get(layer, 0.0)) for layer in layers]
    table["weight (l2_weight × factor)"] = table["factor"] * float(last["l2_weight"])
    return table.join(drift.add_prefix("drift: "))


def penalty_text(run, references=()) -> str:
    """Markdown: the penalty's strength, the layers it holds and those it leaves free, and the drift
    it allowed against the sequential baseline's."""
    records = [record for _, record in step_records(run) if "layer_factors" in record]
    if not records:
        return _not_recorded(run, "penalty factors")
    last = records[-1]
    factors = last["layer_factors"]
    held = ", ".join(f"{layer} × {factors[layer]:g}" for layer in _layers(factors))
    free = [layer for layer in _layers(list(final_drift(run).index) + ["head"]) if layer not in factors]
    return (f"Penalty weight $w$ = {last['l2_weight']:g}, with factor {held or 'none'}; free (factor 0): "
            f"{_languages(free)}. " + _against_baseline(run, references))


# EWC -----------------------------------------------------------------------------------------


def fisher_mass_table(run, references=()):
    """Fisher mass (the diagonal summed over a layer group's weights) per layer group (rows) and
    penalty term (columns). Separate mode: one column per language, as recorded after the last
    step; online mode: the one running Fisher after each step (columns ``after <language>``)."""
    import pandas as pd

    records = [(label, record) for label, record in step_records(run) if "fisher_mass" in record]
    if not records:
        return pd.DataFrame()
    if records[-1][1].get("mode") == "online":
        columns = {f"after {label}": mass for label, record in records for mass in record["fisher_mass"].values()}
    else:
        columns = dict(records[-1][1]["fisher_mass"])
    table = pd.DataFrame(columns, dtype=float)
    return table.reindex(_layers(table.index)).rename_axis("layer")


def fisher_mass_figure(run, references=()):
    """`fisher_mass_table` as bars per layer group, on a log scale (the head's mass and the encoder
    layers' differ by orders of magnitude)."""
    from nbforget import plots

    return plots.plot_layer_bars(fisher_mass_table(run), value_label="Fisher mass\n(sum over the layer's weights)",
                                 log=True)


def fisher_mass_text(run, references=()) -> str:
    """Markdown: the mode, how the Fisher grew (online) or its terms (separate), and where the
    final mass sits."""
    records = [(label, record) for label, record in step_records(run) if "fisher_mass" in record]
    if not records:
        return _not_recorded(run, "Fisher mass")
    table = fisher_mass_table(run)
    if records[-1][1].get("mode") == "online":
        final = table.iloc[:, -1]
        text = ("Online mode: one running Fisher, $F \\leftarrow \\gamma F + F_{new}$ after each language, with the "
                f"latest weights as its anchor. Its total mass grew from {table.iloc[:, 0].sum():.4g} after "
                f"{records[0][0]} to {final.sum():.4g} after {records[-1][0]}.")
    else:
        final = table.sum(axis=1)
        text = (f"Separate mode: one Fisher and anchor per language ({_languages(list(table.columns))}); each "
                "language is trained with the penalties of every language before it. The mass below is summed "
                "over those terms.")
    total = float(final.sum())
    if total > 0:
        shares = ", ".join(f"{layer} {value:.4g} ({100.0 * value / total:.0f}%)"
                           for layer, value in final.sort_values(ascending=False).items())
        text += f" After the last language the mass is: {shares}. EWC holds hardest where the mass is largest."
    else:
        text += " After the last language no layer holds any Fisher mass: the penalty holds nothing."
    return text + (" A group's mass is summed over its weights, so it grows with the group's size as well as with "
                   "how much the loss depends on each weight. The Fisher estimated after the last language "
                   f"({records[-1][0]}) holds nothing in this run: no language follows it.")


# REVERSION -----------------------------------------------------------------------------------


def reversion_table(run, references=()):
    """Per layer: alpha, the drift after the last step, the drift just before the last reversion
    (reverting by alpha scales a layer's distance from the base by 1 - alpha, so it was d / (1 - alpha);
    unknown for alpha = 1 or when the last step was not reverted: NaN), and the sequential baseline's
    drift after its last step."""
    import pandas as pd

    records = [record for _, record in step_records(run) if "alpha" in record]
    drift = baseline_drift_table(run, references)
    if not records:
        return drift
    last = records[-1]
    alphas = last["alpha"]
    layers = _layers(list(drift.index) + list(alphas))
    own = _name(run.strategy)
    table = pd.DataFrame(index=pd.Index(layers, name="layer"))
    table["alpha"] = [float(alphas.get(layer, 0.0)) for layer in layers]
    after = drift[own].reindex(layers) if own in drift else pd.Series(float("nan"), index=layers)
    table["drift after the last step"] = after
    reverted = bool(last.get("reverted"))
    table["just before the last reversion"] = [after[layer] / (1.0 - alpha) if reverted and alpha < 1.0
                                               else float("nan") for layer, alpha in zip(layers, table["alpha"])]
    for column in drift.columns:
        if column != own:
            table[f"drift: {column}"] = drift[column].reindex(layers)
    return table


def reversion_text(run, references=()) -> str:
    """Markdown: alpha per layer, when reversion ran, and what it did to the drift."""
    records = [(label, record) for label, record in step_records(run) if "alpha" in record]
    if not records:
        return _not_recorded(run, "reversion settings")
    last = records[-1][1]
    alphas = last["alpha"]
    settings = ", ".join(f"{layer} {alphas[layer]:g}" for layer in _layers(alphas))
    reverted = [label for label, record in records if record.get("reverted")]
    when = ("after every language" if last.get("when") == "each" else
            f"once, after the last language ({_languages(reverted)})")
    text = (f"$\\alpha$ per layer: {settings}; reverted {when}. Reverting by $\\alpha$ multiplies a layer's "
            "distance from the base by $1 - \\alpha$, and the head is never reverted.")
    table = reversion_table(run, references)
    before = table["just before the last reversion"].dropna() if "just before the last reversion" in table else []
    if len(before) and last.get("reverted"):
        after = table.loc[before.index, "drift after the last step"]
        text += (f" Just before the last reversion the layers were at a mean distance of {before.mean():.4f} from "
                 f"the base; after it, {after.mean():.4f}.")
    return text + " " + _against_baseline(run, references)


# MERGE, FAMILY EXPERTS -----------------------------------------------------------------------


def _experts(run) -> dict[str, list[str]]:
    """expert -> the step labels that trained it, in training order (from ``trained_expert``)."""
    trained: dict[str, list[str]] = {}
    for label, record in step_records(run):
        if "trained_expert" in record:
            trained.setdefault(str(record["trained_expert"]), []).append(label)
    return trained


def experts_table(run, references=()):
    """One row per expert, in the order first trained: the languages it was trained on, the step
    (1-based) that started it, the languages scored with it where the strategy records them (FAMILY
    EXPERTS; a merge scores every language with the merged model), and the mean score of the
    languages it was trained on right after each was trained (the diagonal) and after the last step."""
    import numpy as np
    import pandas as pd

    trained = _experts(run)
    records = step_records(run)
    served = records[-1][1].get("experts") if records else None
    served = served if isinstance(served, dict) else None  # a merge records only the experts' names
    columns = ["trained on", "first step"] + (["serves"] if served is not None else []) + \
        ["just trained", "final", "change"]
    if not trained:
        return pd.DataFrame(columns=columns)
    steps = list(run.trained)
    rows = []
    for expert, labels in trained.items():
        languages = served.get(expert, labels) if served is not None else labels
        diagonal = [run.matrix[steps.index(label), run.order.index(label)] for label in labels
                    if label in run.order and run.square]
        final = [run.matrix[-1, run.order.index(label)] for label in labels if label in run.order]
        just, last = (float(np.mean(diagonal)) if diagonal else float("nan")), float(np.mean(final))
        rows.append({"expert": expert, "trained on": _languages(labels), "first step": steps.index(labels[0]) + 1,
                     "serves": _languages(languages), "just trained": just, "final": last,
                     "change": last - just})
    return pd.DataFrame(rows).set_index("expert")[columns]


MERGE_METHODS = {
    "linear": lambda record: "averaged (linear merging: the mean of the experts' updates)",
    "task_arithmetic": lambda record: f"summed and scaled by $\\lambda$ = {record.get('lam'):g} (task arithmetic)",
    "ties": lambda record: (f"merged by TIES: each expert's update trimmed to its {record.get('density'):.0%} largest "
                            "entries, a sign elected per entry, the agreeing entries averaged and scaled by "
                            f"$\\lambda$ = {record.get('lam'):g}"),
}
"""How `experts_text` says each merge method of `strategy.merge.method` combines the experts."""


def experts_text(run, references=()) -> str:
    """Markdown: the experts and their languages; for a merge, how they were merged; and the expert
    whose languages lost most between training and the last step."""
    trained = _experts(run)
    if not trained:
        return _not_recorded(run, "experts")
    last = step_records(run)[-1][1]
    listing = "; ".join(f"{expert} ({_languages(labels)})" for expert, labels in trained.items())
    count = f"{len(trained)} expert{'s' if len(trained) != 1 else ''} for {sum(map(len, trained.values()))} languages"
    if "method" in last:
        method = MERGE_METHODS.get(last["method"], lambda record: f"merged by {record['method']}")(last)
        text = (f"{count}: {listing}. Every language is scored with one model, the experts trained so far "
                f"{method}; the heads are averaged. The final model merges {len(last.get('experts', []))} of them.")
    else:
        text = (f"{count}: {listing}. Each language is scored with its own expert once it has one, so a language "
                "can lose score only through later languages that continue its expert.")
    table = experts_table(run)
    changes = table["change"].dropna()
    if len(changes) and changes.abs().max() < 5e-4:
        text += " No expert's languages changed score between right after training and the last step."
    elif len(changes):
        worst = changes.idxmin()
        text += (f" From right after training to the last step, the languages of {worst} changed most: "
                 f"{table.loc[worst, 'just trained']:.3f} → {table.loc[worst, 'final']:.3f} "
                 f"({changes[worst]:+.3f}).")
    return text


# held-out languages (every strategy page; absent from the book when the profile has none) -----


def held_out_table(run, references=()):
    """One row per held-out language of the run: its base score, its score after each step
    (columns ``after <language>``), its best, final, change against the base and erosion of the
    best (`analysis.held_out_summary`). Empty when the run holds out no language."""
    import pandas as pd

    from nbforget import analysis

    summary = analysis.held_out_summary(run)
    if summary.empty:
        return summary
    scores = analysis.held_out_scores(run).T
    steps = scores.drop(columns="base")
    steps.columns = [f"after {label}" for label in run.row_labels]
    return pd.concat([summary[["base"]], steps, summary.drop(columns="base")], axis=1).rename_axis("language")


def held_out_figure(run, references=()):
    """Each held-out language's score before training and after every step, with the sequential
    baseline's mean over the same held-out languages dashed (when its run is among `references`)."""
    from nbforget import analysis, plots

    scores = analysis.held_out_scores(run)
    baseline = _baseline(references)
    reference = label = None
    if baseline is not None and baseline.held_out == run.held_out and baseline.strategy != run.strategy:
        other = analysis.held_out_scores(baseline)
        if len(other) == len(scores):
            reference, label = other.mean(axis=1), f"{_name(baseline.strategy)}, mean of the held-out languages"
    return plots.plot_held_out(scores, chance=run.chance, reference=reference, reference_label=label)


def held_out_text(run, references=()) -> str:
    """Markdown: which model scores a held-out language for this strategy, each held-out language's
    base, best, final score, change and erosion, and the sequential baseline's erosion beside it."""
    from nbforget import analysis

    summary = analysis.held_out_summary(run)
    if summary.empty:
        return ("This run holds out no language. `held_out_languages` in a profile lists locales that are scored "
                "before training and after every step and never trained: their zero-shot transfer, and how much of "
                "it later training erodes (see the Method page).")
    name = _name(run.strategy)
    how = _fact(run.strategy, "held_out_scoring", "with the model after each step")
    parts = [f"Held out: {_languages(run.held_out)}, scored before training and after every step, never trained. "
             f"{name} scores a held-out language {how}. Change is the final score minus the base model's (a fresh "
             "head: near chance for a task), erosion the final score minus the best one after any step (never "
             "positive; negative means later training lost transfer the run once had)."]
    for language, row in summary.iterrows():
        parts.append(f"{language}: base {row['base']:.3f}, best {row['best']:.3f} after {row['best after']}, final "
                     f"{row['final']:.3f}; change {row['change']:+.3f}, erosion {row['erosion']:+.3f}.")
    baseline = _baseline(references)
    if baseline is not None and baseline.strategy != run.strategy:
        other = analysis.held_out_summary(baseline)
        if other.empty or list(other.index) != list(summary.index):
            parts.append(f"The run of {_name(baseline.strategy)} with the same order and seed holds out other "
                         "languages, so it is no comparison here.")
        else:
            mine, theirs = float(summary["erosion"].mean()), float(other["erosion"].mean())
            verdict = ("about as much" if abs(mine - theirs) < 5e-4 else "less" if mine > theirs else "more")
            parts.append(f"Mean erosion {mine:+.3f}, against {theirs:+.3f} for {_name(baseline.strategy)} on the same "
                         f"order and seed: {name} erodes {verdict} of its zero-shot transfer.")
    return " ".join(parts)


# the sections, by the registry's ``page_section`` --------------------------------------------


@dataclass(frozen=True)
class PageSection:
    """The extra section of a strategy page: its heading (a Markdown cell of the page, numbered
    there) and the functions its cells call, each with ``(run, references)``."""

    heading: str
    table: Callable
    text: Callable
    figure: Callable | None = None

    @property
    def calls(self) -> tuple[str, ...]:
        """Names of the functions the section's cells call, in the order the cells come."""
        return tuple(function.__name__ for function in (self.table, self.figure, self.text) if function)


SECTIONS: dict[str, PageSection] = {
    "lora": PageSection("Adapter and head against full fine-tuning", adapter_table, adapter_text),
    "freeze": PageSection("Frozen layers and their drift", frozen_layers_table, frozen_layers_text),
    "regularization": PageSection("Penalty per layer and the drift it allowed", penalty_table, penalty_text,
                                  baseline_drift_figure),
    "ewc": PageSection("Fisher mass per layer", fisher_mass_table, fisher_mass_text, fisher_mass_figure),
    "reversion": PageSection("Reversion per layer and its effect on drift", reversion_table, reversion_text,
                             baseline_drift_figure),
    "experts": PageSection("The experts and the languages they serve", experts_table, experts_text),
}
"""Sections by the key a strategy's ``page_section`` names."""


HELD_OUT_SECTION = PageSection("Held-out languages", held_out_table, held_out_text, held_out_figure)
"""The section every strategy page has for its held-out languages; its cells carry the tag
``held-out``, so the book's page leaves it out when the profile holds out no language
(`nbforget.batch.notebooks.OPTIONAL_SECTIONS`)."""


def strategy_section(strategy: str) -> PageSection | None:
    """The extra section of `strategy`'s page (its registry entry's ``page_section``), or None."""
    from nbforget import NbforgetError
    from nbforget.strategies import get_strategy

    key = get_strategy(strategy).page_section
    if key is None:
        return None
    if key not in SECTIONS:
        raise NbforgetError(f"strategy {strategy!r} has page_section {key!r}, which nbforget.pages.SECTIONS does "
                            f"not define; known sections: {', '.join(SECTIONS)}")
    return SECTIONS[key]
