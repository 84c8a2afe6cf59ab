"""Runs as tidy tables for the analysis notebooks, and the core paper's reported numbers.

Reading runs (never training):

    load_run(run_dir) -> RunRecord        one complete run: score matrix, order, result, drift
    run_summary(run), summary_table(...)  its metrics, recomputed from its scores
    describe_run(run)                     a paragraph: profile, data, model, order, chance level
    matrix_regions(matrix)                mean of the diagonal, below it and above it
    companion_runs(config, run)           other strategies' runs of the same order and seed
    load_study(config) -> Study           every complete run of a profile, and what is missing

Tables (``study`` is a `Study`; intervals are 95% percentile-bootstrap intervals over language
orders, `nbforget.metrics.bootstrap_ci`; seeds of one order are averaged first):

    run_metrics(study)                    one row per run: final average, CBT, CFT, forgetting, ...
    summarize_over_orders(frame, values)  mean and interval over orders, per strategy
    table1(study)                         trainable parameters, final average, by vitality bucket
    table2(study)                         CBT and CFT
    average_over_time(study)              P[i] per run and step (the paper's Figure 2)
    order_matrices(study, strategy)       seed-averaged score matrices, one per order
    performance_shift(study, strategy)    per language, over orders (Figure 3)
    hop_tables(study, strategy)           MFT and MBT per language and hop (Figures 5 and 6)
    sequential_strategies(study)          strategies whose score matrices are square
    language_measures(study)              per order and language: the `MEASURES`, and language facts
    group_summary(measures, by, value)    a measure per group (script, family, vitality)
    group_difference(...)                 one group minus another, over orders
    group_table(measures, by, values)     several measures per group, as text with intervals
    measure_table(measures, by, value)    one of them: strategies x groups
    group_points(measures, by, value)     per-language points for the group figures

The paper (Khelli et al. 2025, "What Causes Knowledge Loss in Multilingual Language Models?"):

    PAPER                                 everything below, in one mapping
    PAPER_TABLE1, PAPER_TABLE2            their Tables 1 and 2 as printed (Table 1's F1 in percent)
    PAPER_FIGURE2, PAPER_FIGURE3          what their Figures 2 and 3 report, in numbers and names
    PAPER_CLAIMS                          section 5: script, family, vitality, single languages
    paper_row(strategy, rank)             the row of Table 1 (and 2) a strategy is compared with
    paper_table1(), paper_table2()        the tables as DataFrames, F1 as a fraction

Side by side: `table1_comparison(study)`, `table2_comparison(study)`, `ranking_agreement(ours,
paper)`, `paper_final_scores(study)`, `scale_statement(study)`.

Formatting: `format_interval(mean, low, high, n)` and `display_name(strategy)`.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml

from nbforget import NbforgetError, metrics
from nbforget.config import RunConfig, display_path
from nbforget.runs import RunStore, base_scores, order_label, run_status, score_matrix
from nbforget.strategies import REGISTRY, run_store

__all__ = [
    "RunRecord",
    "Study",
    "load_run",
    "load_study",
    "run_summary",
    "summary_table",
    "run_metrics",
    "describe_run",
    "matrix_regions",
    "companion_runs",
    "summarize_over_orders",
    "table1",
    "table2",
    "average_over_time",
    "order_matrices",
    "performance_shift",
    "hop_tables",
    "language_measures",
    "group_summary",
    "group_difference",
    "group_table",
    "measure_table",
    "group_points",
    "sequential_strategies",
    "MEASURES",
    "paper_family_group",
    "distinct_parameters",
    "table1_comparison",
    "table2_comparison",
    "ranking_agreement",
    "extreme_group",
    "paper_final_scores",
    "scale_statement",
    "format_interval",
    "display_name",
    "PaperRow",
    "PAPER",
    "PAPER_SETTING",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_FIGURE2",
    "PAPER_FIGURE3",
    "PAPER_CLAIMS",
    "PAPER_NAMES",
    "paper_row",
    "paper_table1",
    "paper_table2",
    "SEPARATE_PARAMETERS",
]

# ---------------------------------------------------------------------------------------------
# the paper's numbers (Khelli et al. 2025)
# ---------------------------------------------------------------------------------------------

PAPER_SETTING = (
    "Khelli et al. (2025): XLM-R base (278M parameters) fine-tuned for slot filling on MASSIVE, "
    "52 languages with 11.5 thousand training examples each, 5 language orders, slot F1"
)


class PaperRow(NamedTuple):
    """One row of the paper's Table 1 (F1 in percent, as printed; params in millions)."""

    method: str
    rank: int | None
    params_m: float
    f1: float
    low: float
    mid: float
    high: float


PAPER_TABLE1: tuple[PaperRow, ...] = (
    PaperRow("MULTI", None, 278.04, 75.03, 75.42, 75.84, 72.63),
    PaperRow("MULTI", 32, 5.36, 74.19, 74.27, 75.17, 71.83),
    PaperRow("MULTI", 64, 10.72, 73.79, 74.00, 74.56, 71.73),
    PaperRow("MULTI", 256, 42.86, 74.11, 74.16, 74.83, 72.41),
    PaperRow("MONO", None, 14458.27, 72.98, 73.66, 74.11, 69.43),
    PaperRow("VANILLA", None, 278.04, 66.16, 65.70, 67.65, 63.46),
    PaperRow("SHARED LoRA", 32, 5.36, 60.24, 59.35, 62.34, 56.75),
    PaperRow("SHARED LoRA", 64, 10.72, 61.26, 60.55, 63.37, 57.48),
    PaperRow("SHARED LoRA", 256, 42.86, 60.16, 59.06, 62.15, 57.22),
    PaperRow("NON-SHARED LoRA", 32, 278.04, 72.14, 72.42, 73.39, 68.89),
    PaperRow("NON-SHARED LoRA", 64, 557.19, 72.38, 72.55, 73.48, 69.65),
    PaperRow("NON-SHARED LoRA", 256, 2228.75, 73.16, 73.82, 74.26, 69.73),
)
"""Table 1: trainable parameters (M) and average F1 (%), overall and by vitality (Joshi classes
0-2 low, 3 mid, 4-5 high). MULTI with a rank is joint training of one LoRA adapter."""

