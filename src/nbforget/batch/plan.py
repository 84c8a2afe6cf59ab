"""Planning a grid: which strategy and analysis notebooks a profile implies, and which are done.

Every run of `nbforget.strategies.planned_runs` is one notebook: each strategy x its sweep points
(the axes of the profile's ``sweep`` with a setting it reads) x its orders x seeds.
The runs of the reference strategies (`nbforget.strategies.reference_strategies`: MULTI and VANILLA)
go first, since the other strategy pages draw them as references. A run that is complete and
whose executed notebook is newer than its source is not executed again; an analysis is executed
again only when its source, or some run it reads, is newer than its page.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from nbforget.batch.notebooks import RUN_NOTEBOOK, Failure, Job, copy_file
from nbforget.config import REPO_ROOT, RunConfig, display_path, merge_overrides
from nbforget.strategies import PlannedRun, check_names, planned_runs, reference_strategies, strategy_config

BOOK_DIR = REPO_ROOT / "book"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def _newer(path: Path, *than: Path) -> bool:
    """True when `path` exists and is at least as new as every existing path in `than`."""
    if not path.exists():
        return False
    stamp = path.stat().st_mtime
    return all(stamp >= other.stat().st_mtime for other in than if other.exists())


def strategy_jobs(config: RunConfig, params_file: str, overrides: dict, *, book_dir: Path,
                  notebooks_dir: Path) -> tuple[list[Job], int, list[Failure]]:
    """The strategy notebooks to execute: ``(jobs, runs already done, strategies without a notebook)``.

    One job per planned run (`nbforget.strategies.planned_runs`: strategies x sweep points x
    orders x seeds); a job's ``overrides`` parameter is the grid's overrides with its sweep point
    on top. A run already done (complete, with an executed notebook newer than its source) has its
    book page refreshed from the run's copy here, when the page is missing or older.
    """
    check_names(config)  # a misspelt strategy gets "did you mean", not a request for a new notebook
    jobs, done, missing = [], 0, []
    for strategy in config.strategies:
        source = notebooks_dir / "strategies" / f"{strategy}.py"
        if not source.exists():
            missing.append(Failure(source, None, f"no notebook for strategy {strategy!r}; write "
                                                 f"{display_path(source)} (one per registered strategy)"))
            continue
        page = book_dir / "generated" / "strategies" / f"{strategy}.ipynb"
        for index, run in enumerate(planned_runs(config, [strategy])):
            output = run.store.path / RUN_NOTEBOOK
            # the strategy's page in the book is its first run (first point, order and seed)
            copies = (page,) if index == 0 else ()
            if run.store.status == "complete" and _newer(output, source):
                done += 1
                for copy in copies:
                    if not _newer(copy, output):
                        copy_file(output, copy)
                continue
            parameters = {"params_file": params_file, "order": run.order, "seed": run.seed,
                          "overrides": merge_overrides(overrides, run.overrides), "progress": False}
            jobs.append(Job(f"{strategy} order {run.order} seed {run.seed}{swept_label(run.swept, ', ')}", source,
                            output, parameters, copies, cwd=source.parent,
                            phase=0 if strategy in reference_strategies() else 1))
    jobs.sort(key=lambda job: job.phase)  # stable: the profile's order within a phase
    return jobs, done, missing


def swept_label(swept: dict, prefix: str = "") -> str:
    """``strategy.lora.rank=8, train.epochs=3`` (after `prefix`), or "" for a run of no sweep point."""
    if not swept:
        return ""
    return prefix + ", ".join(f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
                              for key, value in swept.items())


def run_state(run: PlannedRun) -> str:
    """``complete``, ``partial`` (its folder exists: running, failed or interrupted) or ``missing``."""
    if run.store.status == "complete":
        return "complete"
    return "partial" if run.store.path.exists() else "missing"


def run_list(config: RunConfig) -> str:
    """Every run the profile implies, one line each (strategy, order, seed, swept values, state,
    run folder), then a count of each state; for `nbforget grid --list`, which runs nothing."""
    check_names(config)
    runs = planned_runs(config)
    rows = [("strategy", "order", "seed", "swept", "status", "run folder")]
    rows += [(run.strategy, str(run.order), str(run.seed), swept_label(run.swept) or "-", run_state(run),
              display_path(run.store.path)) for run in runs]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = ["  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]).rstrip() for row in rows]
    states = [run_state(run) for run in runs]
    counts = ", ".join(f"{states.count(state)} {state}" for state in ("complete", "partial", "missing"))
    lines.append(f"{len(runs)} run(s) of profile {config.profile}: {counts}")
    return "\n".join(lines)


def base_model_configs(config: RunConfig) -> list[RunConfig]:
    """One config per distinct base model the planned runs train from (a sweep or a strategy's
    own settings may change the model), for building each once before parallel work starts."""
    found: dict[str, RunConfig] = {}
    for run in planned_runs(config):
        if run.store.status == "complete":
            continue
        resolved = strategy_config(run.config, run.strategy)
        # what `nbforget.batch.grid._prepare_base_model` builds from: model, evaluated languages, data set
        key = json.dumps([dataclasses.asdict(resolved.model), resolved.evaluated_languages, resolved.dataset,
                          resolved.data_dir], default=str)
        found.setdefault(key, resolved)
    return list(found.values())


def analysis_jobs(config: RunConfig, params_file: str, overrides: dict, *, book_dir: Path,
                  notebooks_dir: Path, force: bool = False) -> tuple[list[Job], int]:
    """The analysis notebooks to execute, and how many are up to date.

    An analysis is up to date when its page is newer than its source and than every run result
    of the profile; `force` executes them all.
    """
    folder = notebooks_dir / "analyses"
    sources = sorted(path for path in folder.glob("*.py") if not path.name.startswith(("_", ".")))
    results = list((config.runs_path / config.profile).glob("*/order-*/seed-*/result.json"))
    runs_dir = overrides.get("runs_dir")
    jobs, current = [], 0
    for source in sources:
        output = book_dir / "generated" / "analyses" / f"{source.stem}.ipynb"
        if not force and _newer(output, source, *results):
            current += 1
            continue
        parameters = {"params_file": params_file, "runs_dir": runs_dir, "overrides": overrides}
        jobs.append(Job(f"analysis {source.stem}", source, output, parameters, cwd=folder))
    return jobs, current
