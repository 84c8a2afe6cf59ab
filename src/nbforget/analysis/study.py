"""Reading runs (never training): one run, every run of a profile, and a run's own metrics.

    load_run(run_dir) -> RunRecord        one complete run: score matrix, order, result, drift
    load_study(config) -> Study           every complete run of a profile (each sweep point's too), and
                                          what is missing; `Study.runs_table()` has the swept values;
                                          `Study.points()`, `Study.at(point)`, `Study.first_point()`
                                          give one point's runs (`Study.runs` refuses to mix points)
    companion_runs(config, run)           other strategies' runs of the same order and seed
    run_summary(run), summary_table(...)  its metrics, recomputed from its scores
    distinct_parameters(run)              trainable parameters as the paper counts them
    baseline_strategy(), reference_strategy()   VANILLA and MULTI, as the registry marks them

Run folders are located and their status read through `nbforget.runs`; facts about a strategy
(how many parameter copies it trains, which one is the baseline) come from the strategy registry.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nbforget import NbforgetError, metrics
from nbforget.config import RunConfig, display_path, point_overrides, sweep_axes, sweep_points, swept_axis
from nbforget.runs import base_scores, order_label, read_complete_run, run_status, score_matrix
from nbforget.strategies import REGISTRY, planned_runs, run_store

__all__ = [
    "RunRecord",
    "Study",
    "load_run",
    "load_study",
    "companion_runs",
    "run_summary",
    "summary_table",
    "SUMMARY_ROWS",
    "distinct_parameters",
    "baseline_strategy",
    "reference_strategy",
]


def _marked(attribute: str) -> str:
    for name, cls in REGISTRY.items():
        if getattr(cls, attribute):
            return name
    raise NbforgetError(f"no registered strategy has {attribute} = True; mark one in nbforget/strategies/")


def baseline_strategy() -> str:
    """The registered strategy every other one is compared with for forgetting (VANILLA):
    the one whose class sets ``sequential_baseline``."""
    return _marked("sequential_baseline")


def reference_strategy() -> str:
    """The registered joint-training reference (MULTI): the one whose class sets ``joint_reference``."""
    return _marked("joint_reference")


@dataclass
class RunRecord:
    """One complete run, read from its directory (see `nbforget.runs`).

    ``matrix`` has one row per step (rows = after training step i, columns = languages in
    ``order``); it is square for sequential strategies and has a single row for joint training.
    Every metric of the papers reads it. ``held_out_matrix`` holds the extra columns of the
    held-out languages (``held_out``: scored after every step, never trained), with the same rows,
    and ``held_out_base`` their scores before training; both are empty for a run without any.
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
    swept: dict = field(default_factory=dict)  # dotted key -> value of the sweep point it ran (if any)
    held_out: tuple[str, ...] = ()
    held_out_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    held_out_base: np.ndarray | None = None

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
    def final_average(self) -> float:
        """Mean of the last row of the matrix; NaN when a cell of it is unrecorded."""
        last = self.matrix[-1]
        return float(np.mean(last)) if np.all(np.isfinite(last)) else float("nan")

    @property
    def row_labels(self) -> list[str]:
        """What each row of the matrix was trained on, for plots ("all (joint)" for joint training)."""
        return ["all (joint)" if "+" in label else label for label in self.trained]


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a complete run directory; raises `NbforgetError` naming what is missing."""
    folder = Path(run_dir)
    stored, result, scores, drift = read_complete_run(folder)
    order = tuple(stored["order"])
    metric = result["metrics"]["metric"]
    matrix = score_matrix(scores, list(order), metric=metric)
    base = base_scores(scores, list(order), metric=metric)
    steps = scores[(scores.step >= 0)].drop_duplicates("step").sort_values("step")
    trained = tuple(str(label) for label in steps["trained_language"])
    held_out = tuple(stored.get("held_out") or ())
    return RunRecord(
        run_dir=folder, strategy=stored["strategy"], order_spec=order_label(stored["order_spec"]),
        seed=int(stored["seed"]), order=order, trained=trained, matrix=matrix, base=base,
        result=result, drift=drift, config=stored.get("config", {}), swept=dict(stored.get("swept") or {}),
        held_out=held_out,
        held_out_matrix=(score_matrix(scores, list(held_out), metric=metric) if held_out
                         else np.zeros((matrix.shape[0], 0))),
        held_out_base=base_scores(scores, list(held_out), metric=metric) if held_out else None,
    )


def _consistent(swept: dict, point: dict) -> bool:
    """True when a run with swept values `swept` belongs to `point`: they agree on every setting
    both name (a run is at every value of a setting its strategy does not read)."""
    return all(point[key] == value for key, value in swept.items() if key in point)


def _point_label(point: dict) -> str:
    """A sweep point as ``grid --list`` prints it: ``strategy.lora.rank=32, train.epochs=2``."""
    return ", ".join(f"{key}={value}" for key, value in point.items()) or "no swept setting"


def _point_key(point: dict) -> str:
    return json.dumps(point, sort_keys=True, default=str)


class Study:
    """The complete runs of one profile that match its languages, orders and seeds.

    With a sweep, the runs of every sweep point are kept (``all_runs``; `runs_table` lists them
    with their swept values). An analysis reads one configuration: ``study.runs`` (and
    `Study.of`) raise `NbforgetError` when a strategy has runs at more than one sweep point, since
    averaging them (SHARED LoRA at rank 32 and 256 together) would present a wrong number as one
    strategy's result. `Study.points` lists the points present, `Study.at` gives the study of one
    (with the strategies the sweep does not change, the same at every point) and
    `Study.first_point` the first in the sweep's declared order; `Study.sweep_text` names it.
    """

    def __init__(self, config: RunConfig, runs: list[RunRecord], missing: list[tuple[str, str, int]], *,
                 point: dict | None = None, missing_swept: list[dict] | None = None) -> None:
        self.config = config
        self.all_runs = list(runs)
        self.missing = list(missing)  # (strategy, order label, seed) expected but not complete
        # the swept values of each missing run (parallel to `missing`), to tell the points apart
        self.missing_swept = list(missing_swept) if missing_swept is not None else [{} for _ in self.missing]
        self.point = dict(point or {})  # the sweep point this study is restricted to ({}: all of them)

    def __repr__(self) -> str:
        return (f"Study(profile={self.config.profile!r}, runs={len(self.all_runs)}, missing={len(self.missing)}"
                + (f", point={self.point!r}" if self.point else "") + ")")

    # --- one configuration at a time ---------------------------------------------------------

    def _swept_values(self) -> dict[str, list]:
        """Every setting the profile's sweep names (dotted key) -> its values, in declared order."""
        return {key: list(values) for keys in self.config.sweep.values() for key, values in keys.items()}

    def _points_of(self, runs: list[RunRecord]) -> dict[str, list[dict]]:
        """Strategy -> the distinct swept values of its `runs`, where there are more than one."""
        found: dict[str, dict[str, dict]] = {}
        for run in runs:
            found.setdefault(run.strategy, {}).setdefault(_point_key(run.swept), run.swept)
        values = self._swept_values()

        def declared(point: dict) -> tuple:  # the sweep's declared order
            return tuple(values[key].index(value) if value in values.get(key, ()) else len(values.get(key, ()))
                         for key, value in point.items())

        return {strategy: sorted(points.values(), key=declared) for strategy, points in found.items()
                if len(points) > 1}

    def _one_point(self, runs: list[RunRecord]) -> list[RunRecord]:
        mixed = self._points_of(runs)
        if mixed:
            which = "; ".join(f"{strategy} at " + " and ".join(_point_label(point) for point in points)
                              for strategy, points in mixed.items())
            raise NbforgetError(
                f"the study of profile {self.config.profile!r} has runs of more than one sweep point for the "
                f"same strategy ({which}); an analysis of study.runs would average them as one strategy's "
                "result: use study.at(point) or study.first_point() (study.points() lists the points: "
                + "; ".join(_point_label(point) for point in self.points()) + ")")
        return runs

    @property
    def runs(self) -> list[RunRecord]:
        """The runs, for an analysis of one configuration: raises `NbforgetError` when a strategy
        has runs at more than one sweep point (`all_runs` has them all; use `at` or `first_point`)."""
        return self._one_point(self.all_runs)

    @runs.setter
    def runs(self, runs: list[RunRecord]) -> None:
        self.all_runs = list(runs)

    def of(self, strategy: str) -> list[RunRecord]:
        """`strategy`'s runs; raises `NbforgetError` when they are of more than one sweep point."""
        return self._one_point([run for run in self.all_runs if run.strategy == strategy])

    def points(self) -> list[dict]:
        """The sweep points with runs here, in the sweep's declared order (the first axis varies
        slowest), each as dotted key -> value over the axes some run's strategy reads; a point is
        listed when runs of it read every one of its axes. ``[{}]`` without a sweep."""
        read = {key for run in self.all_runs for key in run.swept}
        axes = {axis: keys for axis, keys in sweep_axes(self.config).items() if any(key in read for key in keys)}
        found = []
        for point in sweep_points(axes):
            matching = [run for run in self.all_runs if _consistent(run.swept, point)]
            if matching and all(any(key in run.swept for run in matching for key in keys) for keys in axes.values()):
                found.append(point)
        return found or [{}]

    def at(self, point: dict) -> Study:
        """The study of one sweep point (dotted key -> value; a value for some axes only keeps
        every value of the others): the runs of that point, and the runs of the strategies that do
        not read its settings (the same at every point). Its ``config`` has the point's settings,
        as the point's runs had (the LoRA rank the paper's rows are picked for, say)."""
        point = dict(point or {})
        if not point:
            return self
        values = self._swept_values()
        for key, value in point.items():
            if key not in values:
                raise NbforgetError(
                    f"study.at: {key} is not swept by profile {self.config.profile!r}; the swept settings: "
                    + (", ".join(values) or "none (the profile has no sweep)"))
            if value not in values[key]:
                raise NbforgetError(f"study.at: {key}={value!r} is not a value of the sweep; its values: "
                                    + ", ".join(str(choice) for choice in values[key]))
        runs = [run for run in self.all_runs if _consistent(run.swept, point)]
        kept = [index for index, swept in enumerate(self.missing_swept) if _consistent(swept, point)]
        return Study(self.config.with_overrides(point_overrides(point)), runs, [self.missing[i] for i in kept],
                     point={**self.point, **point}, missing_swept=[self.missing_swept[i] for i in kept])

    def first_point(self) -> Study:
        """The study of the first sweep point present (`points`, in the sweep's declared order);
        the study itself without a sweep."""
        return self.at(self.points()[0])

    def sweep_text(self) -> str:
        """The sweep point this study shows, for a page: ``strategy.lora.rank = 32 (of 32, 64,
        256)``, one entry per swept setting (joined by "; "); "" when it is not one point's."""
        parts = []
        for keys in self.config.sweep.values():
            for key, values in keys.items():
                if key in self.point:
                    parts.append(f"{key} = {self.point[key]} (of {', '.join(str(value) for value in values)})")
        return "; ".join(parts)

    # --- what was found ------------------------------------------------------------------------

    @property
    def strategies(self) -> list[str]:
        """Strategies with at least one complete run: the profile's list first, then the others."""
        found = {run.strategy for run in self.all_runs}
        listed = [name for name in self.config.strategies if name in found]
        return listed + sorted(found - set(listed))

    @property
    def missing_strategies(self) -> list[str]:
        """Strategies of the profile's list without any complete run."""
        found = {run.strategy for run in self.all_runs}
        return [name for name in self.config.strategies if name not in found]

    @property
    def sweep_keys(self) -> list[str]:
        """The settings the profile's sweep varies (dotted keys), in the order of its axes: the
        columns of the swept values in `runs_table` and `nbforget.analysis.run_metrics`."""
        return [key for keys in self.config.sweep.values() for key in keys]

    def swept_values(self, run: RunRecord) -> dict:
        """`run`'s value of each of `sweep_keys`; None where its strategy does not read that setting
        (a rank axis says nothing of VANILLA's runs)."""
        return {key: run.swept.get(key) for key in self.sweep_keys}

    def runs_table(self) -> pd.DataFrame:
        """One row per run (of every sweep point): strategy, order, seed, the swept values (one
        column per swept setting, see `sweep_keys`) and the run directory; pages group by the
        swept columns."""
        rows = [{"strategy": run.strategy, "order": run.order_spec, "seed": run.seed, **self.swept_values(run),
                 "run_dir": str(run.run_dir)} for run in self.all_runs]
        return pd.DataFrame(rows, columns=["strategy", "order", "seed", *self.sweep_keys, "run_dir"])

    @property
    def metric(self) -> str | None:
        return self.all_runs[0].metric if self.all_runs else None

    @property
    def chance(self) -> float:
        return self.all_runs[0].chance if self.all_runs else float("nan")

    @property
    def orders(self) -> list[str]:
        return sorted({run.order_spec for run in self.all_runs})

    def describe(self) -> str:
        """One paragraph: what was found, and what is missing (and which sweep point it shows)."""
        config = self.config
        models = (swept_axis(config, "model.name") or {}).get("model.name")
        model = (f"models {', '.join(f'`{name}`' for name in models)} (swept)" if models and "model.name" not in self.point
                 else f"model `{config.model.name}`")
        text = (f"Profile `{config.profile}`: data set `{config.dataset}`, {model}, "
                f"{len(config.languages)} languages ({', '.join(config.languages)}), "
                f"{len(config.orders)} order(s), {len(config.seeds)} seed(s). "
                f"Runs read from `{display_path(config.runs_path / config.profile)}`: {len(self.all_runs)} complete run(s) "
                f"of {len(self.strategies)} strategies.")
        if self.point:
            text += (f" Sweep point shown: {self.sweep_text()}; the runs of the sweep's other points are left out "
                     "(strategies that do not read the swept settings have the same runs at every point).")
        else:
            points = self.points()
            if len(points) > 1:
                text += (f" Runs of {len(points)} sweep points: " + "; ".join(_point_label(p) for p in points)
                         + "; an analysis reads one at a time (`study.at(point)`, `study.first_point()`).")
        if config.held_out_languages:
            text += (f" Held out (scored before training and after every step, never trained): "
                     f"{', '.join(config.held_out_languages)}; the metrics of the papers read the trained languages "
                     "only, and the overview's section on held-out languages gives their zero-shot scores.")
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

    Expected runs are those `nbforget.strategies.planned_runs` plans for ``strategies`` (default:
    the profile's list): their sweep points x orders x seeds, each record carrying its swept values
    (``RunRecord.swept``; `Study.runs_table` has them as columns). Complete runs of other strategies
    with the same orders, seeds and languages are included too (a strategy run with ``nbforget
    run`` shows up without being in the list). Runs of other languages under the same profile name
    are ignored.
    """
    expected = list(strategies) if strategies is not None else list(config.strategies)
    root = config.runs_path
    languages = set(config.languages)
    records: dict[Path, RunRecord] = {}
    missing, missing_swept = [], []

    def read(run) -> RunRecord:
        record = load_run(run.store.path)
        record.swept = dict(run.swept)
        return record

    for run in planned_runs(config, expected):
        if run.store.status == "complete":
            records[run.store.path] = read(run)
        else:
            missing.append((run.strategy, order_label(run.order), run.seed))
            missing_swept.append(dict(run.swept))
    others = sorted(folder.name for folder in (root / config.profile).glob("*") if folder.is_dir())
    others = [strategy for strategy in others if strategy not in expected and strategy in REGISTRY]
    for run in planned_runs(config, others, orders=config.orders):  # this config's runs of those strategies
        if run.store.status == "complete":
            records[run.store.path] = read(run)
    runs = [run for run in records.values() if set(run.order) == languages]
    return Study(config=config, runs=runs, missing=missing, missing_swept=missing_swept)


def companion_runs(config: RunConfig, run: RunRecord, strategies: Iterable[str] | None = None) -> list[RunRecord]:
    """Complete runs of other `strategies` (default: the joint reference, MULTI) with the same
    profile, order and seed as `run`."""
    found = []
    for strategy in (reference_strategy(),) if strategies is None else strategies:
        if strategy == run.strategy:
            continue
        specs = [spec for spec in [*config.orders, *config.orders_for(strategy)] if order_label(spec) == run.order_spec]
        if not specs:
            continue
        folder = run_store(config, strategy, specs[0], run.seed).path  # same order and seed, this config
        if run_status(folder) == "complete":
            record = load_run(folder)
            if record.order == run.order:
                found.append(record)
    return found


# ---------------------------------------------------------------------------------------------
# one run's metrics
# ---------------------------------------------------------------------------------------------


def _safe(function, *args) -> float:
    try:
        return float(function(*args))
    except ValueError:
        return float("nan")


def distinct_parameters(run: RunRecord) -> int:
    """Trainable parameters of a run counted as the paper's Table 1 counts them.

    The largest number trained at one step, times the copies of those parameters the strategy
    keeps (``REGISTRY[strategy].parameter_copies``: one per language for MONO, per family for
    FAMILY EXPERTS, one for a strategy that trains one set again and again, like VANILLA). A
    strategy that is not registered counts as one copy.
    """
    per_step = int(run.trainable.get("max_per_step", 0))
    cls = REGISTRY.get(run.strategy)
    copies = cls.parameter_copies(run.config, run.order) if cls is not None else 1
    return per_step * copies


def run_summary(run: RunRecord) -> dict:
    """The metrics of one run's score matrix, its trainable parameters and its time.

    Computed here from the scores (not copied from result.json). Metrics a matrix cannot give
    (CBT of joint training, CFT without zero-shot cells) are NaN.
    """
    summary = {
        "strategy": run.strategy, "order": run.order_spec, "seed": run.seed,
        "final_average": run.final_average, "chance": run.chance,
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