PAPER_TABLE2: dict[tuple[str, int | None], tuple[float, float]] = {
    ("VANILLA", None): (-0.08, 0.55),
    ("SHARED LoRA", 32): (-0.13, 0.52),
    ("SHARED LoRA", 64): (-0.12, 0.53),
    ("SHARED LoRA", 256): (-0.14, 0.51),
}
"""Table 2: (CBT, CFT) per method, on the 0-1 scale."""

PAPER_FIGURE2 = {
    "multi_stays_above": 0.73,  # MULTI (dotted) keeps F1 above 73% throughout
    "vanilla_drop": (0.10, 0.15),  # VANILLA loses 10-15 F1 points over the sequence
    "shared_lora_drop": (0.15, 0.30),  # SHARED LoRA loses 15-30 points
    "nonshared_lora_range": (0.70, 0.73),  # NON-SHARED LoRA stays between 70% and 73%
}
"""Figure 2, as the text of section 4 reads it (score drops as fractions of 1)."""

PAPER_FIGURE3 = {
    "strategy": "vanilla",
    "most_destructive": "zh-CN",  # the largest drop of earlier languages' scores
    "best_donor": "de-DE",  # the largest gain of earlier languages' scores
}
"""Figure 3: performance shift per language in VANILLA, averaged over the 5 orders."""

PAPER_CLAIMS = {
    "forgetting_languages": ("zh-CN", "ja-JP", "zh-TW"),  # most negative MBT, worst shifts
    "robust_receivers": ("nb-NO", "ca-ES", "pt-PT", "el-GR"),  # highest MBT across hops
    "script": {
        "weaker": "non-Latin",  # lower MFT (weak donors) and more negative MBT (forget more)
        "stronger": "Latin",
        "measures": ("mft_mean", "mbt_mean"),
    },
    "family": {
        "strong": ("Romance", "Germanic"),  # genera: strong donors, stable receivers
        "poor": ("Sino-Tibetan", "Austro-Asiatic", "Afro-Asiatic"),  # families: poor receivers
    },
    "vitality": {
        "best_final": "mid",  # Table 1: mid vitality has the highest F1 in every method
        "worst_final": "high",  # and high vitality the lowest
        "most_negative_mbt": "high",  # zh-CN, ja-JP, hi-IN
        "weaker_donor_than": ("high", "mid"),  # high-vitality MFT below mid-vitality MFT
    },
}
"""Section 5 (and Table 1's vitality columns), as directions that can be checked."""

PAPER_NAMES = {
    "multi": "MULTI",
    "mono": "MONO",
    "vanilla": "VANILLA",
    "shared_lora": "SHARED LoRA",
    "nonshared_lora": "NON-SHARED LoRA",
}
"""Our strategy name -> the paper's method name."""

PAPER = {
    "setting": PAPER_SETTING,
    "table1": PAPER_TABLE1,
    "table2": PAPER_TABLE2,
    "figure2": PAPER_FIGURE2,
    "figure3": PAPER_FIGURE3,
    "claims": PAPER_CLAIMS,
    "names": PAPER_NAMES,
}

PAPER_RANKS = (32, 64, 256)


def paper_row(strategy: str, rank: int | None = None) -> PaperRow | None:
    """The Table 1 row a strategy is compared with; None for strategies the paper did not run.

    LoRA strategies take the row of `rank` when the paper has it, else the r = 32 row.
    """
    method = PAPER_NAMES.get(strategy)
    if method is None:
        return None
    candidates = [row for row in PAPER_TABLE1 if row.method == method]
    if len(candidates) == 1 or method == "MULTI":
        return next(row for row in candidates if row.rank is None)
    wanted = rank if rank in PAPER_RANKS else 32
    return next(row for row in candidates if row.rank == wanted)


def paper_table1() -> pd.DataFrame:
    """Table 1 as printed, with F1 columns also as fractions (``f1``, ``low``, ... in [0, 1])."""
    frame = pd.DataFrame([row._asdict() for row in PAPER_TABLE1])
    frame["rank"] = frame["rank"].astype("Int64")
    for column in ("f1", "low", "mid", "high"):
        frame[column] = frame[column] / 100.0
    return frame


def paper_table2() -> pd.DataFrame:
    rows = [{"method": method, "rank": rank, "cbt": cbt, "cft": cft}
            for (method, rank), (cbt, cft) in PAPER_TABLE2.items()]
    frame = pd.DataFrame(rows)
    frame["rank"] = frame["rank"].astype("Int64")
    return frame


# ---------------------------------------------------------------------------------------------
# reading runs
# ---------------------------------------------------------------------------------------------

SEPARATE_PARAMETERS = {"mono": "language", "nonshared_lora": "language", "family_experts": "family",
                       "merge": "strategy.merge.experts"}
"""Strategies that train separate copies of their parameters, and per what: one copy per
language, per language family, or as a setting of the run says. Their distinct trainable
parameters are one step's count times the number of copies. Every other strategy trains one
set of parameters again and again, so its distinct count is the largest step's. This is how the
paper's Table 1 counts (MONO: 52 x 278M; VANILLA: 278M)."""


@dataclass
class RunRecord:
    """One complete run, read from its directory (see `nbforget.runs`).

    ``matrix`` has one row per step (rows = after training step i, columns = languages in
    ``order``); it is square for sequential strategies and has a single row for joint training.
    """

    run_dir: Path
    strategy: str
    order_spec: str
    seed: int
    order: tuple[str, ...]
    trained: tuple[str, ...]
    matrix: np.ndarray
    base: np.ndarray | None
    result: dict
    drift: pd.DataFrame
    config: dict = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return self.result["metrics"]["metric"]

    @property
    def chance(self) -> float:
        return float(self.result["metrics"].get("chance", float("nan")))

    @property
    def square(self) -> bool:
        return self.matrix.shape[0] == self.matrix.shape[1] and self.matrix.shape[0] > 1

    @property
    def joint(self) -> bool:
        return self.matrix.shape[0] == 1 and len(self.order) > 1

    @property
    def trainable(self) -> dict:
        return self.result.get("trainable_parameters", {})

    @property
    def row_labels(self) -> list[str]:
        """What each row of the matrix was trained on, for plots ("all (joint)" for joint training)."""
        return ["all (joint)" if "+" in label else label for label in self.trained]


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a complete run directory; raises `NbforgetError` naming what is missing."""
    folder = Path(run_dir)
    status = folder / "status"
    if not status.exists() or status.read_text().strip() != "complete":
        state = status.read_text().strip() if status.exists() else "absent"
        hint = f"its error is in {folder / 'error.txt'}; fix it and run again to resume" if state == "failed" \
            else "run it first"
        raise NbforgetError(f"{folder} is not a complete run (status: {state}); {hint}")
    stored = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    order = tuple(stored["order"])
    scores = pd.read_csv(folder / "scores.csv")
    metric = result["metrics"]["metric"]
    matrix = score_matrix(scores, list(order), metric=metric)
    base = base_scores(scores, list(order), metric=metric)
    steps = scores[(scores.step >= 0)].drop_duplicates("step").sort_values("step")
    trained = tuple(str(label) for label in steps["trained_language"])
    drift_file = folder / "drift.csv"
    drift = pd.DataFrame(columns=["step", "layer", "relative_drift"])
    if drift_file.exists() and drift_file.stat().st_size > 1:
        try:
            drift = pd.read_csv(drift_file)
        except pd.errors.EmptyDataError:
            pass
    return RunRecord(
        run_dir=folder, strategy=stored["strategy"], order_spec=order_label(stored["order_spec"]),
        seed=int(stored["seed"]), order=order, trained=trained, matrix=matrix, base=base,
        result=result, drift=drift, config=stored.get("config", {}),
    )


@dataclass
class Study:
    """The complete runs of one profile that match its languages, orders and seeds."""

    config: RunConfig
    runs: list[RunRecord]
    missing: list[tuple[str, str, int]]  # (strategy, order label, seed) expected but not complete

    @property
    def strategies(self) -> list[str]:
        """Strategies with at least one complete run: the profile's list first, then the others."""
        found = {run.strategy for run in self.runs}
        listed = [name for name in self.config.strategies if name in found]
        return listed + sorted(found - set(listed))

    @property
    def missing_strategies(self) -> list[str]:
        """Strategies of the profile's list without any complete run."""
        found = {run.strategy for run in self.runs}
        return [name for name in self.config.strategies if name not in found]

    def of(self, strategy: str) -> list[RunRecord]:
        return [run for run in self.runs if run.strategy == strategy]

    @property
    def metric(self) -> str | None:
        return self.runs[0].metric if self.runs else None

    @property
    def chance(self) -> float:
        return self.runs[0].chance if self.runs else float("nan")

    @property
    def orders(self) -> list[str]:
        return sorted({run.order_spec for run in self.runs})

    def describe(self) -> str:
        """One paragraph: what was found, and what is missing."""
        config = self.config
        text = (f"Profile `{config.profile}`: data set `{config.dataset}`, model `{config.model.name}`, "
                f"{len(config.languages)} languages ({', '.join(config.languages)}), "
                f"{len(config.orders)} order(s), {len(config.seeds)} seed(s). "
                f"Runs read from `{display_path(config.runs_path / config.profile)}`: {len(self.runs)} complete run(s) "
                f"of {len(self.strategies)} strategies.")
        if self.missing_strategies:
            text += (" No complete run for " + ", ".join(f"`{name}`" for name in self.missing_strategies)
                     + ": those strategies are left out below (run `nbforget grid` to add them).")
        partial = sorted({strategy for strategy, _, _ in self.missing} - set(self.missing_strategies))
        if partial:
            text += (" Some orders or seeds are missing for " + ", ".join(f"`{name}`" for name in partial)
                     + "; their intervals use the runs that exist.")
        return text


def load_study(config: RunConfig, *, strategies: Iterable[str] | None = None) -> Study:
    """Every complete run of ``config``'s profile with its languages, orders and seeds.

    Expected runs are ``strategies`` (default: the profile's list) x orders x seeds; complete runs
    of other strategies with the same orders, seeds and languages are included too (a strategy run
    with ``nbforget run`` shows up without being in the list). Runs of other languages under the
    same profile name are ignored.
    """
    expected = list(strategies) if strategies is not None else list(config.strategies)
    root = config.runs_path
    languages = set(config.languages)
    records: dict[Path, RunRecord] = {}
    missing = []
    for strategy in expected:
        for order in config.orders_for(strategy):
            for seed in config.seeds:
                store = run_store(config, strategy, order, seed)
                if store.status == "complete":
                    records[store.path] = load_run(store.path)
                else:
                    missing.append((strategy, order_label(order), seed))
    others = sorted(folder.name for folder in (root / config.profile).glob("*") if folder.is_dir())
    for strategy in others:
        if strategy in expected or strategy not in REGISTRY:
            continue
        for order in config.orders:
            for seed in config.seeds:
                store = run_store(config, strategy, order, seed)  # this config's run of that strategy
                if store.status == "complete":
                    records[store.path] = load_run(store.path)
    runs = [run for run in records.values() if set(run.order) == languages]
    return Study(config=config, runs=runs, missing=missing)


# ---------------------------------------------------------------------------------------------
# per-run metrics and summaries over orders
# ---------------------------------------------------------------------------------------------


def _safe(function, *args) -> float:
    try:
        return float(function(*args))
    except ValueError:
        return float("nan")


def distinct_parameters(run: RunRecord) -> int:
    """Trainable parameters of a run counted as the paper counts them (see `SEPARATE_PARAMETERS`)."""
    trainable = run.trainable
    per_step = int(trainable.get("max_per_step", 0))
    unit = SEPARATE_PARAMETERS.get(run.strategy)
    if unit is None:
        return per_step
    if unit.startswith("strategy."):
        setting = run.config
        for part in unit.split("."):
            setting = setting.get(part, {}) if isinstance(setting, dict) else {}
        unit = setting if isinstance(setting, str) else "language"
    if unit == "family":
        from nbforget.languages import get_language

        copies = len({get_language(language).family for language in run.order})
    else:
        copies = len(run.order)
    return per_step * copies


def _final_average(run: RunRecord) -> float:
    last = run.matrix[-1]
    return float(np.mean(last)) if np.all(np.isfinite(last)) else float("nan")


def run_summary(run: RunRecord) -> dict:
    """The metrics of one run's score matrix, its trainable parameters and its time.

    Computed here from the scores (not copied from result.json). Metrics a matrix cannot give
    (CBT of joint training, CFT without zero-shot cells) are NaN.
    """
    summary = {
        "strategy": run.strategy, "order": run.order_spec, "seed": run.seed,
        "final_average": _final_average(run), "chance": run.chance,
        "cbt": float("nan"), "cft": float("nan"), "forgetting": float("nan"),
        "forgetting_max": float("nan"), "fwt": float("nan"),
    }
    if run.square:
        summary.update(
            cbt=_safe(metrics.cbt, run.matrix), cft=_safe(metrics.cft, run.matrix),
            forgetting=_safe(metrics.forgetting, run.matrix, "learned"),
            forgetting_max=_safe(metrics.forgetting, run.matrix, "max"),
        )
        if run.base is not None:
            summary["fwt"] = _safe(metrics.fwt, run.matrix, run.base)
    trainable = run.trainable
    summary.update(
        params_per_step=int(trainable.get("max_per_step", 0)),
        params_total=int(trainable.get("total", 0)),
        params_distinct=distinct_parameters(run),
        seconds=float(run.result.get("timings", {}).get("seconds", float("nan"))),
    )
    return summary


SUMMARY_ROWS = {
    "final_average": ("final average", "mean score over all languages after the last step; higher is better"),
    "chance": ("chance level", "score of a uniform guess over the labels"),
    "cbt": ("CBT", "final minus just-learned score, averaged over earlier languages; negative = forgetting"),
    "cft": ("CFT", "zero-shot score on languages not yet trained; higher = more forward transfer"),
    "forgetting": ("forgetting", "just-learned minus final score (Avalanche); positive = forgetting"),
    "forgetting_max": ("forgetting (max)", "best earlier minus final score (FACIL, mammoth); positive = forgetting"),
    "fwt": ("FWT", "zero-shot score on the next language minus the base model's; positive = transfer"),
    "params_per_step": ("trainable parameters per step", "the largest number trained at one step"),
    "params_distinct": ("trainable parameters (paper's count)", "distinct parameters trained over the run"),
    "params_total": ("trainable parameters, summed over steps", "what the run's optimizers updated in all"),
    "seconds": ("seconds", "wall time of the run"),
}
"""Rows of `summary_table`: label and reading of each entry of `run_summary`."""


def summary_table(summary: dict) -> pd.DataFrame:
    """`run_summary` as a two-column table (value, how to read it), one row per metric."""
    rows = []
    for key, (label, reading) in SUMMARY_ROWS.items():
        value = summary.get(key, float("nan"))
        if key.startswith("params"):
            text = f"{int(value):,}"
        elif key == "seconds":
            text = f"{value:.1f}"
        else:
            text = "n/a" if not math.isfinite(value) else f"{value:.3f}"
        rows.append({"metric": label, "value": text, "how to read it": reading})
    return pd.DataFrame(rows).set_index("metric")


def run_metrics(study: Study) -> pd.DataFrame:
    """One row per run of the study: `run_summary` plus the run directory."""
    rows = [{**run_summary(run), "run_dir": str(run.run_dir)} for run in study.runs]
    columns = ["strategy", "order", "seed", "final_average", "chance", "cbt", "cft", "forgetting",
               "forgetting_max", "fwt", "params_per_step", "params_total", "params_distinct", "seconds",
               "run_dir"]
    return pd.DataFrame(rows, columns=columns)


def matrix_regions(matrix) -> dict[str, float]:
    """Mean score on the diagonal (just learned), below it (learned earlier) and above it (zero-shot).

    NaN where a region is empty or unrecorded.
    """
    values = np.asarray(matrix, dtype=float)
    rows, columns = values.shape
    i, j = np.indices((rows, columns))

    def mean(mask) -> float:
        cells = values[mask & np.isfinite(values)]
        return float(cells.mean()) if cells.size else float("nan")

    return {"diagonal": mean(i == j), "below": mean(j < i), "above": mean(j > i)}


DATASETS = {
    "sib200": "SIB-200 topic classification (FLORES-200 sentences)",
    "xsid": "xSID slot filling",
    "massive": "MASSIVE slot filling",
}


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
    return (f"Profile `{config.get('profile', '?')}`: {DATASETS.get(dataset, dataset)}{cap_text}, "
            f"model `{model}`. Order `{run.order_spec}`: {steps}; seed {run.seed}. "
            f"Every cell is the test {run.metric.replace('_', ' ')} of one language; the {chance_text}.")


def companion_runs(config: RunConfig, run: RunRecord, strategies: Iterable[str] = ("multi",)) -> list[RunRecord]:
    """Complete runs of other `strategies` with the same profile, order and seed as `run`."""
    found = []
    for strategy in strategies:
        if strategy == run.strategy:
            continue
        folder = run.run_dir.parent.parent.parent / strategy / run.run_dir.parent.name / run.run_dir.name
        status = folder / "status"
        if status.exists() and status.read_text().strip() == "complete":
            record = load_run(folder)
            if record.order == run.order:
                found.append(record)
    return found


def _per_order(frame: pd.DataFrame, values: Sequence[str], by: Sequence[str]) -> pd.DataFrame:
    """Average the seeds of each order: one row per (by..., order)."""
    return frame.groupby(list(by) + ["order"], sort=False)[list(values)].mean().reset_index()


def summarize_over_orders(frame: pd.DataFrame, values: Sequence[str], *,
                          by: Sequence[str] = ("strategy",), n_resamples: int = 10000) -> pd.DataFrame:
    """Mean and 95% bootstrap interval over orders of each column in `values`, per group.

    `frame` has an ``order`` column (and may have ``seed``: seeds of an order are averaged first).
    Returns one row per group with columns ``<value>``, ``<value>_low``, ``<value>_high`` and
    ``n_orders`` (orders where the value is defined). With one order the interval is NaN.
    """
    values = list(values)
    per_order = _per_order(frame, values, by)
    rows = []
    for key, group in per_order.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        counts = []
        for value in values:
            finite = group[value].to_numpy(dtype=float)
            finite = finite[np.isfinite(finite)]
            if finite.size:
                mean, low, high = metrics.bootstrap_ci(finite, n_resamples=n_resamples)
            else:
                mean = low = high = float("nan")
            row.update({value: mean, f"{value}_low": low, f"{value}_high": high})
            counts.append(finite.size)
        row["n_orders"] = max(counts) if counts else 0
        rows.append(row)
    return pd.DataFrame(rows).set_index(list(by)) if rows else pd.DataFrame()


def _vitality_of(locale: str, buckets) -> str | None:
    from nbforget.languages import vitality

    try:
        return vitality(locale, buckets)
    except NbforgetError:
        return None


def vitality_scores(study: Study) -> pd.DataFrame:
    """Per run: the final score averaged over the languages of each vitality bucket."""
    buckets = study.config.vitality_buckets
    rows = []
    for run in study.runs:
        last = run.matrix[-1]
        row = {"strategy": run.strategy, "order": run.order_spec, "seed": run.seed}
        for bucket in buckets:
            members = [j for j, locale in enumerate(run.order) if _vitality_of(locale, buckets) == bucket]
            row[bucket] = float(np.mean(last[members])) if members else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=["strategy", "order", "seed", *buckets])


def table1(study: Study) -> pd.DataFrame:
    """The paper's Table 1 for our runs, one row per strategy (mean over orders, with intervals).

    Columns: ``params_distinct`` (the paper's way of counting), ``params_per_step``,
    ``final_average`` with ``_low``/``_high``, one column per vitality bucket (with intervals),
    ``n_orders``, ``chance``.
    """
    if not study.runs:
        return pd.DataFrame()
    per_run = run_metrics(study)
    vitality = vitality_scores(study)
    buckets = list(study.config.vitality_buckets)
    merged = per_run.merge(vitality, on=["strategy", "order", "seed"])
    summary = summarize_over_orders(merged, ["final_average", *buckets])
    parameters = per_run.groupby("strategy", sort=False)[["params_distinct", "params_per_step"]].max()
    table = parameters.join(summary)
    table["chance"] = per_run.groupby("strategy", sort=False)["chance"].first()
    return table.loc[[name for name in study.strategies if name in table.index]]


def table2(study: Study) -> pd.DataFrame:
    """CBT, CFT and (learned-reference) forgetting per strategy with intervals over orders.

    Strategies whose matrices cannot give CBT (joint training) are left out.
    """
    per_run = run_metrics(study)
    per_run = per_run[np.isfinite(per_run["cbt"].to_numpy(dtype=float))]
    if per_run.empty:
        return pd.DataFrame()
    table = summarize_over_orders(per_run, ["cbt", "cft", "forgetting"])
    return table.loc[[name for name in study.strategies if name in table.index]]


# ---------------------------------------------------------------------------------------------
# curves and per-language tables
# ---------------------------------------------------------------------------------------------


def average_over_time(study_or_runs) -> pd.DataFrame:
    """The average over seen languages ``P[i]`` of every run, one row per run and step.

    Columns: ``strategy``, ``order``, ``seed``, ``step`` (0-based), ``languages_seen``
    (``step + 1``), ``value`` and ``joint``. A joint-training run (one step over all languages)
    gives one row with ``joint=True`` and its final average as value, drawn as a level line.
    """
    runs = study_or_runs.runs if isinstance(study_or_runs, Study) else list(study_or_runs)
    rows = []
    for run in runs:
        if run.joint:
            rows.append((run.strategy, run.order_spec, run.seed, len(run.order) - 1, len(run.order),
                         _final_average(run), True))
            continue
        try:
            seen = metrics.average_seen(run.matrix)
        except ValueError:
            continue
        for step, value in enumerate(seen):
            rows.append((run.strategy, run.order_spec, run.seed, step, step + 1, float(value), False))
    return pd.DataFrame(rows, columns=["strategy", "order", "seed", "step", "languages_seen", "value", "joint"])


def order_matrices(study: Study, strategy: str) -> tuple[list[np.ndarray], list[tuple[str, ...]], list[str]]:
    """Square score matrices of `strategy`, one per order (its seeds averaged); with the orders.

    Returns ``(matrices, orders, order_labels)``; empty lists when the strategy has no square
    matrix (joint training).
    """
    grouped: dict[str, list[RunRecord]] = {}
    for run in study.of(strategy):
        if run.square:
            grouped.setdefault(run.order_spec, []).append(run)
    matrices, orders, labels = [], [], []
    for label, runs in grouped.items():
        matrices.append(np.mean([run.matrix for run in runs], axis=0))
        orders.append(runs[0].order)
        labels.append(label)
    return matrices, orders, labels


def performance_shift(study: Study, strategy: str = "vanilla", **bootstrap_options) -> pd.DataFrame | None:
    """Per-language performance shift of `strategy` over orders (the paper's Figure 3).

    Index ``language``; columns ``mean``, ``ci_low``, ``ci_high``, ``n`` (orders). Negative means
    training that language lowered the scores of the languages learned before it. None when the
    strategy has no square score matrix.
    """
    matrices, orders, _ = order_matrices(study, strategy)
    if not matrices:
        return None
    try:
        return metrics.per_language_shift(matrices, orders, **bootstrap_options)
    except ValueError:
        return None


def hop_tables(study: Study, strategy: str = "vanilla", *, max_hop: int = 9,
               **bootstrap_options) -> dict[str, pd.DataFrame] | None:
    """Per-language MFT and MBT of `strategy` over hops ``0..min(max_hop, T-1)`` (Figures 5, 6).

    Returns ``{"mft": table, "mbt": table}``, each a `nbforget.metrics.per_language_hops` table
    (``table["mean"]`` is languages x h) sorted by the mean over hops, largest first. None when the
    strategy has no square score matrix.
    """
    matrices, orders, _ = order_matrices(study, strategy)
    if not matrices:
        return None
    size = min(matrix.shape[0] for matrix in matrices)
    hops = list(range(min(max_hop, size - 1) + 1))
    tables = {}
    for name in ("mft", "mbt"):
        try:
            table = metrics.per_language_hops(matrices, orders, name, hops=hops, **bootstrap_options)
        except ValueError:
            return None
        tables[name] = metrics.sort_by_mean_over_hops(table)
    return tables


def _language_facts(locales: Iterable[str], buckets) -> pd.DataFrame:
    from nbforget.languages import get_language

    rows = []
    for locale in locales:
        language = get_language(locale)
        rows.append({
            "language": locale, "name": language.name, "script": language.script,
            "latin": "Latin" if language.latin else "non-Latin", "family": language.family,
            "genus": language.genus, "joshi_class": language.joshi_class,
            "vitality": _vitality_of(locale, buckets),
            "paper_family_group": paper_family_group(language.genus, language.family),
        })
    return pd.DataFrame(rows)


MEASURES = {
    "final": "Final score (after the last language)",
    "learned": "Score right after training the language",
    "forgetting": "Forgetting: learned minus final score (positive = forgotten)",
    "shift": "Performance shift caused by training the language (negative = destructive)",
    "mft_mean": "MFT averaged over hops (the language as donor; negative = the average fell)",
    "mbt_mean": "MBT averaged over hops (the language as receiver; negative = the average fell)",
}
"""The per-language measures of `language_measures`, with the reading of their sign."""


def paper_family_group(genus: str | None, family: str | None) -> str:
    """The paper's section 5.3 contrast: Romance and Germanic languages, the distant families
    it names (Sino-Tibetan, Austro-Asiatic, Afro-Asiatic), or neither."""
    claims = PAPER_CLAIMS["family"]
    if genus in claims["strong"]:
        return "Romance or Germanic"
    if family in claims["poor"]:
        return "Sino-Tibetan, Austro-Asiatic or Afro-Asiatic"
    return "other"


def language_measures(study: Study, strategies: Iterable[str] | None = None, *, max_hop: int = 9) -> pd.DataFrame:
    """Per strategy, order (seeds averaged) and language: the measures of `MEASURES`, plus facts.

    Columns: ``strategy``, ``order``, ``language``, ``position``, the measures (NaN where a formula
    is undefined: forgetting of the last language, shift of the first, every measure but
    ``final`` for joint training), and ``name``, ``script``, ``latin`` ("Latin"/"non-Latin"),
    ``family``, ``genus``, ``joshi_class``, ``vitality``, ``paper_family_group`` (see
    `paper_family_group`).
    """
    names = list(strategies) if strategies is not None else study.strategies
    rows = []
    for strategy in names:
        grouped: dict[str, list[RunRecord]] = {}
        for run in study.of(strategy):
            grouped.setdefault(run.order_spec, []).append(run)
        for label, runs in grouped.items():
            matrix = np.mean([run.matrix for run in runs], axis=0)
            order = runs[0].order
            size = len(order)
            final = matrix[-1]
            values = {key: np.full(size, np.nan) for key in MEASURES}
            values["final"] = final.astype(float)
            if matrix.shape[0] == size and size > 1:
                diagonal = np.diag(matrix)
                values["learned"] = diagonal.astype(float)
                values["forgetting"] = np.append(diagonal[:-1] - final[:-1], np.nan)
                values["shift"] = _array_or_nan(metrics.performance_shift, matrix, size)
                hops = range(min(max_hop, size - 1) + 1)
                values["mft_mean"] = _hop_mean(metrics.mft, matrix, hops, size)
                values["mbt_mean"] = _hop_mean(metrics.mbt, matrix, hops, size)
            for position, language in enumerate(order):
                row = {"strategy": strategy, "order": label, "language": language, "position": position}
                row.update({key: float(values[key][position]) for key in MEASURES})
                rows.append(row)
    frame = pd.DataFrame(rows, columns=["strategy", "order", "language", "position", *MEASURES])
    facts = _language_facts(study.config.languages, study.config.vitality_buckets)
    return frame.merge(facts, on="language", how="left")


def _array_or_nan(function, matrix: np.ndarray, size: int) -> np.ndarray:
    try:
        return np.asarray(function(matrix), dtype=float)
    except ValueError:
        return np.full(size, np.nan)


def _hop_mean(function, matrix: np.ndarray, hops: Iterable[int], size: int) -> np.ndarray:
    stack = []
    for h in hops:
        try:
            stack.append(np.asarray(function(matrix, h), dtype=float))
        except ValueError:
            stack.append(np.full(size, np.nan))
    stacked = np.vstack(stack)
    with np.errstate(all="ignore"):
        counts = np.isfinite(stacked).sum(axis=0)
        sums = np.nansum(stacked, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def group_summary(measures: pd.DataFrame, by: str, value: str, *, strategies: Iterable[str] | None = None,
                  n_resamples: int = 10000) -> pd.DataFrame:
    """A per-language measure averaged within groups, with a bootstrap interval over orders.

    For each strategy, order and group: the mean of `value` over the group's languages where it
    is defined; then mean and 95% interval over orders. Columns: ``strategy``, ``group``,
    ``mean``, ``ci_low``, ``ci_high``, ``n_orders``, ``n_languages``, ``languages``.
    """
    frame = measures if strategies is None else measures[measures["strategy"].isin(list(strategies))]
    frame = frame[np.isfinite(frame[value].to_numpy(dtype=float)) & frame[by].notna()]
    rows = []
    for (strategy, group), part in frame.groupby(["strategy", by], sort=False):
        per_order = part.groupby("order")[value].mean().to_numpy(dtype=float)
        mean, low, high = metrics.bootstrap_ci(per_order, n_resamples=n_resamples)
        languages = sorted(part["language"].unique())
        rows.append({"strategy": strategy, "group": group, "mean": mean, "ci_low": low, "ci_high": high,
                     "n_orders": per_order.size, "n_languages": len(languages),
                     "languages": ", ".join(languages)})
    columns = ["strategy", "group", "mean", "ci_low", "ci_high", "n_orders", "n_languages", "languages"]
    return pd.DataFrame(rows, columns=columns)


def group_difference(measures: pd.DataFrame, by: str, value: str, first: str, second: str, *,
                     strategy: str, n_resamples: int = 10000) -> dict[str, float]:
    """Mean of `value` over group `first` minus over group `second`, per order; then summarized.

    Returns ``{"mean", "ci_low", "ci_high", "n"}`` (n = orders where both groups have a value);
    all NaN with ``n = 0`` when a group is absent.
    """
    part = measures[(measures["strategy"] == strategy) & np.isfinite(measures[value].to_numpy(dtype=float))]
    table = part.groupby(["order", by])[value].mean().unstack(by)
    if first not in table.columns or second not in table.columns:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    differences = (table[first] - table[second]).dropna().to_numpy(dtype=float)
    if differences.size == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    return metrics.summarize(differences, n_resamples=n_resamples)


def group_table(measures: pd.DataFrame, by: str, values: Sequence[str], *,
                strategies: Iterable[str] | None = None, group_order: Sequence[str] | None = None,
                n_resamples: int = 10000) -> pd.DataFrame:
    """`group_summary` of several measures as one table of text: strategies x (measure, group).

    Cells read ``mean [low, high]`` (95% interval over orders; the bare mean with one order) and
    name the language when a group has only one (a single language, not a group).
    """
    frames = []
    for value in values:
        summary = group_summary(measures, by, value, strategies=strategies, n_resamples=n_resamples)
        if summary.empty:
            continue
        signed = value not in ("final", "learned")
        summary["text"] = [
            format_interval(row["mean"], row["ci_low"], row["ci_high"], int(row["n_orders"]), signed=signed)
            + (f"; only {row['languages']}" if row["n_languages"] == 1 else "")
            for _, row in summary.iterrows()
        ]
        summary["measure"] = value
        frames.append(summary)
    if not frames:
        return pd.DataFrame()
    long = pd.concat(frames, ignore_index=True)
    long["strategy"] = [display_name(name) for name in long["strategy"]]
    table = long.pivot_table(index="strategy", columns=["measure", "group"], values="text", aggfunc="first", sort=False)
    groups = list(group_order) if group_order is not None else list(dict.fromkeys(long["group"]))
    columns = [(value, group) for value in values for group in groups if (value, group) in table.columns]
    order = list(dict.fromkeys(long["strategy"]))
    return table.reindex(index=order, columns=pd.MultiIndex.from_tuples(columns, names=["measure", by]))


def measure_table(measures: pd.DataFrame, by: str, value: str, *, strategies: Iterable[str] | None = None,
                  group_order: Sequence[str] | None = None) -> pd.DataFrame:
    """One measure of `group_table`: strategies x groups, as text; empty when it is nowhere defined."""
    table = group_table(measures, by, [value], strategies=strategies, group_order=group_order)
    return table[value] if not table.empty else pd.DataFrame()


def group_points(measures: pd.DataFrame, by: str, value: str, *,
                 strategies: Iterable[str] | None = None) -> pd.DataFrame:
    """One point per strategy and language: the language's `value` averaged over orders.

    Columns ``strategy``, ``group``, ``language``, ``value`` (for `plots.plot_group_comparison`).
    """
    frame = measures if strategies is None else measures[measures["strategy"].isin(list(strategies))]
    frame = frame[np.isfinite(frame[value].to_numpy(dtype=float)) & frame[by].notna()]
    points = frame.groupby(["strategy", by, "language"], sort=False)[value].mean().reset_index()
    return points.rename(columns={by: "group", value: "value"})


def sequential_strategies(study: Study) -> list[str]:
    """Strategies with square score matrices (every language scored after every step)."""
    return [name for name in study.strategies if order_matrices(study, name)[0]]


# ---------------------------------------------------------------------------------------------
# side by side with the paper
# ---------------------------------------------------------------------------------------------


def _lora_rank(study: Study) -> int:
    return int(study.config.strategy.lora.rank)


def _paper_label(row: PaperRow | None) -> str:
    if row is None:
        return "not in the paper"
    return row.method + (f" (r = {row.rank})" if row.rank is not None else "")


def table1_comparison(study: Study) -> pd.DataFrame:
    """Our Table 1 beside the paper's, as text: one row per strategy with complete runs.

    Ours: trainable parameters as the paper counts them, final average with its interval over
    orders, and the final average by vitality bucket. The paper's: parameters (millions) and F1
    as a fraction (its percent / 100) overall and by vitality, from the row `paper_row` picks.
    """
    ours = table1(study)
    if ours.empty:
        return pd.DataFrame()
    buckets = list(study.config.vitality_buckets)
    rows = {}
    for strategy, row in ours.iterrows():
        paper = paper_row(strategy, _lora_rank(study))
        entry = {
            ("ours", "orders"): str(int(row["n_orders"])),
            ("ours", "trainable parameters"): f"{int(row['params_distinct']):,}",
            ("ours", "final average"): format_interval(row["final_average"], row["final_average_low"],
                                                       row["final_average_high"], int(row["n_orders"])),
        }
        for bucket in buckets:
            entry[("ours", bucket)] = format_interval(row[bucket]) if math.isfinite(row[bucket]) else "no language"
        entry[("paper", "method")] = _paper_label(paper)
        entry[("paper", "params (M)")] = f"{paper.params_m:,.2f}" if paper else ""
        entry[("paper", "F1")] = f"{paper.f1 / 100:.3f}" if paper else ""
        for bucket in ("low", "mid", "high"):
            entry[("paper", bucket)] = f"{getattr(paper, bucket) / 100:.3f}" if paper else ""
        rows[display_name(strategy)] = entry
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = "strategy"
    return frame


def table2_comparison(study: Study) -> pd.DataFrame:
    """Our CBT, CFT and forgetting (intervals over orders) beside the paper's Table 2, as text."""
    ours = table2(study)
    if ours.empty:
        return pd.DataFrame()
    rows = {}
    for strategy, row in ours.iterrows():
        paper = paper_row(strategy, _lora_rank(study))
        reported = PAPER_TABLE2.get((paper.method, paper.rank)) if paper else None
        n = int(row["n_orders"])
        rows[display_name(strategy)] = {
            ("ours", "orders"): str(n),
            ("ours", "CBT"): format_interval(row["cbt"], row["cbt_low"], row["cbt_high"], n, signed=True),
            ("ours", "CFT"): format_interval(row["cft"], row["cft_low"], row["cft_high"], n),
            ("ours", "forgetting"): format_interval(row["forgetting"], row["forgetting_low"],
                                                    row["forgetting_high"], n, signed=True),
            ("paper", "method"): _paper_label(paper) if reported else "not in Table 2",
            ("paper", "CBT"): f"{reported[0]:+.2f}" if reported else "",
            ("paper", "CFT"): f"{reported[1]:.2f}" if reported else "",
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = "strategy"
    return frame


def extreme_group(values, *, largest: bool = True, tolerance: float = 1e-9) -> str | None:
    """The group with the largest (or smallest) finite value; None when no group or a tie decides."""
    finite = {key: float(value) for key, value in dict(values).items() if value is not None and math.isfinite(value)}
    if not finite:
        return None
    target = max(finite.values()) if largest else min(finite.values())
    winners = [key for key, value in finite.items() if abs(value - target) <= tolerance]
    return winners[0] if len(winners) == 1 else None


def ranking_agreement(ours: dict[str, float], paper: dict[str, float]) -> tuple[int, int]:
    """Pairs of strategies ranked the same way here and in the paper: ``(agreeing, pairs)``.

    Only strategies present (and finite) in both mappings count; ties count as disagreement.
    """
    names = [name for name in ours if name in paper and math.isfinite(ours[name]) and math.isfinite(paper[name])]
    agreeing = pairs = 0
    for index, first in enumerate(names):
        for second in names[index + 1:]:
            pairs += 1
            if (ours[first] - ours[second]) * (paper[first] - paper[second]) > 0:
                agreeing += 1
    return agreeing, pairs


def paper_final_scores(study: Study) -> dict[str, float]:
    """The paper's F1 (as a fraction) of each of our strategies it ran."""
    found = {}
    for strategy in study.strategies:
        row = paper_row(strategy, _lora_rank(study))
        if row is not None:
            found[strategy] = row.f1 / 100
    return found


def scale_statement(study: Study) -> str:
    """A paragraph of Markdown: our setting against the paper's, and what can be compared."""
    config = study.config
    parameters = None
    for run in study.runs:
        if run.strategy in ("vanilla", "multi"):
            parameters = int(run.trainable.get("max_per_step", 0)) or None
            break
    size = f" with {parameters:,} trainable parameters (encoder and head)" if parameters else ""
    metric = (study.metric or "the primary score").replace("_", " ")
    return (
        f"**Scale.** These runs use the `{config.model.name}` model{size}, trained on "
        f"{DATASETS.get(config.dataset, config.dataset)} in {len(config.languages)} languages "
        f"({', '.join(config.languages)}), {len(study.orders) or len(config.orders)} language order(s) "
        f"and {len(config.seeds)} seed(s); every score is {metric}. The paper's setting: {PAPER_SETTING}. "
        "Levels of scores are therefore not comparable between the two; what can be compared is the "
        "direction of each effect (does a strategy forget at all, does one group of languages forget more) "
        "and the ranking of the strategies. With one order there is no interval, and a difference between "
        "single languages is not evidence of a difference between groups."
    )


# ---------------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------------


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
    """The paper's name for its strategies (VANILLA, ...), else the short name from the title."""
    if strategy in PAPER_NAMES:
        return PAPER_NAMES[strategy]
    try:
        from nbforget.strategies import REGISTRY

        title = REGISTRY[strategy].title
        return title.split(":")[0].strip() or strategy
    except Exception:  # noqa: BLE001 - a name is all we need; the registry is optional here
        return strategy


def describe_matrix(run) -> str:
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
    """One paragraph on the final average and CBT, compared with VANILLA's run of the same order
    and seed when one is among `companions` (and is not the run itself)."""
    cbt, chance, final = summary["cbt"], summary["chance"], summary["final_average"]
    opening = f"{name} ends at a final average of {final:.3f} against a chance level of {chance:.3f}. "
    if cbt != cbt:  # NaN: a single training step
        return opening + "CBT is not defined for this run (a single training step)."
    verdict = ("forgetting is visible: the final model scores lower on earlier languages than right after "
               "learning them" if cbt < 0 else
               "no forgetting on average: the final model scores at least as well on earlier languages as "
               "right after learning them")
    comparison = ""
    baseline = [run_summary(other)["cbt"] for other in companions
                if other.strategy == "vanilla" and display_name("vanilla") != name]
    if baseline:
        difference = cbt - baseline[0]
        comparison = (f" VANILLA's CBT on the same order and seed is {baseline[0]:+.3f}, so {name} forgets "
                      + ("about as much." if abs(difference) < 5e-4 else "less." if difference > 0 else "more."))
    return opening + f"Its CBT is {cbt:+.3f}: {verdict}.{comparison}"
